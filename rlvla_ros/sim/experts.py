"""Closed-loop scripted experts that read privileged object state and output ``ee_delta`` actions.

Each expert is a small phase machine re-planned from the current object poses every step, so it recovers from a
dropped or slipped cube by going back to the approach phase. Actions are proportional moves towards a waypoint,
clipped to [-1, 1], i.e. at most one ``EeDeltaConfig.max_translation_m`` per step.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np

from rlvla_ros.sim.kinematics import EeDeltaConfig, EePose
from rlvla_ros.sim.tabletop_sim import BLOCK_HALF_SIZE_M, TabletopSim

OPEN, CLOSE = -1.0, 1.0
HOVER_HEIGHT_M = 0.10
"""Height of the TCP above a cube's centre before descending onto it."""
CARRY_HEIGHT_M = 0.12
"""TCP height while carrying a cube."""
POSITION_TOLERANCE_M = 0.005
YAW_TOLERANCE_RAD = 0.05
GRIP_STEPS = 3
"""Steps the gripper command is held before moving on, so the fingers have closed or opened."""


def wrap_angle(angle_rad: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return float((angle_rad + np.pi) % (2 * np.pi) - np.pi)


def nearest_equivalent_yaw(yaw_rad: float, reference_rad: float, period_rad: float) -> float:
    """The angle ``yaw_rad + k * period_rad`` closest to ``reference_rad``."""
    return reference_rad + float((yaw_rad - reference_rad + period_rad / 2) % period_rad - period_rad / 2)


class Expert(abc.ABC):
    """A scripted policy for one episode of one task."""

    def __init__(self, config: EeDeltaConfig) -> None:
        self.config = config
        self.phase = "approach"
        self._phase_steps = 0

    @abc.abstractmethod
    def act(self, sim: TabletopSim, ee: EePose) -> np.ndarray:
        """Next ``ee_delta`` action given the sim state and the end-effector pose the action is applied to."""

    def _goto(self, phase: str) -> None:
        self.phase = phase
        self._phase_steps = 0

    def _move(
        self, ee: EePose, goal_m: np.ndarray, goal_yaw_rad: float, gripper: float, max_step_m: float | None = None
    ) -> np.ndarray:
        step_m = self.config.max_translation_m if max_step_m is None else max_step_m
        delta = goal_m - ee.position_m
        norm = np.linalg.norm(delta)
        if norm > step_m:
            delta *= step_m / norm
        dyaw = wrap_angle(goal_yaw_rad - ee.yaw_rad) / self.config.max_yaw_rad
        action = np.append(delta / self.config.max_translation_m, [dyaw, gripper])
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _reached(ee: EePose, goal_m: np.ndarray, goal_yaw_rad: float | None = None) -> bool:
    if np.linalg.norm(goal_m - ee.position_m) > POSITION_TOLERANCE_M:
        return False
    return goal_yaw_rad is None or abs(wrap_angle(goal_yaw_rad - ee.yaw_rad)) < YAW_TOLERANCE_RAD


class PickAndPlaceExpert(Expert):
    """Grasp a cube from above; then hold it up (``place_at`` None) or set it down where ``place_at`` says."""

    def __init__(
        self,
        block: int,
        config: EeDeltaConfig,
        place_at: Callable[[TabletopSim], np.ndarray] | None = None,
    ) -> None:
        super().__init__(config)
        self.block = block
        self.place_at = place_at
        """Returns where the cube's centre (m) should be when it is released, given the current sim state."""

    def act(self, sim: TabletopSim, ee: EePose) -> np.ndarray:
        self._phase_steps += 1
        block_m = sim.block_position(self.block)
        grasp_yaw = nearest_equivalent_yaw(sim.block_yaw(self.block), ee.yaw_rad, np.pi / 2)
        carrying = self.phase in ("lift", "carry", "lower")
        if carrying and np.linalg.norm(block_m - ee.position_m) > 0.02:
            self._goto("approach")  # dropped it: start over
        if self.phase == "approach":
            goal = block_m + [0.0, 0.0, HOVER_HEIGHT_M]
            # rise before travelling so the fingers never sweep through other cubes
            if ee.position_m[2] < goal[2] - 0.03 and np.linalg.norm(goal[:2] - ee.position_m[:2]) > 0.02:
                goal = np.append(ee.position_m[:2], goal[2])
            if _reached(ee, goal, grasp_yaw) and sim.gripper_opening_m() > 2 * BLOCK_HALF_SIZE_M + 0.02:
                self._goto("descend")
            return self._move(ee, goal, grasp_yaw, OPEN)
        if self.phase == "descend":
            goal = block_m.copy()
            if _reached(ee, goal):
                self._goto("close")
            return self._move(ee, goal, grasp_yaw, OPEN)
        if self.phase == "close":
            if self._phase_steps >= GRIP_STEPS:
                self._goto("lift")
            return self._move(ee, ee.position_m, ee.yaw_rad, CLOSE)
        if self.phase == "lift":
            goal = np.append(ee.position_m[:2], CARRY_HEIGHT_M)
            if self.place_at is not None and ee.position_m[2] > CARRY_HEIGHT_M - 0.01:
                self._goto("carry")
            return self._move(ee, goal, ee.yaw_rad, CLOSE)
        assert self.place_at is not None, "only placing experts get past the lift phase"
        # aim the cube, not the TCP, so a grasp that is off-centre or has slipped still lands on the spot
        place_m = self.place_at(sim) - (block_m - ee.position_m)
        if self.phase == "carry":
            goal = np.append(place_m[:2], CARRY_HEIGHT_M)
            if _reached(ee, goal):
                self._goto("lower")
            return self._move(ee, goal, ee.yaw_rad, CLOSE)
        if self.phase == "lower":
            if _reached(ee, place_m):
                self._goto("release")
            return self._move(ee, place_m, ee.yaw_rad, CLOSE, max_step_m=0.015)
        if self.phase == "release":
            if self._phase_steps >= GRIP_STEPS:
                self._goto("retreat")
            return self._move(ee, ee.position_m, ee.yaw_rad, OPEN)
        goal = np.append(ee.position_m[:2], CARRY_HEIGHT_M)
        return self._move(ee, goal, ee.yaw_rad, OPEN)


class PushExpert(Expert):
    """Push a cube across the table onto a target point with the closed gripper, re-aiming as the cube moves."""

    PUSH_HEIGHT_M = 0.02
    """TCP height while pushing (fingertips 5 mm above the table)."""
    CONTACT_OFFSET_M = BLOCK_HALF_SIZE_M + 0.012
    """Distance from the cube's centre to the TCP when the closed fingers touch its back face."""
    PUSH_STEP_M = 0.015
    """Slower than free motion so the cube stays in front of the fingers."""

    def __init__(self, block: int, goal_at: Callable[[TabletopSim], np.ndarray], config: EeDeltaConfig) -> None:
        super().__init__(config)
        self.block = block
        self.goal_at = goal_at
        """Returns the (x, y) point (m) to push the cube's centre to, given the current sim state."""

    def act(self, sim: TabletopSim, ee: EePose) -> np.ndarray:
        self._phase_steps += 1
        block_xy = sim.block_position(self.block)[:2]
        to_goal = self.goal_at(sim) - block_xy
        distance = np.linalg.norm(to_goal)
        direction = to_goal / max(distance, 1e-6)
        # closing axis along the push direction: the pushing face is a finger's 2.4 cm wide side
        push_yaw = nearest_equivalent_yaw(float(np.arctan2(-direction[0], direction[1])), ee.yaw_rad, np.pi)
        behind_xy = block_xy - direction * (self.CONTACT_OFFSET_M + 0.02)
        if self.phase == "push":
            offset = ee.position_m[:2] - block_xy
            lateral_m = abs(offset[0] * direction[1] - offset[1] * direction[0])
            behind = -offset @ direction
            if distance < 0.008:
                self._goto("retreat")
            elif lateral_m > 0.015 or behind < 0.01 or behind > self.CONTACT_OFFSET_M + 0.04:
                self._goto("rise")
        if self.phase == "rise":
            goal = np.append(ee.position_m[:2], HOVER_HEIGHT_M)
            if ee.position_m[2] > HOVER_HEIGHT_M - 0.02:
                self._goto("approach")
            return self._move(ee, goal, ee.yaw_rad, CLOSE)
        if self.phase == "approach":
            goal = np.append(behind_xy, HOVER_HEIGHT_M)
            if _reached(ee, goal, push_yaw):
                self._goto("descend")
            return self._move(ee, goal, push_yaw, CLOSE)
        if self.phase == "descend":
            goal = np.append(behind_xy, self.PUSH_HEIGHT_M)
            if _reached(ee, goal):
                self._goto("push")
            return self._move(ee, goal, push_yaw, CLOSE)
        if self.phase == "push":
            # track the contact point on the line through the cube, one push step ahead of it
            goal_xy = block_xy + direction * (min(self.PUSH_STEP_M, distance) - self.CONTACT_OFFSET_M)
            return self._move(ee, np.append(goal_xy, self.PUSH_HEIGHT_M), push_yaw, CLOSE)
        goal = np.append(ee.position_m[:2], HOVER_HEIGHT_M)
        return self._move(ee, goal, ee.yaw_rad, CLOSE)
