"""FiLM-conditioned convolution (Perez et al. 2018): the block that lets an image encoder look for what an
instruction names. Used by the ``film_keypoints`` policy and the success classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FilmConvBlock(nn.Module):
    """3x3 conv -> GroupNorm -> FiLM -> ReLU: ``norm(conv(x)) * (1 + gamma) + beta``, with ``gamma, beta`` (one per
    channel) linear in a condition vector such as an instruction embedding."""

    def __init__(self, in_channels: int, out_channels: int, condition_dim: int, *, stride: int = 2,
                 affine_norm: bool = True, identity_init: bool = False, relu: bool = True) -> None:
        """``affine_norm``: GroupNorm with its own scale and shift; ``identity_init``: FiLM starts as the identity
        (zero weights); ``relu`` false leaves the output linear (a last layer read out by a spatial softmax)."""
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(min(8, out_channels), out_channels, affine=affine_norm)
        self.film = nn.Linear(condition_dim, 2 * out_channels)
        if identity_init:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.relu = relu

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """(B, C_out, H', W') from feature maps (B, C_in, H, W) and conditions (B, D)."""
        gamma, beta = self.film(condition)[:, :, None, None].chunk(2, dim=1)
        x = self.norm(self.conv(x)) * (1.0 + gamma) + beta
        return F.relu(x) if self.relu else x
