"""OpenVLA-style token VLA: config, offline byte tokenizer, model."""

from rlvla_ros.policies.token_vla.configuration_token_vla import TokenVlaConfig
from rlvla_ros.policies.token_vla.modeling_token_vla import TokenVla
from rlvla_ros.policies.token_vla.tokenizer import ByteActionTokenizer

__all__ = ["ByteActionTokenizer", "TokenVla", "TokenVlaConfig"]
