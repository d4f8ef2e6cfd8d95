"""What every fine-tuning algorithm implements (:class:`Trainer`) and what a running job gives it (:class:`JobContext`).

A trainer is a class with a ``name`` (the ``algorithm`` of a StartFineTune request), a ``config_class`` (a dataclass
of hyper-parameters deriving :class:`TrainerConfig`, one docstring per field, CleanRL style) and ``run(context)``,
which trains and returns the final metrics. The context hands it the validated config, the datasets, the step budget,
the start policy, logging (TensorBoard + ROS status + PNG curve), atomic checkpoints and the stop flag.

Checkpoints: each save writes ``<output_dir>/checkpoints/step_<n>/`` atomically (policy ``config.json`` +
``model.safetensors`` + ``trainer_state.json``), then swaps the ``latest`` symlink to it with ``os.replace``, and the
``best`` symlink when the score improved. A job killed at any instant leaves ``latest`` pointing at a complete
checkpoint (or not existing yet before the first save). Older step directories are pruned.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import os
import shutil
import threading
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import yaml

from rlvla_ros.policies import Policy, load_policy, new_policy
from rlvla_ros.policies.pretrained import write_dir_atomically

TRAINER_STATE_NAME = "trainer_state.json"
"""Per-checkpoint JSON: step, metrics and score of the save."""
METRICS_NAME = "metrics.json"
"""Per-job JSON: every logged scalar as ``{name: [[step, value], ...]}`` plus the final metrics."""
CURVE_NAME = "learning_curve.png"
MAX_CONFIG_NUMBER = 2**31 - 1
"""Largest value a numeric trainer config field takes (a request's 2**64 - 1 is a typo, not a budget)."""
MAX_IMAGE_SIZE = 512
MAX_CHUNK_SIZE = 64


@dataclass
class TrainerConfig:
    """Fields every trainer config has: seeding and where the policy comes from. Subclasses add hyper-parameters."""

    seed: int = 0
    """Seed of torch, numpy and the rollout environments."""
    init_checkpoint: str = ""
    """Policy checkpoint directory to start from; empty: a fresh policy built from the fields below."""
    policy_type: str = "film_keypoints"
    """Registered policy type of a fresh policy (ignored with ``init_checkpoint``): by default the one the demo
    trains, whose FiLM encoder can tell which cube the instruction names."""
    chunk_size: int = 4
    """Action chunk horizon H of a fresh policy (ignored with ``init_checkpoint``)."""
    image_size: int = 64
    """Input image side of a fresh policy (ignored with ``init_checkpoint``); sim rollouts render at the policy's."""
    policy_config: str = ""
    """YAML mapping of further config fields of a fresh policy (ignored with ``init_checkpoint``), e.g.
    ``{patch_size: 8}`` for token_vla or ``{base_model_dir: /models/smolvlm, lora_rank: 8}`` for hf_vlm."""

    def __post_init__(self) -> None:
        check_numeric_fields(self)
        try:
            fields = parse_overrides_yaml(self.policy_config)
        except ValueError as err:
            raise ValueError(f"policy_config: {err}") from None
        if {"chunk_size", "image_size", "policy_type"} & set(fields):
            raise ValueError("policy_config sets fields of its own: chunk_size, image_size and policy_type are "
                             "trainer fields")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}], got {self.chunk_size}")
        if not 8 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be in [8, {MAX_IMAGE_SIZE}], got {self.image_size}")


def check_numeric_fields(config: Any) -> None:
    """The ranges every trainer config field obeys: numbers finite, in [0, :data:`MAX_CONFIG_NUMBER`], every
    ``*learning_rate`` in (0, 1] (no trainer has a negative hyper-parameter, a NaN or infinite one poisons the weights
    before anything notices, and these optimisers diverge above 1). ValueError names the field."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ValueError(f"{item.name} must be finite, got {value}")
        if value < 0:
            raise ValueError(f"{item.name} must be >= 0, got {value}")
        if value > MAX_CONFIG_NUMBER:
            raise ValueError(f"{item.name} must be at most {MAX_CONFIG_NUMBER}, got {value}")
        if item.name.endswith("learning_rate") and not 0 < value <= 1:
            raise ValueError(f"{item.name} must be in (0, 1], got {value}")


def parse_overrides_yaml(text: str) -> dict[str, Any]:
    """The mapping of an ``overrides_yaml`` string; empty text is no overrides. ValueError for anything else."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"overrides_yaml is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"overrides_yaml must be a mapping of names to values, got {type(data).__name__}")
    return data


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field type ``hint``; ints are accepted for floats, nothing else is converted."""
    origin = typing.get_origin(hint)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"override {name!r} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"override {name!r} must be an integer, got {value!r}")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ValueError(f"override {name!r} must be a {hint.__name__}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"override {name!r} must be a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint)
        items = [_coerce(name, item, item_hint) for item in value]
        return tuple(items) if origin is tuple else items
    raise ValueError(f"override {name!r} has a type overrides cannot set ({hint})")


def apply_overrides(config_class: type[TrainerConfig], overrides: Mapping[str, Any]) -> TrainerConfig:
    """Build ``config_class`` from its defaults and ``overrides``; unknown names or wrong types are a ValueError."""
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} overrides {unknown}; valid: {sorted(fields)}")
    values = {name: _coerce(name, value, hints[name]) for name, value in overrides.items()}
    return config_class(**values)


def config_to_dict(config: TrainerConfig) -> dict[str, Any]:
    """JSON-ready dict of a trainer config."""
    return dataclasses.asdict(config)


class Trainer(abc.ABC):
    """A fine-tuning algorithm. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    """Algorithm name used by StartFineTune (``bc``, ``ppo``, ...)."""
    config_class: ClassVar[type[TrainerConfig]] = TrainerConfig
    """Hyper-parameter dataclass; StartFineTune overrides are applied to it."""
    needs_datasets: ClassVar[bool] = False
    """Whether the job must be given recorded datasets."""
    default_steps: ClassVar[int] = 1000
    """Optimisation steps (or iterations, as the trainer defines them) when a request asks for 0."""

    @abc.abstractmethod
    def run(self, context: JobContext) -> dict[str, float]:
        """Train until ``context.steps`` are done or ``context.should_stop()``; return the final metrics."""


def fresh_policy(config: TrainerConfig, proprio_dim: int | None = None) -> Policy:
    """A new policy of ``config.policy_type`` with the config's chunk and image size and ``policy_config``, for
    ``proprio_dim`` entries of proprioception (None: the policy config's default, the tabletop arm's)."""
    fields = {"chunk_size": config.chunk_size, "image_size": config.image_size,
              **parse_overrides_yaml(config.policy_config)}
    if proprio_dim is not None:
        fields["proprio_dim"] = proprio_dim
    return new_policy(config.policy_type, **fields)


def progress_fraction(step: int, steps: int, elapsed_s: float, time_budget_s: float) -> float:
    """The fraction of a job done after ``step`` of ``steps`` and ``elapsed_s`` of a time budget (<= 0: none),
    whichever ends the job first, in [0, 1]."""
    progress = step / steps if steps > 0 else 0.0
    if time_budget_s > 0:
        progress = max(progress, elapsed_s / time_budget_s)
    return min(progress, 1.0)


def atomic_symlink(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (relative), replacing an existing link atomically."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


@dataclass
class JobContext:
    """Everything a trainer needs from the job that runs it. Build one per job; call :meth:`close` at the end."""

    config: TrainerConfig
    """Validated hyper-parameters (the trainer's ``config_class``)."""
    output_dir: Path
    """Job folder: checkpoints, ``latest``/``best`` links, TensorBoard events, metrics JSON, PNG curve."""
    steps: int
    """Step budget (already resolved: a request's 0 became the trainer's default)."""
    datasets: list[Path] = field(default_factory=list)
    """Recorded bags or folders of bags."""
    on_progress: Callable[[int, dict[str, float]], None] | None = None
    """Called with (step, metrics) after each :meth:`log`; the learner node publishes status from it."""
    on_new_best: Callable[[Path], None] | None = None
    """Called with each new best checkpoint directory after step 0 (a finite score, finite weights); the learner
    node calls the policy's load_checkpoint."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    """Set to stop the job at its next check."""
    curve_interval_s: float = 60.0
    """Minimum seconds between periodic PNG curve rewrites."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    rollout_source: Any = None
    """Where online trainers get episodes (a ``RolloutSource``); None: in-process simulation."""
    write_files: bool = True
    """False on non-zero ranks of a distributed job: only rank 0 writes checkpoints, logs and curves."""

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.datasets = [Path(d) for d in self.datasets]
        self.rng = np.random.default_rng(self.config.seed)
        torch.manual_seed(self.config.seed)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.policy: Policy | None = None
        """The policy :meth:`make_policy` made (the one being trained)."""
        self.latest_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None
        self.best_score = -float("inf")
        self._writer = None
        self._last_curve_s = time.monotonic()
        if self.write_files:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(json.dumps(config_to_dict(self.config), indent=2) + "\n")
            if self.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))

    def make_policy(self, proprio_dim: int | None = None) -> Policy:
        """The start policy in train mode: ``config.init_checkpoint`` when set, else a fresh one; kept as
        :attr:`policy`. ``proprio_dim``, when given, is the proprio length of the job's data or environments: a
        fresh policy is built for it, and a checkpoint made for another is a ValueError."""
        if self.config.init_checkpoint:
            policy = load_policy(self.config.init_checkpoint)
            if proprio_dim is not None and policy.config.proprio_dim != proprio_dim:
                raise ValueError(f"init_checkpoint {self.config.init_checkpoint} takes {policy.config.proprio_dim} "
                                 f"proprio entries, the job's robot has {proprio_dim}")
        else:
            policy = fresh_policy(self.config, proprio_dim)
        self.policy = policy.train()
        return self.policy

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record scalars at ``step``: TensorBoard, the history behind the curve, and the progress callback."""
        clean = {name: float(value) for name, value in metrics.items()}
        for name, value in clean.items():
            self.history.setdefault(name, []).append((step, value))
            if self._writer is not None:
                self._writer.add_scalar(name, value, step)
        if self.on_progress is not None:
            self.on_progress(step, clean)
        if self.write_files and time.monotonic() - self._last_curve_s >= self.curve_interval_s:
            self.write_curve()

    def save_checkpoint(
        self, model: Policy, step: int, metrics: Mapping[str, float] | None = None, score: float | None = None
    ) -> Path:
        """Atomically save ``model`` as the latest checkpoint, and as the best one when ``score`` improved."""
        step_dir = self.output_dir / "checkpoints" / f"step_{step:08d}"
        if not self.write_files:
            return step_dir
        state = {"step": step, "metrics": dict(metrics or {}), "score": score, "time_s": time.time()}

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            (tmp / TRAINER_STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")

        write_dir_atomically(step_dir, write)
        atomic_symlink(self.output_dir / "latest", step_dir)
        self.latest_checkpoint = step_dir
        # A NaN or infinite score is a failed evaluation, and non-finite weights a failed model: neither is "best".
        improved = (score is not None and math.isfinite(score) and score > self.best_score
                    and all(torch.isfinite(p).all() for p in model.parameters()))
        if improved:
            self.best_score = float(score)
            atomic_symlink(self.output_dir / "best", step_dir)
            self.best_checkpoint = step_dir
        self._prune_checkpoints()
        # Step 0 is the start policy itself (an online job's baseline evaluation), not something the job learnt.
        if improved and step > 0 and self.on_new_best is not None:
            self.on_new_best(step_dir)
        return step_dir

    def _prune_checkpoints(self) -> None:
        keep = {p.resolve() for p in (self.latest_checkpoint, self.best_checkpoint) if p is not None}
        for directory in (self.output_dir / "checkpoints").iterdir():
            if directory.name.startswith("step_") and directory.resolve() not in keep:
                shutil.rmtree(directory, ignore_errors=True)

    def should_stop(self) -> bool:
        """Whether StopFineTune (or the owner of ``stop_event``) asked the job to stop."""
        return self.stop_event.is_set()

    def write_curve(self) -> Path | None:
        """Rewrite the PNG learning curve from the logged scalars (atomically); None before anything was logged."""
        from rlvla_ros.rollouts.curves import plot_learning_curves

        self._last_curve_s = time.monotonic()
        if not self.write_files or not self.history:
            return None
        return plot_learning_curves(self.history, self.output_dir / CURVE_NAME, title=self.output_dir.name)

    def close(self, final_metrics: Mapping[str, float] | None = None) -> None:
        """Flush TensorBoard, write the final curve and ``metrics.json``."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self.write_files:
            return
        self.write_curve()
        payload = {"history": self.history, "final": dict(final_metrics or {})}
        tmp = self.output_dir / f".{METRICS_NAME}.tmp"
        tmp.write_text(json.dumps(payload) + "\n")
        os.replace(tmp, self.output_dir / METRICS_NAME)
