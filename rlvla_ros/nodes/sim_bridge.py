"""sim_bridge node: the MuJoCo tabletop arm behind the topics and services of a real arm's driver.

Publishes (all stamped with the simulated time):

- ``camera/image_raw`` (sensor_msgs/Image rgb8, frame ``front_camera``) and ``camera/camera_info``;
- ``wrist_camera/image_raw`` and ``wrist_camera/camera_info`` (frame ``wrist_camera``) when ``wrist_camera`` is set;
- ``joint_states`` (arm joints base to tip, then the two finger joints);
- ``sim/success`` (rlvla_ros/msg/TaskSuccess): the current task's privileged success predicate, with every sensor
  set and stamped like it;
- ``sim/episode`` (std_msgs/String, transient local): JSON ``{"episode_id", "task", "split", "seed",
  "instruction", "max_steps"}`` of the episode in progress, once per reset;
- ``sim/expert_action`` (rlvla_ros/msg/ActionChunk, source ``expert``, horizon 1) when ``publish_expert_action`` is
  set: the task's scripted expert, from privileged state, answering each ``observation`` (rlvla_ros/msg/Observation,
  from the perception node) of the bridge's current episode until its ``episode_event`` END, with the observation's
  stamp and step; in lockstep only the observation of the set published last (the scene has not moved since).
  Remapped onto a safety filter's ``teleop/action_chunk`` it demonstrates through the same graph a human
  teleoperator would use, and like a policy it answers observations, not sensor sets: the loop then runs at the
  pace of the perception node, which so sees (and the recorder records) every set, under any load. Observations it
  does not answer are counted on ``~/stats`` (``expert_unanswered.<another_episode|ended_episode|
  not_the_last_set>``);
- ``~/rejected_commands`` (std_msgs/String): ``"<topic>: <reason>"`` for every refused command (also logged);
- ``/clock`` (rosgraph_msgs/Clock) when ``publish_clock`` is set, before each sensor set.

Accepts ``arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory: exactly the arm joints in any order,
finite positions within the limits, strictly increasing ``time_from_start``; it starts when it arrives, whatever its
header stamp, and replaces the one being followed; velocities and accelerations are not used) and
``gripper_controller/commands`` (std_msgs/Float64MultiArray: one opening in [0, 0.08] m). A bad command is refused
whole: nothing of it is applied. Commands published before the last reset (by their DDS source timestamp) were meant
for the previous episode and are dropped. In lockstep a trajectory must also say which sensor set it answers: its
``header.stamp`` is the stamp of that set (the safety filter with ``clock_mode: lockstep`` stamps it so, from the
action chunk's stamp, which is the observation's and so the set's). Only the answer to the set published last steps
the scene; any other (an answer to an older set, one computed before a reset but sent after it, a stray unstamped
one) is dropped, counted on ``~/stats`` (``dropped_commands.not_the_last_set``) and logged. So which command steps
which set is carried in the messages, and a run is the same whatever the load. The stamp is the right carrier: in
lockstep a trajectory answering the last set starts exactly at that set's simulated time, the meaning a
joint_trajectory_controller gives the stamp; realtime mode (as a real arm) ignores it and stamps stay 0 there. The
gripper command has no header: it is a set point that acts only when a trajectory steps the scene, and the safety
filter sends each step's gripper command just before its trajectory on one publisher, so a stale one is always
overwritten before the step that would use it. Serves ``reset_episode``
(rlvla_ros/srv/ResetEpisode; an empty task or split means the ``task``/``split`` parameter).

Clock modes:

- ``realtime``: a wall-clock timer runs one control period of physics per tick and publishes a sensor set; the
  simulated clock starts at the wall-clock time of start-up, in phase with the timer, so each set is published when
  its stamp says (within the time it takes to compute), as a real driver's. A late tick runs
  the periods it missed (a few at most) before its sensor set, so simulated time keeps up with the wall clock under
  load (sets are then more than one period apart).
- ``lockstep``: physics runs only when a joint trajectory arrives, for its duration rounded to control periods (at
  least one), then one sensor set is published; a reset publishes the episode's first set (a reset takes one control
  period of simulated time, so no two sets share a stamp). The simulated clock starts at 0, so a run is
  reproducible to the stamp. Publish the gripper command *before* the trajectory of the
  same step: the trajectory is the step trigger, and a gripper command handled after it applies to the next step.
  While waiting, ``joint_states`` is re-sent unchanged at ``lockstep_heartbeat_hz`` so that staleness checks above
  (the safety filter's) keep passing however long the policy thinks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.subscription import MessageInfo
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header, String
from trajectory_msgs.msg import JointTrajectory

from rlvla_ros.contract import ACTION_SPACE, SPLITS
from rlvla_ros.msg import ActionChunk, EpisodeEvent, Observation, TaskSuccess
from rlvla_ros.ros.images import rgb_to_image
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.sim.driver import SimDriver
from rlvla_ros.sim.tabletop_sim import CameraIntrinsics
from rlvla_ros.sim.tasks import TASKS
from rlvla_ros.sim.trajectory import INTERPOLATIONS
from rlvla_ros.srv import ResetEpisode

CLOCK_MODES = ("realtime", "lockstep")
CAMERAS = {"front": ("camera", "front_camera"), "wrist": ("wrist_camera", "wrist_camera")}
"""Sim camera name to (topic namespace, frame_id)."""
SENSOR_QOS = QoSProfile(depth=10)
"""Reliable, so lockstep loses no sensor set; best-effort subscribers (sensor_data QoS) still match."""
LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TICK_MARGIN_NS = 2_000_000
"""Realtime: a tick this close to its period's end (one that fires a hair early) runs that period."""
MAX_CATCH_UP_PERIODS = 5
"""Realtime: control periods one late tick may run; beyond that the simulation falls behind the wall clock."""
ResultT = TypeVar("ResultT")


@dataclass
class SimBridgeConfig:
    """Parameters of the sim_bridge node."""

    valid_tasks: ClassVar[tuple[str, ...]] = tuple(sorted(TASKS))
    valid_splits: ClassVar[tuple[str, ...]] = SPLITS

    task: str = field(default="lift", metadata={
        "description": f"task of the first episode and of resets that name none ({', '.join(sorted(TASKS))})"})
    split: str = field(default="id", metadata={
        "description": f"split of the first episode and of resets that name none ({', '.join(SPLITS)})"})
    seed: int = field(default=0, metadata={
        "description": "seed of the first episode; also seeds the draws of resets with a negative seed "
                       "(negative: random)"})
    image_size: int = field(default=64, metadata={"description": "camera image width and height (pixels)"})
    wrist_camera: bool = field(default=False, metadata={"description": "also publish the wrist camera"})
    rate_hz: float = field(default=10.0, metadata={
        "description": "control rate: sensor sets per second in realtime, the step length in lockstep"})
    clock_mode: str = field(default="realtime", metadata={
        "description": "realtime (physics at wall-clock speed) or lockstep (physics advances per trajectory)"})
    publish_clock: bool = field(default=False, metadata={
        "description": "publish the simulated time on /clock (for nodes with use_sim_time)"})
    interpolation: str = field(default="step", metadata={
        "description": "trajectory set points: step (each point held over its period, as the Gymnasium env) or "
                       "linear (as the joint_trajectory_controller)"})
    lockstep_heartbeat_hz: float = field(default=5.0, metadata={
        "description": "lockstep: re-send the unchanged joint_states at this wall-clock rate (0: never)"})
    publish_expert_action: bool = field(default=False, metadata={
        "description": "publish the scripted expert's action for each step on sim/expert_action (demonstrations), "
                       "from the episode_event START of the current episode to its END"})

    def __post_init__(self) -> None:
        if self.task not in self.valid_tasks:
            raise ValueError(f"task must be one of {list(self.valid_tasks)}, got {self.task!r}")
        if self.split not in self.valid_splits:
            raise ValueError(f"split must be one of {list(self.valid_splits)}, got {self.split!r}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if self.clock_mode not in CLOCK_MODES:
            raise ValueError(f"clock_mode must be one of {list(CLOCK_MODES)}, got {self.clock_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.lockstep_heartbeat_hz < 0:
            raise ValueError(f"lockstep_heartbeat_hz must be >= 0, got {self.lockstep_heartbeat_hz}")


class SimBridge(Node):
    """Driver topics and services over :class:`SimDriver`; see the module docstring."""

    node_name: ClassVar[str] = "sim_bridge"
    config_class: ClassVar[type[SimBridgeConfig]] = SimBridgeConfig
    driver_class: ClassVar[type[SimDriver]] = SimDriver

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.node_name, **kwargs)
        self.config = declare_config(self, self.config_class)
        c = self.config
        # An EGL context is current in one thread only, and executors run callbacks on any of theirs: everything
        # that renders (making the driver, resets, sensor sets) runs on this one thread.
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim_render")
        self.driver = self._on_render_thread(
            self.driver_class, c.task, c.split, c.seed, c.rate_hz, c.image_size, c.interpolation)
        self.lockstep = c.clock_mode == "lockstep"
        self._clock_origin_ns = 0
        """Wall-clock time of simulated time 0 (realtime; see the timer below), 0 in lockstep."""
        self._cameras = ["front", "wrist"] if c.wrist_camera else ["front"]
        self._camera_infos = {name: _camera_info(self.driver.camera_intrinsics(name), CAMERAS[name][1])
                              for name in self._cameras}
        self._joint_state_msg = JointState()
        self._reset_wall_ns = 0
        """System time of the last reset: commands published before it belong to the previous episode."""
        self._set_stamp_ns = -1
        """Stamp of the sensor set published last: in lockstep only the trajectory stamped with it steps the scene."""
        self._stats = NodeStats(self)
        # Every callback is in the node's default mutually exclusive group: the driver is never used concurrently.
        self._image_pubs = {name: self.create_publisher(Image, f"{CAMERAS[name][0]}/image_raw", SENSOR_QOS)
                            for name in self._cameras}
        self._info_pubs = {name: self.create_publisher(CameraInfo, f"{CAMERAS[name][0]}/camera_info", SENSOR_QOS)
                           for name in self._cameras}
        self._joint_state_pub = self.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self._success_pub = self.create_publisher(TaskSuccess, "sim/success", SENSOR_QOS)
        self._episode_pub = self.create_publisher(String, "sim/episode", LATCHED_QOS)
        self._expert_pub = (self.create_publisher(ActionChunk, "sim/expert_action", SENSOR_QOS)
                            if c.publish_expert_action else None)
        self._ended_episode = ""
        """The episode whose END came: the expert no longer answers its observations."""
        if self._expert_pub is not None:
            self.create_subscription(EpisodeEvent, "episode_event", self._on_episode_event, EPISODE_EVENT_QOS)
            self.create_subscription(Observation, "observation", self._on_observation, 10)
        self._rejected_pub = self.create_publisher(String, "~/rejected_commands", 10)
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", 10) if c.publish_clock else None
        # The gripper subscription is made first: when both commands of a step are waiting, the executor takes
        # them in creation order, so the gripper command is in force for the step the trajectory triggers.
        self.create_subscription(Float64MultiArray, "gripper_controller/commands", self._on_gripper, 10)
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_trajectory, 10)
        self.create_service(ResetEpisode, "reset_episode", self._on_reset)
        # Timers on the steady clock: the node's own clock may follow /clock, which this node drives.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if not self.lockstep:
            # The timer fires whole periods after now: starting the simulated clock now makes each tick compute and
            # publish the set of its own time, as a camera publishes a frame when it is taken. Started earlier,
            # every set would be published up to a period after its stamp, and that lag would count in every
            # latency downstream.
            self._clock_origin_ns = time.time_ns()
            self.create_timer(1.0 / c.rate_hz, self._on_tick, clock=steady)
        elif c.lockstep_heartbeat_hz > 0:
            self.create_timer(1.0 / c.lockstep_heartbeat_hz, self._on_heartbeat, clock=steady)
        self._publish_episode()
        self._publish_sensors()
        self.get_logger().info(
            f"{c.clock_mode} at {c.rate_hz} Hz, {c.image_size}px cameras {self._cameras}; episode "
            f"{self.driver.episode.episode_id}: '{self.driver.episode.instruction}'")

    def _on_tick(self) -> None:
        started = time.monotonic()
        # Simulated time follows the wall clock, as in a real-time simulator: a late tick runs every control period
        # that has passed (up to MAX_CATCH_UP_PERIODS), and a tick that finds the simulation a period ahead (after a
        # reset, which takes one period) runs none and publishes nothing.
        behind_ns = time.time_ns() - self._clock_origin_ns - self.driver.time_ns
        due = (behind_ns + TICK_MARGIN_NS) // self.driver.control_period_ns
        if due < 1:
            return
        if due > MAX_CATCH_UP_PERIODS:
            self.get_logger().warning(f"slower than real time: {due} control periods behind, running "
                                      f"{MAX_CATCH_UP_PERIODS}", throttle_duration_sec=5.0)
        self.driver.advance(min(due, MAX_CATCH_UP_PERIODS))
        self._publish_sensors()
        took_s = time.monotonic() - started
        if took_s > 1.0 / self.config.rate_hz:
            self.get_logger().warning(f"slower than real time: a control step took {took_s * 1e3:.0f} ms",
                                      throttle_duration_sec=5.0)

    def _on_heartbeat(self) -> None:
        self._joint_state_pub.publish(self._joint_state_msg)

    def _sent_before_reset(self, topic: str, info: MessageInfo) -> bool:
        sent_ns = info["source_timestamp"]
        if sent_ns == 0 or sent_ns >= self._reset_wall_ns:  # 0: the RMW does not report when it was sent
            return False
        self.get_logger().info(f"dropped a {topic} command sent before the reset of episode "
                               f"{self.driver.episode.episode_id}", throttle_duration_sec=1.0)
        return True

    def _answers_another_set(self, msg: JointTrajectory) -> bool:
        """Lockstep: whether ``msg`` is not the answer to the sensor set published last (then it is dropped)."""
        if not self.lockstep or stamp_ns(msg) == self._set_stamp_ns:
            return False
        self._stats.count("dropped_commands.not_the_last_set")
        self.get_logger().info(
            f"dropped a trajectory stamped {stamp_ns(msg) * 1e-9:.3f} s: it does not answer the last sensor set "
            f"({self._set_stamp_ns * 1e-9:.3f} s, episode {self.driver.episode.episode_id})",
            throttle_duration_sec=1.0)
        return True

    def _on_trajectory(self, msg: JointTrajectory, info: MessageInfo) -> None:
        if self._sent_before_reset("arm_controller/joint_trajectory", info):
            return
        try:
            trajectory = self.driver.trajectory(
                msg.joint_names,
                [p.time_from_start.sec * 1_000_000_000 + p.time_from_start.nanosec for p in msg.points],
                [p.positions for p in msg.points])
        except ValueError as error:
            self._reject("arm_controller/joint_trajectory", str(error))
            return
        if self._answers_another_set(msg):
            return
        self.driver.follow(trajectory)
        if self.lockstep:
            self.driver.advance(self.driver.periods_for(trajectory))
            self._publish_sensors()

    def _on_gripper(self, msg: Float64MultiArray, info: MessageInfo) -> None:
        if self._sent_before_reset("gripper_controller/commands", info):
            return
        if len(msg.data) != 1:
            self._reject("gripper_controller/commands",
                         f"expected exactly one value (the opening in m), got {len(msg.data)}")
            return
        try:
            self.driver.set_gripper(float(msg.data[0]))
        except ValueError as error:
            self._reject("gripper_controller/commands", str(error))

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.END:
            self._ended_episode = msg.episode_id

    def _on_observation(self, msg: Observation) -> None:
        episode = self.driver.episode.episode_id
        if msg.episode_id != episode:
            unanswered = "another_episode"
        elif episode == self._ended_episode:
            unanswered = "ended_episode"
        elif self.lockstep and stamp_ns(msg) != self._set_stamp_ns:
            unanswered = "not_the_last_set"
        else:
            unanswered = ""
        if unanswered:
            self._stats.count(f"expert_unanswered.{unanswered}")
            self.get_logger().debug(f"expert: observation step {msg.step} of '{msg.episode_id}' is not of the "
                                    f"current set of episode {episode}: not answered ({unanswered})")
            return
        action = self.driver.expert_action()
        self._expert_pub.publish(ActionChunk(
            header=Header(stamp=msg.header.stamp), episode_id=episode, step=msg.step, horizon=1,
            action_dim=len(action), actions=action.tolist(), action_space=ACTION_SPACE, value=float("nan"),
            source=ActionChunk.SOURCE_EXPERT))

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        try:
            episode = self._on_render_thread(
                self.driver.reset, request.task, request.split, request.seed, request.instruction)
        except ValueError as error:
            response.success = False
            response.message = str(error)
            self.get_logger().warning(f"reset_episode refused: {error}")
            return response
        self._reset_wall_ns = time.time_ns()
        self._publish_episode()
        self._publish_sensors()
        response.success = True
        response.episode_id = episode.episode_id
        response.instruction = episode.instruction
        response.seed = episode.seed
        response.first_set_stamp = self._stamp()
        response.message = f"{episode.task}/{episode.split} seed {episode.seed}"
        self.get_logger().info(f"episode {episode.episode_id}: '{episode.instruction}'")
        return response

    def _reject(self, topic: str, reason: str) -> None:
        self._rejected_pub.publish(String(data=f"{topic}: {reason}"))
        self.get_logger().warning(f"rejected {topic}: {reason}; nothing applied", throttle_duration_sec=1.0)

    def _on_render_thread(self, function: Callable[..., ResultT], *args: Any) -> ResultT:
        return self._render_thread.submit(function, *args).result()

    def _stamp(self) -> Time:
        ns = self._clock_origin_ns + self.driver.time_ns
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def _publish_episode(self) -> None:
        self._episode_pub.publish(String(data=json.dumps(self.driver.episode.as_dict())))

    def _publish_sensors(self) -> None:
        stamp = self._stamp()
        self._set_stamp_ns = self._clock_origin_ns + self.driver.time_ns
        # Render first, publish after: each message published wakes its subscribers (perception, the safety
        # filter, the recorder), which then compete with the rendering for the CPUs; perception needs the whole set.
        images = {name: self._on_render_thread(self.driver.render, name) for name in self._cameras}
        state = self.driver.joint_state()
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=stamp))
        self._joint_state_msg = JointState(header=Header(stamp=stamp), name=list(state.names),
                                           position=state.positions.tolist(), velocity=state.velocities.tolist())
        self._joint_state_pub.publish(self._joint_state_msg)
        for name, pixels in images.items():
            header = Header(stamp=stamp, frame_id=CAMERAS[name][1])
            info = self._camera_infos[name]
            info.header = header
            self._info_pubs[name].publish(info)
            self._image_pubs[name].publish(rgb_to_image(pixels, header))
        self._success_pub.publish(TaskSuccess(header=Header(stamp=stamp), success=self.driver.is_success()))

    def destroy_node(self) -> None:
        self._on_render_thread(self.driver.close)
        self._render_thread.shutdown()
        super().destroy_node()


def _camera_info(intrinsics: CameraIntrinsics, frame_id: str) -> CameraInfo:
    """Undistorted pinhole CameraInfo (P without a stereo baseline)."""
    k = intrinsics
    return CameraInfo(
        header=Header(frame_id=frame_id), width=k.width, height=k.height, distortion_model="plumb_bob",
        d=[0.0] * 5, k=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0])


def main(args: list[str] | None = None) -> int:
    return run_node(SimBridge, args)
