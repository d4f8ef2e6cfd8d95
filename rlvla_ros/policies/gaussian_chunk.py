"""Tanh-Gaussian action-chunk heads on a feature vector: what every Gaussian chunk policy shares.

A subclass supplies :meth:`GaussianChunkPolicy.features` (observation batch -> (B, F)); the heads are ``actor``
(F -> H * 5 pre-tanh means), ``log_std`` (H * 5, learned and state-independent) and ``critic`` (F -> 1). The actor
is a tanh-squashed diagonal Gaussian over the whole chunk. When :attr:`frozen_features` is true, RL updates encode a
rollout once and reuse the features through ``log_prob_from_features`` / ``value_from_features``
(:mod:`rlvla_ros.algorithms.policy_inputs`).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.base import ObsBatch, Policy, PolicyConfig, PolicyOutput
from rlvla_ros.policies.observations import action_tensor

ACTION_EPS = 1e-6
"""Actions are clamped to +-(1 - eps) before atanh so log-probs of actions on the box edge stay finite."""


@dataclass
class GaussianChunkConfig(PolicyConfig):
    """Head settings every :class:`GaussianChunkPolicy` config has."""

    hidden_size: int = 256
    """Width of the actor and critic MLPs."""
    num_layers: int = 2
    """Hidden layers of the actor and critic MLPs."""
    init_log_std: float = -1.0
    """Initial log standard deviation of the pre-tanh Gaussian."""
    min_log_std: float = -5.0
    """Lower clamp of the learned log standard deviation."""
    max_log_std: float = 1.0
    """Upper clamp of the learned log standard deviation."""

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if not self.min_log_std <= self.init_log_std <= self.max_log_std:
            raise ValueError("init_log_std must lie within [min_log_std, max_log_std]")


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    """LayerNorm on the input, ``layers`` tanh hidden layers of width ``hidden``, then a linear output."""
    dims = [in_dim] + [hidden] * layers
    blocks: list[nn.Module] = [nn.LayerNorm(in_dim)]
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        blocks += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*blocks, nn.Linear(hidden, out_dim))


def squashed_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise log-density of ``tanh(u)`` for ``u ~ N(mean, std)``, including the tanh Jacobian."""
    gaussian = -0.5 * ((pre_tanh - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
    # log(1 - tanh(u)^2), in the overflow-free form used by SAC implementations.
    log_det = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return gaussian - log_det


class GaussianChunkPolicy(Policy):
    """Features -> tanh-Gaussian chunk actor and value critic; subclasses implement :meth:`features` and call
    :meth:`build_heads` with the feature width."""

    config: GaussianChunkConfig

    def build_heads(self, feature_dim: int) -> None:
        """Create ``actor``, ``log_std`` and ``critic`` on features of width ``feature_dim``."""
        config = self.config
        chunk_dims = config.chunk_size * ACTION_DIM
        self.actor = mlp(feature_dim, config.hidden_size, config.num_layers, chunk_dims)
        self.log_std = nn.Parameter(torch.full((chunk_dims,), config.init_log_std))
        self.critic = mlp(feature_dim, config.hidden_size, config.num_layers, 1)

    def freeze_log_std(self) -> GaussianChunkPolicy:
        """Keep the exploration noise as it is: updates then move only the chunk means."""
        self.log_std.requires_grad_(False)
        return self

    @abc.abstractmethod
    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Feature vectors (B, F) the heads consume."""

    @property
    def frozen_features(self) -> bool:
        """Whether :meth:`features` has no trainable parameters, so features may be computed once and cached."""
        return True

    def _mean_std(self, features: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean (B, H, 5) and tempered std (H, 5)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use deterministic=True for the mode)")
        mean = self.actor(features).reshape(-1, self.chunk_size, ACTION_DIM)
        log_std = self.log_std.clamp(self.config.min_log_std, self.config.max_log_std)
        return mean, log_std.exp().reshape(self.chunk_size, ACTION_DIM) * temperature

    def _act(self, features: torch.Tensor, deterministic: bool, temperature: float) -> PolicyOutput:
        mean, std = self._mean_std(features, temperature)
        pre_tanh = mean if deterministic else mean + std * torch.randn_like(mean)
        actions = torch.tanh(pre_tanh).clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
        return PolicyOutput(
            actions=actions,
            log_probs=squashed_gaussian_log_prob(torch.atanh(actions), mean, std).sum(-1),
            values=self.value_from_features(features),
        )

    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        with torch.no_grad():
            return self._act(self.features(obs_batch), deterministic, temperature)

    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact tanh-Gaussian log-probs; the entropy is the closed-form one of the pre-tanh Gaussian."""
        return self.log_prob_from_features(self.features(obs_batch), actions, temperature=temperature)

    def log_prob_from_features(
        self, features: torch.Tensor, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` on precomputed :meth:`features` (e.g. cached ones, see :attr:`frozen_features`)."""
        actions = action_tensor(actions, features.shape[0], self.chunk_size, ACTION_DIM, features.device)
        mean, std = self._mean_std(features, temperature)
        pre_tanh = torch.atanh(actions.clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS))
        log_probs = squashed_gaussian_log_prob(pre_tanh, mean, std).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + std.log()).sum(-1).expand_as(log_probs)
        return log_probs, entropy

    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        return self.value_from_features(self.features(obs_batch))

    def value_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`value` on precomputed :meth:`features`."""
        return self.critic(features).squeeze(-1)

    def sample_candidates(self, obs: dict[str, Any], n: int, temperature: float = 1.0) -> torch.Tensor:
        """Encodes the observation once, then draws ``n`` chunks (n, H, 5)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        single = {
            "image": np.asarray(obs["image"])[None],
            "proprio": np.asarray(obs["proprio"], dtype=np.float32)[None],
            "instruction": [obs["instruction"]],
        }
        with torch.no_grad():
            features = self.features(single).expand(n, -1)
            return self._act(features, deterministic=False, temperature=temperature).actions
