"""Offline RL and test-time steering on data that mixes expert and failed episodes (lift, ID split).

1. For each of ``num_setups`` initial states (ID seeds 30000..), record one scripted-expert episode and
   ``failed_per_setup`` episodes of a perturbed expert into MCAP bags with ``write_episode``: several attempts per
   setup, as on a real cell. The perturbed expert follows the expert but makes one of three operator mistakes, in
   turn: ``no_grasp`` (never closes the gripper), ``drop`` (opens it and stops while lifting), ``stall`` (stops
   moving after a few steps).
2. Train on the same mixed bags: ``bc`` (plain behaviour cloning, the baseline), ``calql`` (Cal-QL + BC, from the
   BC policy), ``recap`` (advantage-conditioned BC, from the BC policy) and ``value`` (a chunk Q-function for
   steering the BC policy).
3. Evaluate every policy with deterministic actions from the recorded setups' initial states (the acceptance
   comparison: the same seeds for every method) and from ``eval_episodes`` held-out ID seeds (0..), and the BC policy
   from the recorded setups with test-time steering (``budget`` candidates per decision, scored by the ``value``
   model; no weight change). The frozen-encoder policy barely generalises to unseen initial states from this little
   data (see ``bc`` on held-out seeds), which is why the comparison is made on the recorded setups.

Every method trains a ``frozen_encoder`` policy (``calql`` and ``recap`` train only that one). Writes
``results.json``, the learning curves and a bar chart into ``<results-dir>/offline_lift`` and the steering numbers into
``<results-dir>/steering_lift`` (``--results-dir``, default ``docs/results`` of the working directory: run it from the
repository root to update the committed results). Bags and checkpoints go to ``--work-dir`` (not committed).

    python -m rlvla_ros.training.offline_experiments --work-dir /tmp/offline_work
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer, apply_overrides
from rlvla_ros.algorithms.bc import BcTrainer
from rlvla_ros.algorithms.calql import CRITIC_DIR, CalQlTrainer
from rlvla_ros.algorithms.recap import RecapTrainer
from rlvla_ros.algorithms.value import ValueTrainer
from rlvla_ros.contract import OFFLINE_SETUP_SEED_START
from rlvla_ros.data import BagWriter, EpisodeRecord, write_episode
from rlvla_ros.policies import load_policy
from rlvla_ros.policies.chunk_q import ChunkQFunction
from rlvla_ros.rollouts.curves import plot_learning_curves
from rlvla_ros.rollouts.evaluation import evaluate, evaluate_with_steering
from rlvla_ros.sim import TabletopEnv
from rlvla_ros.training.experiments import expert_episode, scripted_episode
from rlvla_ros.training.jobs import run_job

FAILURES = ("no_grasp", "drop", "stall")


@dataclass
class OfflineExperimentConfig:
    """Settings of the offline RL / steering experiment."""

    work_dir: str = "/tmp/rlvla_offline_experiment"
    """Bags, job folders and checkpoints (large; not committed)."""
    results_dir: str = "docs/results"
    """Where ``offline_<task>/`` and ``steering_<task>/`` (results.json, curves, bar chart) are written."""
    task: str = "lift"
    """Task of the data and the evaluation."""
    num_setups: int = 40
    """Initial states (ID seeds 30000..) with recorded attempts."""
    failed_per_setup: int = 2
    """Perturbed-expert attempts per setup (failure modes in turn), besides one expert attempt."""
    image_size: int = 64
    """Camera image side of data, policies and evaluation."""
    chunk_size: int = 4
    """Action chunk horizon H."""
    bc_steps: int = 1500
    """BC gradient steps."""
    offline_steps: int = 1500
    """Cal-QL and RECAP updates (policy steps)."""
    value_steps: int = 2000
    """Updates of the steering Q-function."""
    eval_episodes: int = 40
    """Held-out evaluation episodes (ID seeds 0..eval_episodes - 1)."""
    budget: int = 8
    """Candidates per decision for steering."""
    steering_temperature: float = 1.0
    """Sampling temperature of the steering candidates."""
    num_envs: int = 8
    """Simulated environments stepped together in evaluation."""
    seed: int = 0
    """Seed of data perturbations and of every trainer."""


def perturbed_expert_episode(
    env: TabletopEnv, task: str, seed: int, failure: str, rng: np.random.Generator
) -> EpisodeRecord:
    """One episode of the expert making the operator mistake ``failure`` (see the module docstring)."""
    if failure not in FAILURES:
        raise ValueError(f"unknown failure {failure!r}; expected one of {FAILURES}")
    stall_step = int(rng.integers(3, 10))
    drop_after_close_steps = int(rng.integers(4, 8))
    closed_steps = 0

    def act(env: TabletopEnv, step: int) -> np.ndarray:
        nonlocal closed_steps
        action = env.expert_action()
        if failure == "no_grasp":
            action[4] = -1.0
        elif failure == "drop":
            closed_steps += int(action[4] > 0)
            if closed_steps > drop_after_close_steps:
                action = np.array([0.0, 0.0, 0.0, 0.0, -1.0], np.float32)
        elif step >= stall_step:
            action[:4] = 0.0
        return action

    return scripted_episode(env, task, "id", seed, act, f"{failure}-{task}-{seed}")


def record_mixed_bags(config: OfflineExperimentConfig, root: Path) -> dict:
    """Expert bag and failed bag under ``root``; returns their paths and success statistics."""
    env = TabletopEnv(task=None, image_size=config.image_size)
    rng = np.random.default_rng(config.seed)
    stats: dict = {}
    setups = range(OFFLINE_SETUP_SEED_START, OFFLINE_SETUP_SEED_START + config.num_setups)
    with BagWriter(root, prefix="expert") as writer:
        stamp_ns = time.time_ns()
        outcomes = []
        for seed in setups:
            episode = expert_episode(env, config.task, "id", seed)
            outcomes.append(episode.success)
            stamp_ns = write_episode(writer, episode, start_time_ns=stamp_ns)
        stats["expert"] = {"episodes": len(outcomes), "success_rate": float(np.mean(outcomes))}
    with BagWriter(root, prefix="failed") as writer:
        outcomes_by_failure: dict[str, list[bool]] = {failure: [] for failure in FAILURES}
        for i in range(config.num_setups * config.failed_per_setup):
            failure = FAILURES[i % len(FAILURES)]
            episode = perturbed_expert_episode(env, config.task, setups[i // config.failed_per_setup], failure, rng)
            episode.episode_id += f"-{i}"
            outcomes_by_failure[failure].append(episode.success)
            stamp_ns = write_episode(writer, episode, start_time_ns=stamp_ns)
        stats["perturbed"] = {
            failure: {"episodes": len(runs), "success_rate": float(np.mean(runs))}
            for failure, runs in outcomes_by_failure.items()
        }
    env.close()
    return stats


def run_trainer(trainer: Trainer, overrides: dict, datasets: list[Path], steps: int, output_dir: Path) -> JobContext:
    """Run one job to the end in ``output_dir`` (emptied first)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    context = JobContext(
        config=apply_overrides(trainer.config_class, overrides), output_dir=output_dir, steps=steps, datasets=datasets
    )
    run_job(trainer, context)
    return context


def run_experiment(config: OfflineExperimentConfig) -> dict:
    """Run every stage; returns (and writes) the results."""
    torch.set_num_threads(1)
    work = Path(config.work_dir)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    shutil.rmtree(work / "data", ignore_errors=True)
    data_stats = record_mixed_bags(config, work / "data")
    datasets = [work / "data"]
    timings["record_s"] = time.monotonic() - t0

    common = {"seed": config.seed, "tasks": [config.task], "image_size": config.image_size,
              "chunk_size": config.chunk_size, "policy_type": "frozen_encoder"}
    contexts: dict[str, JobContext] = {}
    t0 = time.monotonic()
    contexts["bc"] = run_trainer(BcTrainer(), common, datasets, config.bc_steps, work / "bc")
    timings["bc_s"] = time.monotonic() - t0
    bc_checkpoint = str((work / "bc" / "latest").resolve())
    from_bc = {**common, "init_checkpoint": bc_checkpoint}
    for name, trainer, steps in (
        ("calql", CalQlTrainer(), config.offline_steps),
        ("recap", RecapTrainer(), config.offline_steps),
        ("value", ValueTrainer(), config.value_steps),
    ):
        t0 = time.monotonic()
        overrides = {**from_bc, "sample_temperature": config.steering_temperature} if name == "value" else from_bc
        contexts[name] = run_trainer(trainer, overrides, datasets, steps, work / name)
        timings[f"{name}_s"] = time.monotonic() - t0

    setup_seeds = list(range(OFFLINE_SETUP_SEED_START, OFFLINE_SETUP_SEED_START + config.num_setups))
    held_out_seeds = list(range(config.eval_episodes))
    success: dict[str, float] = {}
    held_out: dict[str, float] = {}
    for name in ("bc", "calql", "recap"):
        t0 = time.monotonic()
        policy = load_policy(work / name / "latest")
        for seeds, results in ((setup_seeds, success), (held_out_seeds, held_out)):
            results[name] = evaluate(policy, [config.task], ["id"], seeds, num_envs=config.num_envs)[config.task]["id"]
        timings[f"eval_{name}_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    bc_policy = load_policy(bc_checkpoint)
    q_model = ChunkQFunction.from_pretrained(work / "value" / "latest")
    steering = evaluate_with_steering(
        bc_policy, q_model, [config.task], ["id"], setup_seeds, budget=config.budget,
        temperature=config.steering_temperature, num_envs=config.num_envs, seed=config.seed,
    )
    timings["eval_steering_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    calql_policy = load_policy(work / "calql" / "latest")
    calql_critic = ChunkQFunction.from_pretrained(work / "calql" / CRITIC_DIR)
    calql_steering = evaluate_with_steering(
        calql_policy, calql_critic, [config.task], ["id"], setup_seeds, budget=config.budget,
        temperature=config.steering_temperature, num_envs=config.num_envs, seed=config.seed,
    )
    timings["eval_calql_steering_s"] = time.monotonic() - t0

    evaluation = {"task": config.task, "split": "id", "deterministic": True,
                  "seeds": f"{setup_seeds[0]}..{setup_seeds[-1]} (the recorded setups' initial states)",
                  "episodes": len(setup_seeds),
                  "held_out_seeds": f"0..{config.eval_episodes - 1}", "held_out_episodes": config.eval_episodes}
    offline = {
        "config": asdict(config),
        "data": data_stats,
        "evaluation": evaluation,
        "success_rate": success,
        "success_rate_held_out_seeds": held_out,
        "improvement_points_over_bc": {k: 100.0 * (v - success["bc"]) for k, v in success.items() if k != "bc"},
        "final_metrics": {name: _final_metrics(ctx) for name, ctx in contexts.items()},
        "timings_s": timings,
        "cpu_threads": torch.get_num_threads(),
    }
    steered = {
        "config": asdict(config),
        "evaluation": {**evaluation, "deterministic": "without steering; steering samples candidates"},
        "budget_candidates": config.budget,
        "temperature": config.steering_temperature,
        "bc": {"without_steering": steering["policy"][config.task]["id"],
               "with_steering": steering["steered"][config.task]["id"]},
        "calql_with_own_critic": {"without_steering": calql_steering["policy"][config.task]["id"],
                                  "with_steering": calql_steering["steered"][config.task]["id"]},
        "timings_s": {k: timings[k] for k in ("eval_steering_s", "eval_calql_steering_s")},
    }
    results = Path(config.results_dir)
    offline_dir, steering_dir = results / f"offline_{config.task}", results / f"steering_{config.task}"
    offline_dir.mkdir(parents=True, exist_ok=True)
    steering_dir.mkdir(parents=True, exist_ok=True)
    _write_json(offline_dir / "results.json", offline)
    _write_json(steering_dir / "results.json", steered)
    for name, ctx in contexts.items():
        plot_learning_curves(ctx.history, offline_dir / f"{name}_learning_curve.png", title=name)
    _plot_bars(success, steered, config, offline_dir / "success.png")
    return {"offline": offline, "steering": steered}


def _final_metrics(context: JobContext) -> dict[str, float]:
    return {name: points[-1][1] for name, points in context.history.items()}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def _plot_bars(success: dict[str, float], steered: dict, config: OfflineExperimentConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {
        "BC": success["bc"],
        "Cal-QL+BC": success["calql"],
        "RECAP": success["recap"],
        f"BC + steering\n(N={config.budget})": steered["bc"]["with_steering"],
    }
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.bar(range(len(bars)), [100 * v for v in bars.values()], color=["grey", "tab:blue", "tab:green", "tab:orange"])
    ax.set_xticks(range(len(bars)), list(bars), fontsize=8)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"{config.task} ID from the {config.num_setups} recorded setups; data per setup: 1 expert + "
        f"{config.failed_per_setup} failed attempts", fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = OfflineExperimentConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    results = run_experiment(OfflineExperimentConfig(**vars(parser.parse_args(argv))))
    offline = results["offline"]
    print(json.dumps({"offline": offline["success_rate"], "held_out": offline["success_rate_held_out_seeds"],
                      "steering": results["steering"]["bc"],
                      "calql_steering": results["steering"]["calql_with_own_critic"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
