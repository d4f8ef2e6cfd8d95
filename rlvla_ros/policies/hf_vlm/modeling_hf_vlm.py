"""Any Hugging Face vision-language model as an OpenVLA-style action-token policy, fine-tuned through LoRA adapters.

The base model and its processor load offline from ``config.base_model_dir`` (``AutoModelForImageTextToText`` and
``AutoProcessor``, safetensors only), so every architecture transformers builds works the same way: the processor
turns the observation's image and instruction into the model's own prompt (its image tokens, normalisation and
tokenizer). The sequence is::

    [processor prompt: image tokens + instruction] [proprio slot] [a_1 ... a_{H*5}]      (autoregressive)
    [processor prompt: image tokens + instruction] [proprio slot] [q_1 ... q_{H*5}]      (parallel)

- **proprioception**: the slot is a reserved token whose input embedding gets ``proprio_proj(proprio)`` added (a
  forward hook on the LM's input embeddings, so the architecture's own code merges the image features as usual);
- **actions**: each ``ee_delta`` dimension of each chunk row is one token from the last ``num_bins`` ids of the
  vocabulary (OpenVLA's reserved tokens, reversed by default), decoded autoregressively with a KV cache
  (OpenVLA), or all at once from H * 5 query slots (a reserved token whose embedding gets a learned query per
  slot, through the same hook: OpenVLA-OFT's parallel decoding). The bin logits come from ``action_head``,
  initialised from the LM head's rows of the action tokens (so a model that already emits them, like OpenVLA,
  starts where it was) and trained with the adapters; log-probs are exact categorical log-probs, teacher forced
  in one pass for :meth:`~HfVlmPolicy.log_prob`;
- **value**: an MLP on the LM's hidden state at the proprio slot (the last prompt position, which sees only the
  observation under causal attention); its gradients stop there, so value regression never moves the adapters;
- **trainable**: LoRA adapters (peft, every linear layer but the output head by default), ``action_head``,
  ``proprio_proj``, the value head and (parallel) ``action_queries``; the base weights too with ``train_base``.

Positions are ``cumsum(attention_mask) - 1``, so left padding in a batch does not move a row's positions: a chunk
scores the same in any batch (RoPE models see only relative positions, so this also holds for models whose own
positions start at 1). A checkpoint is ``config.json`` + ``model.safetensors`` (heads, and the base weights with
``train_base``) + peft's ``adapter_config.json`` and ``adapter_model.safetensors``, loadable onto the base model with
``peft.PeftModel.from_pretrained`` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForImageTextToText, AutoProcessor, DynamicCache

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.action_tokens import (
    ActionBins,
    chunk_output,
    decode_autoregressive,
    row_log_probs,
    sample_bins,
    value_head,
    vocabulary_tail_ids,
)
from rlvla_ros.policies.base import ObsBatch, Policy, PolicyOutput, register_policy
from rlvla_ros.policies.hf_vlm.configuration_hf_vlm import HfVlmConfig
from rlvla_ros.policies.observations import action_tensor, batch_size, proprio_tensor
from rlvla_ros.policies.pretrained import load_safetensors_strict

ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
"""peft's file name for adapter weights."""
HEAD_PREFIXES = ("action_head.", "proprio_proj.", "value_head.", "action_queries")
"""Tensors this family adds to the base model."""


@register_policy
class HfVlmPolicy(Policy):
    """A local transformers VLM emitting action tokens, with LoRA adapters, a proprio slot and a value head."""

    config_class = HfVlmConfig
    config: HfVlmConfig

    def __init__(self, config: HfVlmConfig) -> None:
        super().__init__(config)
        directory = Path(config.base_model_dir)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"base_model_dir {directory} has no config.json (a save_pretrained directory)")
        base = AutoModelForImageTextToText.from_pretrained(str(directory), local_files_only=True, use_safetensors=True)
        self.processor = AutoProcessor.from_pretrained(str(directory), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        output_embeddings = base.get_output_embeddings()
        self.vocab_size, hidden = output_embeddings.weight.shape
        if config.num_bins + 2 >= self.vocab_size:
            raise ValueError(f"a vocabulary of {self.vocab_size} has no room for {config.num_bins} action tokens and "
                             "the two slot tokens")
        self.bins = ActionBins(config.num_bins)
        self.num_action_tokens = config.chunk_size * ACTION_DIM
        self.proprio_token_id = self.vocab_size - config.num_bins - 1
        self.query_token_id = self.vocab_size - config.num_bins - 2
        self.action_head = nn.Linear(hidden, config.num_bins, bias=False)
        with torch.no_grad():
            self.action_head.weight.copy_(output_embeddings.weight[self._token_ids(torch.arange(config.num_bins))])
        self.proprio_proj = nn.Linear(config.proprio_dim, hidden)
        # Zero: a pretrained model starts with its own embedding of the slot token, undisturbed.
        nn.init.zeros_(self.proprio_proj.weight)
        nn.init.zeros_(self.proprio_proj.bias)
        self.value_head = value_head(hidden, config.value_hidden_size)
        if config.decoding == "parallel":
            self.action_queries = nn.Parameter(torch.randn(self.num_action_tokens, hidden) * 0.02)
        target = config.lora_target_modules
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=target[0] if target == ["all-linear"] else list(target))
        self.vlm = get_peft_model(base, lora)  # freezes every base weight
        if config.train_base:
            for name, parameter in self.vlm.named_parameters():
                if "lora_" not in name:
                    parameter.requires_grad_(True)
        self._body = self.vlm.get_base_model().model
        self._pending: dict[int, torch.Tensor] = {}
        self.vlm.get_input_embeddings().register_forward_hook(self._add_slot_embeddings)

    # --- tokens and prompts ------------------------------------------------------------------------------------

    def _token_ids(self, bins: torch.Tensor) -> torch.Tensor:
        return vocabulary_tail_ids(bins, self.vocab_size, self.config.num_bins, self.config.reversed_action_tokens)

    def _add_slot_embeddings(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Forward hook of the input embeddings: add each pending embedding at its slot token's positions, in
        order (``self._pending``: token id -> (number of such positions in the batch, D))."""
        if not self._pending:
            return None
        output = output.clone()
        for token_id, embeddings in self._pending.items():
            slots = args[0] == token_id
            output[slots] = output[slots] + embeddings.to(output.dtype)
        return output

    def _prompt(self, obs_batch: ObsBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The processor's inputs for the batch with the proprio slot appended, and the proprio (B, P)."""
        n = batch_size(obs_batch)
        images = np.asarray(obs_batch["image"])
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
        image_token = self.processor.image_token
        texts = [self.config.prompt_template.format(image=image_token, instruction=text)
                 for text in obs_batch["instruction"]]
        inputs = self.processor(text=texts, images=[[Image.fromarray(image)] for image in images],
                                return_tensors="pt", padding=True)
        inputs.pop("labels", None)  # PaliGemma's processor adds them for training with suffixes
        slot = torch.full((n, 1), self.proprio_token_id, dtype=inputs["input_ids"].dtype)
        inputs = self._extend(dict(inputs), slot, token_type=0)
        proprio = proprio_tensor(obs_batch["proprio"], self.config.proprio_dim, self.device)
        return {name: value.to(self.device) for name, value in inputs.items()}, proprio

    @staticmethod
    def _extend(inputs: dict[str, torch.Tensor], ids: torch.Tensor, token_type: int) -> dict[str, torch.Tensor]:
        """``inputs`` with the token ``ids`` (B, N) appended to every per-token field (attended; PaliGemma's
        ``token_type_ids``: 0 for the prefix, 1 for the suffix)."""
        length = inputs["input_ids"].shape[1]
        extended = dict(inputs)
        for name, value in inputs.items():
            if name == "input_ids":
                extended[name] = torch.cat([value, ids.to(value.device)], dim=1)
            elif name == "attention_mask":
                extended[name] = torch.cat([value, torch.ones_like(ids, device=value.device)], dim=1)
            elif name == "token_type_ids":
                extended[name] = torch.cat([value, torch.full_like(ids, token_type, device=value.device)], dim=1)
            elif value.ndim == 2 and value.shape[1] == length:
                raise ValueError(f"the processor returned a per-token field {name!r} this policy cannot extend")
        return extended

    def _hidden(self, inputs: dict[str, torch.Tensor], proprio: torch.Tensor | None, queries: bool = False,
                **kwargs: Any) -> torch.Tensor:
        """Last hidden states of the VLM body; the proprio embedding goes into its slot, with ``queries`` the action
        queries into theirs."""
        mask = inputs["attention_mask"]
        kwargs.setdefault("position_ids", (mask.cumsum(-1) - 1).clamp(min=0))
        if proprio is not None:
            self._pending[self.proprio_token_id] = self.proprio_proj(proprio)
        if queries:
            self._pending[self.query_token_id] = self.action_queries.repeat(mask.shape[0], 1)
        try:
            return self._body(**inputs, **kwargs).last_hidden_state
        finally:
            self._pending.clear()

    def _parallel(self, inputs: dict[str, torch.Tensor], proprio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over prompt, proprio slot and query slots: ``(bin logits (B, H*5, bins), value hidden (B, D))``."""
        prefix = inputs["input_ids"].shape[1]
        queries = torch.full((inputs["input_ids"].shape[0], self.num_action_tokens), self.query_token_id,
                             dtype=inputs["input_ids"].dtype, device=self.device)
        hidden = self._hidden(self._extend(inputs, queries, token_type=1), proprio, queries=True)
        return self.action_head(hidden[:, prefix:]), hidden[:, prefix - 1]

    # --- the Policy API ----------------------------------------------------------------------------------------

    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        with torch.no_grad():
            inputs, proprio = self._prompt(obs_batch)
            if self.config.decoding == "parallel":
                logits, value_hidden = self._parallel(inputs, proprio)
                bins, log_probs = sample_bins(logits, deterministic=deterministic, temperature=temperature)
            else:
                bins, log_probs, value_hidden = self._decode_autoregressive(inputs, proprio, deterministic,
                                                                            temperature)
            values = self.value_head(value_hidden).squeeze(-1)
            return chunk_output(self.bins, bins, log_probs, values, self.chunk_size)

    def _decode_autoregressive(
        self, inputs: dict[str, torch.Tensor], proprio: torch.Tensor, deterministic: bool, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token-by-token decoding with a KV cache: ``(bins, log_probs, value hidden)``."""
        cache = DynamicCache(config=self.vlm.get_base_model().config.get_text_config())
        value_hidden = self._hidden(inputs, proprio, cache=cache, use_cache=True)[:, -1]
        mask = inputs["attention_mask"]
        position = mask.sum(-1, keepdim=True) - 1
        step_types = {"token_type_ids": torch.ones_like(position)} if "token_type_ids" in inputs else {}

        def step(bins: torch.Tensor) -> torch.Tensor:
            nonlocal mask, position
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            position = position + 1
            token = {"input_ids": self._token_ids(bins).unsqueeze(1), "attention_mask": mask, **step_types}
            return self._hidden(token, None, position_ids=position, cache=cache, use_cache=True)[:, -1]

        bins, log_probs = decode_autoregressive(
            value_hidden, step, self.action_head, self.num_action_tokens,
            deterministic=deterministic, temperature=temperature,
        )
        return bins, log_probs, value_hidden

    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced exact log-probs and entropies of the action tokens, summed per chunk row."""
        n = batch_size(obs_batch)
        actions = action_tensor(actions, n, self.chunk_size, ACTION_DIM, self.device)
        bins = self.bins.to_bins(actions).reshape(n, self.num_action_tokens)
        inputs, proprio = self._prompt(obs_batch)
        if self.config.decoding == "parallel":
            logits, _ = self._parallel(inputs, proprio)
        else:
            prefix = inputs["input_ids"].shape[1]
            hidden = self._hidden(self._extend(inputs, self._token_ids(bins[:, :-1]), token_type=1), proprio)
            logits = self.action_head(hidden[:, prefix - 1 : prefix - 1 + self.num_action_tokens])
        return row_log_probs(logits, bins, self.chunk_size, temperature=temperature)

    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Differentiable in the value head only (see the module docstring)."""
        with torch.no_grad():
            inputs, proprio = self._prompt(obs_batch)
            hidden = self._hidden(inputs, proprio)[:, -1]
        return self.value_head(hidden).squeeze(-1)

    # --- checkpoints: heads in model.safetensors, adapters in peft's files -------------------------------------

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """The heads, and the base weights when they train (``train_base``); the adapters go to peft's file."""
        return {
            name: tensor.detach().contiguous().cpu()
            for name, tensor in self.state_dict().items()
            if name.startswith(HEAD_PREFIXES) or (self.config.train_base and "lora_" not in name)
        }

    def save_parts(self, directory: Path) -> None:
        """peft's ``adapter_config.json`` and ``adapter_model.safetensors``."""
        adapter = {name: tensor.detach().contiguous().cpu().clone()
                   for name, tensor in get_peft_model_state_dict(self.vlm).items()}
        save_file(adapter, str(directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
        self.vlm.peft_config["default"].save_pretrained(str(directory))

    def load_parts(self, directory: Path) -> None:
        """The adapter weights; every adapter tensor must be there and nothing else."""
        path = Path(directory) / ADAPTER_WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {ADAPTER_WEIGHTS_NAME} in {directory} (the LoRA adapters)")
        adapter = load_safetensors_strict(path)
        expected = set(get_peft_model_state_dict(self.vlm))
        missing, unexpected = sorted(expected - set(adapter)), sorted(set(adapter) - expected)
        if missing or unexpected:
            raise ValueError(f"{path}: missing adapter tensors {missing[:5]}, unexpected {unexpected[:5]}")
        set_peft_model_state_dict(self.vlm, adapter)
