"""Config of the frozen-encoder Gaussian chunk policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlvla_ros.policies.gaussian_chunk import GaussianChunkConfig


@dataclass
class FrozenEncoderConfig(GaussianChunkConfig):
    """Trainable heads on frozen ImageNet MobileNetV2 image features and MiniLM instruction embeddings."""

    policy_type: ClassVar[str] = "frozen_encoder"
