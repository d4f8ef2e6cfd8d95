"""VLA policies behind one API (:class:`Policy`), Hugging Face style checkpoints, and :func:`load_policy`.

One folder per model family, config apart from model (``configuration_<family>.py``, ``modeling_<family>.py``).
Importing this package registers every built-in policy type: ``token_vla`` (:class:`TokenVla`), ``frozen_encoder``
(:class:`FrozenEncoderPolicy`), ``film_keypoints`` (:class:`FilmKeypointsPolicy`), ``flow_matching``
(:class:`FlowMatchingPolicy`), ``hf_vlm`` (:class:`HfVlmPolicy`), ``advantage_conditioned``
(:class:`AdvantageConditionedPolicy`, RECAP's) and ``llava_adapter`` (:class:`LlavaActionAdapter`). The chunk
Q-function (:class:`ChunkQFunction`) lives here too: a model that scores the chunks a policy proposes, saved the same
way, but not a policy (it does not act), so :func:`load_policy` does not load it.
"""

from rlvla_ros.policies.adapter import LlavaActionAdapter, LlavaAdapterConfig
from rlvla_ros.policies.advantage_conditioned import AdvantageConditionedConfig, AdvantageConditionedPolicy
from rlvla_ros.policies.base import (
    Policy,
    PolicyConfig,
    PolicyOutput,
    load_policy,
    new_policy,
    register_policy,
    registered_policies,
)
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction
from rlvla_ros.policies.film_keypoints import FilmKeypointsConfig, FilmKeypointsPolicy
from rlvla_ros.policies.flow_matching import FlowMatchingConfig, FlowMatchingPolicy
from rlvla_ros.policies.frozen_encoder import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.hf_vlm import HfVlmConfig, HfVlmPolicy
from rlvla_ros.policies.token_vla import TokenVla, TokenVlaConfig

__all__ = [
    "AdvantageConditionedConfig",
    "AdvantageConditionedPolicy",
    "ChunkQConfig",
    "ChunkQFunction",
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
    "new_policy",
    "register_policy",
    "registered_policies",
]
