"""Why episodes fail: the furthest stage each reached, read from the privileged sim state.

For tasks whose instruction names one cube (cube 0: ``lift``, ``push``, ``place_side``), every episode gets one
kind: ``success``; ``wrong_cube`` (it grasped another cube, or came within :data:`REACH_RADIUS_M` of one and never
of the named cube); ``grasped_no_success`` (it held the named cube but did not finish); ``reached_no_grasp``;
``never_reached`` (the gripper never came within :data:`REACH_RADIUS_M` of any cube). Grounding errors (which cube
the words mean) show up as ``wrong_cube``, motor errors as the others.

    python -m rlvla_ros.training.failures runs/ppo/best --splits id ood_color --episodes 40
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from rlvla_ros.contract import VALIDATION_SEED_START
from rlvla_ros.sim.env import TabletopEnv

FAILURE_KINDS = ("success", "wrong_cube", "grasped_no_success", "reached_no_grasp", "never_reached")
REACH_RADIUS_M = 0.03
"""Gripper-to-cube-centre distance (m) that counts as reaching a cube."""
SINGLE_CUBE_TASKS = ("lift", "push", "place_side")
"""Tasks whose instruction names one cube (``stack`` names two)."""

EnvChunkChooser = Callable[[TabletopEnv, dict[str, Any]], np.ndarray]
"""``(env, observation) -> (H, 5)`` actions to execute."""


def episode_failure(env: TabletopEnv, task: str, split: str, seed: int, choose_chunk: EnvChunkChooser) -> str:
    """Run one episode with ``choose_chunk`` and return its kind (one of :data:`FAILURE_KINDS`)."""
    if task not in SINGLE_CUBE_TASKS:
        raise ValueError(f"failure kinds need a task that names one cube, one of {SINGLE_CUBE_TASKS}; got {task!r}")
    observation, _ = env.reset(seed=seed, options={"task": task, "split": split})
    sim = env.sim
    cubes = len(env.task.scene.block_colors)
    closest_m = np.full(cubes, np.inf)
    grasped = np.zeros(cubes, dtype=bool)
    done = success = False
    while not done:
        for action in choose_chunk(env, observation):
            observation, _, success, truncated, _ = env.step(action)
            tcp = sim.tcp_position()
            for cube in range(cubes):
                closest_m[cube] = min(closest_m[cube], float(np.linalg.norm(tcp - sim.block_position(cube))))
                grasped[cube] |= sim.is_grasped(cube)
            done = success or truncated
            if done:
                break
    reached = closest_m < REACH_RADIUS_M
    if success:
        return "success"
    if grasped[1:].any() or (reached[1:].any() and not reached[0]):
        return "wrong_cube"
    if grasped[0]:
        return "grasped_no_success"
    return "reached_no_grasp" if reached[0] else "never_reached"


def policy_chunks(policy: Any) -> EnvChunkChooser:
    """The policy's deterministic chunk for one observation."""
    from rlvla_ros.rollouts.sim_rollouts import stack_observations

    def choose(env: TabletopEnv, observation: dict[str, Any]) -> np.ndarray:
        with torch.no_grad():
            return policy.predict(stack_observations([observation]), deterministic=True).actions.cpu().numpy()[0]

    return choose


def failure_counts(
    choose_chunk: EnvChunkChooser, task: str, splits: Sequence[str], seeds: Sequence[int], image_size: int
) -> dict[str, dict[str, int]]:
    """``{split: {kind: episodes}}`` over ``seeds``, every kind listed (zeros included)."""
    env = TabletopEnv(task=None, image_size=image_size)
    try:
        counts = {}
        for split in splits:
            kinds = Counter(episode_failure(env, task, split, seed, choose_chunk) for seed in seeds)
            counts[split] = {kind: kinds[kind] for kind in FAILURE_KINDS}
        return counts
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    from rlvla_ros.policies import load_policy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="policy checkpoint directory")
    parser.add_argument("--task", default="lift", choices=SINGLE_CUBE_TASKS)
    parser.add_argument("--splits", nargs="+", default=["id"])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed-start", type=int, default=VALIDATION_SEED_START)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    torch.set_num_threads(1)
    try:
        policy = load_policy(args.checkpoint).eval()
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"{args.checkpoint} is not a policy checkpoint: {err}")
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    counts = failure_counts(policy_chunks(policy), args.task, args.splits, seeds, policy.config.image_size)
    print(json.dumps({"checkpoint": args.checkpoint, "task": args.task,
                      "seeds": f"{args.seed_start}..{seeds[-1]}", "counts": counts}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
