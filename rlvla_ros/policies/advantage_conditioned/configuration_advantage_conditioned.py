"""Config of the advantage-conditioned (RECAP) policy."""

from __future__ import annotations

from dataclasses import dataclass

from rlvla_ros.policies.frozen_encoder import FrozenEncoderConfig

POSITIVE, NOT_POSITIVE = 1.0, -1.0
"""Values of the advantage indicator."""


@dataclass
class AdvantageConditionedConfig(FrozenEncoderConfig):
    """A frozen-encoder policy whose actor is conditioned on a binarised advantage indicator."""

    policy_type = "advantage_conditioned"
    inference_indicator: float = POSITIVE
    """Indicator the policy acts on (1: positive advantage, -1: not positive)."""
