"""Success rate of a task's scripted expert in its Gymnasium environment, with the Wilson 95 % interval.

The expert acts as the demonstrations are recorded: through the task's environment (:mod:`rlvla_ros.envs`), for the
Panda through the safety filter on ``config/robots/panda.yaml``, as the graph runs it. Last line: one JSON object.

    python -m rlvla_ros.training.expert_success --task pick_cube --split id --episodes 50
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from rlvla_ros.envs import ALL_TASKS, family_of_tasks
from rlvla_ros.training.experiments import expert_episode
from rlvla_ros.rollouts.statistics import wilson_interval

IMAGE_SIZE = 16
"""The expert reads privileged state; images are rendered but unused, so small."""


def expert_success(task: str, split: str, seeds: Sequence[int]) -> list[bool]:
    """Whether the expert's episode succeeded, per seed."""
    env = family_of_tasks([task], [split]).make(IMAGE_SIZE)
    try:
        return [expert_episode(env, task, split, seed).success for seed in seeds]
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=ALL_TASKS)
    parser.add_argument("--split", default="id")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    try:
        outcomes = expert_success(args.task, args.split, seeds)
    except ValueError as error:
        parser.error(str(error))
    successes = sum(outcomes)
    low, high = wilson_interval(successes, args.episodes)
    print(json.dumps({"task": args.task, "split": args.split, "episodes": args.episodes, "first_seed": args.first_seed,
                      "successes": successes, "success_rate": successes / args.episodes,
                      "wilson95": [round(low, 3), round(high, 3)],
                      "failed_seeds": [seed for seed, ok in zip(seeds, outcomes) if not ok]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
