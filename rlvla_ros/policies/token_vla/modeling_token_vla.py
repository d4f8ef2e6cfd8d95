"""OpenVLA-style token VLA built from transformers configs: SigLIP patches + byte instruction -> Llama -> action bins.

Sequence layout (left-padded): ``[BOS, instruction bytes..., image patches (projected)..., proprio token]`` followed
by the ``H * 5`` action positions. Each action dimension is one token from a reserved 256-token range; the bin
logits are that slice of the LM head, so log-probs are exact categorical log-probs. The value head reads the
LM's hidden state at the last prefix position, which under causal attention sees the observation only; its
gradients stop there (value regression trains the head, never the policy's trunk).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import (
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    LogitsProcessor,
    LogitsProcessorList,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPast

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.action_tokens import (
    ActionBins,
    chunk_output,
    decode_autoregressive,
    row_log_probs,
    sample_bins,
    value_head,
)
from rlvla_ros.policies.base import ObsBatch, Policy, PolicyOutput, register_policy
from rlvla_ros.policies.observations import action_tensor, batch_size, image_tensor, proprio_tensor
from rlvla_ros.policies.token_vla.configuration_token_vla import TokenVlaConfig
from rlvla_ros.policies.token_vla.tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteActionTokenizer


class _OnlyActionTokens(LogitsProcessor):
    """Masks every non-action token so ``generate()`` can only emit action bins."""

    def __init__(self, offset: int, num_bins: int) -> None:
        self.offset, self.num_bins = offset, num_bins

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.offset : self.offset + self.num_bins] = scores[:, self.offset : self.offset + self.num_bins]
        return masked


@register_policy
class TokenVla(Policy):
    """Small token VLA with parallel (one pass) or autoregressive (KV-cache) action decoding."""

    config_class = TokenVlaConfig
    config: TokenVlaConfig

    def __init__(self, config: TokenVlaConfig) -> None:
        super().__init__(config)
        self.tokenizer = ByteActionTokenizer(config.num_bins)
        self.bins = ActionBins(config.num_bins)
        self.num_action_tokens = config.chunk_size * ACTION_DIM
        self.num_image_tokens = (config.image_size // config.patch_size) ** 2
        self.vision = SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=config.vision_hidden_size,
                intermediate_size=config.vision_intermediate_size,
                num_hidden_layers=config.vision_layers,
                num_attention_heads=config.vision_heads,
                image_size=config.image_size,
                patch_size=config.patch_size,
            )
        )
        self.projector = nn.Sequential(
            nn.Linear(config.vision_hidden_size, config.hidden_size),
            nn.GELU(),
            nn.Linear(config.hidden_size, config.hidden_size),
        )
        self.proprio_proj = nn.Linear(config.proprio_dim, config.hidden_size)
        max_len = config.max_instruction_bytes + 1 + self.num_image_tokens + 1 + self.num_action_tokens
        self.lm = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=self.tokenizer.vocab_size,
                hidden_size=config.hidden_size,
                intermediate_size=config.intermediate_size,
                num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads,
                num_key_value_heads=config.num_kv_heads,
                max_position_embeddings=max_len,
                pad_token_id=PAD_ID,
                bos_token_id=BOS_ID,
                eos_token_id=EOS_ID,
                tie_word_embeddings=False,
            )
        )
        if config.decoding == "parallel":
            # One learned query embedding per action slot; RoPE adds the position on top.
            self.action_queries = nn.Parameter(torch.randn(self.num_action_tokens, config.hidden_size) * 0.02)
        self.value_head = value_head(config.hidden_size, config.value_hidden_size)

    def _prefix(self, obs_batch: ObsBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (B, L, D) and attention mask (B, L) of instruction, image and proprio."""
        n, device = batch_size(obs_batch), self.device
        ids, text_mask = self.tokenizer.encode_instructions(
            list(obs_batch["instruction"]), self.config.max_instruction_bytes, device
        )
        pixels = image_tensor(obs_batch["image"], self.config.image_size, device) * 2.0 - 1.0  # SigLIP range
        image = self.projector(self.vision(pixel_values=pixels).last_hidden_state)
        proprio = self.proprio_proj(proprio_tensor(obs_batch["proprio"], self.config.proprio_dim, device))
        embeds = torch.cat([self.lm.get_input_embeddings()(ids), image, proprio.unsqueeze(1)], dim=1)
        ones = torch.ones((n, image.shape[1] + 1), dtype=text_mask.dtype, device=device)
        return embeds, torch.cat([text_mask, ones], dim=1)

    def _run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> BaseModelOutputWithPast:
        """Last hidden states of the LM body, with positions that skip the left padding."""
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, **kwargs)

    def _bin_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits (..., num_bins) of the action-token slice of the LM head."""
        offset = self.tokenizer.action_offset
        weight = self.lm.get_output_embeddings().weight[offset : offset + self.config.num_bins]
        return hidden @ weight.T

    def _teacher_forced(self, obs_batch: ObsBatch, bins: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over prefix + action positions: ``(bin logits (B, H*5, bins), value hidden (B, D))``.

        ``bins`` (B, H*5) are the target bins; autoregressive decoding feeds them shifted by one, parallel decoding
        ignores them and feeds the query slots.
        """
        embeds, mask = self._prefix(obs_batch)
        n, prefix_len = embeds.shape[:2]
        if self.config.decoding == "parallel":
            action_in = self.action_queries.unsqueeze(0).expand(n, -1, -1)
            first = prefix_len
        else:
            action_in = self.lm.get_input_embeddings()(self.tokenizer.action_token_ids(bins[:, :-1]))
            first = prefix_len - 1  # the last prefix position predicts the first action token
        mask = torch.cat([mask, torch.ones(action_in.shape[:2], dtype=mask.dtype, device=mask.device)], dim=1)
        hidden = self._run_lm(torch.cat([embeds, action_in], dim=1), mask).last_hidden_state
        action_hidden = hidden[:, first : first + self.num_action_tokens]
        return self._bin_logits(action_hidden), hidden[:, prefix_len - 1]

    def _decode_autoregressive(
        self, obs_batch: ObsBatch, deterministic: bool, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token-by-token decoding with a KV cache: ``(bins, log_probs, value hidden)``."""
        embeds, mask = self._prefix(obs_batch)
        cache = DynamicCache(config=self.lm.config)
        value_hidden = self._run_lm(embeds, mask, cache=cache, use_cache=True).last_hidden_state[:, -1]
        position = mask.sum(-1, keepdim=True) - 1

        def step(bins: torch.Tensor) -> torch.Tensor:
            nonlocal mask, position
            token = self.lm.get_input_embeddings()(self.tokenizer.action_token_ids(bins)).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            position = position + 1
            return self.lm.model(
                inputs_embeds=token,
                attention_mask=mask,
                position_ids=position,
                cache=cache,
                use_cache=True,
            ).last_hidden_state[:, -1]

        bins, log_probs = decode_autoregressive(
            value_hidden,
            step,
            self._bin_logits,
            self.num_action_tokens,
            deterministic=deterministic,
            temperature=temperature,
        )
        return bins, log_probs, value_hidden

    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        with torch.no_grad():
            if self.config.decoding == "parallel":
                logits, value_hidden = self._teacher_forced(obs_batch, None)
                bins, log_probs = sample_bins(logits, deterministic=deterministic, temperature=temperature)
            else:
                bins, log_probs, value_hidden = self._decode_autoregressive(obs_batch, deterministic, temperature)
            values = self.value_head(value_hidden).squeeze(-1)
            return chunk_output(self.bins, bins, log_probs, values, self.chunk_size)

    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = batch_size(obs_batch)
        actions = action_tensor(actions, n, self.chunk_size, ACTION_DIM, self.device)
        bins = self.bins.to_bins(actions).reshape(n, self.num_action_tokens)
        logits, _ = self._teacher_forced(obs_batch, bins)
        return row_log_probs(logits, bins, self.chunk_size, temperature=temperature)

    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Differentiable in the value head only: it learns on the LM's features without moving them, so value
        regression (PPO's critic warmup included) never changes the policy."""
        with torch.no_grad():
            embeds, mask = self._prefix(obs_batch)
            hidden = self._run_lm(embeds, mask).last_hidden_state[:, -1]
        return self.value_head(hidden).squeeze(-1)

    def generate_actions(
        self, obs_batch: ObsBatch, *, deterministic: bool = True, temperature: float = 1.0
    ) -> torch.Tensor:
        """Decode a chunk (B, H, 5) with ``transformers`` ``generate()`` (autoregressive scheme, KV cache)."""
        embeds, mask = self._prefix(obs_batch)
        sampling = {} if deterministic else {"temperature": temperature, "top_k": 0, "top_p": 1.0}
        only_actions = _OnlyActionTokens(self.tokenizer.action_offset, self.config.num_bins)
        with torch.no_grad():
            tokens = self.lm.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=self.num_action_tokens,
                min_new_tokens=self.num_action_tokens,
                do_sample=not deterministic,
                logits_processor=LogitsProcessorList([only_actions]),
                pad_token_id=PAD_ID,
                **sampling,
            )
        bins = self.tokenizer.bins_from_token_ids(tokens[:, -self.num_action_tokens :])
        return self.bins.to_values(bins).reshape(-1, self.chunk_size, ACTION_DIM)
