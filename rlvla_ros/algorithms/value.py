"""``value``: a chunk Q-function (:class:`~rlvla_ros.policies.chunk_q.ChunkQFunction`) for test-time steering of a
fixed policy, fitted offline with the conservative critic objective (:mod:`rlvla_ros.algorithms.conservative_critic`).

The TD targets are SARSA's (the data's next chunk), so no action outside the data is ever bootstrapped from, and the
regulariser's policy samples come from the policy the Q-function will steer (``init_checkpoint``), which makes it
conservative exactly on the candidates it has to rank.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlvla_ros.algorithms.base import JobContext, Trainer
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.conservative_critic import ConservativeCriticConfig, critic_update, make_critic
from rlvla_ros.algorithms.offline import load_episodes, run_updates
from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.data import EpisodeRecord
from rlvla_ros.policies import Policy
from rlvla_ros.policies.chunk_q import ChunkQFunction


@dataclass
class ValueConfig(ConservativeCriticConfig):
    """Hyper-parameters of the steering Q-function (``value``)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    sample_temperature: float = 1.0
    """Temperature of the policy samples (use the one steering will sample candidates at)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_temperature <= 0:
            raise ValueError(f"sample_temperature must be > 0, got {self.sample_temperature}")


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
        chunk_size = policy.chunk_size if policy is not None else config.chunk_size
        image_size = policy.config.image_size if policy is not None else config.image_size
        q = make_critic(config, chunk_size=chunk_size, proprio_dim=episodes[0].proprio.shape[1], image_size=image_size)
        return fit_chunk_q(q, episodes, config, context, policy)


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
