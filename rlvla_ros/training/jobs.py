"""Fine-tuning jobs: validate a request, run its trainer in a worker thread, and report status. ROS-free.

:func:`prepare_job` turns a StartFineTune-shaped request into a trainer and a :class:`JobContext`, refusing bad
requests with a ValueError whose message says what is wrong. :class:`JobRunner` runs one job at a time in a worker
thread: an exception in the trainer moves the job to FAILED with the error as its message, StopFineTune to
CANCELLED; the runner itself never raises out of a job.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rlvla_ros.algorithms import (
    ALGORITHMS,
    JobContext,
    OnlineTrainer,
    Trainer,
    apply_overrides,
    parse_overrides_yaml,
    progress_fraction,
)
from rlvla_ros.data import find_bags
from rlvla_ros.policies.base import read_config_json
from rlvla_ros.training.recipes import load_recipe


class JobState(enum.IntEnum):
    """Job states, numbered as ``rlvla_ros/msg/FineTuneStatus`` STATE_*."""

    IDLE = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    CANCELLED = 4


@dataclass
class JobRequest:
    """What StartFineTune (or the FineTune action goal) asks for."""

    algorithm: str
    """Registered algorithm name."""
    datasets: list[str] = field(default_factory=list)
    """Bag directories or folders of bags."""
    steps: int = 0
    """Step budget; 0: the trainer's default."""
    overrides_yaml: str = ""
    """YAML mapping of config overrides."""


@dataclass
class JobStatus:
    """Snapshot of a job, the content of ``FineTuneStatus``."""

    job_id: str = ""
    state: JobState = JobState.IDLE
    algorithm: str = ""
    step: int = 0
    total_steps: int = 0
    time_budget_s: float = 0.0
    """Wall-clock budget of an online job (0: none); the job ends at ``total_steps`` or here, whichever is first."""
    elapsed_s: float = 0.0
    """Seconds since the job started (its duration once it ended)."""
    progress: float = 0.0
    """Fraction done, 0..1: :func:`progress_fraction` of the steps and the time budget."""
    metrics: dict[str, float] = field(default_factory=dict)
    latest_checkpoint: str = ""
    best_checkpoint: str = ""
    message: str = ""


def prepare_job(
    request: JobRequest,
    output_dir: Path,
    *,
    defaults: Mapping[str, Any] | None = None,
    rollout_source: Any = None,
    write_files: bool = True,
) -> tuple[Trainer, JobContext]:
    """Validate ``request`` and build the trainer and its context; ValueError says why a request is refused.

    ``defaults`` are overrides applied before the request's own, each only to trainers whose config has that field
    (e.g. the learner's ``default_init_checkpoint`` and evaluation settings). ``write_files`` False: a
    non-zero rank of a distributed job, which writes nothing."""
    if request.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {request.algorithm!r}; valid: {', '.join(sorted(ALGORITHMS))}")
    trainer_class = ALGORITHMS[request.algorithm]
    if request.steps < 0:
        raise ValueError(f"steps must be >= 0, got {request.steps}")
    fields = {f.name for f in dataclasses.fields(trainer_class.config_class)}
    overrides = {k: v for k, v in (defaults or {}).items() if k in fields}
    requested = parse_overrides_yaml(request.overrides_yaml)
    if "recipe" in requested:  # a named recipe's settings for this algorithm, under the request's own
        recipe_steps, recipe_overrides = load_recipe(str(requested.pop("recipe"))).job(request.algorithm)
        overrides.update(recipe_overrides)
        request = replace(request, steps=request.steps or recipe_steps)
    overrides.update(requested)
    config = apply_overrides(trainer_class.config_class, overrides)
    if config.init_checkpoint:
        try:
            read_config_json(config.init_checkpoint)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"init_checkpoint {config.init_checkpoint!r} is not a checkpoint: {err}") from None
    if trainer_class.needs_datasets and not request.datasets:
        raise ValueError(f"{request.algorithm} learns from recorded data: give at least one dataset")
    for dataset in request.datasets:
        find_bags(dataset)  # raises ValueError naming the path when it is missing, unfinished or holds no bag
    context = JobContext(
        config=config,
        output_dir=output_dir,
        steps=request.steps or trainer_class.default_steps,
        datasets=[Path(d) for d in request.datasets],
        rollout_source=rollout_source,
        write_files=write_files,
    )
    return trainer_class(), context


def run_job(trainer: Trainer, context: JobContext) -> dict[str, float]:
    """Run ``trainer`` to the end and close the context (curve, metrics JSON) whatever happens."""
    metrics: dict[str, float] = {}
    try:
        metrics = trainer.run(context)
        return metrics
    finally:
        context.close(metrics)


def new_job_id(algorithm: str) -> str:
    """Sortable, unique job id: ``<algorithm>-<UTC time>-<random>``."""
    return f"{algorithm}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


class JobRunner:
    """Runs one job at a time in a worker thread; ``on_change(status)`` fires on state changes and progress."""

    def __init__(
        self,
        output_root: Path,
        *,
        defaults: Mapping[str, Any] | None = None,
        on_change: Callable[[JobStatus], None] | None = None,
        on_new_best: Callable[[Path], None] | None = None,
        rollout_source_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.output_root = Path(output_root)
        self.defaults = dict(defaults or {})
        self.on_change = on_change
        self.on_new_best = on_new_best
        self.rollout_source_factory = rollout_source_factory
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._started_s = 0.0
        self._context: JobContext | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()

    def status(self) -> JobStatus:
        """Copy of the current (or most recent) job's status."""
        with self._lock:
            if self._status.state == JobState.RUNNING:
                self._update_progress()
            return replace(self._status, metrics=dict(self._status.metrics))

    def is_running(self) -> bool:
        """Whether a job is in progress."""
        with self._lock:
            return self._status.state == JobState.RUNNING

    def start(self, request: JobRequest) -> JobStatus:
        """Start ``request``; ValueError when a job is already running or the request is invalid."""
        with self._lock:
            if self._status.state == JobState.RUNNING:
                raise ValueError(f"job {self._status.job_id} is still running; stop it first (one job at a time)")
            job_id = new_job_id(request.algorithm)
            trainer, context = prepare_job(request, self.output_root / job_id, defaults=self.defaults)
            if self.rollout_source_factory is not None and isinstance(trainer, OnlineTrainer):
                context.rollout_source = self.rollout_source_factory()
            context.on_progress = self._progress
            context.on_new_best = self._new_best
            self._context = context
            time_budget_s = float(getattr(context.config, "time_budget_s", 0.0))
            budget = f" or {time_budget_s:g} s, whichever comes first," if time_budget_s > 0 else ""
            self._status = JobStatus(
                job_id=job_id, state=JobState.RUNNING, algorithm=request.algorithm, total_steps=context.steps,
                time_budget_s=time_budget_s,
                message=f"started {request.algorithm} for {context.steps} steps{budget} in {context.output_dir}",
            )
            self._started_s = time.monotonic()
            self._done.clear()
            self._thread = threading.Thread(target=self._run, args=(trainer, context), name=job_id, daemon=True)
            self._thread.start()
            status = replace(self._status)
        self._notify()
        return status

    def stop(self, job_id: str = "") -> str:
        """Ask the running job to stop; ValueError when there is none or ``job_id`` names another job."""
        with self._lock:
            if self._status.state != JobState.RUNNING or self._context is None:
                raise ValueError("no job is running")
            if job_id and job_id != self._status.job_id:
                raise ValueError(f"job {job_id!r} is not the running job ({self._status.job_id})")
            self._context.stop_event.set()
            return self._status.job_id

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until no job runs; False on timeout."""
        return self._done.wait(timeout_s)

    def _run(self, trainer: Trainer, context: JobContext) -> None:
        try:
            metrics = run_job(trainer, context)
            state = JobState.CANCELLED if context.should_stop() else JobState.SUCCEEDED
            message = "stopped on request" if state == JobState.CANCELLED else "finished"
        except Exception as err:  # noqa: BLE001 - any trainer error must end as FAILED, never kill the node
            metrics = {}
            state = JobState.FAILED
            message = f"{type(err).__name__}: {err}"
            traceback.print_exc()
        with self._lock:
            self._update_progress()
            if state == JobState.SUCCEEDED:
                self._status.progress = 1.0
            self._status.state = state
            self._status.message = message
            if metrics:
                self._status.metrics = dict(metrics)
            self._update_checkpoints(context)
        self._done.set()
        self._notify()

    def _update_checkpoints(self, context: JobContext) -> None:
        if context.latest_checkpoint is not None:
            self._status.latest_checkpoint = str(context.latest_checkpoint)
        if context.best_checkpoint is not None:
            self._status.best_checkpoint = str(context.best_checkpoint)

    def _update_progress(self) -> None:
        status = self._status
        status.elapsed_s = time.monotonic() - self._started_s
        status.progress = progress_fraction(status.step, status.total_steps, status.elapsed_s, status.time_budget_s)

    def _progress(self, step: int, metrics: dict[str, float]) -> None:
        with self._lock:
            self._status.step = step
            self._status.metrics.update(metrics)
            if self._context is not None:
                self._update_checkpoints(self._context)
        self._notify()

    def _new_best(self, path: Path) -> None:
        with self._lock:
            self._status.best_checkpoint = str(path)
        if self.on_new_best is not None:
            self.on_new_best(path)

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.status())
