"""Arm joint trajectories as a ros2_control ``joint_trajectory_controller`` takes them, checked and sampled.

A trajectory is a list of points, each with arm joint positions and a time from its start. It is validated as a
whole (exactly the arm joints in any order, finite positions within the joint limits, strictly increasing times), so
a bad message is refused before anything moves. Sampling turns it into one position set point per physics step:

- ``step``: each point's positions are the set point from the previous point's time until its own, the way
  :class:`~rlvla_ros.sim.env.TabletopEnv` applies one action per control period; a trajectory of one-period points
  then reproduces the Gymnasium env step for step.
- ``linear``: set points move linearly from the set point in force at the start through the points, reaching each
  at its time, as the joint_trajectory_controller interpolates position-only points.

After the last point the set point holds its positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlvla_ros.contract import ARM_JOINT_NAMES
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_LIMITS_RAD

INTERPOLATIONS = ("step", "linear")
"""Ways of turning trajectory points into set points; see the module docstring."""


@dataclass(frozen=True)
class ArmTrajectory:
    """Validated arm trajectory in the arm's joint order (:data:`ARM_JOINT_NAMES` unless another arm's given)."""

    times_ns: np.ndarray
    """(K,) int64 time of each point from the trajectory start, strictly increasing."""
    positions_rad: np.ndarray
    """(K, J) joint positions of each point."""

    @classmethod
    def from_points(
        cls,
        joint_names: Sequence[str],
        times_ns: Sequence[int],
        positions: Sequence[Sequence[float]],
        arm_joint_names: Sequence[str] = ARM_JOINT_NAMES,
        limits_rad: np.ndarray = ARM_JOINT_LIMITS_RAD,
    ) -> ArmTrajectory:
        """Check a trajectory message's content and reorder its joints into ``arm_joint_names`` (with (J, 2)
        ``limits_rad``; default this project's arm); ValueError saying what is wrong."""
        arm_names, limits = tuple(arm_joint_names), np.asarray(limits_rad)
        names = list(joint_names)
        if len(names) != len(arm_names) or set(names) != set(arm_names):
            raise ValueError(f"joint names {names} must be exactly the arm joints {list(arm_names)} "
                             "(in any order)")
        if len(positions) == 0:
            raise ValueError("trajectory has no points")
        if len(times_ns) != len(positions):
            raise ValueError(f"{len(times_ns)} times for {len(positions)} points")
        for k, point in enumerate(positions):
            if len(point) != len(names):
                raise ValueError(f"point {k} has {len(point)} positions for {len(names)} joints")
        times = np.asarray(times_ns, dtype=np.int64)
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise ValueError(f"time_from_start must be >= 0 and strictly increasing, got {(times / 1e9).tolist()} s")
        order = [names.index(name) for name in arm_names]
        q = np.asarray(positions, dtype=np.float64)[:, order]
        bad = ~np.isfinite(q) | (q < limits[:, 0]) | (q > limits[:, 1])
        if bad.any():
            k, j = np.argwhere(bad)[0]
            low, high = limits[j]
            raise ValueError(f"point {k}: {arm_names[j]} = {q[k, j]} is not a finite position within "
                             f"[{low}, {high}] rad")
        return cls(times, q)

    @property
    def duration_ns(self) -> int:
        """Time of the last point."""
        return int(self.times_ns[-1])

    def setpoints(
        self, start_q: np.ndarray, first_step: int, num_steps: int, step_ns: int, interpolation: str
    ) -> np.ndarray:
        """(num_steps, J) set point in force during physics steps ``first_step ...`` after the trajectory start.

        ``start_q`` is the set point in force when the trajectory started (used by ``linear``).
        """
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}")
        step_start_ns = (first_step + np.arange(num_steps, dtype=np.int64)) * step_ns
        if interpolation == "step":
            segment = np.searchsorted(self.times_ns, step_start_ns, side="right")
            return self.positions_rad[np.minimum(segment, len(self.times_ns) - 1)]
        # linear: the set point a step ends with, so each point is reached exactly at its time
        times, points = self.times_ns, self.positions_rad
        if times[0] > 0:
            times, points = np.append(0, times), np.vstack([start_q, points])
        step_end_ns = step_start_ns + step_ns
        return np.stack([np.interp(step_end_ns, times, points[:, j]) for j in range(points.shape[1])], axis=1)
