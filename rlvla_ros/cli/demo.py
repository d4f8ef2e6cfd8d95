"""`rlvla demo`: the main job, headless on a CPU, through the ROS graph end to end.

1. bring up the simulated graph (`launch/sim.launch.yaml`, lock-step clock) with the scripted expert on the safety
   filter's teleop input, and record its demonstrations to a rosbag2 (MCAP) bag;
2. bring the graph up again with the policy in control; train behaviour cloning from the bag through the learner's
   `start_finetune` service (the learner hands the best checkpoint to the running policy node), and let the BC
   policy run episodes on the graph, recorded as the robot's own data (successes and failures);
3. evaluate BC on the in-distribution split and the out-of-distribution splits;
4. run online RL (PPO from the BC policy) through the same service, and evaluate it;
5. train a chunk Q-function on the RL policy's own features through the service, from the recorded bags and the RL
   policy's own simulated episodes (its successes and failures), and evaluate RL with test-time steering (the mode
   or, where every critic agrees, a better sample);
6. print a table of success rates and their differences with 95 % intervals (:mod:`rlvla_ros.rollouts.statistics`)
   and, as the last line, the same table as one JSON object.

Every setting comes from a recipe (``config/recipes/demo.yaml`` by default); the learner reads each job's settings
from the same file. Evaluations run in-process on the same environment code, many episodes at once (plain ones
shared with a rollout worker process), on fixed seeds disjoint from the demonstration and training seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rlvla_ros.cli.doctor import run_checks
from rlvla_ros.contract import DEMO_SEED_START
from rlvla_ros.rollouts.statistics import success_table as intervals_table
from rlvla_ros.training.recipes import Recipe, load_recipe

OOD_SPLITS = ("ood_color", "ood_position", "ood_distractor", "ood_visual")
DIFFERENCES = {"rl_minus_bc": ("rl", "bc"), "steering_minus_rl": ("rl_steering", "rl")}
"""Differences in the table: key -> (minuend, subtrahend)."""
TABLE_KEYS = ("bc", "rl", "rl_steering", *DIFFERENCES)
"""The keys of the JSON last line."""


@dataclass
class DemoConfig:
    """The main job: a recipe (``config/recipes/demo.yaml`` by default) and where its files go."""

    recipe: Recipe
    """Every setting of the run; its budgets are counts, so the same recipe gives the same updates anywhere."""
    output_dir: str = "runs/demo"
    """Bags, configs, job folders, curves and results.json go here (replaced on each run)."""

    def __post_init__(self) -> None:
        stages = ("graph_policy_episodes", "value_steps", "steering_candidates")
        absent = [key for key in stages if getattr(self.recipe, key) <= 0]
        if absent:
            raise ValueError(f"recipe {self.recipe.path}: the demo needs {', '.join(absent)} > 0")


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("demo", help="run the main job end to end (sim graph, BC, RL, steering)")
    parser.add_argument("--output-dir", default=DemoConfig.output_dir, help="default: %(default)s")
    parser.add_argument("--recipe", default="demo",
                        help="a recipe name in config/recipes/ or a YAML file (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="the demo_quick recipe: tiny budgets, checks every stage in a few minutes")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    try:
        config = DemoConfig(load_recipe("demo_quick" if args.quick else args.recipe), output_dir=args.output_dir)
    except ValueError as error:
        print(f"rlvla demo: {error}")
        return 2
    failed = [result for result in run_checks() if not result.ok]
    for result in failed:
        print(f"environment: {result.name} failed: {result.detail}")
    if failed:
        return 1
    results = run_demo(config)
    print(format_table(results))
    print(json.dumps({name: results[name] for name in TABLE_KEYS}))
    return 0


def run_demo(config: DemoConfig) -> dict:
    """Run every stage; returns the results (also written to `<output_dir>/results.json`)."""
    import rclpy
    import torch

    torch.set_num_threads(1)
    recipe = config.recipe
    out = Path(config.output_dir).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    timings: dict[str, float] = {}
    from_recipe = {"recipe": recipe.path}  # the learner reads each job's settings from the same file
    rclpy.init()
    try:
        with _stage("record expert demonstrations through the graph", timings):
            expert_bag = _record_expert_demonstrations(recipe, out)
        graph = _learning_graph(recipe, out)
        with graph, _GraphClient(graph) as client:
            with _stage("behaviour cloning through the learner service", timings):
                bc = client.fine_tune("bc", [expert_bag], from_recipe)
            with _stage("BC policy episodes on the graph, recorded", timings):
                graph_bc = client.run_episodes(recipe.graph_policy_episodes)
                policy_bags = client.stop_recording()
            with _stage("evaluate BC", timings):
                bc_success = _evaluate(recipe, bc)
            with _stage(f"online RL ({recipe.rl_algorithm}) through the learner service", timings):
                rl = client.fine_tune(recipe.rl_algorithm, [], {**from_recipe, "init_checkpoint": bc})
            with _stage("evaluate RL", timings):
                rl_success = _evaluate(recipe, rl)
            with _stage("chunk Q-function from the recorded bags through the learner service", timings):
                q_model = client.fine_tune("value", [expert_bag, *policy_bags], {**from_recipe, "init_checkpoint": rl})
            with _stage("evaluate RL with test-time steering", timings):
                steered_success = _evaluate(recipe, rl, steering_model=q_model)
        for algorithm, job_id in client.job_ids.items():
            shutil.copy(out / "learner" / job_id / "learning_curve.png", out / f"{algorithm}_learning_curve.png")
    finally:
        rclpy.try_shutdown()
    episodes = recipe.eval_episodes * len(recipe.tasks)
    results = {
        **success_table({"bc": bc_success, "rl": rl_success, "rl_steering": steered_success}, episodes),
        "graph_bc_episodes": graph_bc,
        "by_split": {"bc": bc_success, "rl": rl_success, "rl_steering": steered_success},
        "config": asdict(config),
        "evaluation": {"seeds": f"0..{recipe.eval_episodes - 1}", "episodes_per_task_and_split": recipe.eval_episodes,
                       "splits": ["id", *OOD_SPLITS],
                       "intervals": "95 %: Wilson score for a rate, Newcombe hybrid score for a difference "
                                    "(independent samples: conservative for the shared seeds)"},
        "checkpoints": {"bc": bc, "rl": rl, "steering_q": q_model},
        "timings_s": timings,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def success_table(by_split: dict[str, dict[str, float]], episodes: int) -> dict:
    """The table of :data:`TABLE_KEYS` from each policy's success rate per split (``episodes`` per split): rates with
    their 95 % intervals, and the differences RL - BC and RL+steering - RL with theirs. OOD pools the four ood_*
    splits (``4 * episodes`` episodes)."""
    return intervals_table(by_split, episodes, {"id": ["id"], "ood": list(OOD_SPLITS)}, DIFFERENCES)


def format_table(results: dict) -> str:
    """The results as a fixed-width table: rates and differences with their 95 % intervals."""
    rows = [f"{'':<16}{'ID':>6}{'95% interval':>17}{'OOD':>8}{'95% interval':>17}{'episodes':>10}"]
    for name, label in (("bc", "BC"), ("rl", "RL"), ("rl_steering", "RL+steering")):
        row = results[name]
        rows.append(f"{label:<16}{row['id']:>6.2f}{_format_interval(row['id_ci95'], False):>17}"
                    f"{row['ood']:>8.2f}{_format_interval(row['ood_ci95'], False):>17}{row['episodes']:>10}")
    for key, label in (("rl_minus_bc", "RL - BC"), ("steering_minus_rl", "steering - RL")):
        row = results[key]
        rows.append(f"{label:<16}{row['id']:>+6.2f}{_format_interval(row['id_ci95'], True):>17}"
                    f"{row['ood']:>+8.2f}{_format_interval(row['ood_ci95'], True):>17}")
    return "\n".join(rows)


def _format_interval(interval: list[float], signed: bool) -> str:
    low, high = interval
    return f"[{low:+.2f}, {high:+.2f}]" if signed else f"[{low:.2f}, {high:.2f}]"


EXPERT_TOPIC = "sim/expert_action"
"""The sim bridge's scripted expert, remapped onto the safety filter's teleop input for demonstrations."""


def _config_overrides(recipe: Recipe, **episode_manager) -> dict:
    from rlvla_ros.sim.tasks import TASKS

    return {
        "sim_bridge": {"image_size": recipe.image_size},
        "perception": {"image_size": recipe.image_size},
        "policy": {"model": recipe.policy_type, "horizon": recipe.chunk_size, "image_size": recipe.image_size},
        "episode_manager": {"tasks": recipe.tasks, "splits": ["id"],
                            "max_steps": [TASKS[task].max_steps for task in recipe.tasks], **episode_manager},
    }


def _launch_arguments(config_dir: Path, out: Path, **extra: str) -> dict[str, str]:
    return {"clock_mode": "lockstep", "watchdog_timeout_s": "60.0", "config_dir": str(config_dir),
            "learner_output_dir": str(out / "learner"), "data_root": str(out), **extra}


def expert_graph(recipe: Recipe, episodes: int, out: Path, config_dir: Path, bag_dir: Path, log_path: Path):
    """The lock-step sim graph that records `episodes` scripted-expert demonstrations of the recipe's tasks (seeds
    from DEMO_SEED_START, clear of the evaluation and RL training seeds) into `bag_dir`: the bridge's expert on the safety filter's teleop input, and no
    policy node, whose chunks the teleop input would override; a BackgroundLaunch to enter."""
    from rlvla_ros.launching.background import BackgroundLaunch
    from rlvla_ros.ros.param_files import write_config_overlay

    overrides = _config_overrides(recipe, num_episodes=episodes, base_seed=DEMO_SEED_START,
                                  required_publishers=["reward", EXPERT_TOPIC])
    return BackgroundLaunch(_sim_launch_file(), _launch_arguments(
        write_config_overlay(config_dir, overrides), out, expert="true", policy="false", teleop_topic=EXPERT_TOPIC,
        record="true", bag_dir=str(bag_dir)), log_path)


def _record_expert_demonstrations(recipe: Recipe, out: Path) -> str:
    episodes = recipe.demo_episodes * len(recipe.tasks)
    launch = expert_graph(recipe, episodes, out, out / "config_expert", out / "bags" / "expert",
                          out / "logs" / "expert_graph.log")
    with launch, _GraphClient(launch) as client:
        summary = client.wait_for_episodes(episodes)
        print(f"  {summary['episodes']} expert episodes, success rate {summary['success_rate']:.2f}")
        (bag,) = client.stop_recording()
    return bag


def _learning_graph(recipe: Recipe, out: Path):
    from rlvla_ros.launching.background import BackgroundLaunch
    from rlvla_ros.ros.param_files import write_config_overlay

    config_dir = write_config_overlay(out / "config_learning", _config_overrides(recipe, auto_run=False))
    return BackgroundLaunch(_sim_launch_file(), _launch_arguments(
        config_dir, out, record="true", bag_dir=str(out / "bags" / "policy")), out / "logs" / "learning_graph.log")


def _sim_launch_file() -> Path:
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("rlvla_ros")) / "launch" / "sim.launch.yaml"


def _evaluate(recipe: Recipe, checkpoint: str, steering_model: str = "") -> dict[str, float]:
    """Success rate per split (averaged over tasks)."""
    from rlvla_ros.policies import load_policy
    from rlvla_ros.rollouts.evaluation import evaluate

    policy = load_policy(checkpoint)
    num_envs = min(16, recipe.eval_episodes)
    choose_chunk, rollouts = None, None
    if steering_model:
        from rlvla_ros.policies.chunk_q import ChunkQFunction
        from rlvla_ros.policies.steering import steering_hook

        choose_chunk = steering_hook(policy, ChunkQFunction.from_pretrained(steering_model),
                                     recipe.steering_candidates, recipe.steering_temperature, recipe.steering_margin)
    else:  # the steering hook is a closure in this process; plain evaluation shares the episodes with a worker
        from rlvla_ros.rollouts.workers import ParallelSimRollouts

        rollouts = ParallelSimRollouts(policy, num_envs, recipe.image_size, workers=1, seed=recipe.seed)
    try:
        # Steering samples its candidates in this process: from the recipe's seed, not from whatever this process
        # drew in earlier stages, so that two demos print the same table.
        results = evaluate(policy, recipe.tasks, ["id", *OOD_SPLITS], range(recipe.eval_episodes),
                           num_envs=num_envs, choose_chunk=choose_chunk, rollouts=rollouts, seed=recipe.seed)
    finally:
        if rollouts is not None:
            rollouts.close()
    return {split: sum(results[task][split] for task in recipe.tasks) / len(recipe.tasks)
            for split in ["id", *OOD_SPLITS]}


@contextlib.contextmanager
def _stage(title: str, timings: dict[str, float]):
    """Print a stage's start and duration; record the duration in `timings`."""
    print(f"[demo] {title} ...", flush=True)
    started = time.monotonic()
    yield
    timings[title] = round(time.monotonic() - started, 1)
    print(f"[demo] {title}: done in {timings[title]:.0f} s", flush=True)


class _GraphClient:
    """The demo's own node on a launched graph: learner jobs, episodes, recording."""

    def __init__(self, launch, namespace: str = "/rlvla") -> None:
        self.launch = launch
        self.namespace = namespace
        self.job_ids: dict[str, str] = {}
        """Algorithm -> id of its (last) job."""

    def __enter__(self) -> _GraphClient:
        from rlvla_ros.ros.commander import FineTuneCommander

        self.commander = FineTuneCommander(f"{self.namespace}/learner", node_name="rlvla_demo")
        return self

    def __exit__(self, *exc_info) -> None:
        self.commander.destroy_node()

    def fine_tune(self, algorithm: str, datasets: list[str], overrides: dict) -> str:
        """Run a job (its steps from the recipe in ``overrides``) to completion with a progress bar; returns its
        best checkpoint (offline jobs, which have no score to rank checkpoints by, their latest)."""
        from rlvla_ros.cli.finetune import ProgressBar, format_status
        from rlvla_ros.msg import FineTuneStatus

        job = self.commander.start_finetune(algorithm, datasets, 0, overrides, timeout_s=120.0)
        if not job.accepted:
            raise RuntimeError(f"the learner refused {algorithm}: {job.message}\n{self.launch.log_tail()}")
        self.job_ids[algorithm] = job.job_id
        final = self.commander.wait_for_job(job.job_id, on_progress=ProgressBar())
        print(format_status(final))
        checkpoint = final.best_checkpoint or final.latest_checkpoint
        if final.state != FineTuneStatus.STATE_SUCCEEDED or not checkpoint:
            raise RuntimeError(f"{algorithm} job {job.job_id} ended without a checkpoint: {final.message}")
        return checkpoint

    def _trigger(self, service: str, query: bool = False) -> str:
        """Call a Trigger service; a `query` (it changes nothing) is sent again while unanswered."""
        from std_srvs.srv import Trigger

        from rlvla_ros.ros.commander import RESEND_AFTER_S

        try:
            response = self.commander.call(Trigger, f"{self.namespace}/{service}", Trigger.Request(), 60.0,
                                           resend_after_s=RESEND_AFTER_S if query else None)
        except TimeoutError as error:
            raise RuntimeError(f"{error}\n{self.launch.log_tail()}") from None
        if not response.success:
            raise RuntimeError(f"{service}: {response.message}")
        return response.message

    def episode_stats(self) -> dict:
        return json.loads(self._trigger("episode_manager/get_stats", query=True))

    def wait_for_episodes(self, count: int, timeout_s: float = 900.0) -> dict:
        """Poll the episode manager until `count` episodes have ended; returns its statistics."""
        deadline = time.monotonic() + timeout_s
        while (stats := self.episode_stats())["episodes"] < count:
            if time.monotonic() > deadline or not self.launch.running():
                raise RuntimeError(f"{stats['episodes']} of {count} episodes after {timeout_s} s\n"
                                   f"{self.launch.log_tail()}")
            time.sleep(1.0)
        return stats

    def run_episodes(self, count: int) -> dict:
        """Start `count` episodes one after the other (episode manager without auto_run); returns their stats."""
        before = self.episode_stats()
        for _ in range(count):
            started = self.episode_stats()["episodes"]
            self._trigger("episode_manager/start_episode")
            self.wait_for_episodes(started + 1)
        after = self.episode_stats()
        successes = after["successes"] - before["successes"]
        return {"episodes": count, "successes": successes, "success_rate": round(successes / max(count, 1), 3)}

    def stop_recording(self, timeout_s: float = 60.0) -> list[str]:
        """Close the recorder's bags once they hold the END of every episode the manager has ended (the recorder,
        recording since the graph came up, may still be working through the last messages); returns their paths."""
        from rlvla_ros.srv import StopRecording

        ended = sum(self.episode_stats()["terminations"].values())
        deadline = time.monotonic() + timeout_s
        while (status := json.loads(self._trigger("recorder/get_status", query=True)))["recording"] and (
                status["episode_ends"] < ended):
            if not self.launch.running() or time.monotonic() > deadline:
                cause = "the graph stopped" if not self.launch.running() else f"{timeout_s} s had passed"
                raise RuntimeError(f"the recorder had written {status['episode_ends']} of {ended} episode ENDs when "
                                   f"{cause}\n{self.launch.log_tail()}")
            time.sleep(0.2)
        response = self.commander.call(StopRecording, f"{self.namespace}/recorder/stop_recording",
                                       StopRecording.Request(), 60.0)
        if not response.success:
            raise RuntimeError(f"stop_recording: {response.message}")
        return list(response.bag_paths)
