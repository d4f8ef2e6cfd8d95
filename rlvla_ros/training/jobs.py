"""Fine-tuning jobs: validate a request, run its trainer in a worker thread, and report status. ROS-free.

:func:`prepare_job` turns a StartFineTune-shaped request into a trainer and a :class:`JobContext`, refusing bad
requests with a ValueError whose message says what is wrong (dataset paths outside the data root included).
:class:`JobRunner` runs one job at a time in a worker thread: an exception in the trainer moves the job to FAILED
with the error as its message, StopFineTune to CANCELLED; the runner itself never raises out of a job. It keeps the
history of its jobs in ``<output_root>/jobs.json`` (rewritten atomically on every state change) and reads it back at
start, so a restarted learner still answers for its earlier jobs; a job that was running when the learner died is
recorded FAILED.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
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
from rlvla_ros.data import check_dataset
from rlvla_ros.policies.pretrained import read_config_json
from rlvla_ros.training.recipes import load_recipe


MAX_STEPS = 10**9
"""Largest step budget a request may ask for."""
HISTORY_NAME = "jobs.json"
"""The runner's job history in its output root."""
HANDOVER_WAIT_S = 30.0
"""At a job's end, how long the runner waits for the policy's answers to its checkpoints before it reports."""


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
    policy_load: str = ""
    """What the policy node answered to the last checkpoint handed to it (empty: none handed over)."""

    def summary(self) -> str:
        """The message with the policy's answer to the last handover, as clients see it."""
        return f"{self.message}; {self.policy_load}" if self.policy_load else self.message


def resolve_dataset(dataset: str, data_root: Path) -> Path:
    """``dataset`` resolved (relative to ``data_root``, symlinks followed); ValueError when it lies outside it."""
    root = Path(data_root).resolve()
    try:
        path = (root / dataset).resolve()
    except OSError as err:  # e.g. a link into /proc that this process may not follow
        raise ValueError(f"dataset {dataset!r} cannot be resolved against the data root {root}: {err}") from None
    if path != root and root not in path.parents:
        raise ValueError(f"dataset {dataset!r} is outside the data root {root}; the learner reads datasets only "
                         "below its data_root parameter")
    return path


def prepare_job(
    request: JobRequest,
    output_dir: Path,
    *,
    defaults: Mapping[str, Any] | None = None,
    rollout_source: Any = None,
    write_files: bool = True,
    data_root: Path | None = None,
) -> tuple[Trainer, JobContext]:
    """Validate ``request`` and build the trainer and its context; ValueError says why a request is refused.

    ``defaults`` are overrides applied before the request's own, each only to trainers whose config has that field
    (e.g. the learner's ``default_init_checkpoint`` and evaluation settings). ``write_files`` False: a
    non-zero rank of a distributed job, which writes nothing. ``data_root``: datasets must lie below it (relative
    ones are taken from it); None: any path."""
    if request.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {request.algorithm!r}; valid: {', '.join(sorted(ALGORITHMS))}")
    trainer_class = ALGORITHMS[request.algorithm]
    if not 0 <= request.steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [0, {MAX_STEPS}] (0: the default), got {request.steps}")
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
    datasets = [Path(d) if data_root is None else resolve_dataset(d, data_root) for d in request.datasets]
    for dataset in datasets:
        try:
            check_dataset(dataset)  # ValueError naming the path: missing, unfinished, no bag, not a LeRobot v3.0 dataset
        except OSError as err:
            raise ValueError(f"dataset {str(dataset)!r} cannot be read: {err}") from None
    context = JobContext(
        config=config,
        output_dir=output_dir,
        steps=request.steps or trainer_class.default_steps,
        datasets=datasets,
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
        on_new_best: Callable[[Path], threading.Event | None] | None = None,
        rollout_source_factory: Callable[[], Any] | None = None,
        data_root: Path | None = None,
    ) -> None:
        """``on_new_best(path)`` hands a checkpoint over and may return an Event set once the answer is recorded
        (:meth:`record_policy_load`): the job's final status waits for those answers, at most
        :data:`HANDOVER_WAIT_S`."""
        self.output_root = Path(output_root)
        self.defaults = dict(defaults or {})
        self.on_change = on_change
        self.on_new_best = on_new_best
        self.rollout_source_factory = rollout_source_factory
        self.data_root = data_root
        self._lock = threading.Lock()
        self._history: dict[str, JobStatus] = read_history(self.output_root / HISTORY_NAME)
        self._status = next(reversed(self._history.values()), JobStatus())
        self._started_s = 0.0
        self._context: JobContext | None = None
        self._thread: threading.Thread | None = None
        self._handovers: list[threading.Event] = []
        self._done = threading.Event()
        self._done.set()

    def status(self, job_id: str = "") -> JobStatus:
        """Copy of job ``job_id``'s status (empty: the current or most recent job); KeyError for an unknown id."""
        with self._lock:
            if self._status.state == JobState.RUNNING:
                self._update_progress()
            status = self._history[job_id] if job_id else self._status
            return replace(status, metrics=dict(status.metrics))

    def job_ids(self) -> list[str]:
        """Ids of every job in the history, oldest first."""
        with self._lock:
            return list(self._history)

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
            trainer, context = prepare_job(request, self.output_root / job_id, defaults=self.defaults,
                                           data_root=self.data_root)
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
            self._history[job_id] = self._status
            self._save_history()
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

    def record_policy_load(self, job_id: str, answer: str) -> None:
        """Keep the policy node's ``answer`` to a checkpoint of job ``job_id`` in its status (and history)."""
        with self._lock:
            if job_id not in self._history:
                return
            self._history[job_id].policy_load = answer
            self._save_history()
        self._notify()

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
        deadline_s = time.monotonic() + HANDOVER_WAIT_S
        for answered in self._handovers:
            answered.wait(max(deadline_s - time.monotonic(), 0.0))
        self._handovers = []
        with self._lock:
            self._update_progress()
            if state == JobState.SUCCEEDED:
                self._status.progress = 1.0
            self._status.state = state
            self._status.message = message
            if metrics:
                self._status.metrics = dict(metrics)
            self._update_checkpoints(context)
            self._save_history()
        self._done.set()
        self._notify()

    def _save_history(self) -> None:
        """Rewrite the history file atomically (called with the lock held); a failed write is reported, not fatal."""
        path = self.output_root / HISTORY_NAME
        tmp = path.with_name(f".{HISTORY_NAME}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps([status_to_dict(s) for s in self._history.values()], indent=1) + "\n")
            os.replace(tmp, path)
        except OSError as err:
            print(f"job history not saved to {path}: {err}", flush=True)

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
            answered = self.on_new_best(path)
            if answered is not None:
                self._handovers.append(answered)

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.status())


def status_to_dict(status: JobStatus) -> dict[str, Any]:
    """JSON-ready dict of a job status."""
    return {**dataclasses.asdict(status), "state": status.state.name}


def read_history(path: Path) -> dict[str, JobStatus]:
    """Job id -> status of a history file (empty when there is none or it cannot be read); a job recorded RUNNING
    ended with the process that ran it, so it comes back FAILED."""
    try:
        records = json.loads(path.read_text())
        history = {}
        for record in records:
            status = JobStatus(**{**record, "state": JobState[record["state"]]})
            if status.state == JobState.RUNNING:
                status.state = JobState.FAILED
                status.message = "interrupted: the learner stopped while the job ran"
            history[status.job_id] = status
        return history
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"job history {path} not read ({type(err).__name__}: {err}); starting without it", flush=True)
        return {}
