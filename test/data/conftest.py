"""Synthetic episodes and bags for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlvla_ros.data import BagWriter, EpisodeRecord, write_episode

PROPRIO_NAMES = tuple(f"joint{i}" for i in range(7)) + ("gripper",)


def make_episode(index: int, length: int, *, success: bool, task: str = "lift", split: str = "id") -> EpisodeRecord:
    """Random but reproducible episode; success on the last step only if `success`; every third step teleop."""
    rng = np.random.default_rng(index)
    successes = np.zeros(length, dtype=bool)
    successes[-1] = success
    return EpisodeRecord(
        episode_id=f"ep{index:03d}",
        instruction=f"{task} the red cube",
        images=rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8),
        proprio=rng.normal(size=(length, len(PROPRIO_NAMES))),
        actions=rng.uniform(-1, 1, (length, 5)),
        rewards=successes.astype(np.float32) + 0.01 * np.arange(length),
        successes=successes,
        interventions=np.arange(length) % 3 == 1,
        log_probs=rng.normal(size=length),
        task=task,
        split=split,
        seed=100 + index,
        success=success,
        termination_reason="success" if success else "timeout",
        proprio_names=PROPRIO_NAMES,
    )


@pytest.fixture
def episodes() -> list[EpisodeRecord]:
    """Four episodes: two tasks, two splits, three successes, 4 + 5 + 6 + 7 = 22 steps."""
    return [
        make_episode(0, 4, success=True),
        make_episode(1, 5, success=False),
        make_episode(2, 6, success=True, task="stack"),
        make_episode(3, 7, success=True, task="stack", split="ood_color"),
    ]


@pytest.fixture
def record_bags(tmp_path: Path) -> Callable[..., list[Path]]:
    """`record_bags(episodes, episodes_per_bag=0)`: record them at 10 Hz with BagWriter; returns the bag dirs."""

    def record(episodes: list[EpisodeRecord], episodes_per_bag: int = 0) -> list[Path]:
        stamp_ns = 1_700_000_000 * 10**9
        with BagWriter(tmp_path / "bags", episodes_per_bag=episodes_per_bag) as writer:
            for episode in episodes:
                stamp_ns = write_episode(writer, episode, start_time_ns=stamp_ns, period_s=0.1)
        return writer.bag_paths

    return record
