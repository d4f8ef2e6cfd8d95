"""Learned success detector: camera image + instruction (+ proprioception) -> probability that the task is done.

A small CNN over a crop of the front camera image (the workspace; the wall above it carries no information),
FiLM-conditioned (Perez et al. 2018) on an embedding of the instruction's hashed word n-grams (1- to 3-grams: "put
the red" and "on the yellow" tell which cube goes on which), so one model serves every task and tells the named
object from the distractors. CoordConv channels keep where things are in the image (a lifted cube sits higher in
the picture than its resting place). With ``proprio_names`` set, the standardised proprioception joins the head: the
gripper opening tells a released cube from a held one, which a few pixels of finger barely show.

Checkpoints are Hugging Face style directories: ``config.json`` (with the calibrated decision ``threshold``) and
``model.safetensors``, written atomically and read with safetensors only.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlvla_ros.policies.film import FilmConvBlock
from rlvla_ros.policies.pretrained import PretrainedConfig, PretrainedModel


@dataclass
class SuccessClassifierConfig(PretrainedConfig):
    """Architecture of the classifier and its calibrated decision threshold."""

    model_type: ClassVar[str] = "success_classifier"
    image_size: int = 96
    """Side of the square image the CNN sees: the crop is resized (area-averaged) to it."""
    crop: list[float] = field(default_factory=lambda: [0.25, 1.0, 0.0, 1.0])
    """Image region used, as fractions of the height and width: top, bottom, left, right."""
    proprio_names: list[str] = field(default_factory=list)
    """Proprioception entries fed to the head, by name (empty: image and instruction only)."""
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    """Output channels of the stride-2 conv blocks."""
    text_buckets: int = 2048
    """Hash buckets of the instruction n-gram embedding."""
    max_ngram: int = 3
    """Longest word n-gram hashed from the instruction."""
    text_dim: int = 64
    """Size of the instruction embedding."""
    hidden_dim: int = 128
    """Width of the classification head."""
    threshold: float = 0.5
    """Success when the probability is >= this; set by calibration on held-out validation episodes."""

    def __post_init__(self) -> None:
        top, bottom, left, right = self.crop if len(self.crop) == 4 else (None,) * 4
        if top is None or not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError(f"crop must be [top, bottom, left, right] fractions with top < bottom, left < right, "
                             f"got {self.crop}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {self.channels}")
        if self.image_size < 2 ** len(self.channels):
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.channels)} stride-2 blocks")
        for name in ("text_buckets", "max_ngram", "text_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


def instruction_ngrams(instruction: str, max_ngram: int) -> list[str]:
    """Lower-cased word n-grams (1..max_ngram) of an instruction, e.g. "lift", "the red", "lift the red"."""
    words = re.findall(r"[a-z0-9]+", instruction.lower())
    return [" ".join(words[i : i + n]) for n in range(1, max_ngram + 1) for i in range(len(words) - n + 1)]


def _bucket(ngram: str, buckets: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and buckets must match across runs.
    return zlib.crc32(ngram.encode("utf-8")) % buckets


class SuccessClassifier(PretrainedModel):
    """Image + instruction (+ proprioception) -> success logit; see the module docstring."""

    config_class = SuccessClassifierConfig
    config: SuccessClassifierConfig
    PROPRIO_FEATURES = 32

    def __init__(self, config: SuccessClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.text = nn.EmbeddingBag(config.text_buckets, config.text_dim, mode="mean")
        in_channels = [3 + 2, *config.channels[:-1]]  # RGB + two coordinate channels
        self.blocks = nn.ModuleList(
            FilmConvBlock(i, o, config.text_dim) for i, o in zip(in_channels, config.channels)
        )
        side = config.image_size
        for _ in config.channels:
            side = (side + 1) // 2
        proprio_dim = len(config.proprio_names)
        # Standardisation statistics of the training data, saved with the weights.
        self.register_buffer("proprio_mean", torch.zeros(proprio_dim))
        self.register_buffer("proprio_std", torch.ones(proprio_dim))
        self.proprio = nn.Sequential(nn.Linear(proprio_dim, self.PROPRIO_FEATURES), nn.ReLU()) if proprio_dim else None
        features = config.channels[-1] * side * side + (self.PROPRIO_FEATURES if proprio_dim else 0)
        self.head = nn.Sequential(nn.Linear(features, config.hidden_dim), nn.ReLU(), nn.Linear(config.hidden_dim, 1))
        self._ngram_ids: dict[str, list[int]] = {}

    @property
    def threshold(self) -> float:
        """Calibrated decision threshold on the success probability."""
        return self.config.threshold

    def prepare_images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) camera images -> uint8 (B, S, S, 3): the configured crop, resized to ``image_size``."""
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (B, H, W, 3), got {tuple(images.shape)} {images.dtype}")
        height, width = images.shape[1:3]
        top, bottom, left, right = self.config.crop
        crop = images[:, round(top * height) : round(bottom * height), round(left * width) : round(right * width)]
        pixels = crop.permute(0, 3, 1, 2).float()
        size = self.config.image_size
        resized = F.interpolate(pixels, size=(size, size), mode="area") if pixels.shape[2:] != (size, size) else pixels
        return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    def set_proprio_normalization(self, proprio: np.ndarray) -> None:
        """Standardise proprioception with the mean and std of ``proprio`` (N, P), e.g. the training frames."""
        values = torch.as_tensor(np.asarray(proprio, dtype=np.float32))
        self.proprio_mean.copy_(values.mean(0))
        self.proprio_std.copy_(values.std(0).clamp_min(1e-3))

    def embed_instructions(self, instructions: Sequence[str]) -> torch.Tensor:
        """(B, text_dim) mean embedding of each instruction's hashed n-grams (cached per distinct text)."""
        ids, offsets = [], []
        for text in instructions:
            cached = self._ngram_ids.get(text)
            if cached is None:
                grams = instruction_ngrams(text, self.config.max_ngram) or [""]
                cached = self._ngram_ids[text] = [_bucket(g, self.config.text_buckets) for g in grams]
            offsets.append(len(ids))
            ids.extend(cached)
        device = self.device
        return self.text(torch.tensor(ids, device=device), torch.tensor(offsets, device=device))

    def forward(
        self, images: torch.Tensor, instructions: Sequence[str], proprio: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """Success logits (B,) for images from :meth:`prepare_images` (uint8 (B, S, S, 3)), their instructions and,
        if the model uses it, proprioception (B, P) in ``config.proprio_names`` order."""
        size = self.config.image_size
        if tuple(images.shape[1:]) != (size, size, 3) or images.dtype != torch.uint8:
            raise ValueError(f"expected prepared uint8 (B, {size}, {size}, 3) images, got {tuple(images.shape)}")
        if len(instructions) != len(images):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions")
        pixels = images.to(self.device).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        batch, _, height, width = pixels.shape
        shape = (batch, 1, height, width)
        ys = torch.linspace(-1.0, 1.0, height, device=pixels.device).view(1, 1, height, 1).expand(shape)
        xs = torch.linspace(-1.0, 1.0, width, device=pixels.device).view(1, 1, 1, width).expand(shape)
        x = torch.cat([pixels, ys, xs], dim=1)
        text = self.embed_instructions(instructions)
        for block in self.blocks:
            x = block(x, text)
        features = x.flatten(1)
        if self.proprio is not None:
            if proprio is None or np.shape(proprio) != (batch, len(self.config.proprio_names)):
                raise ValueError(f"this classifier needs proprioception of shape ({batch}, "
                                 f"{len(self.config.proprio_names)}) ({', '.join(self.config.proprio_names)}), "
                                 f"got {None if proprio is None else np.shape(proprio)}")
            values = torch.as_tensor(np.asarray(proprio, dtype=np.float32), device=self.device)
            features = torch.cat([features, self.proprio((values - self.proprio_mean) / self.proprio_std)], dim=1)
        return self.head(features).squeeze(-1)

    @torch.no_grad()
    def predict_proba(
        self,
        images: np.ndarray | torch.Tensor,
        instructions: Sequence[str],
        proprio: np.ndarray | None = None,
        *,
        prepared: bool = False,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Success probabilities (B,) of camera images (uint8 (B, H, W, 3); ``prepared``: already through
        :meth:`prepare_images`), as float32, in eval mode and without gradients."""
        was_training = self.training
        self.eval()
        images = torch.as_tensor(images) if prepared else self.prepare_images(images)
        probs = [
            torch.sigmoid(self(images[i : i + batch_size], instructions[i : i + batch_size],
                               None if proprio is None else proprio[i : i + batch_size])).cpu()
            for i in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        return torch.cat(probs).numpy().astype(np.float32) if probs else np.zeros(0, np.float32)
