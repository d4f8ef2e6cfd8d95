"""The frozen perception of the ``frozen_encoder`` policy and of the chunk Q-function: ImageNet MobileNetV2 pooled
image features (1280), the MiniLM instruction embedding (384) and the proprio vector, concatenated."""

from __future__ import annotations

import torch

from rlvla_ros.policies.encoders.minilm import EMBEDDING_DIM, MiniLmSentenceEncoder
from rlvla_ros.policies.encoders.mobilenet_v2 import FEATURE_DIM, pretrained_mobilenet_v2
from rlvla_ros.policies.observations import batch_size, image_tensor, proprio_tensor


class FrozenPerception:
    """Mixin for a model whose config has ``image_size`` and ``proprio_dim``: :meth:`build_frozen_perception` in
    its ``__init__`` loads the encoders, :meth:`features` encodes observation batches. The encoders load themselves
    from their packages, so checkpoints leave them out (``frozen_prefixes``)."""

    frozen_prefixes = ("image_encoder.", "text_encoder.")

    def build_frozen_perception(self) -> int:
        """Create the frozen encoders; returns the width of :meth:`features`."""
        self.image_encoder = pretrained_mobilenet_v2().requires_grad_(False)
        self.text_encoder = MiniLmSentenceEncoder()
        return FEATURE_DIM + EMBEDDING_DIM + self.config.proprio_dim

    def train(self, mode: bool = True):
        """Train mode for everything but the frozen MobileNet, which keeps its BatchNorm statistics."""
        super().train(mode)
        self.image_encoder.eval()
        return self

    def features(self, obs_batch: dict) -> torch.Tensor:
        """Concatenated frozen features (B, 1280 + 384 + P); no gradient flows into the encoders."""
        batch_size(obs_batch)
        device = self.device
        with torch.no_grad():
            pixels = image_tensor(obs_batch["image"], self.config.image_size, device)
            image = self.image_encoder.embed(self.image_encoder.normalize(pixels))
            text = self.text_encoder(list(obs_batch["instruction"]))
        proprio = proprio_tensor(obs_batch["proprio"], self.config.proprio_dim, device)
        return torch.cat([image, text, proprio], dim=-1)
