"""Test-time steering (V-GPS, Hume): the policy proposes its mode and N - 1 sampled chunks per observation, and a
chunk Q-function decides which one to execute.

The policy's weights never change, only which of its own proposals runs. The choice is conservative: the mode stays
unless every critic of the Q-function's ensemble scores a sample higher than the mode by more than ``margin``, and
then the sample with the largest such agreed gain runs. Where the critics are unsure (they disagree, or see no gain)
the policy acts as it would alone, so a weak Q-function costs little, and an argmax over noisy estimates cannot pick
a sample because one critic happens to like it. Any scorer with ``features(obs_batch) -> (B, F)`` and
``scorer(features, chunks (B, n, H, 5)) -> (K, B, n)`` can steer, e.g.
:class:`rlvla_ros.policies.chunk_q.ChunkQFunction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from rlvla_ros.policies.base import ObsBatch, Policy
from rlvla_ros.policies.observations import batch_size


class ChunkScorer(Protocol):
    """An ensemble of K critics scoring candidate chunks; higher is better."""

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Observation features (B, F)."""

    def __call__(self, features: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Scores (K, B, n) of chunks (B, n, H, 5)."""


def propose(policy: Policy, obs_batch: ObsBatch, n: int, temperature: float = 1.0) -> torch.Tensor:
    """Candidates (B, n, H, 5) per observation: the policy's mode first, then ``n - 1`` samples at ``temperature``."""
    if n < 1:
        raise ValueError(f"need at least one candidate, got {n}")
    batch = batch_size(obs_batch)
    mode = policy.predict(obs_batch, deterministic=True).actions
    if n == 1:
        return mode[:, None]
    repeated = {
        "image": np.repeat(np.asarray(obs_batch["image"]), n - 1, axis=0),
        "proprio": np.repeat(np.asarray(obs_batch["proprio"], dtype=np.float32), n - 1, axis=0),
        "instruction": [text for text in obs_batch["instruction"] for _ in range(n - 1)],
    }
    samples = policy.predict(repeated, temperature=temperature).actions
    return torch.cat([mode[:, None], samples.reshape(batch, n - 1, *mode.shape[1:])], dim=1)


def choose_chunks(
    policy: Policy, q_model: ChunkScorer, obs_batch: ObsBatch, n: int, temperature: float = 1.0, margin: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk to execute per observation, the index of its candidate (0: the mode) and its ensemble-minimum score:
    ``((B, H, 5), (B,), (B,))``."""
    candidates = propose(policy, obs_batch, n, temperature)
    with torch.no_grad():
        scores = q_model(q_model.features(obs_batch), candidates.to(torch.float32))
    if scores.ndim != 3 or scores.shape[1:] != candidates.shape[:2]:
        raise ValueError(f"scorer returned {tuple(scores.shape)} scores for {tuple(candidates.shape[:2])} candidates")
    agreed_gain = (scores - scores[..., :1]).amin(0)  # (B, n): the smallest gain over the mode of any critic
    agreed_gain[:, 0] = margin  # a sample must gain more than the margin; argmax takes the first of equal ones
    chosen = agreed_gain.argmax(1)
    rows = torch.arange(len(candidates))
    return candidates[rows, chosen], chosen, scores.amin(0)[rows, chosen]


def steering_hook(
    policy: Policy, q_model: ChunkScorer, n: int, temperature: float = 1.0, margin: float = 0.0
) -> Callable[[dict[str, Any]], np.ndarray]:
    """A batched chunk chooser (observation batch -> (B, H, 5)) for rollouts and evaluation."""
    if n < 1:
        raise ValueError(f"need at least one candidate, got {n}")

    def choose(obs_batch: dict[str, Any]) -> np.ndarray:
        return choose_chunks(policy, q_model, obs_batch, n, temperature, margin)[0].cpu().numpy().astype(np.float32)

    return choose
