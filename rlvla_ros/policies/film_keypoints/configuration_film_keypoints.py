"""Config of the FiLM keypoint policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlvla_ros.policies.gaussian_chunk import GaussianChunkConfig


@dataclass
class FilmKeypointsConfig(GaussianChunkConfig):
    """Small conv encoder trained from scratch, FiLM-conditioned on frozen MiniLM instruction embeddings, with a
    spatial-softmax keypoint read-out."""

    policy_type: ClassVar[str] = "film_keypoints"
    image_size: int = 64
    """Side of the square image the model consumes; other sizes are resized."""
    channels: list[int] = field(default_factory=lambda: [32, 32, 32, 32])
    """Output channels of each 3x3 conv layer; the last layer's channels are the keypoints."""
    strides: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    """Stride of each conv layer."""
    freeze_encoder: bool = False
    """Convs and FiLM generators frozen: only the heads train and their input features can be cached (RL after BC,
    FLaRe style); BC trains everything when False."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.channels or len(self.channels) != len(self.strides):
            raise ValueError("channels and strides must be non-empty and of equal length")
        if min(self.channels) < 1 or min(self.strides) < 1:
            raise ValueError("channels and strides must be >= 1")
