"""Success rates of a policy per task and split, from simulated episodes on fixed seed lists, with and without
test-time steering."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlvla_ros.envs import family_of_tasks
from rlvla_ros.policies import Policy
from rlvla_ros.policies.steering import ChunkScorer, steering_hook
from rlvla_ros.rollouts.sim_rollouts import ChooseChunk, EpisodeSpec, SimRollouts, success_rate

EvalResults = dict[str, dict[str, float]]
"""``{task: {split: success_rate}}``."""


def evaluation_specs(tasks: Sequence[str], splits: Sequence[str], seeds: Sequence[int]) -> list[EpisodeSpec]:
    """Every (task, split, seed) combination; unknown tasks or splits, or tasks of different robots, are a
    ValueError."""
    family_of_tasks(tasks, splits)
    if not seeds:
        raise ValueError("evaluation needs at least one seed")
    return [EpisodeSpec(task, split, int(seed)) for task in tasks for split in splits for seed in seeds]


def evaluate(
    policy: Policy,
    tasks: Sequence[str],
    splits: Sequence[str],
    seeds: Sequence[int],
    *,
    num_envs: int = 8,
    deterministic: bool = True,
    temperature: float = 1.0,
    choose_chunk: ChooseChunk | None = None,
    rollouts: SimRollouts | None = None,
    seed: int | None = None,
) -> EvalResults:
    """Run ``len(seeds)`` episodes per task and split; ``choose_chunk`` replaces the policy's own chunk choice.

    ``seed``: this process's torch generator starts from it for these episodes (and is restored after), so that
    what samples here (steering's candidates, a sampling policy) draws the same whatever the process drew before."""
    specs = evaluation_specs(tasks, splits, seeds)
    own = rollouts is None
    rollouts = rollouts or SimRollouts(num_envs, image_size=policy.config.image_size)
    was_training = policy.training
    policy.eval()
    try:
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            episodes = rollouts.run(
                policy, specs, deterministic=deterministic, temperature=temperature, choose_chunk=choose_chunk
            )
    finally:
        policy.train(was_training)
        if own:
            rollouts.close()
    results: EvalResults = {}
    for task in tasks:
        results[task] = {
            split: success_rate([e for e in episodes if e.task == task and e.split == split]) for split in splits
        }
    return results


def mean_over_tasks(results: EvalResults, splits: Sequence[str]) -> float:
    """Success rate averaged over tasks and the given splits."""
    rates = [results[task][split] for task in results for split in splits]
    if not rates:
        raise ValueError("no results for those splits")
    return sum(rates) / len(rates)


def evaluate_with_steering(
    policy: Policy,
    q_model: ChunkScorer,
    tasks: Sequence[str],
    splits: Sequence[str],
    seeds: Sequence[int],
    *,
    budget: int = 8,
    temperature: float = 1.0,
    num_envs: int = 8,
    seed: int = 0,
) -> dict[str, EvalResults]:
    """Success rates ``{"policy": ..., "steered": ...}`` of ``policy`` on the same episodes without and with steering.

    ``budget`` is the test-time compute: candidate chunks sampled (at ``temperature``) and scored per decision.
    Without steering the policy acts deterministically; the weights are the same in both runs.
    """
    rollouts = SimRollouts(num_envs, image_size=policy.config.image_size)
    try:
        plain = evaluate(policy, tasks, splits, seeds, rollouts=rollouts)
        hook = steering_hook(policy, q_model, budget, temperature)
        steered = evaluate(policy, tasks, splits, seeds, choose_chunk=hook, rollouts=rollouts, seed=seed)
    finally:
        rollouts.close()
    return {"policy": plain, "steered": steered}
