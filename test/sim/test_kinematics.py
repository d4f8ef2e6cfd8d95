"""ArmKinematics: FK/IK round trip, joint limits, and the ee_delta action mapping."""

import numpy as np
import pytest

from rlvla_ros.sim.kinematics import ArmKinematics, EeDeltaConfig, EePose
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_LIMITS_RAD, HOME_ARM_Q


@pytest.fixture(scope="module")
def kin() -> ArmKinematics:
    return ArmKinematics()  # from the shipped model alone, as the safety filter builds it


def _yaw_error(a: float, b: float) -> float:
    return abs(float(np.angle(np.exp(1j * (a - b)))))


def test_ik_then_fk_round_trip_over_the_table_workspace(kin: ArmKinematics) -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        target = EePose(rng.uniform([0.28, -0.22, 0.02], [0.60, 0.22, 0.30]), rng.uniform(-1.5, 1.5))
        q = kin.inverse(target, HOME_ARM_Q)
        pose = kin.forward(q)
        assert np.linalg.norm(pose.position_m - target.position_m) < 1e-3
        assert _yaw_error(pose.yaw_rad, target.yaw_rad) < 0.01


def test_home_pose_points_down_above_the_table(kin: ArmKinematics) -> None:
    pose = kin.forward(HOME_ARM_Q)
    np.testing.assert_allclose(pose.position_m, [0.42, 0.0, 0.2], atol=0.005)
    assert pose.yaw_rad == pytest.approx(0.0, abs=1e-3)


def test_ik_respects_joint_limits_for_unreachable_targets(kin: ArmKinematics) -> None:
    for position in ([1.5, 0.0, 0.1], [0.0, 0.0, 1.5], [-0.4, 0.0, -0.3]):
        q = kin.inverse(EePose(np.array(position), 3.0), HOME_ARM_Q)
        assert np.all(q >= ARM_JOINT_LIMITS_RAD[:, 0]) and np.all(q <= ARM_JOINT_LIMITS_RAD[:, 1])


def test_ee_delta_moves_the_tcp_by_the_scaled_action(kin: ArmKinematics) -> None:
    config = EeDeltaConfig()
    start = kin.forward(HOME_ARM_Q)
    q = kin.apply_ee_delta(HOME_ARM_Q, np.array([1.0, -0.5, -1.0, 0.5, 1.0]), config)
    pose = kin.forward(q)
    expected = start.position_m + np.array([1.0, -0.5, -1.0]) * config.max_translation_m
    np.testing.assert_allclose(pose.position_m, expected, atol=5e-4)
    assert _yaw_error(pose.yaw_rad, start.yaw_rad + 0.5 * config.max_yaw_rad) < 0.005


def test_zero_action_keeps_the_joints(kin: ArmKinematics) -> None:
    q = kin.apply_ee_delta(HOME_ARM_Q, np.zeros(5), EeDeltaConfig())
    np.testing.assert_allclose(q, HOME_ARM_Q, atol=1e-3)


def test_ee_delta_target_is_clipped_to_the_workspace(kin: ArmKinematics) -> None:
    config = EeDeltaConfig()
    low = kin.inverse(EePose(np.array([0.45, 0.0, config.workspace_min_m[2]]), 0.0), HOME_ARM_Q)
    target = kin.ee_delta_target(low, np.array([0.0, 0.0, -1.0, 0.0, 0.0]), config)
    assert target.position_m[2] == pytest.approx(config.workspace_min_m[2])


def test_bad_shapes_raise_value_error(kin: ArmKinematics) -> None:
    with pytest.raises(ValueError, match="shape"):
        kin.forward(np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        kin.apply_ee_delta(HOME_ARM_Q, np.zeros(4), EeDeltaConfig())
