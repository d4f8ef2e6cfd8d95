"""A scripted expert for the gym-hil PandaPickCube task, acting through the driver's own commands.

From privileged state (the cube's position) it moves the 2F-85's pinch point above the cube, down to it, closes the
gripper and lifts, each control step a joint target from inverse kinematics of the pinch site with the gripper
pointing down, the pinch point moving at most ``max_step_m`` per step (the ``ee_delta`` scaling). Success is gym-hil's
own predicate. ``python -m rlvla_ros.rollouts.panda_expert --episodes 50`` measures its success rate.
"""

from __future__ import annotations

import numpy as np

from rlvla_ros.sim.kinematics import ArmKinematics, EePose
from rlvla_ros.sim.panda.driver import PANDA_MAX_STEPS, PandaDriver
from rlvla_ros.sim.panda.scene import GRIPPER_MAX_OPENING_M, PANDA_ARM_JOINT_NAMES

_APPROACH_HEIGHT_M = 0.10
_GRASP_HEIGHT_M = 0.0
"""Pinch point at the cube's centre."""
_LIFT_HEIGHT_M = 0.20
_REACHED_M = 0.008
_CLOSE_STEPS = 6


class PandaPickExpert:
    """Approach, descend, close, lift; call :meth:`act` once per control step after :meth:`reset`."""

    def __init__(self, driver: PandaDriver, max_step_m: float = 0.03) -> None:
        scene = driver.sim
        self.driver = driver
        self.max_step_m = max_step_m
        self.kinematics = ArmKinematics(scene.model, joint_names=tuple(f"joint{i}" for i in range(1, 8)),
                                        site="pinch", joint_limits_rad=scene.arm_limits_rad)
        self.reset()

    def reset(self) -> None:
        """Start a new episode's script."""
        self.phase = "approach"
        self._closed_steps = 0
        self._cube_start = self.driver.sim.block_position()
        self._yaw = self.kinematics.forward(self.driver.sim.arm_targets()).yaw_rad

    def act(self) -> tuple[np.ndarray, float]:
        """Joint targets (rad, panda_joint1..7) and the gripper opening (m) for this step."""
        q_set = self.driver.sim.arm_targets()
        pinch = self.kinematics.forward(q_set).position_m
        step, opening = self._step(pinch)
        return self.kinematics.inverse(EePose(pinch + step, self._yaw), q_set), opening

    def ee_delta(self) -> np.ndarray:
        """The same step as an ``ee_delta`` action ``[dx, dy, dz, dyaw, gripper]`` (translation in units of
        ``max_step_m``, gripper 1 closes, -1 opens), for the graph's teleop input and the safety filter."""
        pinch = self.kinematics.forward(self.driver.sim.arm_targets()).position_m
        step, opening = self._step(pinch)
        return np.array([*(step / self.max_step_m), 0.0, 1.0 if opening == 0.0 else -1.0], dtype=np.float32)

    def _step(self, pinch: np.ndarray) -> tuple[np.ndarray, float]:
        """This step's pinch-point displacement and gripper opening, moving the script on."""
        cube = self.driver.sim.block_position()
        opening = GRIPPER_MAX_OPENING_M
        if self.phase == "approach":
            goal = cube + [0.0, 0.0, _APPROACH_HEIGHT_M]
            if np.linalg.norm(goal - pinch) < _REACHED_M:
                self.phase = "descend"
        if self.phase == "descend":
            goal = cube + [0.0, 0.0, _GRASP_HEIGHT_M]
            if np.linalg.norm(goal - pinch) < _REACHED_M:
                self.phase = "close"
        if self.phase == "close":
            goal, opening = pinch, 0.0
            self._closed_steps += 1
            if self._closed_steps > _CLOSE_STEPS:
                self.phase = "lift"
        if self.phase == "lift":
            goal, opening = self._cube_start + [0.0, 0.0, _LIFT_HEIGHT_M], 0.0
        step = goal - pinch
        distance = float(np.linalg.norm(step))
        if distance > self.max_step_m:
            step *= self.max_step_m / distance
        return step, opening


def run_episode(driver: PandaDriver, expert: PandaPickExpert, seed: int, split: str = "id",
                max_steps: int = PANDA_MAX_STEPS) -> bool:
    """One lockstep episode with the expert in command; True when gym-hil's predicate held at some step."""
    driver.reset(split=split, seed=seed)
    expert.reset()
    period_ns = driver.control_period_ns
    for _ in range(max_steps):
        q, opening = expert.act()
        driver.set_gripper(opening)
        driver.follow(driver.trajectory(PANDA_ARM_JOINT_NAMES, [period_ns], [q]))
        driver.advance(1)
        if driver.is_success():
            return True
    return False
