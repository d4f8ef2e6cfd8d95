"""``value``: a chunk Q-function (:class:`~rlvla_ros.policies.chunk_q.ChunkQFunction`) for test-time steering of a
fixed policy, fitted offline with the conservative critic objective (:mod:`rlvla_ros.algorithms.conservative_critic`).

The TD targets are SARSA's (the data's next chunk), so no action outside the data is ever bootstrapped from, and the
regulariser's policy samples come from the policy the Q-function will steer (``init_checkpoint``), which makes it
conservative exactly on the candidates it has to rank. With ``encoder: policy`` the critics read that policy's own
features, and ``rollout_episodes`` adds episodes of it sampled in simulation to the recorded ones: its own successes
and failures, in the states steering will meet.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.conservative_critic import ConservativeCriticConfig, critic_update, make_critic
from rlvla_ros.algorithms.offline import load_episodes, run_updates
from rlvla_ros.contract import ACTION_DIM, TRAIN_SEED_RANGE
from rlvla_ros.data import EpisodeRecord
from rlvla_ros.policies import Policy
from rlvla_ros.policies.chunk_q import CHUNK_Q_ENCODERS, ChunkQFunction
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec, SimRollouts
from rlvla_ros.rollouts.workers import ParallelSimRollouts


@dataclass
class ValueConfig(ConservativeCriticConfig):
    """Hyper-parameters of the steering Q-function (``value``)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    sample_temperature: float = 1.0
    """Temperature of the policy samples and rollouts (use the one steering will sample candidates at)."""
    encoder: str = "mobilenet"
    """Features the critics read: ``mobilenet`` (generic frozen ones) or ``policy`` (the steered policy's own; needs
    ``init_checkpoint``)."""
    rollout_episodes: int = 0
    """Episodes of the steered policy (``init_checkpoint``) sampled in simulation at ``sample_temperature`` on
    training seeds of the data's tasks (ID split), added to the recorded episodes."""
    rollout_workers: int = 0
    """Extra processes that run a share of those episodes (as the online trainers' ``rollout_workers``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_temperature <= 0:
            raise ValueError(f"sample_temperature must be > 0, got {self.sample_temperature}")
        if self.encoder not in CHUNK_Q_ENCODERS:
            raise ValueError(f"encoder must be one of {CHUNK_Q_ENCODERS}, got {self.encoder!r}")
        if not 0 <= self.rollout_episodes <= 100_000 or not 0 <= self.rollout_workers <= 64:
            raise ValueError("rollout_episodes must be in [0, 100000] and rollout_workers in [0, 64]")
        if (self.encoder == "policy" or self.rollout_episodes) and not self.init_checkpoint:
            raise ValueError("encoder: policy and rollout_episodes need init_checkpoint (the policy to steer)")


def policy_samples(
    policy: Policy, episodes: Sequence[EpisodeRecord], num_samples: int, temperature: float
) -> torch.Tensor:
    """(N, M, H, 5) chunks sampled from ``policy`` at every step of ``episodes`` (in ChunkTransitions order)."""
    samples = [
        policy.sample_candidates(episode.observation(step), num_samples, temperature)
        for episode in episodes
        for step in range(len(episode))
    ]
    return torch.stack(samples).float().cpu()


class ValueTrainer(Trainer):
    """Fit a :class:`ChunkQFunction` for steering a fixed policy (``init_checkpoint``) with Cal-QL + SARSA."""

    name = "value"
    config_class = ValueConfig
    needs_datasets = True
    default_steps = 3000

    def run(self, context: JobContext) -> dict[str, float]:
        config: ValueConfig = context.config  # type: ignore[assignment]
        episodes = load_episodes(context.datasets, config.tasks)
        policy = context.make_policy().eval() if config.init_checkpoint else None
        if config.rollout_episodes:
            episodes += own_rollouts(policy, sorted({e.task for e in episodes}), config, context)
        chunk_size = policy.chunk_size if policy is not None else config.chunk_size
        image_size = policy.config.image_size if policy is not None else config.image_size
        q = make_critic(config, chunk_size=chunk_size, proprio_dim=episodes[0].proprio.shape[1], image_size=image_size,
                        policy=policy if config.encoder == "policy" else None)
        return fit_chunk_q(q, episodes, config, context, policy)


def own_rollouts(policy: Policy, tasks: Sequence[str], config: ValueConfig, context: JobContext) -> list[EpisodeRecord]:
    """``config.rollout_episodes`` episodes of ``policy`` at ``sample_temperature`` on training seeds drawn from the
    job's generator (ID split, tasks in turn)."""
    specs = [EpisodeSpec(tasks[i % len(tasks)], "id", int(context.rng.integers(*TRAIN_SEED_RANGE)))
             for i in range(config.rollout_episodes)]
    image_size = policy.config.image_size
    rollouts = (ParallelSimRollouts(policy, 16, image_size, config.rollout_workers, seed=config.seed)
                if config.rollout_workers else SimRollouts(16, image_size))
    try:
        episodes = rollouts.run(policy, specs, temperature=config.sample_temperature)
    finally:
        rollouts.close()
    context.log(0, {"rollout/episodes": float(len(episodes)),
                    "rollout/success_rate": float(np.mean([e.success for e in episodes]))})
    return episodes


def fit_chunk_q(
    q: ChunkQFunction,
    episodes: Sequence[EpisodeRecord],
    config: ValueConfig,
    context: JobContext,
    policy: Policy | None = None,
) -> dict[str, float]:
    """Train ``q`` for ``context.steps`` updates (or until stopped) on ``episodes``, saving it as the job's latest
    checkpoint (no score: a Q-function is never a policy for ``on_new_best``); returns the last metrics."""
    horizon = q.config.chunk_size
    transitions = ChunkTransitions.from_episodes(episodes, q.features, horizon, config.gamma)
    num_policy = config.num_policy_chunks if policy is not None else 0
    sampled = policy_samples(policy, episodes, num_policy, config.sample_temperature) if num_policy else None
    # SARSA target: the data's own next chunk (its value is irrelevant where the episode ended: bootstrap is 0).
    next_chunks = transitions.actions[transitions.next_index]
    generator = torch.Generator().manual_seed(config.seed)
    target = copy.deepcopy(q.critics).requires_grad_(False)
    optimizer = torch.optim.Adam(q.critics.parameters(), lr=config.learning_rate)
    q.train()

    def update(step: int) -> dict[str, float]:
        rows = torch.randint(len(transitions), (config.batch_size,), generator=generator)
        policy_chunks = sampled[rows] if sampled is not None else torch.empty((len(rows), 0, horizon, ACTION_DIM))
        return critic_update(q, target, optimizer, transitions, rows, next_chunks[rows], policy_chunks, config,
                             generator)

    metrics = run_updates(context, config, update, lambda step, logged: context.save_checkpoint(q, step, logged))
    q.eval()
    return metrics
