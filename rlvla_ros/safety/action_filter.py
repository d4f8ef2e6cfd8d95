"""The action safety filter: an ``ee_delta`` action and the arm's joint positions in, a safe joint command out.

The filter mirrors the simulator's action mapping (:meth:`ArmKinematics.ee_delta_target`), so a policy trained in
simulation means the same thing on the ROS graph, and adds the checks a real arm needs. In order:

1. refuse a wrong shape or a non-finite number (NaN, inf);
2. clamp every dimension to [-1, 1];
3. scale to metres / radians and add to the end-effector pose of the reference joints (the last set point, see
   :meth:`ActionSafetyFilter.reference_joints`), clipping the target position to the workspace box;
4. inverse kinematics seeded with the reference joints;
5. clamp to the joint limits minus a margin, then shrink the whole joint step (keeping its direction) so that no
   joint moves faster than its maximum velocity over one control period;
6. defence in depth: refuse the command unless the joints are finite, within the limits, within the velocity bound,
   and the end effector does not end up further outside the workspace than it already is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlvla_ros.contract import ACTION_DIM, ACTION_SPACE
from rlvla_ros.safety.kinematics import Kinematics
from rlvla_ros.safety.robot_config import RobotConfig
from rlvla_ros.sim.kinematics import EePose


CLAMPED_ACTION_RANGE = "action_range"
"""An action dimension was outside [-1, 1]."""
CLAMPED_WORKSPACE = "workspace"
"""The end-effector target was outside the workspace box."""
CLAMPED_JOINT_LIMITS = "joint_limits"
"""The IK solution was beyond the joint limits minus the margin."""
CLAMPED_JOINT_VELOCITY = "joint_velocity"
"""The joint step was shortened to respect the maximum joint velocity."""


@dataclass(frozen=True)
class SafeCommand:
    """A command that passed every check."""

    joint_positions_rad: np.ndarray
    """(N,) arm joint targets, reached one control period from now."""
    gripper_opening_m: float
    """Commanded gap between the fingers: 0 closes, the maximum opening opens."""
    action: np.ndarray
    """(5,) float32 action actually executed: the input clamped to [-1, 1]."""


@dataclass(frozen=True)
class FilterResult:
    """Outcome of filtering one action: a command, or the reason it was refused."""

    command: SafeCommand | None
    """The safe command; None when rejected."""
    clamped: tuple[str, ...] = ()
    """Which limits changed the command (``CLAMPED_*`` names), in the order they applied."""
    rejection: str = ""
    """Why the action was refused; empty when accepted."""

    @property
    def accepted(self) -> bool:
        """True when there is a command to execute."""
        return self.command is not None


def parse_chunk(actions: Sequence[float], horizon: int, action_dim: int, action_space: str) -> np.ndarray:
    """The ``(horizon, 5)`` float32 rows of a flat ``ActionChunk``; ValueError saying why a chunk is unusable
    (including a non-finite value in any row, executed or not)."""
    if action_space != ACTION_SPACE:
        raise ValueError(f"unsupported action_space {action_space!r} (only {ACTION_SPACE!r})")
    if action_dim != ACTION_DIM:
        raise ValueError(f"action_dim is {action_dim}, {ACTION_SPACE} needs {ACTION_DIM}")
    if horizon < 1 or len(actions) != horizon * action_dim:
        raise ValueError(f"{len(actions)} actions for horizon {horizon} x action_dim {action_dim}")
    rows = np.asarray(actions, dtype=np.float32).reshape(horizon, action_dim)
    if not np.isfinite(rows).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(rows))[:, 0]})
        raise ValueError(f"non-finite values in row(s) {bad}: the chunk is refused whole")
    return rows


class ActionSafetyFilter:
    """Turns ``ee_delta`` actions into joint commands within the robot config's limits."""

    def __init__(self, config: RobotConfig, kinematics: Kinematics) -> None:
        self.config = config
        self.kinematics = kinematics
        self._lower = config.joint_limits_rad[:, 0]
        self._upper = config.joint_limits_rad[:, 1]
        self._max_step_rad = config.max_joint_velocity_rad_s * config.control_period_s

    def reference_joints(self, measured_q: np.ndarray, setpoint_q: np.ndarray | None) -> np.ndarray:
        """Joints the next action builds on: the last set point while the arm tracks it, else the measured joints.

        Building on the set point (as the simulator does) keeps servo lag from shrinking every step; falling back to
        the measured joints when the arm lags too far (blocked, or the set point is old) keeps targets near reality.
        """
        if setpoint_q is None or np.max(np.abs(setpoint_q - measured_q)) > self.config.max_tracking_error_rad:
            return measured_q
        return setpoint_q

    def filter(self, action: np.ndarray, q: np.ndarray, reference_q: np.ndarray | None = None) -> FilterResult:
        """Check and convert one action given the current joint positions ``q`` (rad).

        ``reference_q`` are the joints the end-effector delta applies to (default ``q``); the velocity bound is
        always measured from ``q``. Raises ValueError only for joint vectors of the wrong length (a caller bug).
        """
        n = len(self.config.arm_joint_names)
        q = np.asarray(q, dtype=np.float64)
        reference_q = q if reference_q is None else np.asarray(reference_q, dtype=np.float64)
        if q.shape != (n,) or reference_q.shape != (n,):
            raise ValueError(f"joint vectors must have shape ({n},), got {q.shape} and {reference_q.shape}")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            return FilterResult(None, rejection=f"action has shape {action.shape}, expected ({ACTION_DIM},)")
        if not np.isfinite(action).all():
            return FilterResult(None, rejection=f"action is not finite: {action.tolist()}")
        if not (np.isfinite(q).all() and np.isfinite(reference_q).all()):
            return FilterResult(None, rejection=f"joint positions are not finite: {q.tolist()}")

        clamped = []
        clipped = np.clip(action, -1.0, 1.0)
        if not np.array_equal(clipped, action):
            clamped.append(CLAMPED_ACTION_RANGE)
        cfg = self.config
        pose = self.kinematics.forward(reference_q)
        position = pose.position_m + clipped[:3] * cfg.max_translation_m
        inside = np.clip(position, cfg.workspace_min_m, cfg.workspace_max_m)
        if not np.array_equal(inside, position):
            clamped.append(CLAMPED_WORKSPACE)
        try:
            q_ik = self.kinematics.inverse(EePose(inside, pose.yaw_rad + clipped[3] * cfg.max_yaw_rad), reference_q)
        except ValueError as error:
            return FilterResult(None, tuple(clamped), f"inverse kinematics failed: {error}")

        q_target = self._within_limits(q_ik, q, clamped)
        problem = self._verify(q_target, q)
        if problem:
            return FilterResult(None, tuple(clamped), problem)
        gripper_opening_m = 0.0 if clipped[4] > 0 else cfg.gripper_max_opening_m
        return FilterResult(SafeCommand(q_target, gripper_opening_m, clipped.astype(np.float32)), tuple(clamped))

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The joint command that holds the arm at ``q`` (rad): inside the limits minus the margin, at most one
        velocity-bounded step from ``q``. ValueError when ``q`` has the wrong shape or is not finite (a caller bug:
        only plausible measurements are held)."""
        q = np.asarray(q, dtype=np.float64)
        n = len(self.config.arm_joint_names)
        if q.shape != (n,) or not np.isfinite(q).all():
            raise ValueError(f"a hold needs {n} finite joint positions, got {q.tolist()}")
        return self._within_limits(q, q, [])

    def _within_limits(self, q_target: np.ndarray, q: np.ndarray, clamped: list[str]) -> np.ndarray:
        """``q_target`` clamped to the limits minus the margin, then its step from ``q`` shortened (keeping its
        direction) to the velocity bound; appends what changed it to ``clamped``."""
        margin = self.config.joint_limit_margin_rad
        limited = np.clip(q_target, self._lower + margin, self._upper - margin)
        if not np.array_equal(limited, q_target):
            clamped.append(CLAMPED_JOINT_LIMITS)
        step = limited - q
        ratio = float(np.max(np.abs(step) / self._max_step_rad))
        if ratio > 1.0:
            limited = q + step / ratio
            clamped.append(CLAMPED_JOINT_VELOCITY)
        return limited

    def _verify(self, q_target: np.ndarray, q: np.ndarray) -> str:
        """Independent last check of a command; the reason it is unsafe, or empty."""
        if not np.isfinite(q_target).all():
            return f"joint targets are not finite: {q_target.tolist()}"
        outside = (q_target < self._lower) | (q_target > self._upper)
        if outside.any():
            i = int(np.argmax(outside))
            return (f"joint '{self.config.arm_joint_names[i]}' target {q_target[i]:.4f} rad is outside its limits "
                    f"[{self._lower[i]}, {self._upper[i]}]")
        # the step was scaled to exactly the bound; allow for rounding only
        if (np.abs(q_target - q) > self._max_step_rad * (1 + 1e-9)).any():
            return "joint step exceeds the velocity limit"
        now_out_m = self._outside_workspace_m(self.kinematics.forward(q).position_m)
        after_out_m = self._outside_workspace_m(self.kinematics.forward(q_target).position_m)
        if after_out_m > max(now_out_m, self.config.workspace_tolerance_m):
            return f"end effector would be {after_out_m:.4f} m outside the workspace (now {now_out_m:.4f} m)"
        return ""

    def _outside_workspace_m(self, position_m: np.ndarray) -> float:
        """Distance from ``position_m`` to the workspace box (0 inside)."""
        below = self.config.workspace_min_m - position_m
        above = position_m - self.config.workspace_max_m
        return float(np.linalg.norm(np.maximum(np.maximum(below, above), 0.0)))
