"""Chunk-level decisions of recorded or simulated episodes, the unit PPO and GRPO update on.

A policy chooses one chunk of H actions per decision and the rows are executed open loop, so an episode of T steps
holds decisions at steps 0, H, 2H, ...; decision k covers rows ``kH .. min(kH + H, T) - 1`` (the last may be cut
short by the episode end: its missing rows are masked out). Sources that execute only part of each chunk (a safety
filter with ``execute_steps < H``) are read with the same segmentation, an approximation the docs point out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.data.episodes import EpisodeRecord


@dataclass
class Segments:
    """N chunk decisions, in episode order."""

    episode: np.ndarray
    """(N,) index of the decision's episode in the list it was built from."""
    start: np.ndarray
    """(N,) step at which the decision's chunk starts."""
    actions: np.ndarray
    """(N, H, 5) executed rows, zero past the episode end."""
    mask: np.ndarray
    """(N, H) bool, True on executed rows."""
    old_log_probs: np.ndarray
    """(N, H) per-row log-probabilities under the sampling policy (0 on masked rows)."""
    rewards: np.ndarray
    """(N,) sum of the rewards of the executed rows."""
    dones: np.ndarray
    """(N,) True on each episode's last decision (success or timeout: no bootstrapping past it)."""
    latents: np.ndarray | None = None
    """(N, L) what the policy drew with each decision's chunk (``EpisodeRecord.latents``), or None."""

    def __len__(self) -> int:
        return len(self.episode)

    def latents_at(self, index: np.ndarray) -> torch.Tensor | None:
        """The indexed decisions' latents as a tensor, for ``log_prob(..., latents=)``; None without latents."""
        return None if self.latents is None else torch.as_tensor(self.latents[index])


def chunk_segments(episodes: Sequence[EpisodeRecord], chunk_size: int) -> Segments:
    """Cut every episode into decisions of ``chunk_size`` rows; episodes need per-step ``log_probs``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    parts: dict[str, list] = {k: [] for k in ("episode", "start", "actions", "mask", "logp", "rewards", "dones",
                                              "latents")}
    with_latents = {episode.latents is not None for episode in episodes}
    if len(with_latents) > 1:
        raise ValueError("some episodes carry latents and some do not: they come from different kinds of policy")
    for index, episode in enumerate(episodes):
        if episode.log_probs is None or np.isnan(episode.log_probs).any():
            raise ValueError(f"episode {episode.episode_id} lacks per-step log-probs; on-policy updates need them")
        length = len(episode)
        for start in range(0, length, chunk_size):
            rows = min(chunk_size, length - start)
            actions = np.zeros((chunk_size, ACTION_DIM), np.float32)
            actions[:rows] = episode.actions[start : start + rows]
            logp = np.zeros(chunk_size, np.float32)
            logp[:rows] = episode.log_probs[start : start + rows]
            parts["episode"].append(index)
            parts["start"].append(start)
            parts["actions"].append(actions)
            parts["mask"].append(np.arange(chunk_size) < rows)
            parts["logp"].append(logp)
            parts["rewards"].append(float(episode.rewards[start : start + rows].sum()))
            parts["dones"].append(start + rows >= length)
            if episode.latents is not None:
                parts["latents"].append(episode.latents[start])
    if not parts["episode"]:
        raise ValueError("no steps in the given episodes")
    return Segments(
        episode=np.asarray(parts["episode"]),
        start=np.asarray(parts["start"]),
        actions=np.stack(parts["actions"]),
        mask=np.stack(parts["mask"]),
        old_log_probs=np.stack(parts["logp"]),
        rewards=np.asarray(parts["rewards"], np.float32),
        dones=np.asarray(parts["dones"]),
        latents=np.stack(parts["latents"]) if parts["latents"] else None,
    )


def segment_observations(episodes: Sequence[EpisodeRecord], segments: Segments) -> dict:
    """Batched policy observations at each decision's start step."""
    picked = [episodes[e].observation(s) for e, s in zip(segments.episode, segments.start)]
    return {
        "image": np.stack([o["image"] for o in picked]),
        "proprio": np.stack([o["proprio"] for o in picked]),
        "instruction": [o["instruction"] for o in picked],
    }
