"""Frozen pretrained encoders shipped as offline packages: ImageNet MobileNetV2 and MiniLM sentence embeddings."""

from rlvla_ros.policies.encoders.minilm import EMBEDDING_DIM, MiniLmSentenceEncoder
from rlvla_ros.policies.encoders.mobilenet_v2 import FEATURE_DIM, MobileNetV2, pretrained_mobilenet_v2

__all__ = ["EMBEDDING_DIM", "FEATURE_DIM", "MiniLmSentenceEncoder", "MobileNetV2", "pretrained_mobilenet_v2"]
