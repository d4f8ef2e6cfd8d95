"""In-process simulated rollouts: whole episodes in a batch of environment copies, one policy call per chunk.

The environments are those of the episodes' tasks (:mod:`rlvla_ros.envs`: the tabletop's or the Panda's), made on
first use, ``num_envs`` per family.

Each decision the policy (or a ``choose_chunk`` hook, e.g. test-time steering) answers the active environments'
observations with one chunk (B, H, 5); every environment then executes the chunk's rows until it ends or the chunk
runs out (open-loop chunk execution, as VLA policies run). Episodes come back as :class:`EpisodeRecord`s with the
per-step log-probability of every executed row under the sampling distribution (and, for policies that return them,
the latents each row's chunk was drawn with), the format the graph source
(:mod:`rlvla_ros.ros.graph_rollouts`) and recorded bags produce too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.envs import EnvFamily, family_of
from rlvla_ros.policies import Policy

ChooseChunk = Callable[[dict[str, Any]], np.ndarray]
"""Hook that picks the chunk to execute: observation batch -> (B, H, 5) actions (log-probs are then unknown)."""


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: the environment seed fixes the initial state, so equal specs start identically."""

    task: str
    """Task name (one of ``rlvla_ros.envs.ALL_TASKS``)."""
    split: str
    """Evaluation split."""
    seed: int
    """Environment reset seed."""


def stack_observations(observations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch single observations into the policy's batched form."""
    return {
        "image": np.stack([obs["image"] for obs in observations]),
        "proprio": np.stack([np.asarray(obs["proprio"], dtype=np.float32) for obs in observations]),
        "instruction": [obs["instruction"] for obs in observations],
    }


class _Recorder:
    """Steps of one running episode."""

    def __init__(self, spec: EpisodeSpec, observation: dict[str, Any], proprio_names: tuple[str, ...]) -> None:
        self.spec = spec
        self.proprio_names = proprio_names
        self.observations = [observation]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.successes: list[bool] = []
        self.log_probs: list[float] = []
        self.latents: list[np.ndarray] = []
        self.done = False
        self.reason = ""

    def record(self, episode_id: str) -> EpisodeRecord:
        return EpisodeRecord.from_steps(
            self.observations[: len(self.actions)],
            self.actions,
            self.rewards,
            episode_id=episode_id,
            successes=np.asarray(self.successes),
            log_probs=np.asarray(self.log_probs, dtype=np.float32),
            latents=np.stack(self.latents) if self.latents else None,
            task=self.spec.task,
            split=self.spec.split,
            seed=self.spec.seed,
            termination_reason=self.reason,
            proprio_names=self.proprio_names,
        )


class SimRollouts:
    """``num_envs`` environments stepped in this process with batched policy inference."""

    def __init__(
        self, num_envs: int = 8, image_size: int = 64, id_prefix: str = "sim", reward_mode: str = "sparse"
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.image_size = image_size
        self.reward_mode = reward_mode
        self.envs: dict[str, list[gym.Env]] = {}
        """Each family's environments (by family name), made when its first episode comes."""
        self._ids = itertools.count()
        self.id_prefix = id_prefix
        """Start of the episode ids (``<prefix>-<task>-<seed>-<n>``); distinct per process that runs episodes."""

    def close(self) -> None:
        """Release the renderers."""
        for envs in self.envs.values():
            for env in envs:
                env.close()
        self.envs = {}

    def _family_envs(self, family: EnvFamily) -> list[gym.Env]:
        if family.name not in self.envs:
            self.envs[family.name] = [family.make(self.image_size, self.reward_mode) for _ in range(self.num_envs)]
        return self.envs[family.name]

    def run(
        self,
        policy: Policy,
        specs: Sequence[EpisodeSpec],
        *,
        deterministic: bool = False,
        temperature: float = 1.0,
        choose_chunk: ChooseChunk | None = None,
    ) -> list[EpisodeRecord]:
        """Run every spec to its end (success or the task's step limit), in waves of ``num_envs`` episodes of one
        environment family; episodes in ``specs`` order."""
        by_family: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            by_family.setdefault(family_of(spec.task).name, []).append(index)
        episodes: dict[int, EpisodeRecord] = {}
        for indices in by_family.values():
            family = family_of(specs[indices[0]].task)
            envs = self._family_envs(family)
            for start in range(0, len(indices), len(envs)):
                wave = indices[start : start + len(envs)]
                records = self._run_wave(policy, envs, family, [specs[i] for i in wave], deterministic, temperature,
                                         choose_chunk)
                episodes.update(zip(wave, records))
        return [episodes[i] for i in range(len(specs))]

    def _run_wave(
        self,
        policy: Policy,
        envs: list[gym.Env],
        family: EnvFamily,
        specs: Sequence[EpisodeSpec],
        deterministic: bool,
        temperature: float,
        choose_chunk: ChooseChunk | None,
    ) -> list[EpisodeRecord]:
        recorders = []
        for env, spec in zip(envs, specs):
            observation, _ = env.reset(seed=spec.seed, options={"task": spec.task, "split": spec.split})
            recorders.append(_Recorder(spec, observation, family.proprio_names))
        while active := [i for i, rec in enumerate(recorders) if not rec.done]:
            batch = stack_observations([recorders[i].observations[-1] for i in active])
            latents = None
            if choose_chunk is not None:
                chunks = np.asarray(choose_chunk(batch), dtype=np.float32)
                log_probs = np.full(chunks.shape[:2], np.nan, dtype=np.float32)
            else:
                with torch.no_grad():
                    out = policy.predict(batch, deterministic=deterministic, temperature=temperature)
                chunks, log_probs = out.actions.cpu().numpy(), out.log_probs.cpu().numpy()
                latents = None if out.latents is None else out.latents.cpu().numpy()
            for row, i in enumerate(active):
                self._execute(envs[i], recorders[i], chunks[row], log_probs[row],
                              None if latents is None else latents[row])
        return [rec.record(f"{self.id_prefix}-{rec.spec.task}-{rec.spec.seed}-{next(self._ids)}") for rec in recorders]

    @staticmethod
    def _execute(env: gym.Env, rec: _Recorder, chunk: np.ndarray, log_probs: np.ndarray,
                 latents: np.ndarray | None) -> None:
        for action, log_prob in zip(chunk, log_probs):
            observation, reward, terminated, truncated, info = env.step(action)
            rec.actions.append(action)
            if latents is not None:
                rec.latents.append(latents)
            rec.rewards.append(reward)
            rec.successes.append(bool(info["is_success"]))
            rec.log_probs.append(float(log_prob))
            rec.observations.append(observation)
            if terminated or truncated:
                rec.done = True
                rec.reason = "success" if terminated else "timeout"
                return


def success_rate(episodes: Sequence[EpisodeRecord]) -> float:
    """Fraction of successful episodes (0 for none)."""
    return float(np.mean([episode.success for episode in episodes])) if episodes else 0.0
