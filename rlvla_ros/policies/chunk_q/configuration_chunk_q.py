"""Config of the chunk Q-function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlvla_ros.policies.pretrained import PretrainedConfig


CHUNK_Q_ENCODERS = ("mobilenet", "policy")
"""Feature sources of a chunk Q-function (see :attr:`ChunkQConfig.encoder`)."""


@dataclass
class ChunkQConfig(PretrainedConfig):
    """Shape and width of a :class:`ChunkQFunction`."""

    model_type: ClassVar[str] = "chunk_q"
    chunk_size: int = 4
    """Horizon H of the scored chunks (the steered policy's)."""
    proprio_dim: int = 6
    """Length of the proprio vector."""
    image_size: int = 64
    """Side of the square image the frozen encoder sees; other sizes are resized."""
    hidden_size: int = 256
    """Width of each critic MLP."""
    num_layers: int = 2
    """Hidden layers of each critic MLP (the first one sees only the observation features)."""
    num_critics: int = 2
    """Ensemble size; scores and TD targets take the minimum over the ensemble."""
    encoder: str = "mobilenet"
    """The observation features the critics read: ``mobilenet`` (frozen ImageNet MobileNetV2 + MiniLM + proprio) or
    ``policy`` (the steered policy's own features, from a frozen copy of it saved in the checkpoint's ``policy/``)."""

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.num_layers < 1 or self.num_critics < 1 or self.hidden_size < 1:
            raise ValueError(f"chunk_size, num_layers, num_critics and hidden_size must be >= 1: {self}")
        if self.encoder not in CHUNK_Q_ENCODERS:
            raise ValueError(f"encoder must be one of {CHUNK_Q_ENCODERS}, got {self.encoder!r}")
