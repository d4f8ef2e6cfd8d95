"""Gaussian action-chunk policy on frozen pretrained perception: the cheap model to RL fine-tune on a CPU.

Features are ``[MobileNetV2 pooled image features (1280), MiniLM instruction embedding (384), proprio (P)]``; both
encoders are frozen (and left out of checkpoints: the constructor loads them from their packages), instruction
embeddings are cached per distinct instruction. The heads are those of
:class:`~rlvla_ros.policies.gaussian_chunk.GaussianChunkPolicy` (tanh-Gaussian chunk actor with a learned,
state-independent log-std; MLP critic on the same features).
"""

from __future__ import annotations

import torch

from rlvla_ros.policies.base import ObsBatch, register_policy
from rlvla_ros.policies.encoders import EMBEDDING_DIM, FEATURE_DIM, MiniLmSentenceEncoder, pretrained_mobilenet_v2
from rlvla_ros.policies.frozen_encoder.configuration_frozen_encoder import FrozenEncoderConfig
from rlvla_ros.policies.gaussian_chunk import GaussianChunkPolicy
from rlvla_ros.policies.observations import batch_size, image_tensor, proprio_tensor


@register_policy
class FrozenEncoderPolicy(GaussianChunkPolicy):
    """Frozen MobileNetV2 + MiniLM features -> tanh-Gaussian chunk actor and value critic."""

    config_class = FrozenEncoderConfig
    config: FrozenEncoderConfig
    frozen_prefixes = ("image_encoder.", "text_encoder.")

    def __init__(self, config: FrozenEncoderConfig) -> None:
        super().__init__(config)
        self.image_encoder = pretrained_mobilenet_v2().requires_grad_(False)
        self.text_encoder = MiniLmSentenceEncoder()
        self.build_heads(FEATURE_DIM + EMBEDDING_DIM + config.proprio_dim)

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
