"""Every step of a set of episodes as a chunk transition on cached frozen features: the dataset of the offline
methods that learn values (``value``, ``calql``, ``recap``).

A transition at step t holds the features of s_t, the recorded chunk ``a_{t:t+H}`` (zero-padded past the episode end),
its discounted reward sum, the row of s_{t+H} to bootstrap from (with ``gamma^H``, or 0 where the episode ended within
the chunk) and the Monte-Carlo return of s_t (Cal-QL's lower bound). Features are computed once with a frozen encoder,
so every update reuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.data import EpisodeRecord, discounted_returns
from rlvla_ros.policies.base import ObsBatch

ENCODE_BATCH = 64
"""Images per frozen-encoder forward pass when caching dataset features."""


@dataclass
class ChunkTransitions:
    """Every step of a set of episodes as a chunk transition, on cached frozen features (tensors, first dim N)."""

    features: torch.Tensor
    """(N, F) frozen features of s_t."""
    actions: torch.Tensor
    """(N, H, 5) data chunk a_{t:t+H}, zero past the episode end."""
    action_mask: torch.Tensor
    """(N, H) bool, False on the zero padding."""
    chunk_rewards: torch.Tensor
    """(N,) sum_k gamma^k r_{t+k} over the chunk."""
    next_index: torch.Tensor
    """(N,) long row of s_{t+H} (the row itself where the episode ended within the chunk)."""
    bootstrap: torch.Tensor
    """(N,) gamma^H, or 0 where the episode ended within the chunk (success, or a timeout with no later state)."""
    mc_returns: torch.Tensor
    """(N,) Monte-Carlo discounted return-to-go of s_t (Cal-QL's lower bound)."""
    episode_index: torch.Tensor
    """(N,) long index of the episode each row belongs to."""

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[EpisodeRecord],
        encode: Callable[[ObsBatch], torch.Tensor],
        horizon: int,
        gamma: float,
    ) -> ChunkTransitions:
        """Encode every step once with ``encode`` (frozen, so features can be reused for every update)."""
        if horizon < 1 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"need horizon >= 1 and gamma in [0, 1], got {horizon}, {gamma}")
        episodes = [episode for episode in episodes if len(episode)]
        if not episodes:
            raise ValueError("no non-empty episodes to build transitions from")
        columns: dict[str, list] = {name: [] for name in ("features", "actions", "mask", "rewards", "next", "boot")}
        mc_returns, episode_index, offset = [], [], 0
        for index, episode in enumerate(episodes):
            length = len(episode)
            columns["features"].append(_encode_episode(episode, encode))
            padded = np.concatenate([episode.actions, np.zeros((horizon, ACTION_DIM), np.float32)])
            rewards = np.concatenate([episode.rewards, np.zeros(horizon, np.float32)]).astype(np.float64)
            steps = np.arange(length)
            window = steps[:, None] + np.arange(horizon)[None]
            columns["actions"].append(padded[window])
            columns["mask"].append(window < length)
            columns["rewards"].append((rewards[window] * gamma ** np.arange(horizon)).sum(1))
            inside = steps + horizon < length
            columns["next"].append(offset + np.where(inside, steps + horizon, steps))
            columns["boot"].append(np.where(inside, gamma**horizon, 0.0))
            mc_returns.append(discounted_returns(episode.rewards, gamma))
            episode_index.append(np.full(length, index))
            offset += length
        return cls(
            features=torch.cat(columns["features"]),
            actions=torch.as_tensor(np.concatenate(columns["actions"]), dtype=torch.float32),
            action_mask=torch.as_tensor(np.concatenate(columns["mask"])),
            chunk_rewards=torch.as_tensor(np.concatenate(columns["rewards"]), dtype=torch.float32),
            next_index=torch.as_tensor(np.concatenate(columns["next"]), dtype=torch.long),
            bootstrap=torch.as_tensor(np.concatenate(columns["boot"]), dtype=torch.float32),
            mc_returns=torch.as_tensor(np.concatenate(mc_returns), dtype=torch.float32),
            episode_index=torch.as_tensor(np.concatenate(episode_index), dtype=torch.long),
        )


def _encode_episode(episode: EpisodeRecord, encode: Callable[[ObsBatch], torch.Tensor]) -> torch.Tensor:
    parts = []
    for start in range(0, len(episode), ENCODE_BATCH):
        stop = min(start + ENCODE_BATCH, len(episode))
        batch = {
            "image": episode.images[start:stop],
            "proprio": episode.proprio[start:stop],
            "instruction": [episode.instruction] * (stop - start),
        }
        parts.append(encode(batch).detach())
    return torch.cat(parts)
