"""Config of the OpenVLA-style token VLA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlvla_ros.policies.base import PolicyConfig

DECODING_MODES = ("parallel", "autoregressive")


@dataclass
class TokenVlaConfig(PolicyConfig):
    """Sizes of a small SigLIP vision tower + Llama LM that emits one token per action dimension."""

    policy_type: ClassVar[str] = "token_vla"
    decoding: str = "parallel"
    """"parallel": all H*5 action tokens from learned query slots in one pass (OpenVLA-OFT style);
    "autoregressive": token by token, each conditioned on the previous ones (OpenVLA style)."""
    num_bins: int = 256
    """Bins (and action tokens) per action dimension over [-1, 1]."""
    max_instruction_bytes: int = 64
    """Instructions are truncated to this many UTF-8 bytes."""
    patch_size: int = 16
    """Vision patch side in pixels; image_size / patch_size squared image tokens."""
    vision_hidden_size: int = 128
    """Width of the vision transformer."""
    vision_layers: int = 2
    """Depth of the vision transformer."""
    vision_heads: int = 4
    """Attention heads of the vision transformer."""
    vision_intermediate_size: int = 256
    """MLP width of the vision transformer."""
    hidden_size: int = 192
    """Width of the language model."""
    num_layers: int = 4
    """Depth of the language model."""
    num_heads: int = 4
    """Query heads of the language model."""
    num_kv_heads: int = 2
    """Key/value heads of the language model (grouped-query attention)."""
    intermediate_size: int = 512
    """MLP width of the language model."""
    value_hidden_size: int = 128
    """Hidden width of the value head."""

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"decoding must be one of {DECODING_MODES}, got {self.decoding!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
