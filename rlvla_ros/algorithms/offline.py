"""What every offline trainer shares: recorded episodes in, a fixed number of updates, logged and checkpointed on
a schedule.

:class:`OfflineConfig` holds the settings they have in common, :func:`load_episodes` reads the job's datasets and
:func:`run_updates` is the loop: ``context.steps`` updates (or fewer when the job is stopped), the metrics logged every
``log_interval`` updates and at the end, a checkpoint every ``checkpoint_interval`` updates and at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlvla_ros.algorithms.base import JobContext, TrainerConfig
from rlvla_ros.data import EpisodeRecord, dataset_episodes

Metrics = dict[str, float]


@dataclass
class OfflineConfig(TrainerConfig):
    """Settings every offline trainer has."""

    batch_size: int = 256
    """Transitions per update (per rank under torchrun)."""
    log_interval: int = 50
    """Updates between logged metrics."""
    checkpoint_interval: int = 500
    """Updates between checkpoints (one is always written at the end)."""
    tasks: list[str] = field(default_factory=list)
    """Only episodes of these tasks; empty: all."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.log_interval < 1 or self.checkpoint_interval < 1:
            raise ValueError("batch_size, log_interval and checkpoint_interval must be >= 1")


def load_episodes(paths: Sequence[Path], tasks: Sequence[str]) -> list[EpisodeRecord]:
    """Complete episodes of every bag under ``paths`` (or LeRobot v3.0 dataset among them), optionally only some
    tasks; ValueError when none."""
    episodes = [
        episode
        for path in paths
        for episode in dataset_episodes(path)
        if not tasks or episode.task in tasks
    ]
    if not episodes:
        raise ValueError(f"no complete episodes{' of tasks ' + str(tasks) if tasks else ''} in {list(map(str, paths))}")
    return episodes


def proprio_dim(episodes: Sequence[EpisodeRecord]) -> int:
    """The proprio length every episode shares; ValueError when they come from robots with different ones."""
    dims = {episode.proprio.shape[1] for episode in episodes}
    if len(dims) != 1:
        raise ValueError(f"the episodes mix proprio lengths {sorted(dims)}: one policy learns one robot's")
    return dims.pop()


def run_updates(
    context: JobContext,
    config: OfflineConfig,
    update: Callable[[int], Metrics],
    save: Callable[[int, Metrics], None],
    *,
    summarize: Callable[[list[Metrics]], Metrics] | None = None,
    done: Callable[[Metrics], bool] | None = None,
    first_step: int = 0,
) -> Metrics:
    """Call ``update(step)`` (one optimisation step, numbered from 1; returns its metrics) ``context.steps`` times,
    or until the job is stopped. Every ``config.log_interval`` updates and after the last, ``context.log`` the
    metrics of the updates since the previous log through ``summarize`` (default: the last update's), and stop after
    this update when ``done(logged metrics)``; every ``config.checkpoint_interval`` updates and after the last,
    ``save(step, logged metrics)``. Logs and checkpoints
    count from ``first_step + 1`` (a trainer whose job logged steps before). Returns the last logged metrics."""
    since_log: list[Metrics] = []
    logged: Metrics = {}
    for step in range(1, context.steps + 1):
        since_log.append(update(step))
        last = step == context.steps or context.should_stop()
        if step % config.log_interval == 0 or last:
            logged = summarize(since_log) if summarize is not None else since_log[-1]
            since_log = []
            context.log(first_step + step, logged)
            last = last or (done is not None and done(logged))
        if step % config.checkpoint_interval == 0 or last:
            save(first_step + step, logged)
        if last:
            break
    return logged
