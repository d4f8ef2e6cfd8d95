"""Gaussian action-chunk policy on frozen pretrained perception: the cheap model to RL fine-tune on a CPU.

Features are ``[MobileNetV2 pooled image features (1280), MiniLM instruction embedding (384), proprio (P)]``; both
encoders are frozen (and left out of checkpoints: the constructor loads them from their packages), instruction
embeddings are cached per distinct instruction. The heads are those of
:class:`~rlvla_ros.policies.gaussian_chunk.GaussianChunkPolicy` (tanh-Gaussian chunk actor with a learned,
state-independent log-std; MLP critic on the same features).
"""

from __future__ import annotations

from rlvla_ros.policies.base import register_policy
from rlvla_ros.policies.encoders.frozen_perception import FrozenPerception
from rlvla_ros.policies.frozen_encoder.configuration_frozen_encoder import FrozenEncoderConfig
from rlvla_ros.policies.gaussian_chunk import GaussianChunkPolicy


@register_policy
class FrozenEncoderPolicy(FrozenPerception, GaussianChunkPolicy):
    """Frozen MobileNetV2 + MiniLM features -> tanh-Gaussian chunk actor and value critic."""

    config_class = FrozenEncoderConfig
    config: FrozenEncoderConfig

    def __init__(self, config: FrozenEncoderConfig) -> None:
        super().__init__(config)
        self.build_heads(self.build_frozen_perception())
