"""Test-time steering (V-GPS, Hume): sample N candidate chunks from a policy, execute the one a Q-function ranks best.

The policy's weights never change; only which of its own samples gets executed. Any object with
``score(obs, candidates) -> (n,)`` can rank candidates, e.g. :class:`rlvla_ros.policies.chunk_q.ChunkQFunction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from rlvla_ros.policies.base import Policy


class ChunkScorer(Protocol):
    """Ranks candidate chunks (n, H, 5) for one unbatched observation; higher is better."""

    def score(self, obs: dict[str, Any], candidates: torch.Tensor) -> torch.Tensor: ...


def choose_chunk(
    policy: Policy, q_model: ChunkScorer, obs: dict[str, Any], n: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best of ``n`` chunks sampled at ``temperature`` for one observation: ``(chunk (H, 5), scores (n,))``."""
    candidates = policy.sample_candidates(obs, n, temperature)
    scores = torch.as_tensor(q_model.score(obs, candidates)).reshape(-1)
    if scores.shape != (len(candidates),):
        raise ValueError(f"scorer returned {tuple(scores.shape)} scores for {len(candidates)} candidates")
    return candidates[int(torch.argmax(scores))], scores


def steering_hook(
    policy: Policy, q_model: ChunkScorer, n: int, temperature: float = 1.0
) -> Callable[[dict[str, Any]], np.ndarray]:
    """A batched chunk chooser (observation batch -> (B, H, 5)) for rollouts and evaluation."""
    if n < 1:
        raise ValueError(f"need at least one candidate, got {n}")

    def choose(obs_batch: dict[str, Any]) -> np.ndarray:
        chunks = []
        for i, instruction in enumerate(obs_batch["instruction"]):
            obs = {"image": obs_batch["image"][i], "proprio": obs_batch["proprio"][i], "instruction": instruction}
            chunks.append(choose_chunk(policy, q_model, obs, n, temperature)[0].cpu().numpy())
        return np.stack(chunks).astype(np.float32)

    return choose
