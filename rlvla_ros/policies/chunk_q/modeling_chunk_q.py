"""Action-chunk Q-function ``Q(s, a_chunk)``: ranks the chunks a policy proposes (test-time steering, V-GPS / Hume)
and is the critic of offline RL (``calql``).

:class:`ChunkQFunction` is an ensemble of MLP critics on frozen observation features and a flattened ``(H, 5)``
``ee_delta`` chunk. The features are either generic (``encoder: mobilenet``: the MobileNetV2 image features, MiniLM
instruction embedding and proprio of :class:`~rlvla_ros.policies.FrozenEncoderPolicy`) or the steered policy's own
(``encoder: policy``: ``policy.features`` of a frozen copy of it, saved in the checkpoint's ``policy/``), which see
what that policy attends to, e.g. the cube its instruction names. It is saved like a policy (``config.json`` +
``model.safetensors``, frozen encoders left out) but is not one: it only scores chunks that a policy proposes. The
trainers that fit it are ``value`` (:mod:`rlvla_ros.algorithms.value`) and ``calql``
(:mod:`rlvla_ros.algorithms.calql`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.base import ObsBatch, Policy, load_policy
from rlvla_ros.policies.chunk_q.configuration_chunk_q import ChunkQConfig
from rlvla_ros.policies.encoders.frozen_perception import FrozenPerception
from rlvla_ros.policies.observations import batch_size
from rlvla_ros.policies.pretrained import PretrainedModel


class CriticEnsemble(nn.Module):
    """``num_critics`` MLPs ``Q_k(features, chunk)``; each embeds the observation once and reuses it per chunk."""

    def __init__(self, feature_dim: int, chunk_size: int, hidden_size: int, num_layers: int, num_critics: int):
        super().__init__()
        self.chunk_dim = chunk_size * ACTION_DIM
        self.trunks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden_size), nn.LayerNorm(hidden_size),
                          nn.ReLU())
            for _ in range(num_critics)
        )
        self.heads = nn.ModuleList(self._head(hidden_size, num_layers) for _ in range(num_critics))

    def _head(self, hidden_size: int, num_layers: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = hidden_size + self.chunk_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(width, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU()]
            width = hidden_size
        return nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, features: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Q-values (K, B, ...) of chunks (B, ..., H, 5) at features (B, F): one chunk or several per state."""
        if chunks.shape[0] != features.shape[0] or chunks.shape[-1] != ACTION_DIM:
            raise ValueError(f"chunks {tuple(chunks.shape)} do not match features {tuple(features.shape)}")
        flat = chunks.reshape(*chunks.shape[:-2], chunks.shape[-2] * ACTION_DIM)
        if flat.shape[-1] != self.chunk_dim:
            raise ValueError(f"chunks must have {self.chunk_dim // ACTION_DIM} steps, got {chunks.shape[-2]}")
        values = []
        for trunk, head in zip(self.trunks, self.heads, strict=True):
            embedded = trunk(features)
            embedded = embedded.view(len(features), *([1] * (flat.ndim - 2)), -1).expand(*flat.shape[:-1], -1)
            values.append(head(torch.cat([embedded, flat], dim=-1)).squeeze(-1))
        return torch.stack(values)


POLICY_DIR = "policy"
"""Where a checkpoint with ``encoder: policy`` keeps its frozen copy of the steered policy."""


def policy_feature_dim(policy: Policy) -> int:
    """Width of ``policy.features`` (ValueError for a policy without features to read)."""
    if not callable(getattr(policy, "features", None)):
        raise ValueError(f"{type(policy).__name__} has no features() for a chunk Q-function to read")
    size, proprio = policy.config.image_size, policy.config.proprio_dim
    probe = {"image": np.zeros((1, size, size, 3), np.uint8), "proprio": np.zeros((1, proprio), np.float32),
             "instruction": [""]}
    with torch.no_grad():
        return int(policy.features(probe).shape[-1])


class ChunkQFunction(FrozenPerception, PretrainedModel):
    """``Q(s, a_chunk)`` on frozen generic or steered-policy features; see the module docstring."""

    config_class = ChunkQConfig
    config: ChunkQConfig
    frozen_prefixes = ("image_encoder.", "text_encoder.", "policy.")

    def __init__(self, config: ChunkQConfig, policy: Policy | None = None) -> None:
        """``policy``: the steered policy whose features the critics read (``encoder: policy`` only)."""
        super().__init__()
        self.config = config
        if config.encoder == "policy":
            if policy is None:
                raise ValueError("a chunk Q-function on policy features needs the policy it steers")
            if (policy.chunk_size, policy.config.proprio_dim) != (config.chunk_size, config.proprio_dim):
                raise ValueError(f"the policy's chunk size and proprio ({policy.chunk_size}, "
                                 f"{policy.config.proprio_dim}) differ from the Q-function's ({config.chunk_size}, "
                                 f"{config.proprio_dim})")
            self.policy = policy.requires_grad_(False).eval()
            feature_dim = policy_feature_dim(policy)
        else:
            if policy is not None:
                raise ValueError(f"encoder {config.encoder!r} reads no policy")
            feature_dim = self.build_frozen_perception()
        self.critics = CriticEnsemble(
            feature_dim, config.chunk_size, config.hidden_size, config.num_layers, config.num_critics
        )

    @classmethod
    def build(cls, config: ChunkQConfig, directory: Path) -> ChunkQFunction:
        """With ``encoder: policy``, the frozen steered policy comes from ``directory/policy``."""
        return cls(config, load_policy(directory / POLICY_DIR) if config.encoder == "policy" else None)

    def save_parts(self, directory: Path) -> None:
        if self.config.encoder == "policy":
            self.policy.save_pretrained(directory / POLICY_DIR)

    def train(self, mode: bool = True) -> ChunkQFunction:
        """Train mode for the critics only: the frozen encoders stay in eval mode."""
        if self.config.encoder != "policy":
            return super().train(mode)
        nn.Module.train(self, mode)
        self.policy.eval()
        return self

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Frozen features: the steered policy's own, or the generic frozen perception's (B, 1280 + 384 + P), the
        same as ``FrozenEncoderPolicy.features`` at this image size."""
        if self.config.encoder != "policy":
            return super().features(obs_batch)
        batch_size(obs_batch)
        with torch.no_grad():
            return self.policy.features(obs_batch)

    def forward(self, features: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Ensemble Q-values (K, B, ...) of chunks (B, ..., H, 5) at precomputed :meth:`features` (B, F)."""
        return self.critics(features, chunks)

    def score(self, obs: dict[str, Any], candidates: torch.Tensor) -> torch.Tensor:
        """Conservative (ensemble-minimum) Q (n,) of candidate chunks (n, H, 5) for one unbatched observation."""
        single = {
            "image": np.asarray(obs["image"])[None],
            "proprio": np.asarray(obs["proprio"], dtype=np.float32)[None],
            "instruction": [obs["instruction"]],
        }
        with torch.no_grad():
            features = self.features(single)
            chunks = torch.as_tensor(candidates, dtype=torch.float32, device=self.device)[None]
            return self(features, chunks).amin(0)[0]
