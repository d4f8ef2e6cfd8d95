"""GRPO for VLA policies as in SimpleVLA-RL: group rollouts, binary success reward, no critic.

Each iteration runs groups of ``group_size`` episodes that start from the same initial state (same task, split and
seed) at a raised sampling temperature. An episode's reward is its success (0 or 1); its advantage is the reward
normalised within its group and is shared by every decision of the episode. Dynamic sampling drops groups whose
episodes all succeeded or all failed (zero advantage, no signal) and samples more groups, up to
``max_sampling_rounds``, until ``groups_per_iteration`` informative groups are found. The policy is updated with the
clip-higher surrogate (``eps_low`` 0.2, ``eps_high`` 0.28), token(row)-level averaged, with no KL term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext
from rlvla_ros.algorithms.online import OnlineConfig, OnlineTrainer, RolloutSource, episode_successes
from rlvla_ros.algorithms.policy_inputs import PolicyInputs
from rlvla_ros.algorithms.segments import chunk_segments, segment_observations
from rlvla_ros.algorithms.surrogate import clipped_surrogate
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.policies import Policy
from rlvla_ros.rollouts import distributed


UPDATE_METRICS = ("policy_loss", "grad_norm", "approx_kl", "clip_fraction", "ratio_mean")


@dataclass
class GrpoConfig(OnlineConfig):
    """Hyper-parameters of GRPO (SimpleVLA-RL)."""

    group_size: int = 8
    """Episodes per group (same initial state)."""
    groups_per_iteration: int = 4
    """Informative groups wanted per iteration (per rank)."""
    max_sampling_rounds: int = 3
    """Rounds of ``groups_per_iteration`` groups sampled at most while looking for informative ones."""
    eps_low: float = 0.2
    """Lower clip range of the ratio."""
    eps_high: float = 0.28
    """Upper clip range of the ratio (clip-higher)."""
    temperature: float = 1.5
    """Sampling temperature of training rollouts (raised for exploration)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages are relative within a group), got {self.group_size}")
        if self.groups_per_iteration < 1 or self.max_sampling_rounds < 1:
            raise ValueError("groups_per_iteration and max_sampling_rounds must be >= 1")
        if self.reward_mode != "sparse":
            raise ValueError("grpo ranks episodes by their binary success: reward_mode must be sparse")


def group_advantages(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(r - mean(r)) / (std(r) + eps)`` within one group; all zeros for a constant group."""
    rewards = np.asarray(rewards, dtype=np.float32)
    return (rewards - rewards.mean()) / (rewards.std() + eps)


def group_episodes(episodes: Sequence[EpisodeRecord]) -> list[list[int]]:
    """Indices of episodes that share an initial state (task, split, seed), in first-seen order."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    for index, episode in enumerate(episodes):
        groups.setdefault((episode.task, episode.split, episode.seed), []).append(index)
    return list(groups.values())


def is_informative(rewards: np.ndarray) -> bool:
    """Dynamic sampling: a group teaches something only if its rewards are not all equal."""
    return len(rewards) > 1 and bool(np.ptp(rewards) > 0)


class GrpoTrainer(OnlineTrainer):
    """Critic-free group-relative policy optimisation; see the module docstring."""

    name = "grpo"
    config_class = GrpoConfig

    def iterate(self, policy: Policy, source: RolloutSource, context: JobContext) -> dict[str, float]:
        config: GrpoConfig = context.config  # type: ignore[assignment]
        policy.eval()
        kept: list[EpisodeRecord] = []
        advantages: list[float] = []
        sampled, informative, successes = 0, 0, []
        for _ in range(config.max_sampling_rounds):
            specs = self.train_specs(context, config.groups_per_iteration, repeats=config.group_size)
            episodes = source.collect(policy, specs, config.temperature)
            rewards = episode_successes(episodes)
            successes.append(rewards)
            for group in group_episodes(episodes):
                sampled += 1
                if is_informative(rewards[group]):
                    informative += 1
                    kept += [episodes[i] for i in group]
                    advantages += group_advantages(rewards[group]).tolist()
            if informative >= config.groups_per_iteration:
                break
        policy.train()
        self.optimizer_for(policy, config)
        metrics = self.update(policy, kept, np.asarray(advantages, np.float32), config, context.rng)
        metrics["rollout/success_rate"] = float(np.concatenate(successes).mean())
        metrics["rollout/informative_groups"] = float(informative)
        metrics["rollout/informative_fraction"] = informative / max(sampled, 1)
        return metrics

    def update(
        self, policy: Policy, episodes: Sequence[EpisodeRecord], advantages: np.ndarray, config: GrpoConfig,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """Clip-higher surrogate epochs; ``advantages[i]`` belongs to ``episodes[i]`` and all its decisions; minibatches
        drawn with ``rng``."""
        assert self.optimizer is not None
        if episodes:
            segments = chunk_segments(episodes, policy.chunk_size)
            inputs = PolicyInputs(policy, segment_observations(episodes, segments))
            actions = torch.as_tensor(segments.actions)
            mask = torch.as_tensor(segments.mask)
            old_log_probs = torch.as_tensor(segments.old_log_probs)
            decision_adv = torch.as_tensor(advantages[segments.episode])
            size = len(inputs)
        else:
            size = 0
        stats: dict[str, list[float]] = {}
        trainable = [p for p in policy.parameters() if p.requires_grad]
        for _ in range(config.update_epochs):
            for index in distributed.minibatch_indices(size, config.minibatch_size, rng):
                if len(index) == 0:
                    # Nothing to learn on this rank, but the gradient all-reduce needs it: contribute zeros.
                    distributed.optimizer_step(policy, self.optimizer, sum(0.0 * p.sum() for p in trainable), 0.0)
                    continue
                log_probs, _ = inputs.log_prob(index, actions[index], temperature=config.temperature,
                                               latents=segments.latents_at(index))
                loss, diag = clipped_surrogate(
                    log_probs, old_log_probs[index], decision_adv[index], mask[index], config.eps_low, config.eps_high
                )
                grad_norm = distributed.optimizer_step(policy, self.optimizer, loss, config.max_grad_norm)
                for name, value in {"policy_loss": loss.item(), "grad_norm": grad_norm, **diag}.items():
                    stats.setdefault(name, []).append(value)
        # The same keys on every rank (they are averaged across ranks), also when this rank had nothing to learn.
        metrics = {name: float(np.mean(stats[name])) if name in stats else 0.0 for name in UPDATE_METRICS}
        metrics["decisions"] = float(size)
        return metrics
