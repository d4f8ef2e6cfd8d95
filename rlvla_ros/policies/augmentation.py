"""Image augmentation for training on few episodes: random translation and brightness (DrQ, robomimic's crops)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.nn import functional as F


def shift_and_brighten(images: torch.Tensor, shift_px: int, brightness: float,
                       generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``shift_px`` pixels (replicate padding) and brightness scaling by a factor in
    [1 - brightness, 1 + brightness], drawn per image, of a uint8 (B, S, S, 3) batch; returns uint8."""
    batch, size = images.shape[0], images.shape[1]
    out = images
    if shift_px:
        padded = F.pad(images.permute(0, 3, 1, 2).float(), [shift_px] * 4, mode="replicate")
        offsets = torch.randint(0, 2 * shift_px + 1, (batch, 2), generator=generator)
        out = torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())])
        out = out.permute(0, 2, 3, 1)
    if brightness:
        scale = 1.0 + (torch.rand(batch, 1, 1, 1, generator=generator) * 2 - 1) * brightness
        out = out.float() * scale
    return out.round().clamp(0, 255).to(torch.uint8)


def image_augmenter(shift_px: int, brightness: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """:func:`shift_and_brighten` with these settings and its own generator seeded by ``seed``; None if both are
    off."""
    if not shift_px and not brightness:
        return None
    return functools.partial(shift_and_brighten, shift_px=shift_px, brightness=brightness,
                             generator=torch.Generator().manual_seed(seed))
