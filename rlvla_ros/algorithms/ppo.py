"""PPO on action chunks (VLA-RL style): clipped surrogate on per-row chunk log-probs, a value head, GAE.

One decision is one chunk (see :mod:`rlvla_ros.algorithms.segments`); its reward is the sum of the rewards of the
rows it executed (the sparse success reward), GAE runs over the decisions of each episode and an episode's last
decision does not bootstrap. The update follows CleanRL's ``ppo_continuous_action.py``: advantage normalisation per
minibatch, clipped surrogate, value regression, optional entropy bonus, and the diagnostics approx_kl,
clip_fraction and explained_variance.
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


@dataclass
class PpoConfig(OnlineConfig):
    """Hyper-parameters of chunk-level PPO."""

    episodes_per_iteration: int = 32
    """Episodes collected per iteration (per rank)."""
    gamma: float = 0.99
    """Discount per decision."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_coef: float = 0.2
    """Surrogate clip range (symmetric)."""
    vf_coef: float = 0.5
    """Value loss weight."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    target_kl: float = 0.0
    """Stop an iteration's epochs early once an epoch's mean approx KL to the rollout policy exceeds this
    (CleanRL's ``target_kl``; <= 0: off), so one batch cannot move the policy far."""
    critic_warmup_iterations: int = 0
    """First iterations that fit only the value head (the policy is unchanged), so that the first policy updates
    see advantages from a fitted critic rather than a random one (the critic warmup of VLA-RL)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.episodes_per_iteration < 1:
            raise ValueError(f"episodes_per_iteration must be >= 1, got {self.episodes_per_iteration}")
        if not (0.0 <= self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0):
            raise ValueError("gamma and gae_lambda must be in [0, 1]")
        if self.critic_warmup_iterations < 0:
            raise ValueError(f"critic_warmup_iterations must be >= 0, got {self.critic_warmup_iterations}")


def gae(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns over consecutive decisions; ``dones[t]`` ends an episode at t
    (no bootstrap from ``values[t + 1]``)."""
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        not_done = 0.0 if dones[t] else 1.0
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages, advantages + values.astype(np.float32)


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target); NaN when the target is constant."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


class PpoTrainer(OnlineTrainer):
    """Chunk-level PPO with a critic; see the module docstring."""

    name = "ppo"
    config_class = PpoConfig
    adam_eps = 1e-5

    def __init__(self) -> None:
        super().__init__()
        self.iterations = 0

    def iterate(self, policy: Policy, source: RolloutSource, context: JobContext) -> dict[str, float]:
        config: PpoConfig = context.config  # type: ignore[assignment]
        specs = self.train_specs(context, config.episodes_per_iteration)
        policy.eval()
        episodes = source.collect(policy, specs, config.temperature)
        policy.train()
        self.optimizer_for(policy, config)
        self.iterations += 1
        train_policy = self.iterations > config.critic_warmup_iterations
        metrics = self.update(policy, episodes, config, context.rng, train_policy=train_policy)
        metrics["rollout/success_rate"] = float(episode_successes(episodes).mean())
        metrics["rollout/episode_length"] = float(np.mean([len(e) for e in episodes]))
        return metrics

    def update(
        self,
        policy: Policy,
        episodes: Sequence[EpisodeRecord],
        config: PpoConfig,
        rng: np.random.Generator,
        train_policy: bool = True,
    ) -> dict[str, float]:
        """PPO epochs over the decisions of ``episodes``, minibatches drawn with ``rng``; with ``train_policy``
        false only the value loss is optimised (critic warmup)."""
        assert self.optimizer is not None
        segments = chunk_segments(episodes, policy.chunk_size)
        inputs = PolicyInputs(policy, segment_observations(episodes, segments))
        with torch.no_grad():
            values = inputs.value(np.arange(len(inputs))).cpu().numpy()
        advantages, returns = gae(segments.rewards, values, segments.dones, config.gamma, config.gae_lambda)
        actions = torch.as_tensor(segments.actions)
        mask = torch.as_tensor(segments.mask)
        old_log_probs = torch.as_tensor(segments.old_log_probs)
        adv_t, ret_t = torch.as_tensor(advantages), torch.as_tensor(returns)
        stats: dict[str, list[float]] = {}
        for epochs in range(1, config.update_epochs + 1):
            epoch_kl: list[float] = []
            for index in distributed.minibatch_indices(len(inputs), config.minibatch_size, rng):
                log_probs, entropy = inputs.log_prob(index, actions[index], temperature=config.temperature,
                                                     latents=segments.latents_at(index))
                adv = adv_t[index]
                if config.norm_adv and len(index) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss, diag = clipped_surrogate(
                    log_probs, old_log_probs[index], adv, mask[index], config.clip_coef, config.clip_coef
                )
                v_loss = 0.5 * ((inputs.value(index) - ret_t[index]) ** 2).mean()
                rows = mask[index].float()
                entropy_mean = (entropy * rows).sum() / rows.sum().clamp(min=1.0)
                loss = config.vf_coef * v_loss
                if train_policy:
                    loss = loss + pg_loss - config.ent_coef * entropy_mean
                grad_norm = distributed.optimizer_step(policy, self.optimizer, loss, config.max_grad_norm)
                step_stats = {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(),
                              "entropy": entropy_mean.item(), "grad_norm": grad_norm, **diag}
                for name, value in step_stats.items():
                    stats.setdefault(name, []).append(value)
                epoch_kl.append(diag["approx_kl"])
            # Every rank stops after the same epoch (their KL estimates differ).
            over_kl = train_policy and config.target_kl > 0 and float(np.mean(epoch_kl or [0.0])) > config.target_kl
            if distributed.agree_max(int(over_kl)):
                break
        metrics = {name: float(np.mean(values)) for name, values in stats.items()}
        metrics["explained_variance"] = explained_variance(values, returns)
        metrics["decisions"] = float(len(inputs))
        metrics["update_epochs_run"] = float(epochs)
        metrics["policy_updated"] = float(train_policy)
        return metrics
