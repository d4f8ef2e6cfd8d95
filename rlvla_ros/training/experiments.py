"""The experiment that shows online RL improves a BC policy: expert bag -> BC -> eval -> RL -> eval.

1. Scripted-expert episodes of the chosen tasks (the tabletop's or the Panda's, :mod:`rlvla_ros.envs`) are recorded
   into an MCAP bag with ``write_episode`` (with ``--bc-from-lerobot`` also exported as a LeRobot v3.0 dataset).
2. ``bc`` trains a fresh policy from the bag (or the LeRobot dataset: the same policy); the demo count and BC steps
   are kept small on purpose, so BC is decent but imperfect.
3. The BC policy is evaluated on every split (fixed seeds ``0 .. eval_episodes - 1``, deterministic actions).
4. The recipe's RL algorithm (``ppo`` or ``grpo``) fine-tunes it online in simulation for ``rl_iterations``.
5. The best RL checkpoint (by the periodic ID evaluation) is evaluated on the same seeds as the BC policy.
6. Each rate gets its Wilson 95 % interval, RL - BC its Newcombe interval, per split and with the OOD splits pooled.

Every setting that changes the numbers comes from a recipe (``config/recipes/<name>.yaml``, the same files `rlvla
demo` and the learner service read); the command line only says where and how it runs. Writes ``results.json``
(every number with seeds and episode counts), the BC and RL learning curves and a bar chart of success per split
into ``output_dir``; the bag and the job folders go to ``work_dir``.

    python -m rlvla_ros.training.experiments --recipe ppo_end_to_end --output-dir /tmp/e2e/out --work-dir runs/e2e
    python -m rlvla_ros.training.experiments --algorithm grpo     # the documented experiment of that algorithm

``--bc-job-dir <earlier work_dir>/bc`` starts from a finished BC job of the same recipe instead of steps 1-2 (the
same recipe and seeds give the same BC), e.g. to run another RL configuration from one BC start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

from rlvla_ros.algorithms.base import METRICS_NAME, TRAINER_STATE_NAME
from rlvla_ros.contract import DEMO_SEED_START
from rlvla_ros.data import BagWriter, EpisodeRecord, export_lerobot, write_episode
from rlvla_ros.envs import family_of_tasks
from rlvla_ros.policies import load_policy
from rlvla_ros.rollouts.curves import plot_learning_curves
from rlvla_ros.rollouts.evaluation import EvalResults, evaluate
from rlvla_ros.rollouts.statistics import success_table
from rlvla_ros.rollouts.workers import ParallelSimRollouts
from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job
from rlvla_ros.training.recipes import Recipe, load_recipe


ALGORITHM_RECIPES = {"ppo": "ppo_end_to_end", "grpo": "grpo_lift"}
"""The recipe ``--algorithm`` runs: the documented experiment of each online algorithm (``docs/results/``)."""


@dataclass
class ExperimentConfig:
    """One BC -> RL experiment: a recipe (``config/recipes/<name>.yaml``: every setting that changes the numbers) and
    where and how it runs."""

    recipe: Recipe
    """Tasks, policy, demonstrations, BC, RL (its iteration count) and the evaluation's episode count."""
    output_dir: str = "runs/experiment/results"
    """Where results.json and the PNG curves go (small files only)."""
    work_dir: str = "runs/experiment"
    """Where the demonstration bag and the BC / RL job folders (checkpoints, TensorBoard) go."""
    eval_splits: list[str] = field(default_factory=list)
    """Splits of the before/after evaluation, ``id`` first; empty: every split of the recipe's robot."""
    num_envs: int = 16
    """Simulated environments the evaluation steps together (deterministic: it does not change the rates)."""
    eval_workers: int = 0
    """Extra processes that run a share of each before/after evaluation (deterministic: the rates stay the same)."""
    rl_processes: int = 1
    """Processes of the online RL job: above 1 it runs data-parallel under torchrun, each process collecting its
    own ``episodes_per_iteration`` rollouts on its own core."""
    final_eval: bool = True
    """Also evaluate the last RL checkpoint on the test seeds when it is not the best one; False saves that
    evaluation (the table then has no ``rl_final`` row)."""
    bc_from_lerobot: bool = False
    """Export the demonstration bag as a LeRobot v3.0 dataset and train BC from that (the same policy as from the
    bag: the export is lossless)."""
    bc_job_dir: str = ""
    """A finished BC job folder of this recipe (an earlier run's ``<work_dir>/bc``) whose ``best`` checkpoint is the
    start, instead of recording the demonstrations and training BC again (the same recipe and seeds give the same
    BC); empty: record and train."""

    def __post_init__(self) -> None:
        if self.rl_processes < 1 or self.eval_workers < 0:
            raise ValueError(f"rl_processes must be >= 1 and eval_workers >= 0, got {self.rl_processes} and "
                             f"{self.eval_workers}")
        family = family_of_tasks(self.recipe.tasks, self.eval_splits)
        self.eval_splits = list(self.eval_splits or family.splits)
        if self.eval_splits[0] != "id":
            raise ValueError(f"eval_splits must start with id, got {self.eval_splits}")
        if self.bc_job_dir and not ((Path(self.bc_job_dir) / METRICS_NAME).is_file()
                                    and (Path(self.bc_job_dir) / "best").is_dir()):
            raise ValueError(f"bc_job_dir {self.bc_job_dir} is not a finished BC job (no {METRICS_NAME} and best/)")


def scripted_episode(
    env: gym.Env, task: str, split: str, seed: int, act: Callable[[gym.Env, int], np.ndarray], episode_id: str
) -> EpisodeRecord:
    """One episode driven by ``act(env, step)`` (e.g. the scripted expert), recorded as the graph would see it."""
    obs, _ = env.reset(seed=seed, options={"task": task, "split": split})
    observations, actions, rewards, successes = [], [], [], []
    done, terminated = False, False
    while not done:
        action = act(env, len(actions))
        observations.append(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        successes.append(info["is_success"])
        done = terminated or truncated
    return EpisodeRecord.from_steps(
        observations, actions, rewards, episode_id=episode_id, successes=np.asarray(successes),
        task=task, split=split, seed=seed, termination_reason="success" if terminated else "timeout",
        proprio_names=env.unwrapped.proprio_names,
    )


def expert_episode(env: gym.Env, task: str, split: str, seed: int) -> EpisodeRecord:
    """One scripted-expert episode."""
    return scripted_episode(env, task, split, seed, lambda env, step: env.expert_action(),
                            f"expert-{task}-{split}-{seed}")


def record_expert_bag(
    root: Path, tasks: Sequence[str], num_demos: int, image_size: int, seed_start: int = DEMO_SEED_START
) -> tuple[Path, float]:
    """Record ``num_demos`` expert episodes per task (ID split) into one MCAP bag under ``root``.

    Returns the bag path and the experts' success rate."""
    env = family_of_tasks(tasks).make(image_size)
    successes = []
    with BagWriter(root, prefix="expert") as writer:
        stamp_ns = time.time_ns()
        for task in tasks:
            for i in range(num_demos):
                episode = expert_episode(env, task, "id", seed_start + i)
                successes.append(episode.success)
                stamp_ns = write_episode(writer, episode, start_time_ns=stamp_ns)
        bags = writer.bag_paths
    env.close()
    return bags[0], float(np.mean(successes))


def _overrides_yaml(overrides: dict) -> str:
    # Not JSON: json.dumps writes 3e-05, which YAML 1.1 reads back as a string.
    return yaml.safe_dump(overrides, default_flow_style=True, width=2**16)


def run_experiment(config: ExperimentConfig) -> dict:
    """Run the whole experiment; returns (and writes) the results dict."""
    torch.set_num_threads(1)
    recipe = config.recipe
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(config.work_dir)
    timings: dict[str, float] = {}
    if config.bc_job_dir:
        bc_dir = Path(config.bc_job_dir)
        bc_metrics = json.loads((bc_dir / METRICS_NAME).read_text())["final"]
        expert_success = None
    else:
        t0 = time.monotonic()
        data_dir = work / "demos"
        shutil.rmtree(data_dir, ignore_errors=True)
        bag, expert_success = record_expert_bag(data_dir, recipe.tasks, recipe.demo_episodes, recipe.image_size)
        bc_data = bag
        if config.bc_from_lerobot:
            bc_data = work / "demos-lerobot"
            shutil.rmtree(bc_data, ignore_errors=True)
            export_lerobot([bag], bc_data, robot_type=family_of_tasks(recipe.tasks).name)
        timings["record_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        bc_steps, bc_overrides = recipe.job("bc")
        bc_trainer, bc_context = prepare_job(
            JobRequest("bc", [str(bc_data)], bc_steps, _overrides_yaml(bc_overrides)), _fresh(work / "bc")
        )
        bc_metrics = run_job(bc_trainer, bc_context)
        timings["bc_s"] = time.monotonic() - t0
        bc_dir = bc_context.output_dir
    bc_checkpoint = bc_dir / "best"

    seeds = list(range(recipe.eval_episodes))
    t0 = time.monotonic()
    before = _evaluate(bc_checkpoint, config, seeds)
    timings["eval_bc_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    rl_iterations, rl_overrides = recipe.job(recipe.rl_algorithm)
    rl_dir = _fresh(work / recipe.rl_algorithm)
    rl_config, rl_history, rl_metrics = _run_online_job(
        JobRequest(recipe.rl_algorithm, [], rl_iterations,
                   _overrides_yaml({**rl_overrides, "init_checkpoint": str(bc_checkpoint.resolve())})),
        rl_dir, config.rl_processes
    )
    timings["rl_s"] = time.monotonic() - t0
    rl_checkpoint = rl_dir / "best"

    t0 = time.monotonic()
    after = _evaluate(rl_checkpoint, config, seeds)
    timings["eval_rl_s"] = time.monotonic() - t0
    # The final weights too (with anneal_lr they are where the run settles; `best/` may be a noisy validation peak).
    # `best/` stays the reported result: it was chosen without the test seeds.
    best_step, final_step = _checkpoint_step(rl_checkpoint), _checkpoint_step(rl_dir / "latest")
    if final_step == best_step:
        final = after
    else:
        final = _evaluate(rl_dir / "latest", config, seeds) if config.final_eval else None

    iterations = rl_history.get("rollout/success_rate", [])
    elapsed_s = dict(rl_history.get("time_s", []))
    first_split = rl_config.eval_splits[0]
    # The periodic evaluation against wall-clock time: what shorter budgets (e.g. the demo's) would have reached.
    eval_curve = [
        {"iteration": step, "time_s": elapsed_s.get(step, 0.0), f"success_{first_split}": value}
        for step, value in rl_history.get(f"eval/{first_split}", [])
    ]
    results = {
        "config": asdict(config),
        "expert_success_rate": expert_success,
        "demos": None if config.bc_job_dir else {  # a reused BC job's demos are in its own results
            "episodes_per_task": recipe.demo_episodes, "split": "id", "seeds": f"{DEMO_SEED_START}..",
            "bc_dataset": str(bc_data), "format": "lerobot v3.0" if config.bc_from_lerobot else "mcap bag"},
        "evaluation": {
            "seeds": f"0..{recipe.eval_episodes - 1}", "episodes_per_task_and_split": recipe.eval_episodes,
            "deterministic": True,
            "intervals": "95 %: Wilson score for a rate, Newcombe hybrid score for a difference (independent "
                         "samples: conservative for the shared seeds); ood pools the ood splits",
        },
        "table": _table(before, after, final, config),
        "bc": {"success": before, "final_metrics": bc_metrics, "checkpoint": str(bc_checkpoint.resolve()),
               "job_dir": str(bc_dir.resolve()), "reused": bool(config.bc_job_dir)},
        "rl": {
            "algorithm": recipe.rl_algorithm,
            "success": after,
            "final_metrics": rl_metrics,
            "iterations": len(iterations),
            "processes": config.rl_processes,
            "training_episodes": _training_episodes(rl_config, len(iterations), config.rl_processes),
            "best_checkpoint": str(rl_checkpoint.resolve()),
            "best_eval_step": best_step,
            "periodic_eval": {"episodes": rl_config.eval_episodes, "curve": eval_curve},
            "final_checkpoint": {"step": final_step, "success": final,
                                 "improvement_points": _improvement_points(before, final) if final else None},
        },
        "improvement_points": _improvement_points(before, after),
        "timings_s": timings,
        "cpu_threads": torch.get_num_threads(),
    }
    _write_json(out / "results.json", results)
    shutil.copy(bc_dir / "learning_curve.png", out / "bc_learning_curve.png")
    shutil.copy(rl_dir / "learning_curve.png", out / f"{recipe.rl_algorithm}_learning_curve.png")
    plot_learning_curves(
        {k: v for k, v in rl_history.items() if k.startswith(("eval/", "rollout/success"))},
        out / f"{recipe.rl_algorithm}_success_curve.png",
        title=f"{recipe.rl_algorithm} from BC: success rates",
    )
    _plot_comparison(results["table"], config, out / "success_by_split.png")
    return results


def _run_online_job(request: JobRequest, output_dir: Path, processes: int) -> tuple[Any, dict, dict[str, float]]:
    """Run the online job in this process, or under torchrun with ``processes`` ranks; returns its config, logged
    history (``{name: [(step, value), ...]}``) and final metrics."""
    if processes == 1:
        trainer, context = prepare_job(request, output_dir)
        metrics = run_job(trainer, context)
        return context.config, context.history, metrics
    _, context = prepare_job(request, output_dir, write_files=False)  # refuse a bad request before starting ranks
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        "-m", "rlvla_ros.training", "--algorithm", request.algorithm, "--steps", str(request.steps),
        "--overrides", request.overrides_yaml, "--output-dir", str(output_dir),
    ]
    subprocess.run(command, check=True)
    logged = json.loads((output_dir / METRICS_NAME).read_text())
    history = {name: [tuple(point) for point in points] for name, points in logged["history"].items()}
    return context.config, history, logged["final"]


def _training_episodes(config, iterations: int, processes: int) -> str:
    """Description of how many episodes an RL run sampled (dynamic sampling makes GRPO's count vary)."""
    ranks = f"{processes} processes x " if processes > 1 else ""
    if hasattr(config, "group_size"):
        return (
            f"{iterations} iterations x {ranks}up to {config.max_sampling_rounds} rounds x "
            f"{config.groups_per_iteration} groups x {config.group_size} episodes"
        )
    return f"{iterations} iterations x {ranks}{config.episodes_per_iteration} episodes"


def _table(before: EvalResults, after: EvalResults, final: EvalResults | None, config: ExperimentConfig) -> dict:
    """Success rates of BC, RL (best) and RL (final, when evaluated) per split and pooled OOD, with their intervals,
    and their differences from BC."""
    tasks, splits = config.recipe.tasks, config.eval_splits
    policies = {"bc": before, "rl": after} | ({"rl_final": final} if final is not None else {})
    by_split = {name: {split: float(np.mean([rates[task][split] for task in tasks])) for split in splits}
                for name, rates in policies.items()}
    ood = [split for split in splits if split != "id"]
    groups = {split: [split] for split in splits} | ({"ood": ood} if ood else {})
    return success_table(by_split, config.recipe.eval_episodes * len(tasks), groups,
                         {f"{name}_minus_bc": (name, "bc") for name in policies if name != "bc"})


def _improvement_points(before: EvalResults, after: EvalResults) -> dict[str, dict[str, float]]:
    return {task: {split: 100.0 * (after[task][split] - rate) for split, rate in splits.items()}
            for task, splits in before.items()}


def _checkpoint_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / TRAINER_STATE_NAME).read_text())["step"]


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _evaluate(checkpoint: Path, config: ExperimentConfig, seeds: list[int]) -> EvalResults:
    policy = load_policy(checkpoint)
    if not config.eval_workers:
        return evaluate(policy, config.recipe.tasks, config.eval_splits, seeds, num_envs=config.num_envs)
    rollouts = ParallelSimRollouts(policy, config.num_envs, policy.config.image_size, config.eval_workers,
                                   seed=config.recipe.seed)
    try:
        return evaluate(policy, config.recipe.tasks, config.eval_splits, seeds, rollouts=rollouts)
    finally:
        rollouts.close()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def _plot_comparison(table: dict, config: ExperimentConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*config.eval_splits, *(["ood"] if "ood" in table["bc"] else [])]
    x = np.arange(len(columns))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for offset, (name, label) in zip((-0.2, 0.2), (("bc", "BC"), ("rl", f"BC + {config.recipe.rl_algorithm}"))):
        rates = np.array([table[name][c] for c in columns]) * 100
        intervals = np.array([table[name][f"{c}_ci95"] for c in columns]).T * 100
        ax.bar(x + offset, rates, 0.4, yerr=[rates - intervals[0], intervals[1] - rates], capsize=3, label=label)
    ax.set_xticks(x, columns, fontsize=8)
    ax.set_ylabel("success % (95 % Wilson)")
    ax.set_ylim(0, 100)
    tasks = config.recipe.tasks
    ax.set_title(f"{', '.join(tasks)}: {config.recipe.eval_episodes} episodes per split (seeds 0..)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ExperimentConfig
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--recipe", help="a recipe name in config/recipes/ or a YAML file (default: the ppo one)")
    which.add_argument("--algorithm", choices=sorted(ALGORITHM_RECIPES),
                       help="the recipe of that algorithm's experiment: "
                            + ", ".join(f"{name}: {recipe}" for name, recipe in ALGORITHM_RECIPES.items()))
    parser.add_argument("--output-dir", default=defaults.output_dir)
    parser.add_argument("--work-dir", default=defaults.work_dir)
    parser.add_argument("--eval-splits", nargs="+", default=[],
                        help="id first (default: every split of the recipe's robot)")
    parser.add_argument("--num-envs", type=int, default=defaults.num_envs)
    parser.add_argument("--eval-workers", type=int, default=defaults.eval_workers,
                        help="extra processes sharing the before/after evaluations (about one per spare core)")
    parser.add_argument("--rl-processes", type=int, default=defaults.rl_processes,
                        help="ranks of the RL job (torchrun); rollouts per iteration scale with it")
    parser.add_argument("--no-final-eval", dest="final_eval", action="store_false",
                        help="do not evaluate the last RL checkpoint on the test seeds when it is not the best")
    parser.add_argument("--bc-from-lerobot", action="store_true",
                        help="export the demonstrations as a LeRobot v3.0 dataset and train BC from it")
    parser.add_argument("--bc-job-dir", default="",
                        help="start from this finished BC job of the recipe (an earlier run's <work-dir>/bc) instead "
                             "of recording and training BC again")
    args = parser.parse_args(argv)
    try:
        config = ExperimentConfig(
            recipe=load_recipe(args.recipe or ALGORITHM_RECIPES[args.algorithm or "ppo"]), output_dir=args.output_dir,
            work_dir=args.work_dir, eval_splits=args.eval_splits, num_envs=args.num_envs, eval_workers=args.eval_workers,
            rl_processes=args.rl_processes, final_eval=args.final_eval, bc_from_lerobot=args.bc_from_lerobot,
            bc_job_dir=args.bc_job_dir,
        )
    except ValueError as error:
        parser.error(str(error))
    results = run_experiment(config)
    print(json.dumps({k: results[k] for k in ("expert_success_rate", "improvement_points", "timings_s")}, indent=2))
    print(json.dumps(results["table"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
