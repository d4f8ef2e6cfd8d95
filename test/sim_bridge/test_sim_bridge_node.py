"""The sim_bridge node through its topics and services: episodes, sensor messages, arm and gripper commands, lockstep
and realtime clocks, a scripted expert solving tasks over the topics, and the lockstep benchmark."""

import functools
import json
import threading
import time

import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.contract import ARM_JOINT_NAMES, JOINT_NAMES
from rlvla_ros.msg import TaskSuccess
from rlvla_ros.nodes import sim_bridge as sim_bridge_module
from rlvla_ros.nodes.sim_bridge import MAX_CATCH_UP_PERIODS, SimBridge
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.kinematics import ArmKinematics, EePose
from rlvla_ros.sim.tabletop_sim import GRIPPER_MAX_OPENING_M, HOME_ARM_Q
from rlvla_ros.srv import ResetEpisode

PERIOD_S = 0.1
SENSOR_SET = ("joint_states", "camera/image_raw", "sim/success")
"""Topics of which the bridge publishes one message per step (front camera only)."""
PERIOD_NS = 100_000_000
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def trajectory(*points, times_s=None, names=ARM_JOINT_NAMES, stamp=None) -> JointTrajectory:
    """Points one control period apart (or at `times_s`), answering the sensor set stamped `stamp` (default 0)."""
    times_s = times_s or [PERIOD_S * (k + 1) for k in range(len(points))]
    return JointTrajectory(header=Header(stamp=stamp) if stamp else Header(), joint_names=list(names), points=[
        JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=Duration(seconds=t).to_msg())
        for q, t in zip(points, times_s)])


class Rig:
    """Records everything the bridge publishes; `step` sends commands and waits for the resulting sensor set."""

    def __init__(self, ros_graph, wait_for, **parameters):
        self.wait_for = wait_for
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.bridge = ros_graph.add(SimBridge(context=ros_graph.context, parameter_overrides=overrides))
        self.test = ros_graph.node("sim_bridge_test")
        self.received: dict[str, list] = {}
        # notified on every message, so waiting for a sensor set adds no polling delay to the throughput measured
        self._arrived = threading.Condition()
        for topic, msg_type in [("camera/image_raw", Image), ("camera/camera_info", CameraInfo),
                                ("wrist_camera/image_raw", Image), ("wrist_camera/camera_info", CameraInfo),
                                ("joint_states", JointState), ("sim/success", TaskSuccess), ("sim/episode", String),
                                ("sim_bridge/rejected_commands", String), ("/clock", Clock)]:
            self.received[topic] = []
            qos = LATCHED if topic == "sim/episode" else 10
            self.test.create_subscription(msg_type, topic, functools.partial(self._record, topic), qos)
        self.arm = self.test.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        self.gripper = self.test.create_publisher(Float64MultiArray, "gripper_controller/commands", 10)
        self.reset_client = self.test.create_client(ResetEpisode, "reset_episode")
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in (self.arm, self.gripper)), 10.0)
        assert self.reset_client.wait_for_service(timeout_sec=10.0)
        # the sensor subscriptions must have matched, or the first sensor set can be lost
        sensors = [s for s in self.test.subscriptions if s.topic_name.endswith(("image_raw", "joint_states", "success"))
                   and "wrist" not in s.topic_name]
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in sensors), 10.0)

    def _record(self, topic: str, msg) -> None:
        with self._arrived:
            self.received[topic].append(msg)
            self._arrived.notify_all()

    def __getitem__(self, topic: str) -> list:
        return self.received[topic]

    def reset(self, task="", split="", seed=-1, instruction="") -> ResetEpisode.Response:
        """Reset and wait for the episode's first sensor set."""
        counts = self._sensor_counts()
        future = self.reset_client.call_async(
            ResetEpisode.Request(task=task, split=split, seed=seed, instruction=instruction))
        assert self.wait_for(future.done, 10.0)
        response = future.result()
        if response.success:
            self._wait_sensor_set(counts)
        return response

    def _sensor_counts(self) -> dict[str, int]:
        return {topic: len(self[topic]) for topic in SENSOR_SET}

    def _wait_sensor_set(self, counts: dict[str, int], timeout_s: float = 10.0) -> None:
        """Wait until one more message than `counts` has arrived on each topic of a sensor set."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: all(len(self[t]) > n for t, n in counts.items()), timeout_s), \
                {t: len(self[t]) for t in counts}

    def step(self, q, gripper_m=None, times_s=None) -> JointState:
        """Lockstep: send a gripper command (if any) then a trajectory answering the newest sensor set, return the
        joint state it produced."""
        counts = self._sensor_counts()
        if gripper_m is not None:
            self.gripper.publish(Float64MultiArray(data=[float(gripper_m)]))
        points = q if times_s is not None else [q]
        self.arm.publish(trajectory(*points, times_s=times_s, stamp=self["joint_states"][-1].header.stamp))
        self._wait_sensor_set(counts)
        return self["joint_states"][-1]

    def episode(self) -> dict:
        assert self.wait_for(lambda: self["sim/episode"], 5.0)
        return json.loads(self["sim/episode"][-1].data)


@pytest.fixture
def rig(ros_graph, wait_for):
    """`rig(**parameters)`: a connected Rig, lockstep without heartbeat unless told otherwise."""

    def make(**parameters) -> Rig:
        parameters.setdefault("clock_mode", "lockstep")
        parameters.setdefault("lockstep_heartbeat_hz", 0.0)
        return Rig(ros_graph, wait_for, **parameters)

    return make


def arm_positions(state: JointState) -> np.ndarray:
    index = {name: i for i, name in enumerate(state.name)}
    return np.array([state.position[index[name]] for name in ARM_JOINT_NAMES])


def gripper_opening(state) -> float:
    return state.position[JOINT_NAMES.index("finger_left")] + state.position[JOINT_NAMES.index("finger_right")]


def test_reset_service_starts_the_requested_episode_and_refuses_unknown_names(rig):
    r = rig()
    response = r.reset(task="push", split="ood_color", seed=7)
    twin = TabletopEnv(task="push", split="ood_color", image_size=32)
    assert response.success and response.seed == 7
    assert response.instruction == twin.reset(seed=7)[0]["instruction"]
    # The reply names the episode's first sensor set: the one the reset published.
    assert response.first_set_stamp == r["joint_states"][-1].header.stamp == r["camera/image_raw"][-1].header.stamp
    assert r.episode() == {"episode_id": response.episode_id, "task": "push", "split": "ood_color", "seed": 7,
                           "instruction": response.instruction, "max_steps": 80}

    custom = r.reset(seed=-1, instruction="lift the block you like best")
    assert custom.success and custom.seed >= 0 and custom.episode_id != response.episode_id
    assert custom.instruction == "lift the block you like best"
    assert (r.episode()["task"], r.episode()["split"]) == ("lift", "id")

    unknown_task = r.reset(task="fold_laundry")
    assert not unknown_task.success and unknown_task.episode_id == ""
    assert "fold_laundry" in unknown_task.message and "lift, place_side, push, stack" in unknown_task.message
    unknown_split = r.reset(split="ood_weather")
    assert not unknown_split.success and "id, ood_color, ood_position" in unknown_split.message
    assert r.episode()["episode_id"] == custom.episode_id


def test_sensor_messages_are_consistent_and_stamped_with_the_simulated_time(rig):
    size = 96
    r = rig(image_size=size, wrist_camera=True, publish_clock=True)
    assert r.wait_for(lambda: all(s.get_publisher_count() > 0 for s in r.test.subscriptions), 10.0)
    r.reset(seed=2)
    for _ in range(3):
        r.step(HOME_ARM_Q)
    images, infos, states = r["camera/image_raw"], r["camera/camera_info"], r["joint_states"]
    assert len(images) == len(infos) == len(states) == len(r["wrist_camera/image_raw"]) == 4
    for image in images + r["wrist_camera/image_raw"]:
        assert (image.height, image.width, image.encoding, image.step) == (size, size, "rgb8", size * 3)
        assert len(image.data) == size * size * 3
    pixels = np.frombuffer(bytes(images[-1].data), np.uint8).reshape(size, size, 3)
    assert pixels.std() > 10  # a rendered scene, not a blank frame
    assert {i.header.frame_id for i in images} == {"front_camera"}
    assert {i.header.frame_id for i in r["wrist_camera/image_raw"]} == {"wrist_camera"}

    info = infos[-1]
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    assert (info.width, info.height) == (size, size)
    assert cx == pytest.approx((size - 1) / 2) and cy == pytest.approx((size - 1) / 2) and fx == fy > 0
    assert [info.p[0], info.p[2], info.p[5], info.p[6], info.p[10]] == [fx, cx, fy, cy, 1.0]

    stamps = [stamp_ns(i) for i in images]
    assert [stamp_ns(i) for i in infos] == stamps == [stamp_ns(s) for s in states]
    assert np.diff(stamps).tolist() == [PERIOD_NS] * 3
    clock = r["/clock"][-1].clock
    assert clock.sec * 1_000_000_000 + clock.nanosec == stamps[-1]
    assert list(states[-1].name) == list(JOINT_NAMES)
    np.testing.assert_allclose(arm_positions(states[-1]), HOME_ARM_Q, atol=0.01)
    assert [m.success for m in r["sim/success"]] == [False] * 4
    assert [stamp_ns(m) for m in r["sim/success"]] == stamps  # stamped like its set
    r.reset(seed=3)  # takes a period of simulated time: the new episode's first set has its own stamp
    assert stamp_ns(r["camera/image_raw"][-1]) - stamps[-1] == PERIOD_NS


def test_joint_trajectory_moves_the_arm_where_commanded(rig):
    r = rig(interpolation="linear")
    r.reset(seed=3)
    kinematics = ArmKinematics()
    home = kinematics.forward(HOME_ARM_Q)
    goal_m = home.position_m + [0.06, 0.10, -0.08]
    target = kinematics.inverse(EePose(goal_m, 0.3), HOME_ARM_Q)
    start_ns = stamp_ns(r["joint_states"][-1])
    middle = (HOME_ARM_Q + target) / 2
    # two points over 0.6 s: lockstep runs six periods for it, then one sensor set
    state = r.step([middle, target], times_s=[0.3, 0.6])
    assert stamp_ns(state) - start_ns == 6 * PERIOD_NS
    assert np.abs(arm_positions(state) - target).max() < 0.05
    for _ in range(5):
        state = r.step(target)
    np.testing.assert_allclose(arm_positions(state), target, atol=0.01)
    reached = kinematics.forward(arm_positions(state))
    assert np.linalg.norm(reached.position_m - goal_m) < 0.01
    assert reached.yaw_rad == pytest.approx(0.3, abs=0.02)


def test_gripper_commands_close_and_open_the_fingers(rig):
    r = rig()
    r.reset(seed=0)
    assert gripper_opening(r["joint_states"][-1]) == pytest.approx(GRIPPER_MAX_OPENING_M, abs=1e-3)
    state = r.step(HOME_ARM_Q, gripper_m=0.0)
    for _ in range(2):
        state = r.step(HOME_ARM_Q)
    assert gripper_opening(state) < 0.005
    r.step(HOME_ARM_Q, gripper_m=0.05)
    for _ in range(2):
        state = r.step(HOME_ARM_Q)
    assert gripper_opening(state) == pytest.approx(0.05, abs=0.003)


def test_bad_commands_are_rejected_with_a_reason_and_change_nothing(rig):
    r = rig()
    logs = []
    r.test.create_subscription(Log, "/rosout", logs.append, 100)
    r.reset(seed=0)
    sets_before = len(r["sim/success"])
    far = HOME_ARM_Q + [0.5, -0.3, 0.3, 0.2, 1.0]
    bad_trajectories = [
        (trajectory(far, names=list(ARM_JOINT_NAMES[:4]) + ["finger_left"]), "exactly the arm joints"),
        (trajectory(far, names=list(ARM_JOINT_NAMES[:4])), "exactly the arm joints"),
        (trajectory([*far[:2], np.nan, *far[3:]]), "elbow = nan"),
        (trajectory([*far[:3], 3.5, far[4]]), "wrist_pitch = 3.5"),
        (trajectory(far, HOME_ARM_Q, times_s=[0.2, 0.1]), "strictly increasing"),
        (trajectory(), "no points"),
    ]
    bad_grippers = [([0.0, 0.0], "exactly one value"), ([], "exactly one value"), ([float("nan")], "nan"),
                    ([-0.01], "-0.01"), ([0.2], "0.2")]
    # Sentinels, last on each publisher: once both are refused, every command before them has been handled.
    sentinels = [(trajectory([*far[:4], 99.0]), "wrist_roll = 99.0")], [([0.09], "0.09")]
    for msg, _ in bad_trajectories + sentinels[0]:
        r.arm.publish(msg)
    for data, _ in bad_grippers + sentinels[1]:
        r.gripper.publish(Float64MultiArray(data=data))
    assert r.wait_for(lambda: sum(reason in m.data for m in r["sim_bridge/rejected_commands"]
                                  for reason in ("wrist_roll = 99.0", "gripper opening 0.09")) == 2, 10.0)
    reasons = [m.data for m in r["sim_bridge/rejected_commands"]]
    assert len(reasons) == len(bad_trajectories) + len(bad_grippers) + 2
    # each topic's messages are handled in order; the two topics may interleave
    for topic, sent in (("arm_controller/joint_trajectory", bad_trajectories + sentinels[0]),
                        ("gripper_controller/commands", bad_grippers + sentinels[1])):
        got = [reason for reason in reasons if reason.startswith(f"{topic}: ")]
        assert len(got) == len(sent)
        for reason, (_, expected_reason) in zip(got, sent):
            assert expected_reason in reason, reason
    assert len(r["sim/success"]) == sets_before  # refused trajectories do not step the simulation
    # logged too (throttled: at least the first)
    assert any(log.name == "sim_bridge" and log.msg.startswith("rejected ") for log in logs)

    for _ in range(3):
        state = r.step(HOME_ARM_Q)
    np.testing.assert_allclose(arm_positions(state), HOME_ARM_Q, atol=0.01)
    assert gripper_opening(state) == pytest.approx(GRIPPER_MAX_OPENING_M, abs=1e-3)


def test_a_command_sent_before_a_reset_does_not_step_the_new_episode(rig, ros_graph):
    r = rig()
    logs = []
    r.test.create_subscription(Log, "/rosout", logs.append, 100)
    r.reset(seed=0)
    r.step(HOME_ARM_Q)
    # The previous episode's command is in flight when the reset is handled: the bridge is not spun while it
    # arrives, then handles the reset before it.
    ros_graph.executor.remove_node(r.bridge)
    ros_graph.sync()  # from here on the bridge handles nothing
    sets_before = len(r["sim/success"])
    r.arm.publish(trajectory(HOME_ARM_Q + [0.4, 0.0, 0.0, 0.0, 0.0]))
    r.gripper.publish(Float64MultiArray(data=[0.0]))
    response = r.bridge._on_reset(ResetEpisode.Request(seed=5), ResetEpisode.Response())
    assert response.success
    ros_graph.executor.add_node(r.bridge)
    r._wait_sensor_set({topic: sets_before for topic in SENSOR_SET})
    assert r.wait_for(lambda: any(log.name == "sim_bridge" and log.msg.startswith("dropped a ") for log in logs), 10.0)
    reset_state = r["joint_states"][-1]
    np.testing.assert_allclose(arm_positions(reset_state), HOME_ARM_Q, atol=0.01)
    assert gripper_opening(reset_state) == pytest.approx(GRIPPER_MAX_OPENING_M, abs=1e-3)
    moved = r.step(HOME_ARM_Q + [0.2, 0.0, 0.0, 0.0, 0.0])  # commands sent after the reset step it
    assert arm_positions(moved)[0] - HOME_ARM_Q[0] > 0.05
    # The sentinel: the sets since the reset are its own and the step's, one period apart; a stale command that
    # stepped the scene would have put a set between them.
    assert len(r["sim/success"]) == sets_before + 2
    assert stamp_ns(moved) - stamp_ns(reset_state) == PERIOD_NS
    # An RMW that reports no source timestamp (0) cannot date a command: it is kept.
    assert not r.bridge._sent_before_reset("arm_controller/joint_trajectory", {"source_timestamp": 0})


def test_lockstep_steps_only_on_the_answer_to_the_newest_sensor_set(rig):
    r = rig()
    stats = []
    r.test.create_subscription(String, "sim_bridge/stats", lambda msg: stats.append(json.loads(msg.data)), 10)
    wrong, right = HOME_ARM_Q + [0.4, 0.0, 0.0, 0.0, 0.0], HOME_ARM_Q + [-0.4, 0.0, 0.0, 0.0, 0.0]
    reset_set = r.reset(seed=0) and r["joint_states"][-1]
    newest = r.step(HOME_ARM_Q)

    def answered_by_right(stale: list[JointTrajectory], newest: JointState) -> JointState:
        """Send `stale`, then the answer to `newest` on the same publisher (so in that order): the next set is the
        answer's, one period on, moved towards `right`; had a stale one stepped, it would come first, towards
        `wrong`."""
        counts = r._sensor_counts()
        for msg in stale:
            r.arm.publish(msg)
        r.arm.publish(trajectory(right, stamp=newest.header.stamp))
        r._wait_sensor_set(counts)
        state = r["joint_states"][counts["joint_states"]]
        assert stamp_ns(state) == stamp_ns(newest) + PERIOD_NS
        assert arm_positions(state)[0] < HOME_ARM_Q[0] - 0.05
        return state

    # an answer to an older set, and an unanswering (unstamped) trajectory
    moved = answered_by_right([trajectory(wrong, stamp=reset_set.header.stamp), trajectory(wrong)], newest)
    # the answer to the old episode's last set, sent after the reset (so its source timestamp does not date it)
    r.reset(seed=1)
    first = r["joint_states"][-1]
    answered_by_right([trajectory(wrong, stamp=moved.header.stamp)], first)
    # sentinel: the next answer steps once more, so no dropped command stepped late
    sentinel = r.step(HOME_ARM_Q)
    assert [stamp_ns(s) for s in r["joint_states"][-3:]] == [stamp_ns(first) + k * PERIOD_NS for k in range(3)]
    assert stamp_ns(sentinel) == stamp_ns(first) + 2 * PERIOD_NS
    assert r.wait_for(lambda: stats and stats[-1].get("dropped_commands.not_the_last_set") == 3, 5.0), stats[-1:]


def test_lockstep_heartbeat_resends_the_unchanged_joint_state_only(rig):
    r = rig(lockstep_heartbeat_hz=20.0)
    r.reset(seed=0)
    images = len(r["camera/image_raw"])
    first = r["joint_states"][-1]
    assert r.wait_for(lambda: len(r["joint_states"]) >= 5, 3.0)
    repeats = r["joint_states"][-4:]
    assert {stamp_ns(s) for s in repeats} == {stamp_ns(first)}
    assert all(list(s.position) == list(first.position) for s in repeats)
    assert len(r["camera/image_raw"]) == images


def test_realtime_mode_runs_physics_at_wall_clock_speed_and_tracks_trajectories_over_time(rig, wait_for):
    started_ns = time.time_ns()
    r = rig(clock_mode="realtime", rate_hz=20.0, interpolation="linear", image_size=32)
    # stamps like a real driver's: the simulated clock starts at the wall-clock time of start-up
    assert wait_for(lambda: r["joint_states"], 20.0)
    assert started_ns - PERIOD_NS <= stamp_ns(r["joint_states"][0]) <= time.time_ns()
    target = HOME_ARM_Q + [0.4, 0.0, 0.0, 0.0, 0.0]
    duration_s = 1.0
    start = len(r["joint_states"])
    r.arm.publish(trajectory(target, times_s=[duration_s]))
    assert wait_for(lambda: abs(arm_positions(r["joint_states"][-1])[0] - target[0]) < 0.02, 10.0)
    states = r["joint_states"][start:]
    stamps = np.array([stamp_ns(s) for s in states])
    # Whole control periods between sets: one, or the few a late tick ran to catch up (the next test)
    assert np.all(np.diff(stamps) > 0) and np.all(np.diff(stamps) % (PERIOD_NS // 2) == 0)
    assert np.all(np.diff(stamps) <= MAX_CATCH_UP_PERIODS * PERIOD_NS // 2)
    # The trajectory starts when it arrives and lasts duration_s of simulated time, interpolated linearly.
    yaw = np.array([arm_positions(s)[0] for s in states])
    onset = int(np.argmax(yaw > HOME_ARM_Q[0] + 1e-4))
    progress = (stamps - stamps[onset]) / 1e9 / duration_s
    # a tick catching up after a stall of the machine runs up to MAX_CATCH_UP_PERIODS: still >= 2 sets in this window
    moving = yaw[(progress > 0.15) & (progress < 0.85)] - HOME_ARM_Q[0]
    assert len(moving) >= 2 and np.all(np.diff(moving) > 0) and 0.05 < moving.mean() < 0.35
    arrival = int(np.argmax(np.abs(yaw - target[0]) < 0.02))
    assert 0.85 < progress[arrival] < 1.2  # at the target duration_s of simulated time after the onset


def test_realtime_mode_catches_up_a_late_tick_by_a_few_periods_at_most(rig, wait_for, skippable_clock):
    clock = skippable_clock(sim_bridge_module)
    r = rig(clock_mode="realtime", rate_hz=20.0, image_size=32)
    period_ns = PERIOD_NS // 2
    assert wait_for(lambda: len(r["joint_states"]) >= 3, 20.0)

    def widest_gap_ns(skip_periods: int) -> int:
        """Make the wall clock jump ``skip_periods`` periods ahead; the widest gap between the stamps of the sets
        that follow (a set already in flight may come first)."""
        count = len(r["joint_states"])
        clock.skip(skip_periods * period_ns * 1e-9)
        assert wait_for(lambda: len(r["joint_states"]) > count + 3, 20.0)
        return int(np.diff([stamp_ns(s) for s in r["joint_states"][count - 1:]]).max())

    # A tick late by 3 periods runs them all before its sensor set (more if the machine adds lateness of its own) ...
    assert widest_gap_ns(3) >= 3 * period_ns
    # ... one late by 100 runs MAX_CATCH_UP_PERIODS: the simulation falls behind the wall clock instead of jumping
    assert widest_gap_ns(100) == MAX_CATCH_UP_PERIODS * period_ns


def expert_step(twin: TabletopEnv) -> tuple[np.ndarray, float]:
    """The twin's expert action as the safety filter executes it: joint targets from the set point, gripper opening."""
    action = twin.expert_action()
    q = twin.kinematics.apply_ee_delta(twin.sim.arm_targets(), action, twin.ee_config)
    return q, 0.0 if action[4] > 0 else GRIPPER_MAX_OPENING_M


@pytest.mark.parametrize(("task", "seed"), [("lift", 21), ("push", 22)])
def test_scripted_expert_over_the_topics_succeeds_and_the_bridge_tracks_a_twin_env(rig, task, seed):
    r = rig(task=task, image_size=64)
    assert r.reset(seed=seed).success
    twin = TabletopEnv(task=task, image_size=32)
    twin.reset(seed=seed)
    np.testing.assert_array_equal(r["joint_states"][-1].position, twin.sim.joint_state().positions)
    successes = []
    for _ in range(twin.task.max_steps):
        q, gripper_m = expert_step(twin)
        state = r.step(q, gripper_m)
        _, _, terminated, _, _ = twin.step_joint_targets(q, gripper_m)
        np.testing.assert_allclose(state.position, twin.sim.joint_state().positions, atol=1e-9)
        successes.append(r["sim/success"][-1].success)
        assert successes[-1] == terminated
        if terminated:
            break
    assert successes[-1] and not any(successes[:-1])
    twin.close()
