"""`rlvla bench lockstep`: the launched multi-process sim graph in lock-step with the scripted expert driving, as
`rlvla demo` records its demonstrations (the demo recipe's graph settings), run twice on the same seeds.

Reports how fast the graph steps (episode steps between the first START and the last END in the bag) against the
in-process environment stepping the same expert on the same seeds in the same run, and how many episodes came out
identical in both runs (every image, proprioception, action and reward, the length and the outcome) and equal to
the in-process expert's actions; `differences` says, per seed that differs, which fields do and from which step.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rclpy

from rlvla_ros.training.recipes import Recipe, load_recipe


def benchmark_lockstep(episodes: int = 20, image_size: int = 64, task: str = "lift") -> dict:
    """Run `episodes` expert episodes through the launched graph twice and once in process; see the module."""
    if episodes < 1 or image_size < 8:
        raise ValueError("episodes must be >= 1 and image_size >= 8")
    recipe = replace(load_recipe("demo"), tasks=[task], image_size=image_size)
    with tempfile.TemporaryDirectory(prefix="rlvla_lockstep_bench_") as tmp, rclpy.init():
        runs = [_graph_run(recipe, episodes, Path(tmp) / f"run{k}") for k in range(2)]
    (first, steps, seconds), (second, _, _) = runs
    seeds = sorted(set(first) | set(second))
    differences = {seed: _differences(first.get(seed), second.get(seed)) for seed in seeds}
    in_process, env_steps_per_s = _in_process_expert(task, image_size, seeds)
    graph_steps_per_s = steps / seconds if seconds > 0 else 0.0
    return {
        "episodes": episodes,
        "image_size": image_size,
        "graph_steps": steps,
        "graph_steps_per_s": round(graph_steps_per_s, 2),
        "env_steps_per_s": round(env_steps_per_s, 2),
        "graph_over_env": round(graph_steps_per_s / env_steps_per_s, 4),
        "recorded_episodes": [len(first), len(second)],
        "identical_episodes": sum(not differences[seed] for seed in seeds),
        "equal_to_in_process_expert": sum(
            seed in first and first[seed].actions.shape == in_process[seed].shape
            and np.allclose(first[seed].actions, in_process[seed], atol=1e-5) for seed in seeds),
        "differences": {str(seed): what for seed, what in sorted(differences.items()) if what},
    }


def _graph_run(recipe: Recipe, episodes: int, out: Path) -> tuple[dict, int, float]:
    """Record `episodes` expert episodes through a freshly launched graph: ({seed: episode}, steps, seconds from
    the first START to the last END)."""
    from rlvla_ros.cli.demo import _GraphClient, expert_graph
    from rlvla_ros.data import episodes_from_bag, open_bag

    launch = expert_graph(recipe, episodes, out, out / "config", out / "bags", out / "graph.log")
    with launch, _GraphClient(launch) as client:
        client.wait_for_episodes(episodes)
        (bag,) = client.stop_recording()
    recorded = {episode.seed: episode for episode in episodes_from_bag(bag)}
    with open_bag(bag) as reader:
        events = [stamp for connection, stamp, _ in reader.messages()
                  if connection.topic.endswith("/episode_event")]
    seconds = (max(events) - min(events)) * 1e-9 if events else 0.0
    return recorded, sum(len(e.actions) for e in recorded.values()), seconds


def _in_process_expert(task: str, image_size: int, seeds: list[int]) -> tuple[dict[int, np.ndarray], float]:
    """The expert's actions per seed in the in-process env, and that env's steps/s (rendering included)."""
    from rlvla_ros.sim import TabletopEnv

    env = TabletopEnv(task=None, image_size=image_size)
    actions: dict[int, np.ndarray] = {}
    steps, started = 0, time.perf_counter()
    try:
        for seed in seeds:
            env.reset(seed=seed, options={"task": task, "split": "id"})
            done, taken = False, []
            while not done:
                action = env.expert_action()
                _, _, success, truncated, _ = env.step(action)
                taken.append(np.asarray(action, dtype=np.float32))
                done = success or truncated
            actions[seed] = np.stack(taken)
            steps += len(taken)
    finally:
        env.close()
    return actions, steps / (time.perf_counter() - started)


def _differences(a, b) -> list[str]:
    """What differs between two recordings of one seed: each field with the first step where it does; [] if none."""
    if a is None or b is None:
        return [f"missing in the {'first' if a is None else 'second'} run"]
    found = [] if a.instruction == b.instruction else ["instruction"]
    for name in ("images", "proprio", "actions", "rewards", "successes"):
        x, y = getattr(a, name), getattr(b, name)
        if x.shape[1:] != y.shape[1:]:
            found.append(f"{name}: shapes {x.shape} and {y.shape}")
            continue
        steps = min(len(x), len(y))
        unequal = np.flatnonzero([not np.array_equal(x[i], y[i]) for i in range(steps)])
        if unequal.size or len(x) != len(y):
            first_step = int(unequal[0]) if unequal.size else steps
            found.append(f"{name}: from step {first_step} (lengths {len(x)} and {len(y)})")
    return found
