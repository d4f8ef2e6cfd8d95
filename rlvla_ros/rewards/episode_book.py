"""Episode bookkeeping for the episode manager, ROS-free: the task/split/seed schedule, the running episode's
termination rules, and success statistics per task and split.

Step convention (shared with :class:`~rlvla_ros.data.EpisodeRecord` and the ``reward`` node): the reward of step t
is the outcome of action t, so an episode whose reward of step t says success ends with length t + 1, and an episode
times out once the reward of step ``max_steps - 1`` has arrived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from rlvla_ros.contract import (
    TERMINATION_ABORT,
    TERMINATION_ESTOP,
    TERMINATION_INTERVENTION,
    TERMINATION_STALLED,
    TERMINATION_SUCCESS,
    TERMINATION_TIMEOUT,
    UNCOUNTED_TERMINATIONS,
)


@dataclass(frozen=True)
class ScheduledEpisode:
    """What to reset the scene to for one episode."""

    index: int
    """0-based position in the schedule."""
    task: str
    split: str
    seed: int
    max_steps: int
    """Time limit in control steps."""


class EpisodeSchedule:
    """Cycles through every (task, split) pair, tasks fastest; the seed moves on after each full cycle, so the
    same seed is run on every task and split (paired in-distribution / out-of-distribution comparisons)."""

    def __init__(self, tasks: Sequence[str], splits: Sequence[str], max_steps: Sequence[int], base_seed: int = 0):
        if not tasks or not splits:
            raise ValueError("the schedule needs at least one task and one split")
        if len(max_steps) not in (1, len(tasks)):
            raise ValueError(f"max_steps needs one value or one per task ({len(tasks)}), got {len(max_steps)}")
        if min(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {list(max_steps)}")
        self.tasks, self.splits = list(tasks), list(splits)
        self.max_steps = list(max_steps) * (len(tasks) if len(max_steps) == 1 else 1)
        self.base_seed = base_seed

    def __getitem__(self, index: int) -> ScheduledEpisode:
        if index < 0:
            raise IndexError(f"episode index must be >= 0, got {index}")
        cycle, pair = divmod(index, len(self.tasks) * len(self.splits))
        split_index, task_index = divmod(pair, len(self.tasks))
        return ScheduledEpisode(index, self.tasks[task_index], self.splits[split_index], self.base_seed + cycle,
                           self.max_steps[task_index])


@dataclass
class RunningEpisode:
    """The episode in progress: fed rewards and interventions, it says when and why the episode ends."""

    episode_id: str
    spec: ScheduledEpisode
    instruction: str
    end_on_intervention: bool = False
    """End the episode at the first human intervention instead of continuing."""
    steps: int = 0
    """Steps with a reward so far (last rewarded step + 1)."""
    episode_return: float = 0.0
    intervention_steps: int = 0
    success: bool = False
    termination_reason: str = ""
    """Empty while running, else one of the TERMINATION_* values."""

    @property
    def ended(self) -> bool:
        """Whether a termination reason has been set."""
        return bool(self.termination_reason)

    def on_reward(self, step: int, reward: float, success: bool) -> str:
        """Account the reward of ``step``; returns the termination reason it causes, or "" to continue.

        Rewards come in step order (one reliable publisher), so a reward past the next step means the rewards between
        were lost (a subscriber fell behind under load): the episode stalled, since its recording misses those steps
        and a dataset drops it; and a lost last-step reward would never end it, each later reward (the graph runs on
        until the END) counting as progress."""
        if self.ended or step < self.steps:
            return ""  # duplicates and rewards after the end (the graph runs on for a moment) do not count
        if step > self.steps:
            return self.stall()
        self.episode_return += reward
        self.steps = step + 1
        if success:
            self.success = True
            return self._end(TERMINATION_SUCCESS)
        if self.steps >= self.spec.max_steps:
            return self._end(TERMINATION_TIMEOUT)
        return ""

    def on_intervention(self, steps: int) -> str:
        """Account ``steps`` executed under teleop; returns "intervention" if that ends the episode, else ""."""
        if self.ended:
            return ""
        self.intervention_steps += steps
        return self._end(TERMINATION_INTERVENTION) if self.end_on_intervention else ""

    def abort(self) -> str:
        """End the episode now (no-op once ended); returns "abort" or ""."""
        return "" if self.ended else self._end(TERMINATION_ABORT)

    def stall(self) -> str:
        """End the episode because the graph stopped producing rewards (no-op once ended); returns "stalled" or
        ""."""
        return "" if self.ended else self._end(TERMINATION_STALLED)

    def estop(self) -> str:
        """End the episode because the e-stop was engaged (no-op once ended); returns "estop" or ""."""
        return "" if self.ended else self._end(TERMINATION_ESTOP)

    def _end(self, reason: str) -> str:
        self.termination_reason = reason
        return reason


@dataclass
class _Counts:
    episodes: int = 0
    successes: int = 0

    def as_dict(self) -> dict:
        return {"episodes": self.episodes, "successes": self.successes,
                "success_rate": self.successes / self.episodes if self.episodes else 0.0}


class SuccessStats:
    """Success counts over finished episodes: overall, per task, per split, per (task, split), and why they ended.
    Stalled and e-stopped episodes say nothing about the policy: they count only among the terminations."""

    def __init__(self) -> None:
        self._total = _Counts()
        self._by_key: dict[str, dict[str, _Counts]] = {"by_task": {}, "by_split": {}, "by_task_split": {}}
        self._terminations: dict[str, int] = {}
        self.intervention_steps = 0

    def add(self, episode: RunningEpisode) -> None:
        """Count a finished episode."""
        reason = episode.termination_reason or "unknown"
        self._terminations[reason] = self._terminations.get(reason, 0) + 1
        if reason in UNCOUNTED_TERMINATIONS:
            return
        keys = {"by_task": episode.spec.task, "by_split": episode.spec.split,
                "by_task_split": f"{episode.spec.task}/{episode.spec.split}"}
        for counts in [self._total, *(self._by_key[kind].setdefault(key, _Counts()) for kind, key in keys.items())]:
            counts.episodes += 1
            counts.successes += int(episode.success)
        self.intervention_steps += episode.intervention_steps

    def as_dict(self) -> dict:
        """Plain dict: totals, ``by_task``/``by_split``/``by_task_split`` counts, ``terminations``, interventions."""
        return {
            **self._total.as_dict(),
            **{kind: {key: c.as_dict() for key, c in table.items()} for kind, table in self._by_key.items()},
            "terminations": dict(self._terminations),
            "intervention_steps": self.intervention_steps,
        }

    def to_json(self) -> str:
        """:meth:`as_dict` as one JSON object."""
        return json.dumps(self.as_dict(), sort_keys=True)
