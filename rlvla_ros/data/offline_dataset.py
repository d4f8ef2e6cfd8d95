"""Torch-free offline dataset of transitions with action chunks, for behaviour cloning and offline RL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.data.dataset_sources import dataset_episodes
from rlvla_ros.data.episodes import EpisodeRecord


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Return-to-go: G_t = r_t + gamma * G_{t+1}, with G_T = 0 after the last step."""
    returns = np.zeros(len(rewards), dtype=np.float32)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


class OfflineDataset:
    """Transitions of a list of episodes; item i is one step with the action chunk starting there.

    Each item is a dict: `image` (H, W, 3) uint8, `proprio` (P,), `instruction` str, `actions` (horizon, 5)
    float32 (zero-padded past the episode end), `action_mask` (horizon,) bool (False on padding), `reward`,
    `done` (last step of the episode), `terminated` (done and the episode succeeded, so no bootstrapping),
    `return_to_go` (discounted with `gamma`), `success` (the step's success flag), `episode_success`,
    `intervention`, `next_image` / `next_proprio` (the same observation on the last step), `episode_index`, `step`.
    """

    def __init__(self, episodes: Sequence[EpisodeRecord], *, horizon: int = 1, gamma: float = 1.0) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.episodes = [episode for episode in episodes if len(episode)]
        self.horizon = horizon
        self.gamma = gamma
        lengths = np.array([len(episode) for episode in self.episodes], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        self._returns = [discounted_returns(episode.rewards, gamma) for episode in self.episodes]

    @classmethod
    def from_path(
        cls,
        path: Path | str,
        *,
        horizon: int = 1,
        gamma: float = 1.0,
        camera: str | None = None,
        tasks: Sequence[str] | None = None,
        splits: Sequence[str] | None = None,
        include_incomplete: bool = False,
    ) -> OfflineDataset:
        """Load every episode of a bag, folder of bags or LeRobot v3.0 dataset, optionally only some tasks / splits."""
        episodes = [
            episode
            for episode in dataset_episodes(path, camera=camera, include_incomplete=include_incomplete)
            if (tasks is None or episode.task in tasks) and (splits is None or episode.split in splits)
        ]
        return cls(episodes, horizon=horizon, gamma=gamma)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(episode index, step) of transition `index`."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"transition {index} out of range for {len(self)} transitions")
        index %= len(self)
        episode = int(np.searchsorted(self._starts, index, side="right")) - 1
        return episode, index - int(self._starts[episode])

    def __getitem__(self, index: int) -> dict:
        episode_index, step = self.locate(index)
        episode = self.episodes[episode_index]
        length = len(episode)
        end = min(step + self.horizon, length)
        actions = np.zeros((self.horizon, ACTION_DIM), dtype=np.float32)
        actions[: end - step] = episode.actions[step:end]
        mask = np.arange(self.horizon) < end - step
        last = step == length - 1
        next_step = step if last else step + 1
        return {
            "image": episode.images[step],
            "proprio": episode.proprio[step],
            "instruction": episode.instruction,
            "actions": actions,
            "action_mask": mask,
            "reward": np.float32(episode.rewards[step]),
            "done": last,
            "terminated": last and episode.success,
            "return_to_go": self._returns[episode_index][step],
            "success": bool(episode.successes[step]),
            "episode_success": episode.success,
            "intervention": bool(episode.interventions[step]),
            "next_image": episode.images[next_step],
            "next_proprio": episode.proprio[next_step],
            "episode_index": episode_index,
            "step": step,
        }

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict:
        """Items stacked along a leading batch axis (`instruction` becomes a list of str)."""
        items = [self[int(i)] for i in indices]
        if not items:
            raise ValueError("cannot build an empty batch")
        return {
            key: [item[key] for item in items] if key == "instruction" else np.stack([item[key] for item in items])
            for key in items[0]
        }

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict:
        """Uniformly sampled batch of transitions."""
        if not len(self):
            raise ValueError("cannot sample from an empty dataset")
        return self.get_batch(rng.integers(0, len(self), size=batch_size))
