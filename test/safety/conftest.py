"""Shared fixtures of the safety tests: the simulated arm's robot config, its kinematics, and arm poses."""

import numpy as np
import pytest

from rlvla_ros.safety import RobotConfig, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.sim.kinematics import ArmKinematics, EePose
from rlvla_ros.sim.tabletop_sim import HOME_ARM_Q


@pytest.fixture(scope="session")
def sim_robot() -> RobotConfig:
    return load_robot_config(robot_config_path("tabletop_sim"))


@pytest.fixture(scope="session")
def kinematics(sim_robot) -> ArmKinematics:
    return make_kinematics(sim_robot)


@pytest.fixture(scope="session")
def arm_at(kinematics):
    """`arm_at(xyz)`: arm joints with the gripper down at that TCP position (asserts the IK reached it)."""

    def solve(position_m, yaw_rad: float = 0.0) -> np.ndarray:
        q = kinematics.inverse(EePose(np.asarray(position_m, dtype=float), yaw_rad), HOME_ARM_Q)
        np.testing.assert_allclose(kinematics.forward(q).position_m, position_m, atol=1e-3)
        return q

    return solve
