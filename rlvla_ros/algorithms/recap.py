"""RECAP (pi0.6*): advantage-conditioned policy extraction from offline data of successes and failures.

1. Fit a value function V(s) on the offline data by regression on Monte-Carlo returns (from the success rewards);
   it is the policy's own critic head.
2. Label every transition with the H-step advantage ``A_t = sum_k gamma^k r_{t+k} + gamma^H V(s_{t+H}) - V(s_t)``
   and binarise it: the top ``positive_fraction`` of the data is "positive" (+1), the rest "not positive" (-1).
3. Train the policy by behaviour cloning on *all* the data, conditioned on that indicator. At inference the policy
   conditions on "positive", so it imitates the better part of the data without discarding the rest.

The policy is :class:`~rlvla_ros.policies.advantage_conditioned.AdvantageConditionedPolicy`; a ``frozen_encoder``
start checkpoint is converted to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.offline import OfflineConfig, load_episodes, proprio_dim, run_updates
from rlvla_ros.data import EpisodeRecord
from rlvla_ros.policies import FrozenEncoderPolicy
from rlvla_ros.policies.advantage_conditioned import (
    NOT_POSITIVE,
    POSITIVE,
    AdvantageConditionedConfig,
    AdvantageConditionedPolicy,
    condition,
)


@dataclass
class RecapConfig(OfflineConfig):
    """Hyper-parameters of RECAP (``log_interval`` and ``checkpoint_interval`` count policy updates)."""

    policy_type: str = AdvantageConditionedConfig.policy_type
    """Registered policy type of a fresh policy (an ``init_checkpoint`` of a frozen_encoder policy is converted)."""
    learning_rate: float = 1e-3
    """Adam learning rate of the policy heads and of the value function."""
    gamma: float = 0.97
    """Per-step discount of returns and advantages."""
    value_steps: int = 1000
    """Updates of the value regression before the advantages are labelled (logged before the policy's steps)."""
    positive_fraction: float = 0.5
    """Fraction of transitions (highest advantage first) labelled positive."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_steps < 0:
            raise ValueError(f"value_steps must be >= 0, got {self.value_steps}")
        if not 0.0 < self.positive_fraction < 1.0:
            raise ValueError(f"positive_fraction must be in (0, 1), got {self.positive_fraction}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")


def advantages(values: torch.Tensor, transitions: ChunkTransitions) -> torch.Tensor:
    """H-step advantages (N,) from state values V(s_t) (N,) in ``transitions`` order."""
    return transitions.chunk_rewards + transitions.bootstrap * values[transitions.next_index] - values


def binarise(advantage: torch.Tensor, positive_fraction: float) -> torch.Tensor:
    """Indicator (N,): POSITIVE for the top ``positive_fraction`` of advantages, NOT_POSITIVE for the rest."""
    threshold = torch.quantile(advantage, 1.0 - positive_fraction)
    return torch.where(advantage > threshold, POSITIVE, NOT_POSITIVE)


class RecapTrainer(Trainer):
    """Value fit, advantage labels, indicator-conditioned BC; see the module docstring."""

    name = "recap"
    config_class = RecapConfig
    needs_datasets = True
    default_steps = 2000

    def run(self, context: JobContext) -> dict[str, float]:
        config: RecapConfig = context.config  # type: ignore[assignment]
        episodes = load_episodes(context.datasets, config.tasks)
        policy = context.make_policy(proprio_dim=proprio_dim(episodes))
        if not isinstance(policy, AdvantageConditionedPolicy):
            if not isinstance(policy, FrozenEncoderPolicy):
                raise ValueError(f"recap trains a frozen_encoder policy, got {type(policy).__name__}")
            policy = AdvantageConditionedPolicy.from_policy(policy)
        transitions = ChunkTransitions.from_episodes(episodes, policy.plain_features, policy.chunk_size, config.gamma)
        generator = torch.Generator().manual_seed(config.seed)
        value_metrics = fit_value(policy, transitions, config, context, generator)
        with torch.no_grad():
            values = policy.critic(transitions.features).squeeze(-1)
        advantage = advantages(values, transitions)
        indicator = binarise(advantage, config.positive_fraction)
        metrics = {**value_metrics, **label_metrics(advantage, indicator, transitions, episodes)}
        context.log(config.value_steps, metrics)
        optimizer = torch.optim.Adam([policy.log_std, *policy.actor.parameters()], lr=config.learning_rate)

        def update(step: int) -> dict[str, float]:
            rows = torch.randint(len(transitions), (config.batch_size,), generator=generator)
            log_probs, _ = policy.log_prob_from_features(
                condition(transitions.features[rows], indicator[rows]), transitions.actions[rows]
            )
            mask = transitions.action_mask[rows].float()
            loss = -(log_probs * mask).sum() / mask.sum().clamp(min=1.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"policy/nll": loss.item()}

        def save(step: int, logged: dict[str, float]) -> None:
            context.save_checkpoint(policy, step, {**metrics, **logged})

        # The value fit logged steps 1..value_steps; the policy's updates follow on.
        return {**metrics, **run_updates(context, config, update, save, first_step=config.value_steps)}


def fit_value(
    policy: AdvantageConditionedPolicy,
    transitions: ChunkTransitions,
    config: RecapConfig,
    context: JobContext,
    generator: torch.Generator,
) -> dict[str, float]:
    """Regress the policy's critic head on Monte-Carlo returns (logged at steps 1..value_steps); returns the final
    mean squared error."""
    optimizer = torch.optim.Adam(policy.critic.parameters(), lr=config.learning_rate)
    loss = torch.zeros(())
    for step in range(1, config.value_steps + 1):
        rows = torch.randint(len(transitions), (config.batch_size,), generator=generator)
        loss = ((policy.critic(transitions.features[rows]).squeeze(-1) - transitions.mc_returns[rows]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % config.log_interval == 0:
            context.log(step, {"value/mse": loss.item()})
    return {"value/mse": loss.item()}


def label_metrics(
    advantage: torch.Tensor,
    indicator: torch.Tensor,
    transitions: ChunkTransitions,
    episodes: Sequence[EpisodeRecord],
) -> dict[str, float]:
    """How the labels split the data: positive rate on successful vs failed episodes' transitions."""
    success = torch.as_tensor(np.array([episodes[i].success for i in transitions.episode_index.tolist()]))
    positive = indicator == POSITIVE
    metrics = {"labels/advantage_mean": advantage.mean().item(), "labels/positive_rate": positive.float().mean().item()}
    if success.any():
        metrics["labels/positive_rate_success_episodes"] = positive[success].float().mean().item()
    if (~success).any():
        metrics["labels/positive_rate_failed_episodes"] = positive[~success].float().mean().item()
    return metrics
