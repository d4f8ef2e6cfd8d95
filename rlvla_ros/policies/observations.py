"""Turn contract observation batches into model tensors, validating shapes on the way."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlvla_ros.policies.base import ObsBatch


def batch_size(obs_batch: ObsBatch) -> int:
    """Number of observations in a batch; checks the three fields agree."""
    for key in ("image", "proprio", "instruction"):
        if key not in obs_batch:
            raise ValueError(f"observation batch lacks {key!r}")
    n = len(obs_batch["instruction"])
    if isinstance(obs_batch["instruction"], str):
        raise ValueError("instruction must be a list of str in a batch (got one str): batch the observation first")
    if len(obs_batch["image"]) != n or len(obs_batch["proprio"]) != n:
        raise ValueError(
            f"batch sizes differ: image {len(obs_batch['image'])}, proprio {len(obs_batch['proprio'])}, "
            f"instruction {n}"
        )
    return n


def image_tensor(images: Any, size: int, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, size, size) float32 in [0, 1], bilinearly resized if needed."""
    x = torch.as_tensor(np.asarray(images), device=device)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"image batch must be (B, H, W, 3), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def resized_images(images: Any, size: int, chunk: int = 256) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, size, size, 3) uint8, resized as :func:`image_tensor` resizes (what a model of
    that input size sees, up to rounding), ``chunk`` images at a time."""
    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return torch.as_tensor(images)
    return torch.cat([
        image_tensor(images[i : i + chunk], size, torch.device("cpu")).mul_(255.0).round_().to(torch.uint8)
        .permute(0, 2, 3, 1)
        for i in range(0, len(images), chunk)
    ])


def proprio_tensor(proprio: Any, dim: int, device: torch.device) -> torch.Tensor:
    """(B, P) float32 proprio tensor; checks P against the model's config."""
    x = torch.as_tensor(np.asarray(proprio, dtype=np.float32), device=device)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"proprio batch must be (B, {dim}), got {tuple(x.shape)}")
    return x


def action_tensor(actions: Any, batch: int, horizon: int, action_dim: int, device: torch.device) -> torch.Tensor:
    """Validate an action chunk batch (B, H, D) and return it as float32 on ``device``."""
    actions = torch.as_tensor(actions, device=device)
    if actions.shape != (batch, horizon, action_dim):
        raise ValueError(f"actions must be ({batch}, {horizon}, {action_dim}), got {tuple(actions.shape)}")
    return actions.float()
