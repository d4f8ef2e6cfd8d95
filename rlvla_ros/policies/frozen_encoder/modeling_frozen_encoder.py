"""Gaussian action-chunk policy on frozen pretrained perception: the cheap model to RL fine-tune on a CPU.

Features are ``[MobileNetV2 pooled image features (1280), MiniLM instruction embedding (384), proprio (P)]``; both
encoders are frozen (and left out of checkpoints: the constructor loads them from their packages), instruction
embeddings are cached per distinct instruction. The actor is a tanh-squashed diagonal Gaussian over the whole chunk
with a learned, state-independent log-std; the critic is a separate MLP on the same features.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlvla_ros.policies.base import ACTION_DIM, ObsBatch, Policy, PolicyOutput, register_policy
from rlvla_ros.policies.encoders import EMBEDDING_DIM, FEATURE_DIM, MiniLmSentenceEncoder, pretrained_mobilenet_v2
from rlvla_ros.policies.frozen_encoder.configuration_frozen_encoder import FrozenEncoderConfig
from rlvla_ros.policies.observations import action_tensor, batch_size, image_tensor, proprio_tensor

_ACTION_EPS = 1e-6
"""Actions are clamped to +-(1 - eps) before atanh so log-probs of actions on the box edge stay finite."""


def _mlp(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
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


@register_policy
class FrozenEncoderPolicy(Policy):
    """Frozen MobileNetV2 + MiniLM features -> tanh-Gaussian chunk actor and value critic."""

    config_class = FrozenEncoderConfig
    config: FrozenEncoderConfig
    frozen_prefixes = ("image_encoder.", "text_encoder.")

    def __init__(self, config: FrozenEncoderConfig) -> None:
        super().__init__(config)
        self.image_encoder = pretrained_mobilenet_v2().requires_grad_(False)
        self.text_encoder = MiniLmSentenceEncoder()
        feature_dim = FEATURE_DIM + EMBEDDING_DIM + config.proprio_dim
        chunk_dims = config.chunk_size * ACTION_DIM
        self.actor = _mlp(feature_dim, config.hidden_size, config.num_layers, chunk_dims)
        self.log_std = nn.Parameter(torch.full((chunk_dims,), config.init_log_std))
        self.critic = _mlp(feature_dim, config.hidden_size, config.num_layers, 1)

    def train(self, mode: bool = True) -> FrozenEncoderPolicy:
        """Train mode for the heads only: the frozen MobileNet keeps its BatchNorm statistics."""
        super().train(mode)
        self.image_encoder.eval()
        return self

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Concatenated frozen features (B, 1280 + 384 + P); no gradient flows into the encoders."""
        batch_size(obs_batch)
        device = self.device
        with torch.no_grad():
            pixels = image_tensor(obs_batch["image"], self.config.image_size, device)
            image = self.image_encoder.embed(self.image_encoder.normalize(pixels))
            text = self.text_encoder(list(obs_batch["instruction"]))
        proprio = proprio_tensor(obs_batch["proprio"], self.config.proprio_dim, device)
        return torch.cat([image, text, proprio], dim=-1)

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
        actions = torch.tanh(pre_tanh).clamp(-1.0 + _ACTION_EPS, 1.0 - _ACTION_EPS)
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
        """:meth:`log_prob` on precomputed :meth:`features`: the encoders are frozen, so an RL update can encode a
        rollout once and reuse the features for every epoch."""
        actions = action_tensor(actions, features.shape[0], self.chunk_size, ACTION_DIM, features.device)
        mean, std = self._mean_std(features, temperature)
        pre_tanh = torch.atanh(actions.clamp(-1.0 + _ACTION_EPS, 1.0 - _ACTION_EPS))
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
