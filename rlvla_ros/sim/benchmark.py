"""Throughput of the simulator: physics, rendering and environment steps (medians over timed windows)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from rlvla_ros.sim.env import TabletopEnv, make_vector_env

PHYSICS_STEPS_PER_CALL = 50


def _median_rate(fn: Callable[[], int], window_s: float, repeats: int) -> float:
    """Median over ``repeats`` windows of (units ``fn`` reports it did) per second; ``fn`` runs at least once each."""
    rates = []
    for _ in range(repeats):
        units = 0
        start = time.perf_counter()
        while True:
            units += fn()
            elapsed = time.perf_counter() - start
            if elapsed >= window_s:
                break
        rates.append(units / elapsed)
    return statistics.median(rates)


def benchmark_sim(duration_s: float = 2.0, repeats: int = 3, num_envs: int = 8, seed: int = 0) -> dict[str, float]:
    """Time each stage for about ``duration_s`` seconds, split into ``repeats`` windows, and report median rates.

    Keys: ``physics_steps_per_s`` (2 ms steps of the lift scene), ``render_fps_128`` and ``render_fps_224`` (front
    camera), ``env_steps_per_s`` (one env, random actions, 128 px observation) and ``vector_env_steps_per_s`` (total
    transitions per second over ``num_envs`` envs in a ``SyncVectorEnv``), plus the settings used.
    """
    if duration_s <= 0 or repeats < 1 or num_envs < 1:
        raise ValueError("duration_s must be > 0, repeats and num_envs >= 1")
    window_s = duration_s / repeats
    rng = np.random.default_rng(seed)
    env = TabletopEnv(task="lift", split="id", image_size=128)
    env.reset(seed=seed)
    sim = env.sim

    def physics() -> int:
        sim.step(PHYSICS_STEPS_PER_CALL)
        return PHYSICS_STEPS_PER_CALL

    def render(size: int) -> Callable[[], int]:
        def run() -> int:
            sim.render("front", size, size)
            return 1

        return run

    def env_step() -> int:
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 5).astype(np.float32))
        if terminated or truncated:
            env.reset()
        return 1

    results = {
        "physics_steps_per_s": _median_rate(physics, window_s, repeats),
        "render_fps_128": _median_rate(render(128), window_s, repeats),
        "render_fps_224": _median_rate(render(224), window_s, repeats),
        "env_steps_per_s": _median_rate(env_step, window_s, repeats),
    }
    env.close()

    vector_env = make_vector_env(num_envs, task="lift", split="id", image_size=128)
    vector_env.reset(seed=seed)

    def vector_step() -> int:
        vector_env.step(rng.uniform(-1, 1, (num_envs, 5)).astype(np.float32))
        return num_envs

    results["vector_env_steps_per_s"] = _median_rate(vector_step, window_s, repeats)
    vector_env.close()
    results.update(duration_s=duration_s, repeats=repeats, num_envs=num_envs)
    return results


def benchmark_experts(episodes: int = 50, image_size: int = 32) -> dict:
    """Success rate and mean episode length of every task's scripted expert on every split (seeds 0..episodes-1).

    Images are rendered small: the expert reads privileged state, so the image size does not change the outcome.
    """
    from rlvla_ros.contract import SPLITS
    from rlvla_ros.sim.tasks import TASKS

    env = TabletopEnv(task=None, image_size=image_size)
    results: dict = {"episodes_per_task_and_split": episodes, "success_rate": {}, "mean_steps_id": {}}
    try:
        for task in sorted(TASKS):
            results["success_rate"][task] = {}
            for split in SPLITS:
                successes, steps = 0, []
                for seed in range(episodes):
                    env.reset(seed=seed, options={"task": task, "split": split})
                    done, success, length = False, False, 0
                    while not done:
                        _, _, success, truncated, _ = env.step(env.expert_action())
                        length += 1
                        done = success or truncated
                    successes += success
                    steps.append(length)
                results["success_rate"][task][split] = successes / episodes
                if split == "id":
                    results["mean_steps_id"][task] = round(float(np.mean(steps)), 1)
    finally:
        env.close()
    return results
