"""Success rate of the scripted Panda pick expert (:mod:`rlvla_ros.sim.panda.expert`), acting through the driver's
own commands or, as the graph runs it, with its ``ee_delta`` actions turned into joint commands by the safety filter
on ``config/robots/panda.yaml``.

    python -m rlvla_ros.rollouts.panda_expert --episodes 50 --split id [--via-safety-filter]

The last line is one JSON object: successes, rate, its 95 % Wilson interval and the failed seeds.
"""

from __future__ import annotations

import argparse
import json

from rlvla_ros.rollouts.statistics import wilson_interval
from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.sim.panda.driver import PANDA_MAX_STEPS, PandaDriver
from rlvla_ros.sim.panda.expert import PandaPickExpert, run_episode
from rlvla_ros.sim.panda.scene import PANDA_ARM_JOINT_NAMES, SPLITS


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="success rate of the scripted Panda pick expert")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--split", default="id", choices=SPLITS)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--via-safety-filter", action="store_true",
                        help="act in ee_delta through the safety filter on config/robots/panda.yaml, as the graph does")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    driver = PandaDriver(image_size=16)
    seeds = [args.first_seed + i for i in range(args.episodes)]
    if args.via_safety_filter:
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
