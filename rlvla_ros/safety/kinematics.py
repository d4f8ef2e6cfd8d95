"""End-effector kinematics behind the safety filter: a small protocol, its backends by name, and the MuJoCo ones.

The end-effector pose is the one of the ``ee_delta`` contract: a position in the robot base frame plus a yaw about
the vertical, with the gripper pointing straight down (:class:`rlvla_ros.sim.kinematics.EePose`). The ``mujoco`` and
``mjcf`` backends are the simulator's own kinematics, so the filter maps actions exactly as the simulator does; the
``moveit`` backend talks to MoveIt over ROS and lives in the ROS layer (:mod:`rlvla_ros.ros.moveit_kinematics`),
which registers it when imported (the safety filter node does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import mujoco
import numpy as np

from rlvla_ros.contract import ARM_JOINT_NAMES
from rlvla_ros.safety.robot_config import RobotConfig
from rlvla_ros.sim.kinematics import ArmKinematics, EePose


class Kinematics(Protocol):
    """Forward and inverse kinematics of an arm's end effector."""

    def forward(self, q: np.ndarray) -> EePose:
        """End-effector pose for arm joint positions ``q`` (rad)."""

    def inverse(self, target: EePose, q_init: np.ndarray) -> np.ndarray:
        """Arm joint positions reaching ``target``, searched from ``q_init``; ValueError when there is none."""


def make_kinematics(config: RobotConfig) -> Kinematics:
    """The kinematics backend the robot config selects; ImportError for a registered-on-import backend whose module
    this process has not loaded."""
    backend = config.kinematics.backend
    if backend not in _BACKENDS:
        raise ImportError(f"kinematics backend {backend!r} needs moveit_py (MoveIt 2) through the ROS layer: import "
                          f"rlvla_ros.ros.moveit_kinematics (the safety filter node does) to register it")
    return _BACKENDS[backend](config)


def register_kinematics_backend(backend: str, factory: Callable[[RobotConfig], Kinematics]) -> None:
    """Make :func:`make_kinematics` build ``factory(config)`` for robot configs naming ``backend``."""
    _BACKENDS[backend] = factory


def mujoco_kinematics(config: RobotConfig) -> ArmKinematics:
    """The simulator's :class:`ArmKinematics` over the MJCF model named in the robot config.

    Its damped least-squares IK returns the closest reachable solution instead of failing.
    """
    if config.arm_joint_names != ARM_JOINT_NAMES:
        raise ValueError(f"the mujoco kinematics backend drives the joints {ARM_JOINT_NAMES}, but robot "
                         f"'{config.name}' lists {config.arm_joint_names}")
    return ArmKinematics(mujoco.MjModel.from_xml_path(str(config.kinematics.model_path)))


def mjcf_kinematics(config: RobotConfig) -> ArmKinematics:
    """:class:`ArmKinematics` over any arm's MJCF (e.g. the 7-DoF Panda): the config's model joints, tip site and
    joint limits; damped least squares over all arm joints (a redundant arm's extra freedom is left to the
    seed)."""
    k = config.kinematics
    return ArmKinematics(mujoco.MjModel.from_xml_path(str(k.model_path)), joint_names=k.model_joint_names,
                         site=k.tip_site, joint_limits_rad=config.joint_limits_rad)


_BACKENDS: dict[str, Callable[[RobotConfig], Kinematics]] = {"mujoco": mujoco_kinematics, "mjcf": mjcf_kinematics}
"""Kinematics backend name -> factory; ROS-side backends add themselves with :func:`register_kinematics_backend`."""
