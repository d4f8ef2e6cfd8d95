"""Config of the flow-matching action-expert policy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from rlvla_ros.policies.base import PolicyConfig

PREDICTIONS = ("sample", "velocity")
"""What the action expert outputs: the clean chunk (``sample``; the velocity is ``(a_hat - x_t) / (1 - t)``) or the
velocity ``a - x_0`` itself (``velocity``, pi0's parameterisation)."""
RL_METHODS = ("flow_noise", "dsrl")
"""How RL sees the policy's randomness: ``flow_noise`` (pi-RL's Flow-Noise / ReinFlow: learned Gaussian noise at
every denoising step, the log-likelihood of the whole denoising chain, the velocity field trains) or ``dsrl`` (a
Gaussian policy over the initial noise, the flow policy frozen; DSRL)."""


@dataclass
class FlowMatchingConfig(PolicyConfig):
    """FiLM keypoint encoder (as ``film_keypoints``) + an MLP action expert that denoises the whole chunk in
    ``num_steps`` Euler steps, conditioned on the observation features and the flow time."""

    policy_type: ClassVar[str] = "flow_matching"
    image_size: int = 64
    """Side of the square image the model consumes; other sizes are resized."""
    channels: list[int] = field(default_factory=lambda: [32, 32, 32, 32])
    """Output channels of each 3x3 conv layer of the FiLM encoder; the last layer's channels are the keypoints."""
    strides: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    """Stride of each conv layer."""
    freeze_encoder: bool = False
    """Convs and FiLM generators frozen (features can be cached by RL updates); BC trains everything when False."""
    expert_hidden_size: int = 256
    """Width of the action expert's hidden layers."""
    expert_layers: int = 2
    """Hidden layers of the action expert."""
    time_embedding_dim: int = 64
    """Sinusoidal embedding width of the flow time t in [0, 1]."""
    num_steps: int = 10
    """Euler denoising steps K per chunk (from noise at t = 0 to the chunk at t = 1)."""
    prediction: str = "sample"
    """One of :data:`PREDICTIONS`. ``sample`` regresses the demonstrated chunk directly, which BC fits in the steps a
    regression head needs; ``velocity`` regresses ``a - x_0`` (measured here: far slower to fit, see
    docs/results/README.md)."""
    loss_draws: int = 8
    """(t, x_0) draws per demonstrated chunk in the flow-matching loss: the same loss with less gradient noise for
    the encoder, whose features are computed once per observation."""
    rl_method: str = "flow_noise"
    """One of :data:`RL_METHODS`; the ``dsrl`` algorithm switches a policy to ``dsrl`` (kept in checkpoints)."""
    init_noise_std: float = 0.1
    """flow_noise: initial std of the Gaussian noise added at each denoising step (learned per step and entry)."""
    min_noise_std: float = 0.01
    """flow_noise: lower clamp of that std."""
    max_noise_std: float = 0.5
    """flow_noise: upper clamp of that std."""
    noise_policy_init_log_std: float = 0.0
    """dsrl: initial log std of the noise-space policy (0: it starts as the base policy's N(0, I))."""
    head_hidden_size: int = 256
    """Width of the critic and of the noise-space policy MLPs."""

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.strides):
            raise ValueError("channels and strides must be non-empty and of equal length")
        if min(self.channels) < 1 or min(self.strides) < 1:
            raise ValueError("channels and strides must be >= 1")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.rl_method not in RL_METHODS:
            raise ValueError(f"rl_method must be one of {RL_METHODS}, got {self.rl_method!r}")
        if min(self.num_steps, self.expert_layers, self.chunk_size, self.loss_draws) < 1:
            raise ValueError("num_steps, expert_layers, chunk_size and loss_draws must be >= 1")
        if self.time_embedding_dim < 2 or self.time_embedding_dim % 2:
            raise ValueError(f"time_embedding_dim must be even and >= 2, got {self.time_embedding_dim}")
        if not 0 < self.min_noise_std <= self.init_noise_std <= self.max_noise_std:
            raise ValueError("need 0 < min_noise_std <= init_noise_std <= max_noise_std")
        if not math.isfinite(self.noise_policy_init_log_std):
            raise ValueError("noise_policy_init_log_std must be finite")
