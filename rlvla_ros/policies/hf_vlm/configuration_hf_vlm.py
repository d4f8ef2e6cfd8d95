"""Config of the Hugging Face vision-language-model policy family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlvla_ros.policies.base import PolicyConfig

OPENVLA_PROMPT = "{image}In: What action should the robot take to {instruction}?\nOut:"
DECODING_MODES = ("autoregressive", "parallel")


@dataclass
class HfVlmConfig(PolicyConfig):
    """Which local VLM checkpoint, how actions and proprioception map to its tokens, and the LoRA adapters."""

    policy_type: ClassVar[str] = "hf_vlm"
    base_model_dir: str = ""
    """Local directory with a transformers image-text-to-text model (config.json, safetensors weights) and its
    processor, as their ``save_pretrained`` write them; loaded offline, never from a hub."""
    prompt_template: str = OPENVLA_PROMPT
    """Prompt with an ``{image}`` field (the processor's image token) and an ``{instruction}`` field; the
    proprioception slot and the action tokens follow it."""
    decoding: str = "autoregressive"
    """"autoregressive": one action token at a time with a KV cache (OpenVLA); "parallel": every action token in
    one pass from learned query embeddings at H * 5 slots (OpenVLA-OFT's parallel decoding)."""
    num_bins: int = 256
    """Action bins per dimension over [-1, 1]: the last ``num_bins`` ids of the vocabulary (OpenVLA's reserved
    tokens); the id before them is the proprioception slot, the one before that the action query slot."""
    reversed_action_tokens: bool = True
    """OpenVLA's layout: bin b is token ``vocab_size - 1 - b``; False: ``vocab_size - num_bins + b``."""
    lora_rank: int = 8
    """Rank of the LoRA adapters (peft)."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_rank``)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input (0 keeps rollouts and updates on the same function)."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names (or suffixes) that get adapters; ``["all-linear"]``: every linear layer but the output head, as
    OpenVLA's LoRA fine-tuning does."""
    train_base: bool = False
    """Also train every weight of the base model (full fine-tuning, e.g. of a randomly initialised one); the base
    weights are then saved with the checkpoint. False: only the adapters and the heads train and are saved."""
    value_hidden_size: int = 128
    """Hidden width of the value head on the LM's last prompt state."""

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"decoding must be one of {DECODING_MODES}, got {self.decoding!r}")
        if not self.base_model_dir:
            raise ValueError("base_model_dir is required: a local directory with the VLM and its processor")
        if "{instruction}" not in self.prompt_template or "{image}" not in self.prompt_template:
            raise ValueError("prompt_template needs an {image} and an {instruction} field")
        if self.num_bins < 2 or self.lora_rank < 1 or self.chunk_size < 1:
            raise ValueError("num_bins must be >= 2, lora_rank and chunk_size >= 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module (or all-linear)")
