"""Which Gymnasium environment runs a task: every simulated task by name, with its splits and proprioception.

The in-process learning stack (rollouts, evaluation, the online trainers, experiments) names tasks, not simulators.
Each task belongs to one environment family: the MuJoCo tabletop's tasks (``lift``, ``push``, ...) to
:class:`~rlvla_ros.sim.env.TabletopEnv`, gym-hil's Panda task ``pick_cube`` to
:class:`~rlvla_ros.envs.panda.PandaPickCubeEnv`. An environment of a family runs any of its tasks and splits (chosen
per episode by ``reset(options={"task": ..., "split": ...})``); the families differ in robot, so in proprioception,
and one policy (one job) works with one family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym

from rlvla_ros.envs.panda import PandaPickCubeEnv
from rlvla_ros.contract import SPLITS
from rlvla_ros.sim import TASKS, TabletopEnv
from rlvla_ros.sim.panda.driver import PANDA_SPLITS, PANDA_TASKS


@dataclass(frozen=True)
class EnvFamily:
    """Environments of one simulated robot and the tasks they run."""

    name: str
    tasks: tuple[str, ...]
    splits: tuple[str, ...]
    """Evaluation splits, ``id`` first."""
    env_class: type[gym.Env]

    @property
    def proprio_names(self) -> tuple[str, ...]:
        """The entries of its observations' proprio vector."""
        return self.env_class.proprio_names

    def make(self, image_size: int, reward_mode: str = "sparse") -> gym.Env:
        """An environment for any of the family's tasks and splits (each reset names the episode's)."""
        return self.env_class(task=None, image_size=image_size, reward_mode=reward_mode)


FAMILIES = (
    EnvFamily("tabletop", tuple(sorted(TASKS)), SPLITS, TabletopEnv),
    EnvFamily("panda", tuple(sorted(PANDA_TASKS)), PANDA_SPLITS, PandaPickCubeEnv),
)
ALL_TASKS = tuple(task for family in FAMILIES for task in family.tasks)
ALL_SPLITS = tuple(dict.fromkeys(split for family in FAMILIES for split in family.splits))
"""Every split of some family, without repeats."""


def family_of(task: str) -> EnvFamily:
    """The family that runs ``task``; ValueError naming every known task."""
    for family in FAMILIES:
        if task in family.tasks:
            return family
    raise ValueError(f"unknown task {task!r}; expected one of {sorted(ALL_TASKS)}")


def family_of_tasks(tasks: Sequence[str], splits: Sequence[str] = ()) -> EnvFamily:
    """The one family that runs every task of ``tasks`` and has every split of ``splits``; ValueError saying which
    task or split does not fit."""
    if not tasks:
        raise ValueError("name at least one task")
    family = family_of(tasks[0])
    for task in tasks[1:]:
        other = family_of(task)
        if other is not family:
            raise ValueError(f"tasks {tasks[0]!r} ({family.name}) and {task!r} ({other.name}) run on different "
                             "robots; one policy works with one")
    for split in splits:
        if split not in family.splits:
            raise ValueError(f"unknown split {split!r} for the {family.name} tasks; expected one of {family.splits}")
    return family
