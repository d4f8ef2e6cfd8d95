"""Plausibility of measured arm joint states: a measurement is never a target, an implausible one is a fault.

A measured state is implausible when it is non-finite, outside the joint limits (plus a tolerance for sensor noise),
moved faster than the arm can (``max_velocity_rad_s`` x the time since the previous message, plus a tolerance), or
stale. While faulted, :attr:`JointStateMonitor.plausible_q` stays at the last plausible state, which is what the
safety filter holds and builds on. A fault clears once ``clear_after`` consecutive messages are finite, within the
limits and consistent with each other (or, for staleness, once fresh messages come again); the arm's position is
then the newest of them. A jump between :meth:`expect_reset` and :meth:`reset_done` is the driver's reset (a
simulator teleports the arm), not a fault: it becomes the new plausible state. When the driver says which
measurement is the episode's first (its stamp), the reset lasts until that one has come, so an episode's START that
overtakes the reset's joint state on the way does not make the reset a fault. Generic over the number of joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvla_ros.safety.robot_config import RobotConfig

FAULT_NON_FINITE = "non_finite"
FAULT_OUTSIDE_LIMITS = "outside_limits"
FAULT_JUMP = "jump"
FAULT_STALE = "stale"
FAULT_KINDS = (FAULT_NON_FINITE, FAULT_OUTSIDE_LIMITS, FAULT_JUMP, FAULT_STALE)


@dataclass(frozen=True)
class JointStateFault:
    """Why the measured joint state cannot be trusted."""

    kind: str
    """One of ``FAULT_KINDS``."""
    detail: str
    """What was measured, for the log."""


@dataclass(frozen=True)
class MonitorLimits:
    """Tolerances of the plausibility checks."""

    timeout_s: float
    """A joint state older than this is stale."""
    limit_tolerance_rad: float
    """How far outside its position limits a measured joint may read (sensor noise, soft limits)."""
    jump_tolerance_rad: float
    """Slack added to the largest move the arm can make between two messages (noise, timing jitter)."""
    clear_after: int
    """Consecutive plausible, mutually consistent messages that end a fault."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"joint_state_timeout_s must be > 0, got {self.timeout_s}")
        if not (self.limit_tolerance_rad >= 0 and np.isfinite(self.limit_tolerance_rad)):
            raise ValueError(f"state_limit_tolerance_rad must be a finite number >= 0, got {self.limit_tolerance_rad}")
        if not (self.jump_tolerance_rad >= 0 and np.isfinite(self.jump_tolerance_rad)):
            raise ValueError(f"state_jump_tolerance_rad must be a finite number >= 0, got {self.jump_tolerance_rad}")
        if self.clear_after < 1:
            raise ValueError(f"fault_clear_messages must be >= 1, got {self.clear_after}")


class JointStateMonitor:
    """Tracks the measured arm joints and whether they are plausible; see the module docstring."""

    def __init__(self, config: RobotConfig, limits: MonitorLimits) -> None:
        self.config = config
        self.limits = limits
        self.plausible_q: np.ndarray | None = None
        """The last plausible measured joints (rad); None before the first."""
        self._fault: JointStateFault | None = None
        self._previous: tuple[np.ndarray, float, float] | None = None
        """The last finite, in-limits message: joints, stamp (s, 0 when unstamped), receipt time (s)."""
        self._consistent = 0
        self._last_received_s: float | None = None
        self._resetting = False
        self._reset_ends_at_s = 0.0
        """While resetting after :meth:`reset_done`: the stamp of the measurement that ends the reset (0: none)."""

    def observe(self, q: np.ndarray, stamp_s: float, received_s: float) -> None:
        """Take one measurement: ``stamp_s`` its header time (0: unstamped), ``received_s`` a monotonic receipt time."""
        q = np.asarray(q, dtype=np.float64)
        names = self.config.arm_joint_names
        if q.shape != (len(names),):
            raise ValueError(f"joint vector must have shape ({len(names)},), got {q.shape}")
        self._last_received_s = received_s
        if not np.isfinite(q).all():
            self._set_fault(FAULT_NON_FINITE, f"joint positions are not finite: {q.tolist()}")
            return
        lower = self.config.joint_limits_rad[:, 0] - self.limits.limit_tolerance_rad
        upper = self.config.joint_limits_rad[:, 1] + self.limits.limit_tolerance_rad
        outside = (q < lower) | (q > upper)
        if outside.any():
            i = int(np.argmax(outside))
            self._set_fault(FAULT_OUTSIDE_LIMITS, f"joint '{names[i]}' measured {q[i]:.4f} rad, outside its limits "
                                                  f"[{self.config.joint_limits_rad[i, 0]}, "
                                                  f"{self.config.joint_limits_rad[i, 1]}]")
            return
        jump = self._jump(q, stamp_s, received_s)
        self._previous = (q, stamp_s, received_s)
        resetting = self._resetting
        if self._reset_ends_at_s and stamp_s >= self._reset_ends_at_s:
            self._resetting, self._reset_ends_at_s = False, 0.0
        if jump and resetting:
            self._accept(q)
            return
        if jump:
            self._set_fault(FAULT_JUMP, jump)
            return
        if self._fault is None or self.plausible_q is None:
            self._accept(q)
            return
        self._consistent += 1
        if self._consistent >= self.limits.clear_after:
            self._accept(q)

    def fault(self, now_s: float) -> JointStateFault | None:
        """The current fault, or None when the last measurement is plausible and fresh."""
        if self._fault is not None:
            return self._fault
        if self.plausible_q is None:
            return JointStateFault(FAULT_STALE, "no joint state with every arm joint yet")
        age_s = now_s - (self._last_received_s or 0.0)
        if age_s > self.limits.timeout_s:
            return JointStateFault(FAULT_STALE, f"no joint state for {age_s:.2f} s (timeout {self.limits.timeout_s} s)")
        return None

    @property
    def resetting(self) -> bool:
        """Between :meth:`expect_reset` and :meth:`reset_done`."""
        return self._resetting

    def expect_reset(self) -> None:
        """The driver is about to reset the arm: until :meth:`reset_done`, a jump is its new position."""
        self._resetting, self._reset_ends_at_s = True, 0.0

    def reset_done(self, first_stamp_s: float = 0.0) -> None:
        """The reset is over: jumps are faults again from the measurement stamped ``first_stamp_s`` on (the
        episode's first, which may still jump to the reset position), or at once if it came already or the stamp is 0
        (unknown)."""
        if first_stamp_s <= 0 or (self._previous is not None and self._previous[1] >= first_stamp_s):
            self._resetting, self._reset_ends_at_s = False, 0.0
        else:
            self._reset_ends_at_s = first_stamp_s

    def _jump(self, q: np.ndarray, stamp_s: float, received_s: float) -> str:
        """Why ``q`` moved further since the previous in-limits message than the arm can; empty when it did not."""
        if self._previous is None:
            return ""
        previous_q, previous_stamp_s, previous_received_s = self._previous
        # Header stamps time the motion itself; receipt times include transport and executor delays.
        both_stamped = stamp_s > 0 and previous_stamp_s > 0 and stamp_s >= previous_stamp_s
        dt_s = stamp_s - previous_stamp_s if both_stamped else max(0.0, received_s - previous_received_s)
        allowed = self.config.max_joint_velocity_rad_s * dt_s + self.limits.jump_tolerance_rad
        moved = np.abs(q - previous_q)
        if not (moved > allowed).any():
            return ""
        i = int(np.argmax(moved - allowed))
        return (f"joint '{self.config.arm_joint_names[i]}' moved {moved[i]:.4f} rad in {dt_s:.3f} s, more than the "
                f"{allowed[i]:.4f} rad the arm can")

    def _set_fault(self, kind: str, detail: str) -> None:
        self._fault = JointStateFault(kind, detail)
        self._consistent = 0

    def _accept(self, q: np.ndarray) -> None:
        self.plausible_q = q
        self._fault = None
        self._consistent = 0
