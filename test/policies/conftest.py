"""Shared fixtures: contract observation batches, tiny model configs and a tiny local Llava checkpoint."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

from rlvla_ros.policies import TokenVlaConfig

PROPRIO_DIM = 6


def make_obs(batch: int, seed: int = 0, size: int = 128, instructions: list[str] | None = None) -> dict:
    """A contract observation batch with random pixels and proprio."""
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
        "proprio": rng.normal(size=(batch, PROPRIO_DIM)).astype(np.float32),
        "instruction": instructions or [f"pick up block {i}" for i in range(batch)],
    }


def tiny_token_vla_config(decoding: str, chunk_size: int = 2) -> TokenVlaConfig:
    """A TokenVla small enough to train a few dozen steps in seconds on 2 shared cores."""
    return TokenVlaConfig(
        decoding=decoding,
        chunk_size=chunk_size,
        proprio_dim=PROPRIO_DIM,
        image_size=32,
        vision_hidden_size=32,
        vision_layers=1,
        vision_heads=2,
        vision_intermediate_size=64,
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=128,
        value_hidden_size=32,
    )


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> None:
    # One intra-op thread: these small models gain nothing from two, and on a shared 2-core machine thread
    # synchronisation under contention made individual tests 10x slower.
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def llava_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llava (SigLIP + Llama) export with a byte-level tokenizer; the last 256 ids are action tokens."""
    directory = tmp_path_factory.mktemp("llava_ckpt")
    vocab = {"<pad>": 0, "<s>": 1, "<image>": 2}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>").save_pretrained(directory)
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab) + 256,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            tie_word_embeddings=False,
        ),
        image_token_index=2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    return directory
