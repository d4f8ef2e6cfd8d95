"""Gymnasium environments of every simulated task by name: the tabletop's, and gym-hil's Franka Panda acting through
the safety filter. The in-process learning stack builds its environments here."""

import gymnasium

from rlvla_ros.envs.panda import PANDA_ENV_ID, PandaPickCubeEnv
from rlvla_ros.envs.registry import ALL_SPLITS, ALL_TASKS, FAMILIES, EnvFamily, family_of, family_of_tasks

if PANDA_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=PANDA_ENV_ID, entry_point="rlvla_ros.envs.panda:PandaPickCubeEnv")

__all__ = [
    "ALL_SPLITS",
    "ALL_TASKS",
    "FAMILIES",
    "PANDA_ENV_ID",
    "EnvFamily",
    "PandaPickCubeEnv",
    "family_of",
    "family_of_tasks",
]
