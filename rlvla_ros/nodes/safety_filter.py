"""safety_filter node: the only path from action chunks to the arm, the same on the simulated and the real arm.

Subscribes ``action_chunk`` (policy), ``teleop/action_chunk`` (a human intervention, which overrides the policy while
fresh: the policy chunks it overrides are counted on ``~/stats`` as ``policy_chunks_overridden``), ``joint_states`` and ``episode_event``. Each accepted chunk runs its first ``execute_steps`` rows through
:class:`ActionSafetyFilter` and publishes ``arm_controller/joint_trajectory`` (one point per row, one control period
apart), ``gripper_controller/commands`` (the first row's opening; the forward command controller takes one value) and
``executed_action`` (the rows as executed, source kept). A chunk with a non-finite value in any row is refused whole.
Rejections are counted on ``~/stats`` (``refused.<reason>``) and logged with their reason, never published.
A chunk acts on the joint state of its own time: one stamped after the newest joint state (its sensor set's joint state
is still on the way, as with a lock-step simulator that publishes both at once) waits for it, at most
``joint_state_timeout_s``; unstamped chunks use the newest joint state.

Measured joint states are checked by :class:`JointStateMonitor`: non-finite, outside the limits, faster than the arm
can move, or stale is a fault. On entering one the node logs it, sets ``joint_state_fault`` on ``~/stats`` and holds
the last plausible position (for staleness the watchdog's stop does); chunks are refused until the joint states are
plausible again. A jump between an
``episode_event`` END and the next START is the driver's reset (the simulator teleports the arm), not a fault; so is
one in the joint state the START names as the episode's first (``first_set_stamp``), which can come after the START.

``~/estop`` (std_srvs/SetBool) commands a stop and refuses every action until released; its state is latched on
``estop`` (std_msgs/Bool, transient local). Release executes nothing by itself: chunks refused or waiting while it was
engaged are dropped, only chunks arriving afterwards are executed. When valid actions stop coming for
``watchdog_timeout_s`` the node commands one stop. Every stop holds the last plausible measured joints with zero
velocity, inside the limit margins and within one velocity-bounded step. Every parameter can be changed at run time
(``ros2 param set``): a valid change applies from the next message on, an invalid one is refused with its reason
(switching ``dry_run`` on first commands a stop; switching it off is refused while the robot config forces it; a
``robot_config`` for other joints is refused).

``clock_mode`` says how the driver's time passes. ``realtime`` (default; every real arm): trajectories carry header
stamp 0, which a joint_trajectory_controller reads as "start now" (a past stamp would make it skip points), and the
set point the next chunk builds on is dropped once the watchdog finds commands stale. ``lockstep`` (a lock-step
simulator, set by ``sim.launch.yaml`` with ``clock_mode:=lockstep``): each trajectory is stamped with its chunk's stamp,
the stamp of the sensor set it answers, which is also the simulated time it starts at; the simulator steps only on
the answer to its newest set, so a late or stale command cannot step the scene. Time passes only on commands there,
so the set point is kept within its episode instead of by a wall-clock timeout: results do not depend on the load.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.contract import ACTION_DIM, ACTION_SPACE
from rlvla_ros.msg import ActionChunk, EpisodeEvent
from rlvla_ros.ros import moveit_kinematics  # noqa: F401 - registers the moveit kinematics backend
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS, ESTOP_QOS
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.safety import (
    ActionSafetyFilter,
    JointStateFault,
    JointStateMonitor,
    MonitorLimits,
    RobotConfig,
    SafeCommand,
    Watchdog,
    load_robot_config,
    make_kinematics,
    parse_chunk,
    robot_config_path,
)
from rlvla_ros.safety.joint_state_monitor import FAULT_STALE

WATCHDOG_CHECKS_PER_TIMEOUT = 10
"""The watchdog is polled this many times per timeout, so a stop follows at most 1.1 timeouts after the last action."""
STATS_PERIOD_S = 0.5
CLOCK_MODES = ("realtime", "lockstep")
RUNTIME_PARAMETERS = ("robot_config", "watchdog_timeout_s", "joint_state_timeout_s", "dry_run", "execute_steps",
                      "teleop_timeout_s", "state_limit_tolerance_rad", "state_jump_tolerance_rad",
                      "fault_clear_messages", "clock_mode")
"""All of them: each applies from the next message or timer tick on (see ``SafetyFilter._apply``)."""


@dataclass
class SafetyFilterConfig:
    """Parameters of the safety_filter node."""

    robot_config: str = field(default_factory=lambda: str(robot_config_path()), metadata={
        "description": "robot description YAML (limits, kinematics); default: config/robots/tabletop_sim.yaml"})
    watchdog_timeout_s: float = field(default=0.5, metadata={
        "description": "command a stop when no valid action arrived for this long"})
    joint_state_timeout_s: float = field(default=0.5, metadata={
        "description": "a joint state older than this is a fault: actions are refused"})
    dry_run: bool = field(default=False, metadata={
        "description": "compute and log commands but publish nothing to the arm (the robot config can force it)"})
    execute_steps: int = field(default=1, metadata={"description": "rows of each action chunk to execute"})
    teleop_timeout_s: float = field(default=1.0, metadata={
        "description": "a teleop chunk overrides policy chunks for this long"})
    state_limit_tolerance_rad: float = field(default=0.05, metadata={
        "description": "a measured joint further than this outside its position limits is a fault"})
    state_jump_tolerance_rad: float = field(default=0.1, metadata={
        "description": "a measured joint that moved more than max velocity x elapsed time plus this between two "
                       "joint states is a fault"})
    fault_clear_messages: int = field(default=5, metadata={
        "description": "a joint-state fault clears after this many consecutive plausible, consistent joint states"})
    clock_mode: str = field(default="realtime", metadata={
        "description": "realtime (trajectories start on arrival: real arms) or lockstep (a lock-step simulator: "
                       "trajectories stamped with the sensor set they answer)"})

    def __post_init__(self) -> None:
        if not self.robot_config:
            raise ValueError("robot_config must name a robot YAML file")
        for name in ("watchdog_timeout_s", "joint_state_timeout_s", "teleop_timeout_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if self.execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {self.execute_steps}")
        if self.clock_mode not in CLOCK_MODES:
            raise ValueError(f"clock_mode must be one of {list(CLOCK_MODES)}, got {self.clock_mode!r}")
        self.monitor_limits()  # raises ValueError for bad tolerances

    def monitor_limits(self) -> MonitorLimits:
        """The joint-state plausibility checks these parameters ask for."""
        return MonitorLimits(self.joint_state_timeout_s, self.state_limit_tolerance_rad,
                             self.state_jump_tolerance_rad, self.fault_clear_messages)


class SafetyFilter(Node):
    """Gate between action chunks and the arm controllers; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("safety_filter", **kwargs)
        # Every callback (parameter changes included) is in the node's default mutually exclusive group, so they
        # never run concurrently: the kinematics and the state below need no lock.
        self._stats = NodeStats(self, STATS_PERIOD_S)
        # On this module's clock, like every other time this node reads (tests skip it instead of waiting).
        self._commands = Watchdog(1.0, clock=lambda: time.monotonic())
        self._teleop = Watchdog(1.0, clock=lambda: time.monotonic())
        self._watchdog_timer = None
        self.robot: RobotConfig | None = None
        self.monitor: JointStateMonitor | None = None
        self._fault_kind = FAULT_STALE
        """Kind of the joint-state fault last reported; no joint state has come yet."""
        self._measured_stamp_ns = 0
        self._waiting: tuple[ActionChunk, float] | None = None
        """A chunk waiting for the joint state of its stamp, and the monotonic time at which it stops waiting."""
        self._setpoint_q: np.ndarray | None = None
        self._setpoint_episode = ""
        self._estopped = False

        self._trajectory_pub = self.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        self._gripper_pub = self.create_publisher(Float64MultiArray, "gripper_controller/commands", 10)
        self._executed_pub = self.create_publisher(ActionChunk, "executed_action", 10)
        self._estop_pub = self.create_publisher(Bool, "estop", ESTOP_QOS)
        self.config = declare_config(self, SafetyFilterConfig, apply=self._apply, runtime=RUNTIME_PARAMETERS)
        self._apply(self.config)
        # episode_event first: when an END and the joint states of the reset that follows it are both waiting, the
        # executor takes them in creation order, so the reset's teleport is expected, not a jump fault (the episode
        # manager publishes the END before it asks for the reset).
        self.create_subscription(EpisodeEvent, "episode_event", self._on_episode_event, EPISODE_EVENT_QOS)
        self.create_subscription(ActionChunk, "action_chunk", self._on_policy_chunk, 10)
        self.create_subscription(ActionChunk, "teleop/action_chunk", self._on_teleop_chunk, 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, qos_profile_sensor_data)
        self.create_service(SetBool, "~/estop", self._on_estop)
        self._publish_estop()
        self._stats.set("joint_state_fault", self._fault_kind)
        assert self.robot is not None
        self.get_logger().info(
            f"robot '{self.robot.name}' ({self.config.robot_config}), kinematics {self.robot.kinematics.backend}, "
            f"{self.robot.control_rate_hz} Hz, executing {self.config.execute_steps} row(s) per chunk"
            + (f"; DRY RUN (set by {self._dry_run_source()}): nothing is sent to the arm" if self.dry_run else ""))

    def _apply(self, config: SafetyFilterConfig) -> None:
        """Take ``config`` (at start-up, or a run-time parameter change) at once; ValueError refuses it whole."""
        robot = self.robot
        if robot is None or config.robot_config != self.config.robot_config:
            robot = load_robot_config(config.robot_config)
            if self.robot is not None and robot.arm_joint_names != self.robot.arm_joint_names:
                raise ValueError(f"robot_config {config.robot_config} drives the joints {robot.arm_joint_names}, "
                                 f"not {self.robot.arm_joint_names}: restart the node for another arm")
        chunk_duration_s = config.execute_steps * robot.control_period_s
        if config.watchdog_timeout_s < chunk_duration_s:
            raise ValueError(f"watchdog_timeout_s ({config.watchdog_timeout_s}) must cover the "
                             f"{chunk_duration_s} s that execute_steps={config.execute_steps} rows take")
        if robot.dry_run and not config.dry_run and self.robot is not None and self.config.dry_run:
            raise ValueError(f"robot config '{robot.name}' forces dry run: dry_run false cannot take effect")
        action_filter = (ActionSafetyFilter(robot, make_kinematics(robot)) if robot is not self.robot
                         else self.filter)
        going_dry = robot.dry_run or config.dry_run
        if self.robot is not None and going_dry and not self.dry_run:
            # Stop what is in flight while commands can still be sent.
            self.get_logger().warning(f"dry run switched on: {self._command_stop()}")
        self.robot, self.filter, self.config, self.dry_run = robot, action_filter, config, going_dry
        if self.monitor is None:
            self.monitor = JointStateMonitor(robot, config.monitor_limits())
        else:
            self.monitor.config, self.monitor.limits = robot, config.monitor_limits()
        self._commands.timeout_s = config.watchdog_timeout_s
        self._teleop.timeout_s = config.teleop_timeout_s
        period_s = config.watchdog_timeout_s / WATCHDOG_CHECKS_PER_TIMEOUT
        if self._watchdog_timer is None:
            self._watchdog_timer = self.create_timer(period_s, self._on_watchdog_timer)
        else:  # changed in place: destroying a timer the executor may be waiting on races with it
            self._watchdog_timer.timer_period_ns = round(period_s * 1e9)
        self._stats.set("dry_run", self.dry_run)

    def _dry_run_source(self) -> str:
        return "parameter" if self.config.dry_run else f"robot config '{self.robot.name}'"

    def _on_joint_states(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        # Drivers may publish the gripper on its own joint_states: use only messages that carry the whole arm.
        if len(msg.position) != len(msg.name) or not all(name in index for name in self.robot.arm_joint_names):
            return
        q = np.array([msg.position[index[name]] for name in self.robot.arm_joint_names], dtype=np.float64)
        self._measured_stamp_ns = stamp_ns(msg)
        self.monitor.observe(q, self._measured_stamp_ns * 1e-9, time.monotonic())
        self._check_fault()
        if self._waiting is not None and stamp_ns(self._waiting[0]) <= self._measured_stamp_ns:
            chunk, _ = self._waiting
            self._waiting = None
            self._execute(chunk)

    def _check_fault(self) -> JointStateFault | None:
        """The current joint-state fault; on entering one, report it and, unless it is staleness, hold the last
        plausible position. A stale joint state says nothing wrong about the arm, which ends its last (bounded) command
        and stays there; the watchdog's stop follows. Not holding at once keeps a slow lock-step simulator from being
        stepped by a hold."""
        fault = self.monitor.fault(time.monotonic())
        kind = fault.kind if fault else ""
        if kind == self._fault_kind:
            return fault
        previous, self._fault_kind = self._fault_kind, kind
        self._stats.set("joint_state_fault", kind)
        if fault is None:
            self.get_logger().info(f"joint states plausible again (fault was: {previous}); actions accepted")
        else:
            self._stats.count(f"joint_state_faults.{kind}")
            outcome = "the watchdog stops the arm" if kind == FAULT_STALE else self._command_stop()
            self.get_logger().warning(f"joint state fault ({kind}): {fault.detail}; actions refused, {outcome}")
        return fault

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        # The driver resets the arm between an episode's END and the next START (a simulator teleports it); the
        # START names the reset's joint state, which it can overtake on the way.
        if msg.event == EpisodeEvent.END:
            self.monitor.expect_reset()
        elif msg.event == EpisodeEvent.START:
            self.monitor.reset_done(Time.from_msg(msg.first_set_stamp).nanoseconds * 1e-9)

    def _on_policy_chunk(self, msg: ActionChunk) -> None:
        if not self._teleop.stale():
            self._stats.count("policy_chunks_overridden")
            self.get_logger().debug("policy chunk ignored: teleop is in control", throttle_duration_sec=1.0)
            return
        self._execute_at_its_joint_state(msg)

    def _on_teleop_chunk(self, msg: ActionChunk) -> None:
        # Fed before any check: while a human is intervening the policy stays overridden even if this chunk is refused.
        self._teleop.feed()
        self._execute_at_its_joint_state(msg)

    def _execute_at_its_joint_state(self, msg: ActionChunk) -> None:
        """Execute now, or once the joint state of the chunk's stamp arrives (a newer chunk replaces a waiting one)."""
        if self._estopped:
            self._reject(msg, "estop", "e-stop engaged")
            return
        if stamp_ns(msg) > self._measured_stamp_ns:
            self._waiting = (msg, time.monotonic() + self.config.joint_state_timeout_s)
            return
        self._waiting = None
        self._execute(msg)

    def _execute(self, msg: ActionChunk) -> None:
        if self._estopped:
            self._reject(msg, "estop", "e-stop engaged")
            return
        try:
            rows = parse_chunk(msg.actions, msg.horizon, msg.action_dim, msg.action_space)
        except ValueError as error:
            self._reject(msg, "bad_chunk", str(error))
            return
        fault = self._check_fault()
        if fault is not None:
            self._reject(msg, "joint_state_fault", f"joint state fault ({fault.kind}): {fault.detail}")
            return
        q = self.monitor.plausible_q
        reference = self.filter.reference_joints(q, self._tracked_setpoint(msg))
        commands: list[SafeCommand] = []
        clamped: list[str] = []
        for row_index, row in enumerate(rows[: self.config.execute_steps]):
            result = self.filter.filter(row, q, reference)
            if result.command is None:
                self._reject(msg, "unsafe_row", f"row {row_index}: {result.rejection}")
                return
            commands.append(result.command)
            clamped.extend(result.clamped)
            q = reference = result.command.joint_positions_rad
        self._commands.feed()
        self._setpoint_q, self._setpoint_episode = q, msg.episode_id
        if clamped:
            self.get_logger().info(f"{msg.source} chunk step {msg.step} clamped: {', '.join(dict.fromkeys(clamped))}",
                                   throttle_duration_sec=1.0)
        if self.dry_run:
            self._stats.count("dry_run_chunks")
            self.get_logger().info(
                f"dry run: {msg.source} chunk step {msg.step} -> joints "
                f"{[c.joint_positions_rad.round(4).tolist() for c in commands]}, "
                f"gripper {commands[0].gripper_opening_m} m", throttle_duration_sec=1.0)
            return
        # Gripper first: a lockstep simulator steps on the trajectory and applies a later gripper command a step late.
        self._gripper_pub.publish(Float64MultiArray(data=[commands[0].gripper_opening_m]))
        self._trajectory_pub.publish(self._trajectory(
            [c.joint_positions_rad for c in commands],
            stamp=msg.header.stamp if self.config.clock_mode == "lockstep" else None))
        self._executed_pub.publish(self._executed_chunk(msg, commands))
        self._stats.count("executed_chunks")

    def _tracked_setpoint(self, msg: ActionChunk) -> np.ndarray | None:
        """The set point ``msg`` may build on: the last one while the arm still tracks it (see the module)."""
        if self.config.clock_mode == "lockstep":
            return self._setpoint_q if self._setpoint_episode == msg.episode_id else None
        return None if self._commands.stale() else self._setpoint_q

    def _trajectory(self, positions: list[np.ndarray], hold: bool = False, stamp=None) -> JointTrajectory:
        """Points one control period apart; without ``stamp`` the zero header stamp tells the controller to start
        now."""
        period_s = self.robot.control_period_s
        points = [JointTrajectoryPoint(positions=q.tolist(), velocities=[0.0] * len(q) if hold else [],
                                       time_from_start=Duration(seconds=(k + 1) * period_s).to_msg())
                  for k, q in enumerate(positions)]
        trajectory = JointTrajectory(joint_names=list(self.robot.arm_joint_names), points=points)
        if stamp is not None:
            trajectory.header.stamp = stamp
        return trajectory

    def _executed_chunk(self, msg: ActionChunk, commands: list[SafeCommand]) -> ActionChunk:
        actions = np.stack([c.action for c in commands])
        # The gripper controller got only the first row's command: later rows were executed with it.
        actions[1:, 4] = actions[0, 4]
        return ActionChunk(header=msg.header, episode_id=msg.episode_id, step=msg.step, horizon=len(commands),
                           action_dim=ACTION_DIM, actions=actions.ravel().tolist(), action_space=ACTION_SPACE,
                           log_probs=msg.log_probs[: len(commands)], value=msg.value,
                           policy_version=msg.policy_version, source=msg.source)

    def _command_stop(self) -> str:
        """Hold the last plausible measured joints (inside the margins, within one velocity-bounded step) with zero
        velocity; says what was done."""
        self._commands.clear()
        self._setpoint_q = None
        q = self.monitor.plausible_q
        if q is None:
            return "no valid joint state to hold, nothing sent"
        hold = self.filter.hold(q)
        if self.dry_run:
            return f"dry run, would hold {hold.round(4).tolist()}"
        self._trajectory_pub.publish(self._trajectory([hold], hold=True))
        return f"holding {hold.round(4).tolist()}"

    def _on_watchdog_timer(self) -> None:
        self._check_fault()  # staleness shows only with time
        if self._waiting is not None and time.monotonic() >= self._waiting[1]:
            chunk, _ = self._waiting
            self._waiting = None
            self.get_logger().warning(
                f"no joint_states stamped at or after {stamp_ns(chunk) * 1e-9:.3f} s (the {chunk.source} chunk's stamp) "
                f"within {self.config.joint_state_timeout_s} s: using the newest, stamped "
                f"{self._measured_stamp_ns * 1e-9:.3f} s (do the driver and the policy stamp on one clock?)",
                throttle_duration_sec=5.0)
            self._execute(chunk)
        if self._commands.poll_stop():
            outcome = self._command_stop()
            self.get_logger().warning(f"no valid action for {self._commands.timeout_s} s: stop ({outcome})")

    def _on_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        # A chunk waiting for its joint state was computed before the change: never execute it afterwards.
        self._waiting = None
        if request.data:
            self._estopped = True
            response.message = f"e-stop engaged: {self._command_stop()}; actions refused until released"
            self.get_logger().warning(response.message)
        else:
            response.message = ("e-stop released: chunks that arrive from now on are accepted" if self._estopped
                                else "e-stop was not engaged")
            self._estopped = False
            self.get_logger().info(response.message)
        self._publish_estop()
        response.success = True
        return response

    def _publish_estop(self) -> None:
        self._estop_pub.publish(Bool(data=self._estopped))
        self._stats.set("estop", self._estopped)

    def _reject(self, msg: ActionChunk, reason: str, detail: str) -> None:
        self._stats.refuse(reason, f"{msg.source or 'unlabelled'} chunk (episode '{msg.episode_id}', step "
                                   f"{msg.step}): {detail}")


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyFilter, args)
