"""Gaussian action-chunk policy that can bind the instruction to image locations, small enough to train on a CPU.

The image goes through a few 3x3 conv layers trained from scratch; after each, the activations are normalised
(GroupNorm without affine) and modulated by FiLM, ``x * (1 + gamma) + beta`` per channel, with ``gamma, beta``
linear in the frozen MiniLM instruction embedding (zero-initialised: FiLM starts as the identity). A spatial softmax
turns each channel of the last map into a keypoint, the expected (x, y) in [-1, 1]. The features
``[keypoints (2C), instruction embedding (384), proprio (P)]`` feed the tanh-Gaussian chunk heads of
:class:`~rlvla_ros.policies.gaussian_chunk.GaussianChunkPolicy`. Gradients reach the convs unless the config's
``freeze_encoder`` is set (:meth:`FilmKeypointsPolicy.freeze_encoder`); then features can be cached by RL updates.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from rlvla_ros.policies.base import ObsBatch, register_policy
from rlvla_ros.policies.encoders import EMBEDDING_DIM, MiniLmSentenceEncoder
from rlvla_ros.policies.film import FilmConvBlock
from rlvla_ros.policies.film_keypoints.configuration_film_keypoints import FilmKeypointsConfig
from rlvla_ros.policies.gaussian_chunk import GaussianChunkPolicy
from rlvla_ros.policies.observations import batch_size, image_tensor, proprio_tensor


def spatial_softmax(maps: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) in [-1, 1] of the softmax over each channel of ``maps`` (B, C, H, W) -> (B, 2C)."""
    b, c, h, w = maps.shape
    weights = maps.flatten(2).softmax(-1).view(b, c, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=maps.device, dtype=maps.dtype)
    ys = torch.linspace(-1.0, 1.0, h, device=maps.device, dtype=maps.dtype)
    x = (weights.sum(2) * xs).sum(-1)
    y = (weights.sum(3) * ys).sum(-1)
    return torch.cat([x, y], dim=-1)


LEGACY_KEY = re.compile(r"(convs|films)\.(\d+)\.(weight|bias)")
LEGACY_PARTS = {"convs": "conv", "films": "film"}


class FilmConvEncoder(nn.Module):
    """FiLM conv blocks (GroupNorm without affine, FiLM starting as the identity, no ReLU after the last), then
    spatial-softmax keypoints (B, 2C)."""

    def __init__(self, channels: list[int], strides: list[int], condition_dim: int) -> None:
        super().__init__()
        ins = [3, *channels[:-1]]
        last = len(channels) - 1
        self.blocks = nn.ModuleList(
            FilmConvBlock(a, b, condition_dim, stride=s, affine_norm=False, identity_init=True, relu=i < last)
            for i, (a, b, s) in enumerate(zip(ins, channels, strides, strict=True))
        )
        self.keypoint_dim = 2 * channels[-1]

    def forward(self, pixels: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Keypoints (B, 2C) of images (B, 3, S, S) in [0, 1] under instruction embeddings (B, D)."""
        x = (pixels - 0.5) / 0.25
        for block in self.blocks:
            x = block(x, condition)
        return spatial_softmax(x)

    @staticmethod
    def upgrade_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        """``state`` with the weights of checkpoints saved before the blocks existed (``<prefix>convs.i`` /
        ``<prefix>films.i``) under today's names (``<prefix>blocks.i.conv`` / ``.film``)."""
        upgraded = {}
        for key, tensor in state.items():
            legacy = LEGACY_KEY.fullmatch(key[len(prefix):]) if key.startswith(prefix) else None
            if legacy:
                part, index, name = legacy.groups()
                key = f"{prefix}blocks.{index}.{LEGACY_PARTS[part]}.{name}"
            upgraded[key] = tensor
        return upgraded


class FilmObservationEncoding:
    """What a policy on FiLM keypoint features has: the frozen MiniLM ``text_encoder`` and the trainable
    ``image_encoder`` (:class:`FilmConvEncoder`) built by :meth:`build_encoders` from a config with ``channels``,
    ``strides``, ``image_size``, ``proprio_dim`` and ``freeze_encoder``; :meth:`features` (B, 2C + 384 + P), frozen
    or trainable. Mixed in before the policy base class."""

    frozen_prefixes = ("text_encoder.",)

    def build_encoders(self) -> int:
        """Create the encoders; returns the feature width."""
        config = self.config
        self.text_encoder = MiniLmSentenceEncoder()
        self.image_encoder = FilmConvEncoder(config.channels, config.strides, EMBEDDING_DIM)
        return self.image_encoder.keypoint_dim + EMBEDDING_DIM + config.proprio_dim

    def upgrade_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return FilmConvEncoder.upgrade_state_dict(state, "image_encoder.")

    def freeze_encoder(self):
        """Freeze the convs and FiLM generators (recorded in the config, so checkpoints stay frozen)."""
        self.config.freeze_encoder = True
        self.image_encoder.requires_grad_(False)
        return self

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The image encoder's parameters (convs and FiLM generators), for a separate learning rate."""
        return list(self.image_encoder.parameters())

    @property
    def frozen_features(self) -> bool:
        """Whether :meth:`features` has no trainable parameters, so features may be computed once and cached."""
        return self.config.freeze_encoder

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """``[keypoints, instruction embedding, proprio]`` (B, 2C + 384 + P); differentiable in the encoder unless
        it is frozen."""
        return film_observation_features(self, obs_batch, trainable=not self.frozen_features)


@register_policy
class FilmKeypointsPolicy(FilmObservationEncoding, GaussianChunkPolicy):
    """FiLM-conditioned conv keypoints + MiniLM + proprio -> tanh-Gaussian chunk actor and value critic."""

    config_class = FilmKeypointsConfig
    config: FilmKeypointsConfig

    def __init__(self, config: FilmKeypointsConfig) -> None:
        super().__init__(config)
        self.build_heads(self.build_encoders())
        if config.freeze_encoder:
            self.freeze_encoder()


def film_observation_features(policy: nn.Module, obs_batch: ObsBatch, *, trainable: bool) -> torch.Tensor:
    """``[keypoints, instruction embedding, proprio]`` (B, 2C + 384 + P) of a policy that has a ``text_encoder``
    (:class:`MiniLmSentenceEncoder`), an ``image_encoder`` (:class:`FilmConvEncoder`) and a config with
    ``image_size`` and ``proprio_dim``; differentiable in the image encoder when ``trainable``."""
    batch_size(obs_batch)
    device = next(policy.parameters()).device
    pixels = image_tensor(obs_batch["image"], policy.config.image_size, device)
    text = policy.text_encoder(list(obs_batch["instruction"]))
    proprio = proprio_tensor(obs_batch["proprio"], policy.config.proprio_dim, device)
    with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
        keypoints = policy.image_encoder(pixels, text)
    return torch.cat([keypoints, text, proprio], dim=-1)
