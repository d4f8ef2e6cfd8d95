"""Adapter boundary: plugging an external VLA checkpoint (a local directory) into the policy API.

The boundary is :class:`~rlvla_ros.policies.base.Policy` itself. To plug in a real VLA (an OpenVLA export, a pi0
port, ...), write a ``Policy`` subclass that:

1. has a config dataclass (a :class:`~rlvla_ros.policies.base.PolicyConfig` subclass with a unique
   ``policy_type``) naming the local checkpoint directory and how its actions map to ``ee_delta``;
2. builds the wrapped model from that directory in ``__init__(config)``, reading weights with safetensors only
   (``from_pretrained(..., use_safetensors=True)``): a checkpoint that only has pickled weights is refused;
3. converts contract observations itself: ``image`` (B, H, W, 3) uint8 RGB -> the model's pixel tensor (resize,
   normalise), ``instruction`` -> the model's prompt template and tokenizer, ``proprio`` -> used or ignored;
4. implements ``predict`` / ``log_prob`` / ``value`` so ``predict``'s log-probs equal ``log_prob`` of its actions
   (PPO and GRPO rely on this), returning ``ee_delta`` chunks (B, H, 5) in [-1, 1]: ``[dx, dy, dz, dyaw,
   gripper]`` in the robot base frame, gripper > 0 meaning close;
5. is decorated with :func:`~rlvla_ros.policies.base.register_policy`, so ``load_policy`` loads what its
   ``save_pretrained`` wrote (the inherited save/load store the config and all non-frozen tensors).

:class:`LlavaActionAdapter` is the concrete example: a Hugging Face ``LlavaForConditionalGeneration`` directory
(what ``save_pretrained`` writes, with its tokenizer) whose LM emits OpenVLA-style action tokens: each native action
dimension, normalised to [-1, 1], is one of ``num_bins`` tokens at the end of the vocabulary (OpenVLA orders them
reversed). Native dimensions the ``ee_delta`` space cannot execute (e.g. roll and pitch of a 7-D action) are pinned
to their neutral bin while decoding, so the policy's distribution is over exactly the executed ``ee_delta``.
``ee_delta[i] = gain[i] * native[source_indices[i]] + offset[i]``; with ``|gain| + |offset| <= 1`` every decoded
value lands in [-1, 1] without clipping, which keeps the map invertible for ``log_prob``. For OpenVLA's gripper
(+1 = open after normalisation) use gain -1 on that dimension. OpenVLA's own de-tokeniser uses 255 bin centres,
so values decoded here differ from it by less than one bin width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from transformers import AutoTokenizer, DynamicCache, LlavaForConditionalGeneration

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.action_tokens import (
    ActionBins,
    bin_log_probs,
    decode_autoregressive,
    value_head,
    vocabulary_tail_ids,
)
from rlvla_ros.policies.base import ObsBatch, Policy, PolicyConfig, PolicyOutput, register_policy
from rlvla_ros.policies.observations import action_tensor, batch_size, image_tensor

OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"


@dataclass
class LlavaAdapterConfig(PolicyConfig):
    """Where the Llava-style VLA checkpoint is and how its action tokens map to ``ee_delta``."""

    policy_type: ClassVar[str] = "llava_adapter"
    checkpoint_dir: str = ""
    """Local directory with the model's config.json, model.safetensors and tokenizer files."""
    chunk_size: int = 1
    """Native action steps decoded per chunk (OpenVLA predicts 1)."""
    prompt_template: str = OPENVLA_PROMPT
    """Prompt with an ``{instruction}`` field; the image tokens go before it."""
    source_action_dim: int = 7
    """Action tokens per native step (OpenVLA: xyz, roll, pitch, yaw, gripper)."""
    source_indices: list[int] = field(default_factory=lambda: [0, 1, 2, 5, 6])
    """Native dimension feeding each ``ee_delta`` dimension [dx, dy, dz, dyaw, gripper]."""
    gain: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0, -1.0])
    """Per ``ee_delta`` dimension: multiplies the normalised native value."""
    offset: list[float] = field(default_factory=lambda: [0.0] * ACTION_DIM)
    """Per ``ee_delta`` dimension: added after the gain."""
    num_bins: int = 256
    """Action tokens per dimension."""
    reversed_action_tokens: bool = True
    """OpenVLA layout: bin b is token ``vocab_size - 1 - b``; False: token ``vocab_size - num_bins + b``."""
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    """Pixel normalisation mean of the vision tower (SigLIP: 0.5)."""
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    """Pixel normalisation std of the vision tower (SigLIP: 0.5)."""
    value_hidden_size: int = 128
    """Hidden width of the value head added on the LM's last prompt state."""

    def __post_init__(self) -> None:
        if not self.checkpoint_dir:
            raise ValueError("checkpoint_dir is required")
        for name in ("source_indices", "gain", "offset"):
            if len(getattr(self, name)) != ACTION_DIM:
                raise ValueError(f"{name} needs {ACTION_DIM} entries, got {len(getattr(self, name))}")
        if any(not 0 <= i < self.source_action_dim for i in self.source_indices):
            raise ValueError(f"source_indices {self.source_indices} out of range for {self.source_action_dim} dims")
        if any(g == 0 or abs(g) + abs(o) > 1 for g, o in zip(self.gain, self.offset, strict=True)):
            raise ValueError("each ee_delta dimension needs gain != 0 and |gain| + |offset| <= 1")


@register_policy
class LlavaActionAdapter(Policy):
    """A local ``LlavaForConditionalGeneration`` checkpoint emitting action tokens, as a ``Policy``."""

    config_class = LlavaAdapterConfig
    config: LlavaAdapterConfig

    def __init__(self, config: LlavaAdapterConfig) -> None:
        super().__init__(config)
        self.vla = LlavaForConditionalGeneration.from_pretrained(
            config.checkpoint_dir, local_files_only=True, use_safetensors=True
        )
        self.tokenizer = AutoTokenizer.from_pretrained(config.checkpoint_dir, local_files_only=True)
        vision = self.vla.config.vision_config
        self.vision_image_size = vision.image_size
        self.num_image_tokens = (vision.image_size // vision.patch_size) ** 2
        self.bins = ActionBins(config.num_bins)
        self.vocab_size = self.vla.config.text_config.vocab_size
        self.num_action_tokens = config.chunk_size * config.source_action_dim
        hidden = self.vla.config.text_config.hidden_size
        self.value_head = value_head(hidden, config.value_hidden_size)
        # Neutral bin (normalised 0) for native dimensions that ee_delta does not execute.
        neutral = int(self.bins.to_bins(torch.tensor(0.0)))
        used = set(config.source_indices)
        self.forced_bins = [
            None if k % config.source_action_dim in used else neutral for k in range(self.num_action_tokens)
        ]

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str, **overrides: Any) -> LlavaActionAdapter:
        """Wrap a raw checkpoint directory (no ``policy_type`` in it) with ``LlavaAdapterConfig(**overrides)``."""
        return cls(LlavaAdapterConfig(checkpoint_dir=str(checkpoint_dir), **overrides)).eval()

    def _token_ids(self, bins: torch.Tensor) -> torch.Tensor:
        return vocabulary_tail_ids(bins, self.vocab_size, self.config.num_bins, self.config.reversed_action_tokens)

    def _prompt(self, obs_batch: ObsBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded ``(input_ids, attention_mask, pixel_values)``; image tokens precede the prompt."""
        device = self.device
        image_token = self.vla.config.image_token_id
        rows = [
            [image_token] * self.num_image_tokens
            + self.tokenizer(self.config.prompt_template.format(instruction=text))["input_ids"]
            for text in obs_batch["instruction"]
        ]
        length = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (length - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows], device=device)
        pixels = image_tensor(obs_batch["image"], self.vision_image_size, device)
        mean = pixels.new_tensor(self.config.image_mean).view(1, 3, 1, 1)
        std = pixels.new_tensor(self.config.image_std).view(1, 3, 1, 1)
        return ids, mask, (pixels - mean) / std

    def _body(self, **kwargs: Any) -> torch.Tensor:
        """Last hidden states of the Llava body, positions skipping the left padding."""
        mask = kwargs["attention_mask"]
        kwargs.setdefault("position_ids", (mask.cumsum(-1) - 1).clamp(min=0))
        return self.vla.model(**kwargs).last_hidden_state

    def _bin_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        all_bins = torch.arange(self.config.num_bins, device=hidden.device)
        return hidden @ self.vla.lm_head.weight[self._token_ids(all_bins)].T

    def _native_bins_to_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """(B, H * source_dim) native bins -> (B, H, 5) ee_delta."""
        native = self.bins.to_values(bins).reshape(bins.shape[0], self.chunk_size, self.config.source_action_dim)
        gain = native.new_tensor(self.config.gain)
        offset = native.new_tensor(self.config.offset)
        return native[..., self.config.source_indices] * gain + offset

    def _actions_to_native_bins(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, H, 5) ee_delta -> (B, H * source_dim) native bins, unexecuted dims at their neutral bin."""
        n = actions.shape[0]
        native_used = (actions - actions.new_tensor(self.config.offset)) / actions.new_tensor(self.config.gain)
        native = torch.zeros(n, self.chunk_size, self.config.source_action_dim, device=actions.device)
        native[..., self.config.source_indices] = native_used
        return self.bins.to_bins(native).reshape(n, self.num_action_tokens)

    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        batch_size(obs_batch)
        with torch.no_grad():
            ids, mask, pixels = self._prompt(obs_batch)
            cache = DynamicCache(config=self.vla.config.text_config)
            last = self._body(input_ids=ids, attention_mask=mask, pixel_values=pixels, cache=cache, use_cache=True)
            value_hidden = last[:, -1]
            position = mask.sum(-1, keepdim=True) - 1

            def step(bins: torch.Tensor) -> torch.Tensor:
                nonlocal mask, position
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                position = position + 1
                token = self._token_ids(bins).unsqueeze(1)
                return self._body(
                    input_ids=token, attention_mask=mask, position_ids=position, cache=cache, use_cache=True
                )[:, -1]

            bins, log_probs = decode_autoregressive(
                value_hidden,
                step,
                self._bin_logits,
                self.num_action_tokens,
                deterministic=deterministic,
                temperature=temperature,
                forced_bins=self.forced_bins,
            )
            n = bins.shape[0]
            return PolicyOutput(
                actions=self._native_bins_to_actions(bins),
                log_probs=log_probs.reshape(n, self.chunk_size, -1).sum(-1),
                values=self.value_head(value_hidden).squeeze(-1),
            )

    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probs and entropies over the executed dimensions only."""
        n = batch_size(obs_batch)
        actions = action_tensor(actions, n, self.chunk_size, ACTION_DIM, self.device)
        bins = self._actions_to_native_bins(actions)
        ids, mask, pixels = self._prompt(obs_batch)
        full_ids = torch.cat([ids, self._token_ids(bins[:, :-1])], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(bins[:, :-1])], dim=1)
        hidden = self._body(input_ids=full_ids, attention_mask=full_mask, pixel_values=pixels)
        action_hidden = hidden[:, ids.shape[1] - 1 :]
        log_probs, entropy = bin_log_probs(self._bin_logits(action_hidden), bins, temperature=temperature)
        free = torch.tensor([f is None for f in self.forced_bins], device=log_probs.device)
        shape = (n, self.chunk_size, self.config.source_action_dim)
        return (log_probs * free).reshape(shape).sum(-1), (entropy * free).reshape(shape).sum(-1)

    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        batch_size(obs_batch)
        ids, mask, pixels = self._prompt(obs_batch)
        return self.value_head(self._body(input_ids=ids, attention_mask=mask, pixel_values=pixels)[:, -1]).squeeze(-1)
