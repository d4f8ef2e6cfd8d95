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


def run_ee_delta_episode(driver: PandaDriver, safety, seed: int, split: str = "id",
                         max_steps: int = PANDA_MAX_STEPS) -> bool:
    """One lockstep episode of the expert's ``ee_delta`` actions turned into joint commands by ``safety`` (an
    :class:`~rlvla_ros.safety.ActionSafetyFilter` on the Panda's robot config), as the graph runs them."""
    driver.reset(split=split, seed=seed)
    setpoint = None
    for _ in range(max_steps):
        q = driver.joint_state().positions[:7]
        result = safety.filter(driver.expert_action(), q, safety.reference_joints(q, setpoint))
        if result.command is None:
            raise RuntimeError(f"the safety filter refused an expert action: {result.rejection}")
        setpoint = result.command.joint_positions_rad
        driver.set_gripper(result.command.gripper_opening_m)
        driver.follow(driver.trajectory(PANDA_ARM_JOINT_NAMES, [driver.control_period_ns], [setpoint]))
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
    parser.add_argument("--via-safety-filter", action="store_true",
                        help="act in ee_delta through the safety filter on config/robots/panda.yaml, as the graph does")
    args = parser.parse_args(argv)
    driver = PandaDriver(image_size=16)
    seeds = [args.first_seed + i for i in range(args.episodes)]
    if args.via_safety_filter:
        from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path

        robot = load_robot_config(robot_config_path("panda"))
        safety = ActionSafetyFilter(robot, make_kinematics(robot))
        outcomes = [run_ee_delta_episode(driver, safety, seed, args.split) for seed in seeds]
    else:
        expert = PandaPickExpert(driver)
        outcomes = [run_episode(driver, expert, seed, args.split) for seed in seeds]
    driver.close()
    successes = sum(outcomes)
    low, high = wilson_interval(successes, args.episodes)
    print(json.dumps({"task": "pick_cube", "split": args.split, "via_safety_filter": args.via_safety_filter, "episodes": args.episodes, "first_seed": args.first_seed,
                      "successes": successes, "success_rate": successes / args.episodes,
                      "wilson95": [round(low, 3), round(high, 3)],
                      "failed_seeds": [args.first_seed + i for i, ok in enumerate(outcomes) if not ok]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
