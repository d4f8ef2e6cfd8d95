"""Success-labelled sim episodes for training and evaluating the success classifier.

Three kinds of episode, so negatives include near-misses and not only the start of a task:

- ``expert``: the scripted expert, kept running for ``hold_steps`` after the first success (the expert holds the cube
  up or retreats), so every successful episode has several success frames;
- ``near_miss``: the same seed's expert trajectory, frozen for ``hold_steps`` (zero motion, gripper command held)
  ``near_miss_early_steps`` (a range) steps before it would have succeeded: a cube lifted just short of the
  height, pushed just short of the pad, or set on the other cube but never released;
- ``noisy``: the expert with Gaussian action noise, which succeeds late, never, or drops the cube.

Labels are the privileged ``is_success`` after every step (``EpisodeRecord.successes``), so they are right whatever
the episode kind ends up doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.sim import TabletopEnv

EPISODE_KINDS = ("expert", "near_miss", "noisy")


@dataclass
class LabelledEpisodeConfig:
    """How many episodes of which kind to simulate."""

    tasks: tuple[str, ...] = ("lift", "push", "stack", "place_side")
    """Tasks to simulate, round robin."""
    split: str = "id"
    """Evaluation split of the scenes."""
    episodes_per_task: int = 20
    """Episodes per task."""
    kind_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)
    """Probability of an ``expert``, ``near_miss`` and ``noisy`` episode."""
    hold_steps: int = 8
    """Steps the expert keeps running after its first success."""
    near_miss_early_steps: tuple[int, int] = (2, 6)
    """A near-miss freezes this many steps (inclusive range) before the expert's success step. One step before,
    a cube can be millimetres from the success condition: closer than any camera can tell."""
    action_noise: float = 0.5
    """Standard deviation of the noise added to ``noisy`` expert actions (actions are in [-1, 1])."""
    image_size: int = 128
    """Side of the rendered front camera images (the policy observation default)."""
    seed: int = 0
    """Base seed: episode ``i`` of a task uses scene seed ``seed + i``."""

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1 or not self.tasks:
            raise ValueError("need at least one task and one episode per task")
        weights = np.asarray(self.kind_weights, dtype=float)
        if weights.shape != (3,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"kind_weights must be 3 non-negative numbers with a positive sum, "
                             f"got {self.kind_weights}")
        low, high = self.near_miss_early_steps
        if self.hold_steps < 0 or not 1 <= low <= high or self.action_noise < 0:
            raise ValueError("hold_steps >= 0, 1 <= near_miss_early_steps[0] <= [1] and action_noise >= 0 are required")


def collect_labelled_episodes(config: LabelledEpisodeConfig) -> list[EpisodeRecord]:
    """Simulate ``episodes_per_task`` episodes of every task (kinds drawn by ``kind_weights``), in task order."""
    env = TabletopEnv(task=config.tasks[0], split=config.split, image_size=config.image_size)
    rng = np.random.default_rng(config.seed)
    weights = np.asarray(config.kind_weights, dtype=float)
    episodes = []
    try:
        for task in config.tasks:
            for index in range(config.episodes_per_task):
                kind = EPISODE_KINDS[rng.choice(3, p=weights / weights.sum())]
                episodes.append(_simulate(env, task, config, config.seed + index, kind, rng))
    finally:
        env.close()
    return episodes


def _simulate(
    env: TabletopEnv, task: str, config: LabelledEpisodeConfig, seed: int, kind: str, rng: np.random.Generator
) -> EpisodeRecord:
    options = {"task": task, "split": config.split}
    freeze_at = None
    if kind == "near_miss":
        success_step = _expert_success_step(env, seed, options)
        if success_step is None:
            kind = "expert"  # the expert fails this scene by itself: already a genuine failure
        else:
            low, high = config.near_miss_early_steps
            freeze_at = max(0, success_step - int(rng.integers(low, high + 1)))
    obs, _ = env.reset(seed=seed, options=options)
    assert env.task is not None
    observations, actions, successes = [], [], []
    # Both the success and the freeze are followed by `hold_steps` more steps: enough frames of the end state
    # without flooding the data with copies of one still image.
    steps_after_success = -1
    frozen_gripper = -1.0
    while len(actions) < env.task.max_steps and steps_after_success < config.hold_steps:
        if freeze_at is not None and len(actions) >= freeze_at:
            if len(actions) - freeze_at >= config.hold_steps:
                break
            action = np.array([0.0, 0.0, 0.0, 0.0, frozen_gripper], dtype=np.float32)
        else:
            action = env.expert_action()
            if kind == "noisy":
                action = np.clip(action + rng.normal(0.0, config.action_noise, 5), -1.0, 1.0).astype(np.float32)
            frozen_gripper = float(action[4])
        observations.append(obs)
        actions.append(action)
        obs, _, _, _, info = env.step(action)
        successes.append(info["is_success"])
        if steps_after_success >= 0 or info["is_success"]:
            steps_after_success += 1
    successes_array = np.asarray(successes, dtype=bool)
    reached = bool(successes_array.any())
    return EpisodeRecord.from_steps(
        observations,
        actions,
        successes_array.astype(np.float32),
        episode_id=f"{task}-{config.split}-{seed}-{kind}",
        successes=successes_array,
        task=task,
        split=config.split,
        seed=seed,
        success=reached,
        termination_reason="success" if reached else "timeout",
        proprio_names=PROPRIOCEPTION_NAMES,
    )


def _expert_success_step(env: TabletopEnv, seed: int, options: dict) -> int | None:
    """0-based index of the action after which the expert first succeeds in this scene, or None."""
    env.reset(seed=seed, options=options)
    assert env.task is not None
    for step in range(env.task.max_steps):
        _, _, success, _, _ = env.step(env.expert_action())
        if success:
            return step
    return None


def frame_labels(episode: EpisodeRecord) -> np.ndarray:
    """(T,) success label of each stored image: image t shows the outcome of action t - 1.

    ``successes[t]`` is the success flag of the reward received after action t, i.e. of the state the *next*
    observation shows; the first image shows the scene before any action, labelled not successful.
    """
    return np.concatenate([[False], episode.successes[:-1]]).astype(bool)


def label_counts(episodes: Sequence[EpisodeRecord]) -> tuple[int, int]:
    """(success frames, other frames) over the episodes' stored images."""
    positives = int(sum(frame_labels(e).sum() for e in episodes))
    return positives, int(sum(len(e) for e in episodes)) - positives
