"""Any transformers vision-language model as an action-token policy with LoRA adapters; random tiny stand-ins."""

from rlvla_ros.policies.hf_vlm.configuration_hf_vlm import HfVlmConfig
from rlvla_ros.policies.hf_vlm.modeling_hf_vlm import HfVlmPolicy
from rlvla_ros.policies.hf_vlm.tiny_models import ARCHITECTURES, TinyVlmSize, build_tiny_vlm

__all__ = ["ARCHITECTURES", "HfVlmConfig", "HfVlmPolicy", "TinyVlmSize", "build_tiny_vlm"]
