"""Config of the frozen-encoder Gaussian chunk policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlvla_ros.policies.base import PolicyConfig


@dataclass
class FrozenEncoderConfig(PolicyConfig):
    """Trainable heads on frozen ImageNet MobileNetV2 image features and MiniLM instruction embeddings."""

    policy_type: ClassVar[str] = "frozen_encoder"
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
