"""The advantage-conditioned policy of RECAP (pi0.6*): a frozen-encoder Gaussian chunk policy that acts on a
binarised advantage indicator.

:class:`AdvantageConditionedPolicy` (``policy_type`` ``advantage_conditioned``) is a
:class:`~rlvla_ros.policies.FrozenEncoderPolicy` whose actor also sees the indicator, as a learned embedding added
to its input (zero-initialised, so a policy converted from a BC checkpoint starts out acting exactly like it). Its
:meth:`~AdvantageConditionedPolicy.features` append the config's ``inference_indicator`` as the last column, so every
``Policy`` method acts conditioned on it; training (:mod:`rlvla_ros.algorithms.recap`) passes other indicators through
:func:`condition`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from rlvla_ros.policies.advantage_conditioned.configuration_advantage_conditioned import AdvantageConditionedConfig
from rlvla_ros.policies.base import ObsBatch, register_policy
from rlvla_ros.policies.encoders import EMBEDDING_DIM, FEATURE_DIM
from rlvla_ros.policies.frozen_encoder import FrozenEncoderPolicy


class IndicatorConditioned(nn.Module):
    """Wraps an actor MLP: input ``[features, indicator]`` -> ``actor(features + indicator * embedding)``."""

    def __init__(self, actor: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.head = actor
        self.embedding = nn.Parameter(torch.zeros(feature_dim))

    def forward(self, conditioned: torch.Tensor) -> torch.Tensor:
        features, indicator = conditioned[..., :-1], conditioned[..., -1:]
        return self.head(features + indicator * self.embedding)


def condition(features: torch.Tensor, indicator: torch.Tensor | float) -> torch.Tensor:
    """Append the advantage indicator (a scalar or (B,)) to plain frozen features (B, F) -> (B, F + 1)."""
    column = torch.as_tensor(indicator, dtype=features.dtype, device=features.device).expand(len(features))
    return torch.cat([features, column[:, None]], dim=-1)


@register_policy
class AdvantageConditionedPolicy(FrozenEncoderPolicy):
    """RECAP policy; see the module docstring."""

    config_class = AdvantageConditionedConfig
    config: AdvantageConditionedConfig

    def __init__(self, config: AdvantageConditionedConfig) -> None:
        super().__init__(config)
        self.actor = IndicatorConditioned(self.actor, FEATURE_DIM + EMBEDDING_DIM + config.proprio_dim)

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Frozen features (B, F + 1) with ``config.inference_indicator`` as the last column."""
        return condition(self.plain_features(obs_batch), self.config.inference_indicator)

    def plain_features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Frozen features (B, F) without the indicator."""
        return super().features(obs_batch)

    def value_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """V(s) from conditioned features: the critic ignores the indicator."""
        return super().value_from_features(features[..., :-1])

    @classmethod
    def from_policy(cls, policy: FrozenEncoderPolicy) -> AdvantageConditionedPolicy:
        """A RECAP policy that starts with ``policy``'s heads (e.g. a BC checkpoint) and a zero embedding."""
        converted = cls(AdvantageConditionedConfig(**dataclasses.asdict(policy.config)))
        converted.actor.head.load_state_dict(policy.actor.state_dict())
        converted.critic.load_state_dict(policy.critic.state_dict())
        with torch.no_grad():
            converted.log_std.copy_(policy.log_std)
        return converted.train(policy.training)
