"""ActionSafetyFilter: unsafe numbers are refused, everything else is clamped into the robot's limits."""

import dataclasses

import numpy as np
import pytest

from rlvla_ros.safety import ActionSafetyFilter, parse_chunk
from rlvla_ros.safety.action_filter import (
    CLAMPED_ACTION_RANGE,
    CLAMPED_JOINT_LIMITS,
    CLAMPED_JOINT_VELOCITY,
    CLAMPED_WORKSPACE,
)
from rlvla_ros.sim.tabletop_sim import HOME_ARM_Q

HOME = HOME_ARM_Q


@pytest.fixture
def safety(sim_robot, kinematics) -> ActionSafetyFilter:
    return ActionSafetyFilter(sim_robot, kinematics)


def assert_within_joint_limits(q, robot, margin=0.0):
    assert np.all(q >= robot.joint_limits_rad[:, 0] + margin - 1e-12)
    assert np.all(q <= robot.joint_limits_rad[:, 1] - margin + 1e-12)


@pytest.mark.parametrize("index, value", [(0, np.nan), (2, np.inf), (4, -np.inf), (3, np.nan)])
def test_non_finite_actions_are_rejected_with_the_reason(safety, index, value):
    action = np.zeros(5)
    action[index] = value
    result = safety.filter(action, HOME)
    assert not result.accepted and result.command is None
    assert "action is not finite" in result.rejection


@pytest.mark.parametrize("shape", [(4,), (6,), (2, 5), ()])
def test_actions_of_the_wrong_shape_are_rejected(safety, shape):
    result = safety.filter(np.zeros(shape), HOME)
    assert not result.accepted
    assert f"action has shape {shape}" in result.rejection


def test_non_finite_joint_positions_are_rejected(safety):
    q = HOME.copy()
    q[1] = np.nan
    result = safety.filter(np.zeros(5), q)
    assert not result.accepted and "joint positions are not finite" in result.rejection


def test_joint_vector_of_the_wrong_length_is_a_caller_error(safety):
    with pytest.raises(ValueError, match=r"joint vectors must have shape \(5,\)"):
        safety.filter(np.zeros(5), HOME[:4])


def test_in_range_action_matches_the_simulator_mapping(safety, kinematics, sim_robot):
    action = np.array([0.5, -0.3, 0.2, 0.4, 1.0])
    result = safety.filter(action, HOME)
    expected = kinematics.apply_ee_delta(HOME, action, sim_robot.ee_delta_config())
    assert result.accepted and result.clamped == ()
    np.testing.assert_allclose(result.command.joint_positions_rad, expected, atol=1e-12)
    np.testing.assert_array_equal(result.command.action, action.astype(np.float32))


def test_huge_values_are_clamped_to_the_unit_range(safety, kinematics, sim_robot):
    huge = safety.filter(np.array([1e9, -1e9, 1e9, -1e9, 1e9]), HOME)
    unit = safety.filter(np.array([1.0, -1.0, 1.0, -1.0, 1.0]), HOME)
    assert huge.accepted and huge.clamped[0] == CLAMPED_ACTION_RANGE
    np.testing.assert_array_equal(huge.command.action, [1, -1, 1, -1, 1])
    np.testing.assert_array_equal(huge.command.joint_positions_rad, unit.command.joint_positions_rad)
    moved_m = kinematics.forward(huge.command.joint_positions_rad).position_m - kinematics.forward(HOME).position_m
    assert np.all(np.abs(moved_m) <= sim_robot.max_translation_m + 1e-3)


def test_gripper_above_zero_closes_and_otherwise_opens(safety, sim_robot):
    openings = [safety.filter(np.array([0, 0, 0, 0, g]), HOME).command.gripper_opening_m for g in (0.3, 0.0, -1.0)]
    assert openings == [0.0, sim_robot.gripper_max_opening_m, sim_robot.gripper_max_opening_m]


@pytest.mark.parametrize("start_m, axis, sign", [
    ([0.42, 0.0, 0.39], 2, +1),   # up through the ceiling
    ([0.42, 0.0, 0.03], 2, -1),   # down into the table
    ([0.16, 0.0, 0.20], 0, -1),   # back into the robot base
    ([0.42, 0.43, 0.20], 1, +1),  # out to the side
])
def test_target_outside_the_workspace_is_clipped_to_its_boundary(safety, kinematics, sim_robot, arm_at,
                                                                  start_m, axis, sign):
    q = arm_at(start_m)
    action = np.zeros(5)
    action[axis] = sign
    for _ in range(5):
        result = safety.filter(action, q)
        assert result.accepted, result.rejection
        q = result.command.joint_positions_rad
        position_m = kinematics.forward(q).position_m
        assert np.all(position_m >= sim_robot.workspace_min_m - 1e-3), position_m
        assert np.all(position_m <= sim_robot.workspace_max_m + 1e-3), position_m
    assert CLAMPED_WORKSPACE in result.clamped
    boundary_m = (sim_robot.workspace_max_m if sign > 0 else sim_robot.workspace_min_m)[axis]
    assert position_m[axis] == pytest.approx(boundary_m, abs=1e-3)


def test_joint_step_is_shortened_to_the_velocity_bound_keeping_its_direction(sim_robot, kinematics):
    action = np.array([1.0, 1.0, -1.0, 1.0, 0.0])
    slow = ActionSafetyFilter(dataclasses.replace(sim_robot, max_joint_velocity_rad_s=np.full(5, 0.1)), kinematics)
    fast = ActionSafetyFilter(dataclasses.replace(sim_robot, max_joint_velocity_rad_s=np.full(5, 100.0)), kinematics)
    limited = slow.filter(action, HOME)
    free = fast.filter(action, HOME)
    assert limited.accepted and limited.clamped == (CLAMPED_JOINT_VELOCITY,) and free.clamped == ()
    step = limited.command.joint_positions_rad - HOME
    free_step = free.command.joint_positions_rad - HOME
    assert np.max(np.abs(step)) == pytest.approx(0.1 * sim_robot.control_period_s)
    assert np.dot(step, free_step) / (np.linalg.norm(step) * np.linalg.norm(free_step)) == pytest.approx(1.0)


def test_joint_targets_stay_inside_the_limits_minus_the_margin(sim_robot, kinematics):
    limits = sim_robot.joint_limits_rad.copy()
    limits[0] = [-0.1, 0.1]  # base yaw: moving sideways soon needs more
    narrow = ActionSafetyFilter(dataclasses.replace(sim_robot, joint_limits_rad=limits), kinematics)
    q, clamped = HOME, set()
    for _ in range(6):
        result = narrow.filter(np.array([0.0, 1.0, 0.0, 0.0, 0.0]), q)
        assert result.accepted, result.rejection
        clamped.update(result.clamped)
        q = result.command.joint_positions_rad
    assert CLAMPED_JOINT_LIMITS in clamped
    assert q[0] == pytest.approx(0.1 - sim_robot.joint_limit_margin_rad)


def test_random_actions_never_break_a_joint_or_velocity_limit(safety, sim_robot, kinematics):
    rng = np.random.default_rng(0)
    max_step_rad = sim_robot.max_joint_velocity_rad_s * sim_robot.control_period_s
    q, accepted = HOME, 0
    for _ in range(300):
        result = safety.filter(rng.uniform(-3.0, 3.0, 5), q)
        if not result.accepted:
            continue
        accepted += 1
        target = result.command.joint_positions_rad
        assert np.all(np.abs(target - q) <= max_step_rad * (1 + 1e-9))
        assert_within_joint_limits(target, sim_robot, sim_robot.joint_limit_margin_rad)
        position_m = kinematics.forward(target).position_m
        assert np.all(position_m >= sim_robot.workspace_min_m - sim_robot.workspace_tolerance_m)
        assert np.all(position_m <= sim_robot.workspace_max_m + sim_robot.workspace_tolerance_m)
        q = target
    assert accepted >= 280


def test_measured_joint_far_beyond_its_limit_is_refused_not_commanded(safety):
    q = HOME.copy()
    q[0] = 2.5  # limit 2.0: one velocity-bounded step cannot get back inside
    result = safety.filter(np.zeros(5), q)
    assert not result.accepted
    assert "joint 'base_yaw' target" in result.rejection and "outside its limits" in result.rejection


class _FaultyInverse:
    """Real forward kinematics; inverse kinematics replaced by a fault."""

    def __init__(self, kinematics, inverse):
        self.forward = kinematics.forward
        self.inverse = inverse


def test_non_finite_inverse_kinematics_is_refused(sim_robot, kinematics):
    faulty = _FaultyInverse(kinematics, lambda target, q_init: np.full(5, np.nan))
    result = ActionSafetyFilter(sim_robot, faulty).filter(np.zeros(5), HOME)
    assert not result.accepted and "joint targets are not finite" in result.rejection


def test_failed_inverse_kinematics_is_refused_with_its_message(sim_robot, kinematics):
    def no_solution(target, q_init):
        raise ValueError("no IK solution for tcp")

    result = ActionSafetyFilter(sim_robot, _FaultyInverse(kinematics, no_solution)).filter(np.zeros(5), HOME)
    assert not result.accepted and result.rejection == "inverse kinematics failed: no IK solution for tcp"


def test_command_taking_the_tcp_out_of_the_workspace_is_refused(sim_robot, kinematics, arm_at):
    near_table = arm_at([0.42, 0.0, 0.03])
    # an IK "solution" tilting the shoulder forward: the fingertips go below the workspace floor
    dive = _FaultyInverse(kinematics, lambda target, q_init: q_init + np.array([0.0, 0.15, 0.0, 0.0, 0.0]))
    assert kinematics.forward(near_table + [0, 0.15, 0, 0, 0]).position_m[2] < 0.017 - 0.005
    result = ActionSafetyFilter(sim_robot, dive).filter(np.zeros(5), near_table)
    assert not result.accepted and "outside the workspace" in result.rejection


def test_delta_builds_on_the_tracked_set_point_and_speed_on_the_measured_joints(safety, sim_robot, kinematics):
    measured = HOME
    set_point = HOME + np.array([0.0, 0.05, 0.0, 0.0, 0.0])
    far = HOME + np.array([0.5, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(safety.reference_joints(measured, set_point), set_point)
    np.testing.assert_array_equal(safety.reference_joints(measured, far), measured)
    np.testing.assert_array_equal(safety.reference_joints(measured, None), measured)
    result = safety.filter(np.zeros(5), measured, set_point)
    # a zero action holds the set point's pose, reached from the measured joints within the velocity bound
    np.testing.assert_allclose(kinematics.forward(result.command.joint_positions_rad).position_m,
                               kinematics.forward(set_point).position_m, atol=1e-3)


def test_chunks_parse_into_rows_or_say_why_not():
    rows = parse_chunk(list(range(10)), 2, 5, "ee_delta")
    assert rows.shape == (2, 5) and rows.dtype == np.float32 and rows[1, 0] == 5
    with pytest.raises(ValueError, match="unsupported action_space 'joint_position'"):
        parse_chunk([0.0] * 5, 1, 5, "joint_position")
    with pytest.raises(ValueError, match="action_dim is 7, ee_delta needs 5"):
        parse_chunk([0.0] * 7, 1, 7, "ee_delta")
    with pytest.raises(ValueError, match="9 actions for horizon 2 x action_dim 5"):
        parse_chunk([0.0] * 9, 2, 5, "ee_delta")
    with pytest.raises(ValueError, match="0 actions for horizon 0"):
        parse_chunk([], 0, 5, "ee_delta")


@pytest.mark.parametrize("row, value", [(0, np.nan), (2, np.nan), (3, np.inf), (1, -np.inf)])
def test_a_chunk_with_a_non_finite_value_in_any_row_is_refused_whole(row, value):
    actions = np.zeros((4, 5))
    actions[row, 1] = value
    with pytest.raises(ValueError, match=rf"non-finite values in row\(s\) \[{row}\]: the chunk is refused whole"):
        parse_chunk(actions.ravel().tolist(), 4, 5, "ee_delta")


def test_a_hold_stays_inside_the_margins_and_within_one_velocity_step(safety, sim_robot):
    lower, upper = sim_robot.joint_limits_rad[:, 0], sim_robot.joint_limits_rad[:, 1]
    margin = sim_robot.joint_limit_margin_rad
    max_step = sim_robot.max_joint_velocity_rad_s * sim_robot.control_period_s
    np.testing.assert_array_equal(safety.hold(HOME), HOME)  # well inside: held where it is
    at_limits = upper.copy()  # measured on the limits, inside the margin band
    hold = safety.hold(at_limits)
    assert_within_joint_limits(hold, sim_robot, margin)
    np.testing.assert_allclose(hold, upper - margin)
    with pytest.raises(ValueError, match="finite"):
        safety.hold(np.full(5, np.nan))
    assert np.all(np.abs(safety.hold(lower) - lower) <= max_step)
