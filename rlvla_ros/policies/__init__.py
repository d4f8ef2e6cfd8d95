"""VLA policies behind one API (:class:`Policy`), Hugging Face style checkpoints, and :func:`load_policy`.

Importing this package registers every built-in policy type: ``token_vla`` (:class:`TokenVla`),
``frozen_encoder`` (:class:`FrozenEncoderPolicy`), ``film_keypoints`` (:class:`FilmKeypointsPolicy`),
``flow_matching`` (:class:`FlowMatchingPolicy`), ``hf_vlm`` (:class:`HfVlmPolicy`) and ``llava_adapter``
(:class:`LlavaActionAdapter`).
"""

from rlvla_ros.policies.adapter import LlavaActionAdapter, LlavaAdapterConfig
from rlvla_ros.policies.base import (
    ACTION_DIM,
    Policy,
    PolicyConfig,
    PolicyOutput,
    load_policy,
    register_policy,
    registered_policies,
)
from rlvla_ros.policies.film_keypoints import FilmKeypointsConfig, FilmKeypointsPolicy
from rlvla_ros.policies.flow_matching import FlowMatchingConfig, FlowMatchingPolicy
from rlvla_ros.policies.frozen_encoder import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.hf_vlm import HfVlmConfig, HfVlmPolicy
from rlvla_ros.policies.token_vla import TokenVla, TokenVlaConfig

__all__ = [
    "ACTION_DIM",
    "FilmKeypointsConfig",
    "FilmKeypointsPolicy",
    "FlowMatchingConfig",
    "FlowMatchingPolicy",
    "FrozenEncoderConfig",
    "FrozenEncoderPolicy",
    "HfVlmConfig",
    "HfVlmPolicy",
    "LlavaActionAdapter",
    "LlavaAdapterConfig",
    "Policy",
    "PolicyConfig",
    "PolicyOutput",
    "TokenVla",
    "TokenVlaConfig",
    "load_policy",
    "register_policy",
    "registered_policies",
]
