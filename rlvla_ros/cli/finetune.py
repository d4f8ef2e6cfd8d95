"""`rlvla finetune start|status|stop`: thin clients of the learner node's services, with a live progress bar.

The pip-only counterpart of `ros2 service call /rlvla/learner/start_finetune rlvla_ros/srv/StartFineTune ...`.
"""

import argparse
import math
import sys
from typing import TextIO

import yaml


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("finetune", help="start, follow or stop a fine-tuning job on the learner node")
    parser.add_argument("--learner", default="/rlvla/learner", help="learner node (default: %(default)s)")
    actions = parser.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a job and follow it with a progress bar")
    start.add_argument("algorithm", help="bc, ppo, grpo, dsrl, calql, recap or value")
    start.add_argument("--dataset", action="append", default=[], help="a bag or folder of bags (repeatable)")
    start.add_argument("--steps", type=int, default=0, help="optimisation steps (0: the algorithm's default)")
    start.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a config override, the value parsed as YAML (repeatable)")
    start.add_argument("--detach", action="store_true", help="print the job id and return at once")
    start.set_defaults(handler=_start)
    status = actions.add_parser("status", help="print a job's status and metrics")
    status.add_argument("job_id", nargs="?", default="", help="default: the running or latest job")
    status.set_defaults(handler=_status)
    stop = actions.add_parser("stop", help="stop a job (its last checkpoint stays)")
    stop.add_argument("job_id", nargs="?", default="", help="default: the running job")
    stop.set_defaults(handler=_stop)


def parse_overrides(items: list[str]) -> dict:
    """`key=value` items as a dict, each value parsed as YAML; ValueError naming a malformed item."""
    overrides = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"malformed override '{item}', expected KEY=VALUE")
        overrides[key] = _number_or_yaml(value)
    return overrides


def _number_or_yaml(text: str):
    # PyYAML follows YAML 1.1, where `1e-3` is a string; users mean a number.
    try:
        return float(text) if not text.strip().lstrip("+-").isdigit() else int(text)
    except ValueError:
        return yaml.safe_load(text)


def format_status(status) -> str:
    """A human-readable multi-line summary of a FineTuneStatus."""
    from rlvla_ros.ros.commander import STATE_NAMES

    budget = f" of a {status.time_budget_s:.0f} s budget" if status.time_budget_s > 0 else ""
    lines = [f"job {status.job_id or '-'}: {status.algorithm or '-'} {STATE_NAMES.get(status.state, status.state)} "
             f"({status.step}/{status.total_steps} steps, {status.elapsed_s:.0f} s{budget}, "
             f"{100 * status.progress:.0f} % done)"]
    lines += [f"  {metric.name}: {metric.value:.4g}" for metric in status.metrics]
    for label, value in (("latest checkpoint", status.latest_checkpoint), ("best checkpoint", status.best_checkpoint),
                         ("message", status.message)):
        if value:
            lines.append(f"  {label}: {value}")
    return "\n".join(lines)


def _with_commander(args: argparse.Namespace, work) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from rlvla_ros.ros.commander import FineTuneCommander
    from rlvla_ros.ros.spinning import RCLError

    rclpy.init()
    commander = FineTuneCommander(args.learner)
    try:
        return work(commander)
    except (KeyboardInterrupt, ExternalShutdownException, RCLError) as error:
        # Ctrl-C, or SIGTERM through rclpy's signal handler; a signal that lands while the commander makes a timer or
        # a wait set raises an RCLError (a RuntimeError) about the invalid context instead, as in `run_node`
        if isinstance(error, RCLError) and rclpy.ok():
            print(f"rlvla finetune: {error}")
            return 1
        print("rlvla finetune: interrupted; the job keeps running (`rlvla finetune stop` stops it)")
        return 130
    except (TimeoutError, RuntimeError, ValueError) as error:
        print(f"rlvla finetune: {error}")
        return 1
    finally:
        commander.destroy_node()
        rclpy.try_shutdown()


def _start(args: argparse.Namespace) -> int:
    try:
        overrides = parse_overrides(args.set)
    except ValueError as error:
        print(f"rlvla finetune: {error}")
        return 2

    def work(commander) -> int:
        from rlvla_ros.msg import FineTuneStatus

        result = commander.start_finetune(args.algorithm, args.dataset, args.steps, overrides)
        if not result.accepted:
            print(f"rlvla finetune: refused: {result.message}")
            return 1
        print(f"started job {result.job_id}: {result.message}")
        if args.detach:
            return 0
        final = commander.wait_for_job(result.job_id, on_progress=ProgressBar())
        print(format_status(final))
        return 0 if final.state == FineTuneStatus.STATE_SUCCEEDED else 1

    return _with_commander(args, work)


def _status(args: argparse.Namespace) -> int:
    def work(commander) -> int:
        print(format_status(commander.get_status(args.job_id)))
        return 0

    return _with_commander(args, work)


def _stop(args: argparse.Namespace) -> int:
    def work(commander) -> int:
        success, message = commander.stop_finetune(args.job_id)
        print(message)
        return 0 if success else 1

    return _with_commander(args, work)


class ProgressBar:
    """Follows a job from its FineTuneStatus updates. On a terminal: a live tqdm bar, steps as progress (percent done
    for a job with a time budget, which may end it before its steps), a few metrics as its postfix, redrawn only when
    the status changes. Elsewhere (a log): one line each time the job passes another ``line_every_percent`` and one
    when it ends; the percentage in those lines only goes up."""

    def __init__(self, stream: TextIO | None = None, line_every_percent: int = 5) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._line_every = line_every_percent
        self._bar = None
        self._shown = None
        self._last_line_percent = -line_every_percent

    def __call__(self, status) -> None:
        shown = (status.state, status.step, status.total_steps, round(status.progress, 3),
                 tuple((m.name, m.value) for m in status.metrics))
        if shown == self._shown:
            return
        self._shown = shown
        if self._live:
            self._draw(status)
        else:
            self._line(status)

    def _line(self, status) -> None:
        percent = math.floor(100 * status.progress + 1e-6)  # progress is a float32 in the message
        finished = status.state != status.STATE_RUNNING
        if not finished and percent < self._last_line_percent + self._line_every:
            return
        if finished and self._last_line_percent >= 100:
            return
        self._last_line_percent = max(percent, self._last_line_percent)
        metrics = " ".join(f"{metric.name}={metric.value:.3g}" for metric in status.metrics[:4])
        print(f"{status.algorithm}: {self._last_line_percent:3d} % (step {status.step}/{status.total_steps}, "
              f"{status.elapsed_s:.0f} s) {metrics}".rstrip(), file=self._stream, flush=True)

    def _draw(self, status) -> None:
        from tqdm import tqdm

        timed = status.time_budget_s > 0
        if self._bar is None:
            self._bar = tqdm(unit="%" if timed else "step", desc=status.algorithm, mininterval=1.0, file=self._stream)
        postfix = {metric.name: f"{metric.value:.3g}" for metric in status.metrics[:4]}
        if timed:
            self._bar.total, self._bar.n = 100, round(100 * status.progress, 1)
            postfix = {"step": status.step, **postfix}
        else:
            self._bar.total, self._bar.n = status.total_steps or None, status.step
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()
        if status.state != status.STATE_RUNNING:
            self._bar.close()
