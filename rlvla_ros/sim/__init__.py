"""MuJoCo tabletop simulation: scene, arm kinematics, language-conditioned tasks, scripted experts, Gymnasium env."""

import os

# Render offscreen through EGL unless the user picked a backend; must be set before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

from rlvla_ros.sim.env import ENV_ID, REWARD_MODES, TabletopEnv, make_vector_env  # noqa: E402
from rlvla_ros.sim.kinematics import ArmKinematics, EeDeltaConfig, EePose  # noqa: E402
from rlvla_ros.sim.tabletop_sim import TabletopSim  # noqa: E402
from rlvla_ros.sim.tasks import TASKS  # noqa: E402

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="rlvla_ros.sim.env:TabletopEnv")

__all__ = [
    "ENV_ID",
    "REWARD_MODES",
    "TASKS",
    "ArmKinematics",
    "EeDeltaConfig",
    "EePose",
    "TabletopEnv",
    "TabletopSim",
    "make_vector_env",
]
