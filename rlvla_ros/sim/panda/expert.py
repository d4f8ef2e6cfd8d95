"""A scripted expert for the gym-hil PandaPickCube task, acting through the driver's own commands.

From privileged state (the cube's position) it moves the 2F-85's pinch point above the cube, down to it, closes the
gripper and lifts, each control step a joint target from inverse kinematics of the pinch site with the gripper
pointing down, the pinch point moving at most ``max_step_m`` per step (the ``ee_delta`` scaling). Success is gym-hil's
own predicate. ``python -m rlvla_ros.sim.panda.expert --episodes 50`` measures its success rate (last line JSON).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from rlvla_ros.sim.kinematics import ArmKinematics, EePose
from rlvla_ros.sim.panda.driver import PANDA_MAX_STEPS, PandaDriver
from rlvla_ros.sim.panda.scene import GRIPPER_MAX_OPENING_M, PANDA_ARM_JOINT_NAMES, SPLITS

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
        cube = self.driver.sim.block_position()
        q_set = self.driver.sim.arm_targets()
        pinch = self.kinematics.forward(q_set).position_m
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
        return self.kinematics.inverse(EePose(pinch + step, self._yaw), q_set), opening


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


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="success rate of the scripted Panda pick expert")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--split", default="id", choices=SPLITS)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args(argv)
    driver = PandaDriver(image_size=16)
    expert = PandaPickExpert(driver)
    outcomes = [run_episode(driver, expert, args.first_seed + i, args.split) for i in range(args.episodes)]
    driver.close()
    successes = sum(outcomes)
    low, high = wilson_interval(successes, args.episodes)
    print(json.dumps({"task": "pick_cube", "split": args.split, "episodes": args.episodes, "first_seed": args.first_seed,
                      "successes": successes, "success_rate": successes / args.episodes,
                      "wilson95": [round(low, 3), round(high, 3)],
                      "failed_seeds": [args.first_seed + i for i, ok in enumerate(outcomes) if not ok]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
