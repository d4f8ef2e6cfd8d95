"""An independent check of what reaches the arm: every command on the arm and gripper topics against the robot config.

:class:`CommandMonitor` subscribes to ``arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory),
``gripper_controller/commands`` (std_msgs/Float64MultiArray) and ``joint_states`` (sensor_msgs/JointState), and
records a violation for every command that names other joints, holds a non-finite value, leaves the joint limits
(less their margin) or the gripper's range, or moves a joint faster than its velocity cap: from the measured
position to the first point (with ``max_tracking_error_rad`` plus one control period of slack: the filter builds on
its last set point, and its measurement is not quite ours) and between consecutive points. It shares no code with the safety filter on purpose.

Messages whose ``header.frame_id`` is :data:`INJECTED_FRAME_ID` are a test's own injections (a fuzzer publishing
malformed trajectories or joint states onto the same topics): they are neither commands to judge nor measurements.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from rlvla_ros.safety.robot_config import RobotConfig

INJECTED_FRAME_ID = "fuzz"
"""``header.frame_id`` of messages a test injects; the monitor ignores them."""
TOLERANCE = 1e-6
"""Rounding slack of every comparison (the commands travel as float64)."""


def trajectory_violations(config: RobotConfig, joint_names: Sequence[str], times_s: Sequence[float],
                          points: Sequence[Sequence[float]], measured: np.ndarray | None) -> list[str]:
    """What is unsafe about a trajectory command (empty: nothing); ``measured`` is the arm's last measured state."""
    if tuple(joint_names) != tuple(config.arm_joint_names):
        return [f"joints {list(joint_names)}, the arm's are {list(config.arm_joint_names)}"]
    lower = config.joint_limits_rad[:, 0] + config.joint_limit_margin_rad - TOLERANCE
    upper = config.joint_limits_rad[:, 1] - config.joint_limit_margin_rad + TOLERANCE
    problems = []
    previous, previous_s = measured, 0.0
    for index, (time_s, point) in enumerate(zip(times_s, points)):
        q = np.asarray(point, dtype=float)
        if q.shape != lower.shape or not np.isfinite(q).all():
            problems.append(f"point {index} is not {lower.size} finite positions: {list(point)}")
            return problems
        if (q < lower).any() or (q > upper).any():
            problems.append(f"point {index} {q.round(4).tolist()} leaves the limits less the margin")
        if previous is not None:
            # The first point builds on the filter's last set point (within the tracking error of the arm), and the
            # arm moves for up to a control period between the filter's measurement and ours.
            slack = (config.max_tracking_error_rad + config.max_joint_velocity_rad_s * config.control_period_s
                     if index == 0 else 0.0)
            cap = config.max_joint_velocity_rad_s * max(time_s - previous_s, 0.0) + slack + TOLERANCE
            step = np.abs(q - previous)
            if (step > cap).any():
                problems.append(f"point {index} moves {step.round(4).tolist()} rad in {time_s - previous_s:.3f} s, "
                                f"the cap is {cap.round(4).tolist()}")
        previous, previous_s = q, time_s
    return problems


def gripper_violations(config: RobotConfig, data: Sequence[float]) -> list[str]:
    """What is unsafe about a gripper command (empty: nothing)."""
    if len(data) != 1 or not math.isfinite(data[0]) or not -TOLERANCE <= data[0] <= \
            config.gripper_max_opening_m + TOLERANCE:
        return [f"gripper command {list(data)} is not one opening in [0, {config.gripper_max_opening_m}] m"]
    return []


class CommandMonitor:
    """Watches one graph's arm and gripper commands from ``node`` (topics relative to ``namespace``)."""

    def __init__(self, node: Node, config: RobotConfig, namespace: str = "") -> None:
        self.config = config
        self.commands = 0
        """Commands judged (trajectories and gripper commands)."""
        self.violations: list[str] = []
        self._measured: np.ndarray | None = None
        self._lock = threading.Lock()
        prefix = f"{namespace.rstrip('/')}/" if namespace else ""
        node.create_subscription(JointTrajectory, f"{prefix}arm_controller/joint_trajectory", self._on_trajectory, 100)
        node.create_subscription(Float64MultiArray, f"{prefix}gripper_controller/commands", self._on_gripper, 100)
        node.create_subscription(JointState, f"{prefix}joint_states", self._on_joint_states, qos_profile_sensor_data)

    def _on_joint_states(self, msg: JointState) -> None:
        if msg.header.frame_id == INJECTED_FRAME_ID:
            return
        positions = dict(zip(msg.name, msg.position))
        if all(name in positions for name in self.config.arm_joint_names):
            with self._lock:
                self._measured = np.array([positions[name] for name in self.config.arm_joint_names], dtype=float)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if msg.header.frame_id == INJECTED_FRAME_ID:
            return
        times_s = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        with self._lock:
            measured = self._measured
        self._record("arm", trajectory_violations(self.config, msg.joint_names, times_s,
                                                  [p.positions for p in msg.points], measured))

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        self._record("gripper", gripper_violations(self.config, list(msg.data)))

    def _record(self, topic: str, problems: list[str]) -> None:
        with self._lock:
            self.commands += 1
            self.violations.extend(f"{topic}: {problem}" for problem in problems)
