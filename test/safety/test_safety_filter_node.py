"""The safety_filter node over real topics: only safe commands reach the arm topics, stops come when they should."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from rlvla_ros.contract import FINGER_JOINT_NAMES, JOINT_NAMES
from rlvla_ros.msg import ActionChunk, EpisodeEvent
from rlvla_ros.nodes import safety_filter
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS, ESTOP_QOS
from rlvla_ros.ros.stats import STATS_QOS
from rlvla_ros.safety import robot_config_path
from rlvla_ros.sim.tabletop_sim import HOME_ARM_Q

SKIPS_S = 1000.0
"""joint_state_timeout_s of tests that skip the clock by up to minutes: the joint states stay fresh."""


def chunk(rows, source="policy", action_space="ee_delta", step=0) -> ActionChunk:
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return ActionChunk(episode_id="ep", step=step, horizon=rows.shape[0], action_dim=rows.shape[1],
                       actions=rows.ravel().tolist(), action_space=action_space, log_probs=[-1.5] * rows.shape[0],
                       value=float("nan"), policy_version=3, source=source)


class Rig:
    """A safety_filter node plus a test node feeding it joint states (20 Hz) and chunks, recording its outputs."""

    def __init__(self, ros_graph, wait_for, q=HOME_ARM_Q, publish_joint_states=True, **parameters):
        self.wait_for = wait_for
        self.q = np.asarray(q, dtype=float)
        # generous unless a test is about it: executor stalls must not make the joint states look stale
        parameters.setdefault("joint_state_timeout_s", 2.0)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(SafetyFilter(context=ros_graph.context, parameter_overrides=overrides))
        self.robot = self.node.robot
        self.test = ros_graph.node("safety_filter_test")
        self.trajectories: list[tuple[float, JointTrajectory]] = []
        self.gripper: list[Float64MultiArray] = []
        self.executed: list[ActionChunk] = []
        self.test.create_subscription(JointTrajectory, "arm_controller/joint_trajectory",
                                      lambda m: self.trajectories.append((time.monotonic(), m)), 10)
        self.test.create_subscription(Float64MultiArray, "gripper_controller/commands", self.gripper.append, 10)
        self.test.create_subscription(ActionChunk, "executed_action", self.executed.append, 10)
        self.policy = self.test.create_publisher(ActionChunk, "action_chunk", 10)
        self.teleop = self.test.create_publisher(ActionChunk, "teleop/action_chunk", 10)
        self.joint_states = self.test.create_publisher(JointState, "joint_states", 10)
        self.episode_events = self.test.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
        self.estop_client = self.test.create_client(SetBool, "safety_filter/estop")
        self.parameters = AsyncParameterClient(self.test, "safety_filter")
        self.joint_state_timer = self.test.create_timer(0.05, self._publish_joint_state)
        if not publish_joint_states:
            self.joint_state_timer.cancel()
        # Counts the watchdog's polls: after a clock skip, "it polled twice and did nothing" is proof, a quiet
        # half second is not.
        self.polls = 0
        timer = self.node._watchdog_timer
        poll = timer.callback

        def counted_poll():
            poll()
            self.polls += 1

        timer.callback = counted_poll
        # Both ends of every topic must have matched, or the first messages can arrive late.
        endpoints = [*self.node.subscriptions, *self.test.subscriptions]
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in endpoints), 10.0)
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in (self.policy, self.teleop)), 10.0)
        assert self.estop_client.wait_for_service(timeout_sec=10.0)
        self.stats: list[dict] = []  # latched: no need to wait for the match
        self.test.create_subscription(String, "safety_filter/stats", lambda m: self.stats.append(json.loads(m.data)),
                                      STATS_QOS)

    def _publish_joint_state(self):
        positions = list(self.q) + [0.04, 0.04]
        self.joint_states.publish(JointState(name=list(JOINT_NAMES), position=positions))

    def estop(self, engage: bool) -> SetBool.Response:
        future = self.estop_client.call_async(SetBool.Request(data=engage))
        assert self.wait_for(future.done, 5.0)
        return future.result()

    def set(self, **parameters):
        """Set parameters over the node's parameter service; the SetParametersResult of each."""
        assert self.parameters.wait_for_services(timeout_sec=10.0)
        future = self.parameters.set_parameters([Parameter(name, value=value) for name, value in parameters.items()])
        assert self.wait_for(future.done, 10.0)
        return future.result().results

    def wait_for_stats(self, predicate) -> dict:
        """The first ~/stats snapshot (from now on) that satisfies ``predicate``."""
        seen = len(self.stats)
        assert self.wait_for(lambda: any(predicate(s) for s in self.stats[max(0, seen - 1):]), 10.0), self.stats[-1:]
        return next(s for s in self.stats[max(0, seen - 1):] if predicate(s))

    def wait_for_trajectories(self, count: int, timeout_s: float = 5.0) -> bool:
        return self.wait_for(lambda: len(self.trajectories) >= count, timeout_s)

    def wait_for_polls(self, count: int = 2) -> None:
        """Wait until the watchdog timer has run ``count`` more times (the first may have begun before the call)."""
        polls = self.polls
        assert self.wait_for(lambda: self.polls >= polls + count, 10.0)

    def holds(self) -> list[bool]:
        """Per trajectory so far: a hold (a stop: zero velocities) rather than an executed chunk."""
        return [bool(t.points[0].velocities) for _, t in self.trajectories]


@pytest.fixture
def rig(ros_graph, wait_for):
    """`rig(q=..., **parameters)`: a connected Rig whose joint states have reached the node."""

    def make(**kwargs) -> Rig:
        made = Rig(ros_graph, wait_for, **kwargs)
        # the e-stop reply says whether the node holds a joint state: proof the rig is fully connected
        assert wait_for(lambda: made.estop(True).message.startswith(("e-stop engaged: holding",
                                                                      "e-stop engaged: dry run, would hold")))
        made.estop(False)
        made.trajectories.clear()
        return made

    return make


def assert_safe(trajectory: JointTrajectory, robot) -> np.ndarray:
    """Every point finite and within the joint limits; returns the positions (points, joints)."""
    assert trajectory.joint_names == list(robot.arm_joint_names)
    positions = np.array([p.positions for p in trajectory.points])
    assert positions.shape == (len(trajectory.points), len(robot.arm_joint_names))
    assert np.isfinite(positions).all()
    assert np.all(positions >= robot.joint_limits_rad[:, 0]) and np.all(positions <= robot.joint_limits_rad[:, 1])
    return positions


def test_valid_chunk_becomes_a_trajectory_point_a_gripper_command_and_an_executed_action(rig):
    r = rig(watchdog_timeout_s=5.0)
    r.policy.publish(chunk([[0.5, 0.0, -0.2, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, -1.0]]))
    assert r.wait_for_trajectories(1) and r.wait_for(lambda: r.gripper and r.executed)
    _, trajectory = r.trajectories[0]
    positions = assert_safe(trajectory, r.robot)
    assert len(trajectory.points) == 1
    point = trajectory.points[0]
    assert point.time_from_start.sec == 0 and point.time_from_start.nanosec == 100_000_000
    expected = r.node.filter.filter(np.array([0.5, 0.0, -0.2, 0.0, 1.0]), HOME_ARM_Q).command.joint_positions_rad
    np.testing.assert_allclose(positions[0], expected, atol=1e-9)
    assert list(r.gripper[0].data) == [0.0]
    executed = r.executed[0]
    assert (executed.source, executed.episode_id, executed.horizon, executed.policy_version) == ("policy", "ep", 1, 3)
    np.testing.assert_allclose(executed.actions, [0.5, 0.0, -0.2, 0.0, 1.0], atol=1e-6)
    assert list(executed.log_probs) == [-1.5]


def test_unsafe_chunks_never_reach_the_arm(rig, kinematics, arm_at):
    # Just below the workspace ceiling, so that moving up would leave the box.
    r = rig(q=arm_at([0.42, 0.0, 0.39]), watchdog_timeout_s=5.0)
    refused = [
        chunk([np.nan, 0, 0, 0, 0]),
        chunk([0, 0, np.inf, 0, 0]),
        chunk([0, 0, 0, -np.inf, 0], source="teleop"),
        chunk([[0.1] * 6]),  # action_dim 6
        chunk([0.1] * 5, action_space="joint_position"),
    ]
    accepted = [
        chunk([1e9, -1e9, 1e9, 1e9, -1e9], step=1),  # huge: clamped
        chunk([0.0, 0.0, 1.0, 0.0, 0.0], step=2),  # up and out of the workspace: clipped
        chunk([-0.5, 0.2, -0.5, 0.0, 1.0], step=3),
    ]
    sentinel = chunk([0.0] * 5, step=4)
    for message in refused + accepted + [sentinel]:
        r.policy.publish(message)
    assert r.wait_for(lambda: r.executed and r.executed[-1].step == 4)
    assert r.wait_for_trajectories(len(accepted) + 1)
    # one publisher, handled in order: had a refused chunk produced anything, it would come before the sentinel's
    assert len(r.trajectories) == len(accepted) + 1
    assert [m.step for m in r.executed] == [1, 2, 3, 4]  # the refused chunks (step 0) produced nothing
    np.testing.assert_array_equal(r.executed[0].actions, [1, -1, 1, 1, -1])
    for _, trajectory in r.trajectories:
        positions = assert_safe(trajectory, r.robot)
        tcp_m = kinematics.forward(positions[0]).position_m
        assert np.all(tcp_m <= r.robot.workspace_max_m + 1e-3) and np.all(tcp_m >= r.robot.workspace_min_m - 1e-3)


@pytest.fixture
def fast_polls(monkeypatch):
    """The watchdog polls every 0.1 s of a 60 s timeout (the node's default is a tenth of it)."""
    monkeypatch.setattr(safety_filter, "WATCHDOG_CHECKS_PER_TIMEOUT", 600)


def test_stop_is_commanded_once_within_the_watchdog_period_after_actions_stop(rig, skippable_clock, fast_polls):
    clock = skippable_clock(safety_filter)
    timeout_s = 60.0  # never lapses by itself: the test skips the clock
    r = rig(watchdog_timeout_s=timeout_s, joint_state_timeout_s=SKIPS_S)
    r.policy.publish(chunk([0.3, 0.0, 0.0, 0.0, 0.0], step=1))
    assert r.wait_for(lambda: len(r.executed) == 1)
    clock.skip(0.9 * timeout_s)
    r.wait_for_polls()
    # Not stale yet. Sentinel: the next chunk's trajectory directly follows the first (a stop would come between).
    r.policy.publish(chunk([0.3, 0.0, 0.0, 0.0, 0.0], step=2))
    assert r.wait_for(lambda: len(r.executed) == 2) and r.wait_for_trajectories(2)
    assert r.holds() == [False, False]
    clock.skip(1.05 * timeout_s)  # past the timeout after the last chunk: the next poll stops the arm
    assert r.wait_for_trajectories(3)
    assert r.holds() == [False, False, True]
    stop = r.trajectories[2][1]
    positions = assert_safe(stop, r.robot)
    np.testing.assert_allclose(positions, [HOME_ARM_Q], atol=1e-12)  # holds the measured joints
    assert list(stop.points[0].velocities) == [0.0] * 5
    clock.skip(2 * timeout_s)
    r.wait_for_polls()
    r.policy.publish(chunk([0.3, 0.0, 0.0, 0.0, 0.0], step=3))  # the sentinel
    assert r.wait_for(lambda: len(r.executed) == 3) and r.wait_for_trajectories(4)
    assert r.holds() == [False, False, True, False]  # one stop per lapse


def test_estop_holds_the_arm_and_blocks_actions_until_released(rig):
    r = rig(watchdog_timeout_s=5.0)
    response = r.estop(True)
    assert response.success and response.message.startswith("e-stop engaged: holding")
    assert r.wait_for_trajectories(1)
    stop = r.trajectories[0][1]
    np.testing.assert_allclose(assert_safe(stop, r.robot), [HOME_ARM_Q], atol=1e-12)
    assert list(stop.points[0].velocities) == [0.0] * 5
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1))
    r.teleop.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], source="teleop", step=2))
    assert r.wait_for_stats(lambda s: s["refused"].get("estop") == 2)  # both were handled, and refused
    assert r.estop(False).message == "e-stop released: chunks that arrive from now on are accepted"
    r.teleop.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], source="teleop", step=3))
    assert r.wait_for_trajectories(2) and r.wait_for(lambda: len(r.executed) == 1)
    assert [m.step for m in r.executed] == [3] and len(r.gripper) == 1 and r.holds() == [True, False]


@pytest.mark.parametrize("parameters", [
    {"dry_run": True},
    {"robot_config": str(robot_config_path("example_arm"))},  # dry_run: true in the robot file wins
])
def test_dry_run_publishes_nothing_to_the_arm(rig, parameters, skippable_clock):
    clock = skippable_clock(safety_filter)
    timeout_s = 60.0
    r = rig(watchdog_timeout_s=timeout_s, joint_state_timeout_s=SKIPS_S, **parameters)
    logs = []
    r.test.create_subscription(Log, "/rosout", logs.append, 100)
    assert r.node.dry_run
    assert "dry run, would hold" in r.estop(True).message
    r.estop(False)
    r.policy.publish(chunk([[0.5, 0.0, 0.0, 0.0, 1.0]] * 3))
    assert r.wait_for_stats(lambda s: s.get("dry_run_chunks") == 1)  # handled: computed, not sent
    clock.skip(1.5 * timeout_s)  # past the watchdog timeout too: no stop either, only its log line
    assert r.wait_for(lambda: any("no valid action for" in log.msg and "dry run, would hold" in log.msg
                                  for log in logs))
    assert not r.trajectories and not r.gripper and not r.executed


def test_teleop_overrides_the_policy_while_fresh(rig, skippable_clock):
    clock = skippable_clock(safety_filter)
    teleop_timeout_s = 30.0
    r = rig(watchdog_timeout_s=60.0, teleop_timeout_s=teleop_timeout_s, joint_state_timeout_s=SKIPS_S)
    r.teleop.publish(chunk([1.0, 0.0, 0.0, 0.0, 1.0], source="teleop"))
    assert r.wait_for(lambda: len(r.executed) == 1)
    r.policy.publish(chunk([-1.0, 0.0, 0.0, 0.0, -1.0], step=1))
    assert r.wait_for_stats(lambda s: s.get("policy_chunks_overridden") == 1)  # ignored: teleop is fresh
    clock.skip(teleop_timeout_s + 1.0)  # teleop is stale now
    # On one publisher after step 1: had step 1 been executed, it would come first.
    r.policy.publish(chunk([-1.0, 0.0, 0.0, 0.0, -1.0], step=2))
    assert r.wait_for(lambda: len(r.executed) == 2)
    assert [(m.source, m.step) for m in r.executed] == [("teleop", 0), ("policy", 2)]
    np.testing.assert_allclose(r.executed[1].actions, [-1.0, 0.0, 0.0, 0.0, -1.0])


def test_execute_steps_rows_become_points_one_period_apart_within_the_velocity_bound(rig):
    r = rig(watchdog_timeout_s=5.0, execute_steps=3)
    rows = [[1.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.5, 0.0, 0.0, -1.0], [0.0, 0.0, 1.0, 1.0, -1.0], [1.0] * 5]
    r.policy.publish(chunk(rows))
    assert r.wait_for_trajectories(1) and r.wait_for(lambda: r.executed)
    trajectory = r.trajectories[0][1]
    positions = assert_safe(trajectory, r.robot)
    assert [p.time_from_start.nanosec for p in trajectory.points] == [100_000_000, 200_000_000, 300_000_000]
    steps = np.diff(np.vstack([HOME_ARM_Q, positions]), axis=0)
    assert np.all(np.abs(steps) <= r.robot.max_joint_velocity_rad_s * r.robot.control_period_s + 1e-9)
    executed = r.executed[0]
    assert executed.horizon == 3 and list(executed.log_probs) == [-1.5] * 3
    # one gripper command per chunk: every executed row carries the first row's
    np.testing.assert_allclose(np.reshape(executed.actions, (3, 5))[:, 4], [1.0, 1.0, 1.0])
    assert list(r.gripper[0].data) == [0.0]


def test_chunks_are_refused_once_joint_states_go_stale(rig, skippable_clock):
    clock = skippable_clock(safety_filter)
    r = rig(watchdog_timeout_s=5.0, joint_state_timeout_s=0.5)
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1))
    assert r.wait_for(lambda: len(r.executed) == 1)
    r.joint_state_timer.cancel()  # the driver goes quiet
    clock.skip(1.0)
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=2))
    assert r.wait_for_stats(lambda s: s["refused"].get("joint_state_fault") == 1 and s["joint_state_fault"] == "stale")
    r.joint_state_timer.reset()  # fresh joint states again
    assert r.wait_for_stats(lambda s: s["joint_state_fault"] == "")
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=3))
    assert r.wait_for(lambda: len(r.executed) == 2)
    assert [m.step for m in r.executed] == [1, 3]


def stamped(msg, seconds: float):
    msg.header.stamp = Time(seconds=seconds).to_msg()
    return msg


def test_a_chunk_acts_on_the_joint_state_of_its_own_stamp_when_that_arrives_after_it(rig):
    r = rig(watchdog_timeout_s=5.0)
    r.joint_state_timer.cancel()  # from here on the test is the driver: one stamped joint state per step
    row = [0.5, 0.0, 0.0, 0.0, 0.0]
    r.joint_states.publish(stamped(JointState(name=list(JOINT_NAMES), position=list(HOME_ARM_Q) + [0.04] * 2), 1.0))
    # A chunk computed from the sensor set of t = 2 s overtakes that set's joint state (another topic).
    r.policy.publish(stamped(chunk(row, step=1), 2.0))
    assert r.wait_for(lambda: r.node._waiting is not None)  # held back for its joint state
    assert r.executed == []
    moved_q = HOME_ARM_Q + np.array([0.1, -0.05, 0.05, 0.0, 0.0])
    r.joint_states.publish(stamped(JointState(name=list(JOINT_NAMES), position=list(moved_q) + [0.04] * 2), 2.0))
    assert r.wait_for_trajectories(1)
    expected = r.node.filter.filter(np.array(row), moved_q).command.joint_positions_rad
    np.testing.assert_allclose(r.trajectories[0][1].points[0].positions, expected, atol=1e-9)


def test_a_chunk_whose_joint_state_never_comes_runs_on_the_newest_after_the_timeout(rig):
    timeout_s = 1.0
    r = rig(watchdog_timeout_s=5.0, joint_state_timeout_s=timeout_s)  # unstamped joint states at 20 Hz
    published = time.monotonic()
    r.policy.publish(stamped(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1), 50.0))  # on another clock
    assert r.wait_for_trajectories(1, timeout_s=timeout_s + 5.0)
    assert r.trajectories[0][0] - published >= timeout_s
    assert [m.step for m in r.executed] == [1]


def test_lockstep_stamps_each_trajectory_with_the_sensor_set_it_answers_and_realtime_starts_it_now(rig):
    r = rig(watchdog_timeout_s=5.0)  # realtime: what a joint_trajectory_controller of a real arm needs
    r.joint_state_timer.cancel()
    r.joint_states.publish(stamped(JointState(name=list(JOINT_NAMES), position=list(HOME_ARM_Q) + [0.04] * 2), 2.0))
    row = [0.2, 0.0, 0.0, 0.0, 0.0]
    r.policy.publish(stamped(chunk(row, step=1), 2.0))
    assert r.wait_for_trajectories(1)
    assert Time.from_msg(r.trajectories[0][1].header.stamp).nanoseconds == 0  # 0: start now
    assert all(result.successful for result in r.set(clock_mode="lockstep"))
    r.policy.publish(stamped(chunk(row, step=2), 2.0))
    assert r.wait_for_trajectories(2)
    assert Time.from_msg(r.trajectories[1][1].header.stamp).nanoseconds == 2_000_000_000
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in r.executed] == [2_000_000_000] * 2


def test_lockstep_builds_on_the_set_point_within_its_episode_only(rig):
    r = rig(watchdog_timeout_s=5.0, clock_mode="lockstep")  # the arm is measured at HOME throughout
    row = np.array([0.2, 0.0, 0.0, 0.0, 0.0])
    targets = []
    for episode in ("a", "a", "b"):
        msg = chunk(row, step=len(targets))
        msg.episode_id = episode
        r.policy.publish(msg)
        assert r.wait_for_trajectories(len(targets) + 1)
        targets.append(np.array(r.trajectories[-1][1].points[0].positions))
    from_measured = r.node.filter.filter(row, HOME_ARM_Q).command.joint_positions_rad
    np.testing.assert_allclose(targets[0], from_measured, atol=1e-9)
    assert np.abs(targets[1] - targets[0]).max() > 1e-3  # built on the set point of the same episode
    np.testing.assert_allclose(targets[2], from_measured, atol=1e-9)  # a new episode: on the measured joints


def test_finger_joints_alone_do_not_count_as_a_joint_state(ros_graph, wait_for):
    r = Rig(ros_graph, wait_for, publish_joint_states=False, watchdog_timeout_s=5.0)
    gripper_only = JointState(name=list(FINGER_JOINT_NAMES), position=[0.04, 0.04])
    gripper_timer = r.test.create_timer(0.05, lambda: r.joint_states.publish(gripper_only))
    # handled: the joint_states subscription's callbacks show in the node's latency window
    assert r.wait_for_stats(lambda s: s.get("callback_latency_ms", {}).get("window", 0) >= 3)
    assert "no valid joint state" in r.estop(True).message
    gripper_timer.cancel()
    r.joint_state_timer.reset()  # the whole arm again
    assert wait_for(lambda: r.estop(True).message.startswith("e-stop engaged: holding"))


def assert_within_one_step_of(trajectory: JointTrajectory, q, robot) -> np.ndarray:
    """Safe, inside the margins, and its first point at most one velocity-bounded step from ``q``."""
    positions = assert_safe(trajectory, robot)
    margin = robot.joint_limit_margin_rad
    assert np.all(positions >= robot.joint_limits_rad[:, 0] + margin - 1e-9)
    assert np.all(positions <= robot.joint_limits_rad[:, 1] - margin + 1e-9)
    max_step = robot.max_joint_velocity_rad_s * robot.control_period_s
    assert np.all(np.abs(positions[0] - q) <= max_step + 1e-9), (positions[0], q)
    return positions


def test_a_measured_state_outside_the_limits_is_a_fault_that_holds_the_arm_where_it_was(rig):
    # Issue 17: joint_states claiming 10 rad on every joint made the filter hold at the joint limits, 3.85 rad away.
    r = rig(watchdog_timeout_s=5.0)
    r.q = np.full(5, 10.0)
    assert r.wait_for_stats(lambda s: s.get("joint_state_fault") == "outside_limits")
    assert r.wait_for_trajectories(1)  # entering the fault holds the last plausible position
    hold = r.trajectories[0][1]
    np.testing.assert_allclose(assert_within_one_step_of(hold, HOME_ARM_Q, r.robot), [HOME_ARM_Q], atol=1e-12)
    assert list(hold.points[0].velocities) == [0.0] * 5
    assert r.estop(True).message.startswith("e-stop engaged: holding [0.0, 0.357, 1.662, 1.122, 0.0]")
    assert r.wait_for_trajectories(2)
    assert_within_one_step_of(r.trajectories[1][1], HOME_ARM_Q, r.robot)
    r.estop(False)
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1))
    r.teleop.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], source="teleop", step=2))
    assert r.wait_for_stats(lambda s: s["refused"].get("joint_state_fault", 0) >= 2)
    r.q = HOME_ARM_Q.copy()  # plausible again, after fault_clear_messages consistent states
    assert r.wait_for_stats(lambda s: s.get("joint_state_fault") == "")
    r.teleop.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], source="teleop", step=3))
    assert r.wait_for(lambda: r.executed)
    assert [m.step for m in r.executed] == [3]
    assert r.wait_for_trajectories(3)
    for _, trajectory in r.trajectories:
        assert_within_one_step_of(trajectory, HOME_ARM_Q, r.robot)
    assert r.stats[-1]["joint_state_faults.outside_limits"] == 1


def test_a_measured_jump_is_a_fault_but_not_during_a_reset(rig):
    r = rig(watchdog_timeout_s=5.0)
    jumped = HOME_ARM_Q + np.array([0.6, 0.0, 0.0, 0.0, 0.0])  # within the limits, but 0.6 rad in 50 ms
    r.q = jumped
    assert r.wait_for_stats(lambda s: s.get("joint_state_faults.jump") == 1)  # it may clear before the next snapshot
    assert r.wait_for_trajectories(1)
    np.testing.assert_allclose(r.trajectories[0][1].points[0].positions, HOME_ARM_Q, atol=1e-12)
    assert r.wait_for_stats(lambda s: s.get("joint_state_fault") == "")  # it stayed there: plausible again
    # An episode's END: the driver resets (teleports) the arm until the next START.
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="ep"))
    assert r.wait_for(lambda: r.node.monitor.resetting)
    r.q = HOME_ARM_Q.copy()
    assert r.wait_for(lambda: np.array_equal(r.node.monitor.plausible_q, HOME_ARM_Q))  # taken as it is
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="ep2"))
    assert r.wait_for(lambda: not r.node.monitor.resetting)
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1))
    assert r.wait_for(lambda: r.executed)
    assert [m.step for m in r.executed] == [1] and r.stats[-1].get("joint_state_faults.jump") == 1
    assert_within_one_step_of(r.trajectories[-1][1], HOME_ARM_Q, r.robot)


def test_a_chunk_with_nan_in_a_later_row_is_refused_whole(rig):
    # Issue 17: NaN only in row 2 was executed (its first row only runs with execute_steps 1).
    r = rig(watchdog_timeout_s=5.0)
    r.policy.publish(chunk([[0.5, 0.0, 0.0, 0.0, 0.0], [0.0] * 5, [np.nan, 0.0, 0.0, 0.0, 0.0]], step=1))
    r.policy.publish(chunk([[0.5, 0.0, 0.0, 0.0, 0.0], [0.0] * 5, [0.0] * 5], step=2))  # the sentinel
    assert r.wait_for(lambda: r.executed)
    assert [m.step for m in r.executed] == [2]
    assert r.wait_for_stats(lambda s: s["refused"].get("bad_chunk") == 1)


def test_estop_state_is_latched_and_its_release_executes_nothing_that_came_before(rig, ros_graph, wait_for):
    r = rig(watchdog_timeout_s=5.0)
    r.joint_state_timer.cancel()  # the test is the driver: stamped joint states
    arm = JointState(name=list(JOINT_NAMES), position=list(HOME_ARM_Q) + [0.04] * 2)
    r.joint_states.publish(stamped(arm, 1.0))
    r.estop(True)
    late = ros_graph.node("late_joiner")
    states = []
    late.create_subscription(Bool, "estop", lambda m: states.append(m.data), ESTOP_QOS)
    assert wait_for(lambda: states == [True])  # latched: a node started later learns it at once
    # A chunk for the sensor set of t = 2 s arrives during the e-stop; its joint state only after the release.
    r.policy.publish(stamped(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1), 2.0))
    assert r.wait_for_stats(lambda s: s["refused"].get("estop") == 1)
    assert r.estop(False).success
    assert wait_for(lambda: states == [True, False])
    r.joint_states.publish(stamped(arm, 2.0))
    r.policy.publish(stamped(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=2), 2.0))  # the sentinel
    assert r.wait_for(lambda: r.executed)
    assert [m.step for m in r.executed] == [2]


def test_dry_run_switched_on_at_run_time_stops_commands_at_once(rig):
    # Issue 17: `ros2 param set .../safety_filter dry_run true` answered success while trajectories kept flowing.
    r = rig(watchdog_timeout_s=5.0)
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=1))
    assert r.wait_for(lambda: len(r.executed) == 1)
    assert r.set(dry_run=True)[0].successful
    assert r.node.dry_run
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=2))
    assert r.wait_for_stats(lambda s: s.get("dry_run_chunks") == 1 and s["dry_run"])
    assert r.set(dry_run=False)[0].successful
    r.policy.publish(chunk([0.5, 0.0, 0.0, 0.0, 0.0], step=3))  # the sentinel
    assert r.wait_for(lambda: len(r.executed) == 2)
    assert [m.step for m in r.executed] == [1, 3]
    stop = r.trajectories[1][1]  # switching dry run on stopped the arm first
    assert list(stop.points[0].velocities) == [0.0] * 5


@pytest.mark.parametrize("name, value, reason", [
    ("watchdog_timeout_s", -1.0, "watchdog_timeout_s must be a finite number > 0, got -1.0"),
    ("watchdog_timeout_s", float("nan"), "watchdog_timeout_s must be a finite number > 0"),
    ("watchdog_timeout_s", 0.05, "must cover the 0.1 s that execute_steps=1 rows take"),
    ("execute_steps", 0, "execute_steps must be >= 1, got 0"),
    ("fault_clear_messages", 0, "fault_clear_messages must be >= 1"),
    ("robot_config", "/nonexistent/robot.yaml", "/nonexistent/robot.yaml"),
])


def test_invalid_values_are_refused_at_run_time_with_the_reason(rig, name, value, reason):
    r = rig(watchdog_timeout_s=0.5)
    before = r.node.get_parameter(name).value
    result = r.set(**{name: value})[0]
    assert not result.successful and reason in result.reason, result.reason
    assert r.node.get_parameter(name).value == before and getattr(r.node.config, name) == before


def test_dry_run_forced_by_the_robot_config_cannot_be_switched_off(rig):
    r = rig(watchdog_timeout_s=0.5, dry_run=True, robot_config=str(robot_config_path("example_arm")))
    result = r.set(dry_run=False)[0]
    assert not result.successful and "forces dry run" in result.reason
    assert r.node.dry_run


def test_a_shorter_watchdog_set_at_run_time_applies_at_once(rig):
    r = rig(watchdog_timeout_s=60.0)
    assert r.set(watchdog_timeout_s=0.3)[0].successful
    r.policy.publish(chunk([0.3, 0.0, 0.0, 0.0, 0.0]))
    assert r.wait_for_trajectories(2, timeout_s=10.0)  # the chunk, then the watchdog's stop
    assert list(r.trajectories[1][1].points[0].velocities) == [0.0] * 5


def test_limits_of_a_robot_config_set_at_run_time_bound_the_next_command(rig, tmp_path):
    r = rig(watchdog_timeout_s=5.0)
    text = Path(robot_config_path("tabletop_sim")).read_text()
    tight = tmp_path / "tight.yaml"  # base_yaw may not turn below -0.05 rad (margin 0.02: commands stay above -0.03)
    tight.write_text(text.replace("- [-2.0, 2.0]", "- [-0.05, 2.0]").replace("model_path: null", "model_path: null"))
    turn = chunk([0.0, -1.0, 0.0, 0.0, 0.0], step=1)  # -y: base_yaw turns negative
    expected_before = r.node.filter.filter(np.array([0.0, -1.0, 0.0, 0.0, 0.0]), HOME_ARM_Q).command
    assert expected_before.joint_positions_rad[0] < -0.03  # the default limits let it turn further
    assert r.set(robot_config=str(tight))[0].successful
    r.policy.publish(turn)
    assert r.wait_for_trajectories(1)
    positions = assert_within_one_step_of(r.trajectories[0][1], HOME_ARM_Q, r.node.robot)
    assert positions[0][0] == pytest.approx(-0.03)
