"""JointStateMonitor: implausible measured joint states are faults, never positions to hold or build on."""

import dataclasses

import numpy as np
import pytest

from rlvla_ros.safety import JointStateMonitor, MonitorLimits
from rlvla_ros.safety.joint_state_monitor import FAULT_JUMP, FAULT_NON_FINITE, FAULT_OUTSIDE_LIMITS, FAULT_STALE
from rlvla_ros.sim.tabletop_sim import HOME_ARM_Q

LIMITS = MonitorLimits(timeout_s=0.5, limit_tolerance_rad=0.05, jump_tolerance_rad=0.1, clear_after=3)
PERIOD_S = 0.05


@pytest.fixture
def monitor(sim_robot):
    return JointStateMonitor(sim_robot, LIMITS)


def feed(monitor, q, k, stamped=True):
    """Measurement number ``k`` of a 20 Hz stream (stamp and receipt time k x 50 ms)."""
    t = 1.0 + k * PERIOD_S
    monitor.observe(np.asarray(q, dtype=float), t if stamped else 0.0, t)
    return t


def kind(monitor, now_s):
    fault = monitor.fault(now_s)
    return fault.kind if fault else None


def test_plausible_states_are_taken_as_they_come(monitor):
    assert kind(monitor, 0.0) == FAULT_STALE  # nothing measured yet
    q = HOME_ARM_Q.copy()
    for k in range(5):
        q = q + 0.05  # 1 rad/s, under every joint's 1.5-3 rad/s
        t = feed(monitor, q, k)
    assert kind(monitor, t) is None
    np.testing.assert_array_equal(monitor.plausible_q, q)


@pytest.mark.parametrize("bad, expected", [
    (np.full(5, 10.0), FAULT_OUTSIDE_LIMITS),  # the defect of issue 17: 10 rad on every joint
    (np.array([0.0, 0.357, 1.662, np.nan, 0.0]), FAULT_NON_FINITE),
    (np.array([0.0, 0.357, 1.662, 1.122, -np.inf]), FAULT_NON_FINITE),
    (HOME_ARM_Q + np.array([0.0, 0.0, 0.5, 0.0, 0.0]), FAULT_JUMP),  # 0.5 rad in 50 ms, the elbow does 0.1 + 0.1
])
def test_an_implausible_state_is_a_fault_and_the_last_plausible_one_is_kept(monitor, bad, expected):
    feed(monitor, HOME_ARM_Q, 0)
    t = feed(monitor, bad, 1)
    fault = monitor.fault(t)
    assert fault is not None and fault.kind == expected, fault
    np.testing.assert_array_equal(monitor.plausible_q, HOME_ARM_Q)


def test_a_state_just_outside_the_limits_within_the_tolerance_is_plausible(monitor, sim_robot):
    q = HOME_ARM_Q.copy()
    q[0] = sim_robot.joint_limits_rad[0, 1] + 0.04
    feed(monitor, q, 0)
    assert kind(monitor, 1.0) is None


def test_the_jump_bound_uses_the_stamps_and_else_the_receipt_times(monitor):
    moved = HOME_ARM_Q + np.array([0.0, 0.0, 0.5, 0.0, 0.0])
    monitor.observe(HOME_ARM_Q, 10.0, 1.0)
    monitor.observe(moved, 10.25, 1.01)  # 0.25 s apart by stamp: 0.5 + 0.1 rad allowed, though received 10 ms apart
    assert kind(monitor, 1.01) is None
    monitor.observe(HOME_ARM_Q, 0.0, 1.02)  # unstamped: 10 ms of receipt time allow 0.12 rad
    assert kind(monitor, 1.02) == FAULT_JUMP


def test_a_fault_clears_after_enough_consistent_plausible_states(monitor):
    feed(monitor, HOME_ARM_Q, 0)
    feed(monitor, np.full(5, 10.0), 1)
    elsewhere = HOME_ARM_Q + 0.3
    feed(monitor, elsewhere, 2)  # in limits, but a jump from the last plausible state: still a fault, count restarts
    for k in range(3, 3 + LIMITS.clear_after - 1):
        t = feed(monitor, elsewhere, k)
        assert kind(monitor, t) == FAULT_JUMP
        np.testing.assert_array_equal(monitor.plausible_q, HOME_ARM_Q)
    t = feed(monitor, elsewhere, 3 + LIMITS.clear_after - 1)
    assert kind(monitor, t) is None
    np.testing.assert_array_equal(monitor.plausible_q, elsewhere)


def test_a_non_finite_state_restarts_the_count(monitor):
    feed(monitor, HOME_ARM_Q, 0)
    feed(monitor, np.full(5, np.nan), 1)
    feed(monitor, HOME_ARM_Q, 2)
    feed(monitor, HOME_ARM_Q, 3)
    feed(monitor, np.full(5, np.nan), 4)
    feed(monitor, HOME_ARM_Q, 5)
    t = feed(monitor, HOME_ARM_Q, 6)
    assert kind(monitor, t) == FAULT_NON_FINITE
    t = feed(monitor, HOME_ARM_Q, 7)
    assert kind(monitor, t) is None


def test_a_state_older_than_the_timeout_is_stale_until_a_fresh_one_comes(monitor):
    t = feed(monitor, HOME_ARM_Q, 0)
    assert kind(monitor, t + LIMITS.timeout_s) is None
    assert kind(monitor, t + LIMITS.timeout_s + 0.01) == FAULT_STALE
    monitor.observe(HOME_ARM_Q, 0.0, t + 2.0)
    assert kind(monitor, t + 2.0) is None


def test_a_jump_during_a_reset_is_the_new_position(monitor):
    feed(monitor, HOME_ARM_Q + 0.5, 0)
    monitor.expect_reset()
    t = feed(monitor, HOME_ARM_Q, 1)  # the simulator teleported the arm home
    assert kind(monitor, t) is None
    np.testing.assert_array_equal(monitor.plausible_q, HOME_ARM_Q)
    feed(monitor, np.full(5, 10.0), 2)  # out of the limits is a fault during a reset too
    assert kind(monitor, t) == FAULT_OUTSIDE_LIMITS
    monitor.reset_done()
    for k in range(3, 6):
        feed(monitor, HOME_ARM_Q, k)
    t = feed(monitor, HOME_ARM_Q + 0.5, 6)
    assert kind(monitor, t) == FAULT_JUMP


def test_a_start_that_overtakes_the_reset_state_leaves_the_reset_to_the_state_it_names(monitor):
    feed(monitor, HOME_ARM_Q + 0.5, 0)
    monitor.expect_reset()
    monitor.reset_done(first_stamp_s=1.0 + 2 * PERIOD_S)  # the START came first; the reset's state is number 2
    t = feed(monitor, HOME_ARM_Q + 0.5, 1)  # an older state, still on its way: no jump
    t = feed(monitor, HOME_ARM_Q, 2)  # the reset's state: the teleport is the new position
    assert kind(monitor, t) is None
    np.testing.assert_array_equal(monitor.plausible_q, HOME_ARM_Q)
    t = feed(monitor, HOME_ARM_Q + 0.5, 3)  # after it, a jump is a fault again
    assert kind(monitor, t) == FAULT_JUMP


def test_a_start_after_the_reset_state_ends_the_reset_at_once(monitor):
    feed(monitor, HOME_ARM_Q + 0.5, 0)
    monitor.expect_reset()
    feed(monitor, HOME_ARM_Q, 1)
    monitor.reset_done(first_stamp_s=1.0 + PERIOD_S)
    t = feed(monitor, HOME_ARM_Q + 0.5, 2)
    assert kind(monitor, t) == FAULT_JUMP


def test_the_monitor_works_for_any_number_of_joints(sim_robot):
    seven = dataclasses.replace(
        sim_robot, arm_joint_names=tuple(f"j{i}" for i in range(7)),
        joint_limits_rad=np.tile([-2.8, 2.8], (7, 1)), max_joint_velocity_rad_s=np.full(7, 2.0))
    monitor = JointStateMonitor(seven, LIMITS)
    feed(monitor, np.zeros(7), 0)
    feed(monitor, np.full(7, 3.0), 1)
    assert kind(monitor, 1.05) == FAULT_OUTSIDE_LIMITS
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        monitor.observe(np.zeros(5), 0.0, 1.1)


@pytest.mark.parametrize("field, value", [("timeout_s", 0.0), ("limit_tolerance_rad", -0.1),
                                          ("jump_tolerance_rad", float("nan")), ("clear_after", 0)])
def test_bad_tolerances_are_refused(field, value):
    with pytest.raises(ValueError):
        dataclasses.replace(LIMITS, **{field: value})
