"""Simulated rollout throughput in one process and with rollout workers (``rlvla bench rollouts``).

The two set-ups are timed in alternation on the same specs and policy, so other load on the machine hits both
alike; rates are env steps per second (every executed action, rendered observation included), medians over
``repeats`` runs.
"""

from __future__ import annotations

import statistics
import time

import torch

from rlvla_ros.policies import new_policy
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec, SimRollouts
from rlvla_ros.rollouts.workers import ParallelSimRollouts


def benchmark_rollouts(episodes: int = 48, repeats: int = 3, num_envs: int = 16, image_size: int = 64,
                       workers: int = 1, seed: int = 0) -> dict:
    """Env steps/s of ``episodes`` lift episodes of a fresh ``film_keypoints`` policy (they run to the step limit),
    sampled, in one process and in this process plus ``workers`` workers; ``speedup`` is their ratio."""
    if episodes < 1 or repeats < 1:
        raise ValueError("episodes and repeats must be >= 1")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    policy = new_policy("film_keypoints", image_size=image_size).eval()
    specs = [EpisodeSpec("lift", "id", seed + i) for i in range(episodes)]
    setups = {"one_process": SimRollouts(num_envs, image_size)}
    try:
        setups[f"with_{workers}_workers"] = ParallelSimRollouts(policy, num_envs, image_size, workers, seed=seed)
        rates: dict[str, list[float]] = {name: [] for name in setups}
        for name, rollouts in setups.items():
            rollouts.run(policy, specs[:num_envs])  # warm-up: first renders, lazy imports
        for _ in range(repeats):
            for name, rollouts in setups.items():
                start = time.perf_counter()
                steps = sum(len(episode) for episode in rollouts.run(policy, specs))
                rates[name].append(steps / (time.perf_counter() - start))
    finally:
        for rollouts in setups.values():
            rollouts.close()
    medians = {f"{name}_env_steps_per_s": round(statistics.median(values), 1) for name, values in rates.items()}
    one, parallel = medians.values()
    return {**medians, "speedup": round(parallel / one, 2),
            "settings": {"episodes": episodes, "repeats": repeats, "num_envs": num_envs, "image_size": image_size,
                         "workers": workers}}
