"""RECAP's advantage-conditioned policy: frozen-encoder features plus a binarised advantage indicator."""

from rlvla_ros.policies.advantage_conditioned.configuration_advantage_conditioned import (
    NOT_POSITIVE,
    POSITIVE,
    AdvantageConditionedConfig,
)
from rlvla_ros.policies.advantage_conditioned.modeling_advantage_conditioned import (
    AdvantageConditionedPolicy,
    IndicatorConditioned,
    condition,
)

__all__ = [
    "NOT_POSITIVE",
    "POSITIVE",
    "AdvantageConditionedConfig",
    "AdvantageConditionedPolicy",
    "IndicatorConditioned",
    "condition",
]
