"""pi0-style flow-matching action expert on the FiLM keypoint encoder, with the noise parameterisations RL needs."""

from rlvla_ros.policies.flow_matching.configuration_flow_matching import PREDICTIONS, RL_METHODS, FlowMatchingConfig
from rlvla_ros.policies.flow_matching.modeling_flow_matching import FlowMatchingPolicy

__all__ = ["PREDICTIONS", "RL_METHODS", "FlowMatchingConfig", "FlowMatchingPolicy"]
