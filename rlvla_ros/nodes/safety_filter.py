"""safety_filter node: the only path from action chunks to the arm, the same on the simulated and the real arm.

Subscribes ``action_chunk`` (policy), ``teleop/action_chunk`` (a human intervention, which overrides the policy while
fresh) and ``joint_states``. Each accepted chunk runs its first ``execute_steps`` rows through
:class:`ActionSafetyFilter` and publishes ``arm_controller/joint_trajectory`` (one point per row, one control period
apart), ``gripper_controller/commands`` (the first row's opening; the forward command controller takes one value) and
``executed_action`` (the rows as executed, source kept). Rejections are logged with their reason, never published.
A chunk acts on the joint state of its own time: one stamped after the newest joint state (its sensor set's joint state
is still on the way, as with a lock-step simulator that publishes both at once) waits for it, at most
``joint_state_timeout_s``; unstamped chunks use the newest joint state.
``~/estop`` (std_srvs/SetBool) commands a stop and refuses every action until released; when valid actions stop
coming for ``watchdog_timeout_s`` the node commands one stop (hold the current joints, zero velocity).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.msg import ActionChunk
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.safety import (
    ACTION_DIM,
    ACTION_SPACE,
    ActionSafetyFilter,
    SafeCommand,
    Watchdog,
    load_robot_config,
    make_kinematics,
    parse_chunk,
    robot_config_path,
)

WATCHDOG_CHECKS_PER_TIMEOUT = 10
"""The watchdog is polled this many times per timeout, so a stop follows at most 1.1 timeouts after the last action."""


@dataclass
class SafetyFilterConfig:
    """Parameters of the safety_filter node."""

    robot_config: str = field(default_factory=lambda: str(robot_config_path()), metadata={
        "description": "robot description YAML (limits, kinematics); default: config/robots/tabletop_sim.yaml"})
    watchdog_timeout_s: float = field(default=0.5, metadata={
        "description": "command a stop when no valid action arrived for this long"})
    joint_state_timeout_s: float = field(default=0.5, metadata={
        "description": "refuse actions when the last joint_states message is older than this"})
    dry_run: bool = field(default=False, metadata={
        "description": "compute and log commands but publish nothing to the arm (the robot config can force it)"})
    execute_steps: int = field(default=1, metadata={"description": "rows of each action chunk to execute"})
    teleop_timeout_s: float = field(default=1.0, metadata={
        "description": "a teleop chunk overrides policy chunks for this long"})

    def __post_init__(self) -> None:
        if not self.robot_config:
            raise ValueError("robot_config must name a robot YAML file")
        for name in ("watchdog_timeout_s", "joint_state_timeout_s", "teleop_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {self.execute_steps}")


class SafetyFilter(Node):
    """Gate between action chunks and the arm controllers; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("safety_filter", **kwargs)
        self.config = declare_config(self, SafetyFilterConfig)
        self.robot = load_robot_config(self.config.robot_config)
        chunk_duration_s = self.config.execute_steps * self.robot.control_period_s
        if self.config.watchdog_timeout_s < chunk_duration_s:
            raise ValueError(f"watchdog_timeout_s ({self.config.watchdog_timeout_s}) must cover the "
                             f"{chunk_duration_s} s that execute_steps={self.config.execute_steps} rows take")
        self.dry_run = self.config.dry_run or self.robot.dry_run
        # Every callback is in the node's default mutually exclusive group, so they never run concurrently: the
        # kinematics and the state below need no lock.
        self.filter = ActionSafetyFilter(self.robot, make_kinematics(self.robot))
        self._commands = Watchdog(self.config.watchdog_timeout_s)
        self._teleop = Watchdog(self.config.teleop_timeout_s)
        self._joint_states = Watchdog(self.config.joint_state_timeout_s)
        self._measured_q: np.ndarray | None = None
        self._measured_stamp_ns = 0
        self._waiting: tuple[ActionChunk, float] | None = None
        """A chunk waiting for the joint state of its stamp, and the monotonic time at which it stops waiting."""
        self._setpoint_q: np.ndarray | None = None
        self._estopped = False

        self._trajectory_pub = self.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        self._gripper_pub = self.create_publisher(Float64MultiArray, "gripper_controller/commands", 10)
        self._executed_pub = self.create_publisher(ActionChunk, "executed_action", 10)
        self.create_subscription(ActionChunk, "action_chunk", self._on_policy_chunk, 10)
        self.create_subscription(ActionChunk, "teleop/action_chunk", self._on_teleop_chunk, 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, qos_profile_sensor_data)
        self.create_service(SetBool, "~/estop", self._on_estop)
        self.create_timer(self.config.watchdog_timeout_s / WATCHDOG_CHECKS_PER_TIMEOUT, self._on_watchdog_timer)
        source = "parameter" if self.config.dry_run else f"robot config '{self.robot.name}'"
        self.get_logger().info(
            f"robot '{self.robot.name}' ({self.config.robot_config}), kinematics {self.robot.kinematics.backend}, "
            f"{self.robot.control_rate_hz} Hz, executing {self.config.execute_steps} row(s) per chunk"
            + (f"; DRY RUN (set by {source}): nothing is sent to the arm" if self.dry_run else ""))

    def _on_joint_states(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        # Drivers may publish the gripper on its own joint_states: use only messages that carry the whole arm.
        if len(msg.position) != len(msg.name) or not all(name in index for name in self.robot.arm_joint_names):
            return
        self._measured_q = np.array([msg.position[index[name]] for name in self.robot.arm_joint_names])
        self._measured_stamp_ns = stamp_ns(msg)
        self._joint_states.feed()
        if self._waiting is not None and stamp_ns(self._waiting[0]) <= self._measured_stamp_ns:
            chunk, _ = self._waiting
            self._waiting = None
            self._execute(chunk)

    def _on_policy_chunk(self, msg: ActionChunk) -> None:
        if not self._teleop.stale():
            self.get_logger().debug("policy chunk ignored: teleop is in control", throttle_duration_sec=1.0)
            return
        self._execute_at_its_joint_state(msg)

    def _on_teleop_chunk(self, msg: ActionChunk) -> None:
        # Fed before any check: while a human is intervening the policy stays overridden even if this chunk is refused.
        self._teleop.feed()
        self._execute_at_its_joint_state(msg)

    def _execute_at_its_joint_state(self, msg: ActionChunk) -> None:
        """Execute now, or once the joint state of the chunk's stamp arrives (a newer chunk replaces a waiting one)."""
        if stamp_ns(msg) > self._measured_stamp_ns:
            self._waiting = (msg, time.monotonic() + self.config.joint_state_timeout_s)
            return
        self._waiting = None
        self._execute(msg)

    def _execute(self, msg: ActionChunk) -> None:
        if self._estopped:
            self._reject(msg, "e-stop engaged")
            return
        try:
            rows = parse_chunk(msg.actions, msg.horizon, msg.action_dim, msg.action_space)
        except ValueError as error:
            self._reject(msg, str(error))
            return
        if self._measured_q is None or self._joint_states.stale():
            self._reject(msg, f"no joint_states with every arm joint in the last {self._joint_states.timeout_s} s")
            return
        q = self._measured_q
        reference = self.filter.reference_joints(q, None if self._commands.stale() else self._setpoint_q)
        commands: list[SafeCommand] = []
        clamped: list[str] = []
        for row_index, row in enumerate(rows[: self.config.execute_steps]):
            result = self.filter.filter(row, q, reference)
            if result.command is None:
                self._reject(msg, f"row {row_index}: {result.rejection}")
                return
            commands.append(result.command)
            clamped.extend(result.clamped)
            q = reference = result.command.joint_positions_rad
        self._commands.feed()
        self._setpoint_q = q
        if clamped:
            self.get_logger().info(f"{msg.source} chunk step {msg.step} clamped: {', '.join(dict.fromkeys(clamped))}",
                                   throttle_duration_sec=1.0)
        if self.dry_run:
            self.get_logger().info(
                f"dry run: {msg.source} chunk step {msg.step} -> joints "
                f"{[c.joint_positions_rad.round(4).tolist() for c in commands]}, "
                f"gripper {commands[0].gripper_opening_m} m", throttle_duration_sec=1.0)
            return
        # Gripper first: a lockstep simulator steps on the trajectory and applies a later gripper command a step late.
        self._gripper_pub.publish(Float64MultiArray(data=[commands[0].gripper_opening_m]))
        self._trajectory_pub.publish(self._trajectory([c.joint_positions_rad for c in commands]))
        self._executed_pub.publish(self._executed_chunk(msg, commands))

    def _trajectory(self, positions: list[np.ndarray], hold: bool = False) -> JointTrajectory:
        """Points one control period apart; a zero header stamp tells the controller to start now."""
        period_s = self.robot.control_period_s
        points = [JointTrajectoryPoint(positions=q.tolist(), velocities=[0.0] * len(q) if hold else [],
                                       time_from_start=Duration(seconds=(k + 1) * period_s).to_msg())
                  for k, q in enumerate(positions)]
        return JointTrajectory(joint_names=list(self.robot.arm_joint_names), points=points)

    def _executed_chunk(self, msg: ActionChunk, commands: list[SafeCommand]) -> ActionChunk:
        actions = np.stack([c.action for c in commands])
        # The gripper controller got only the first row's command: later rows were executed with it.
        actions[1:, 4] = actions[0, 4]
        return ActionChunk(header=msg.header, episode_id=msg.episode_id, step=msg.step, horizon=len(commands),
                           action_dim=ACTION_DIM, actions=actions.ravel().tolist(), action_space=ACTION_SPACE,
                           log_probs=msg.log_probs[: len(commands)], value=msg.value,
                           policy_version=msg.policy_version, source=msg.source)

    def _command_stop(self) -> str:
        """Hold the measured joints (clipped to the limits) with zero velocity; says what was done."""
        self._commands.clear()
        self._setpoint_q = None
        q = self._measured_q
        if q is None or not np.isfinite(q).all():
            return "no valid joint state to hold, nothing sent"
        hold = np.clip(q, self.robot.joint_limits_rad[:, 0], self.robot.joint_limits_rad[:, 1])
        if self.dry_run:
            return f"dry run, would hold {hold.round(4).tolist()}"
        self._trajectory_pub.publish(self._trajectory([hold], hold=True))
        return f"holding {hold.round(4).tolist()}"

    def _on_watchdog_timer(self) -> None:
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
        if request.data:
            self._estopped = True
            response.message = f"e-stop engaged: {self._command_stop()}; actions refused until released"
            self.get_logger().warning(response.message)
        else:
            response.message = "e-stop released: actions accepted" if self._estopped else "e-stop was not engaged"
            self._estopped = False
            self.get_logger().info(response.message)
        response.success = True
        return response

    def _reject(self, msg: ActionChunk, reason: str) -> None:
        self.get_logger().warning(
            f"rejected {msg.source or 'unlabelled'} chunk (episode '{msg.episode_id}', step {msg.step}): {reason}",
            throttle_duration_sec=1.0)


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyFilter, args)
