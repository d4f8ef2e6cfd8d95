"""Gaussian chunk policy on frozen pretrained perception (MobileNetV2 + MiniLM)."""

from rlvla_ros.policies.frozen_encoder.configuration_frozen_encoder import FrozenEncoderConfig
from rlvla_ros.policies.frozen_encoder.modeling_frozen_encoder import FrozenEncoderPolicy

__all__ = ["FrozenEncoderConfig", "FrozenEncoderPolicy"]
