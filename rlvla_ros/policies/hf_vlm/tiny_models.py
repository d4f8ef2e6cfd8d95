"""Random-weight vision-language models of real transformers architectures, with their processors, built offline.

No pretrained VLM ships on PyPI, and nothing downloads from a model hub here, so tests, benchmarks and recipes use
these stand-ins for a user's checkpoint directory: the same model and processor classes (a SigLIP-style tower and
a Llama or Gemma LM as LLaVA, Idefics3 / SmolVLM and PaliGemma combine them), built from configs at a chosen size
with a byte-level tokenizer whose vocabulary ends in the reserved tokens the ``hf_vlm`` policy uses for
proprioception and action bins. ``build_tiny_vlm`` writes what ``save_pretrained`` of a model and its processor
writes, which is what a real checkpoint directory holds.

    python -m rlvla_ros.policies.hf_vlm.tiny_models idefics3 /tmp/tiny_idefics3 --hidden-size 128
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GemmaConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

ARCHITECTURES = ("llava", "idefics3", "paligemma")
"""What :func:`build_tiny_vlm` builds: LLaVA (SigLIP + projector + Llama), Idefics3 (SmolVLM's architecture: SigLIP
with pixel shuffle + Llama) and PaliGemma (SigLIP + Gemma, prefix-LM)."""
RESERVED_TOKENS = 257
"""Tokens at the end of the vocabulary left for the policy: one proprioception slot and 256 action bins."""


@dataclass(frozen=True)
class TinyVlmSize:
    """Sizes of a :func:`build_tiny_vlm` model."""

    hidden_size: int = 64
    """Width of the language model."""
    layers: int = 2
    """Depth of the language model."""
    heads: int = 2
    """Attention heads of the language model (one key/value head)."""
    vision_hidden_size: int = 64
    """Width of the vision tower."""
    vision_layers: int = 2
    """Depth of the vision tower."""
    image_size: int = 32
    """Side of the images the vision tower takes (the processor resizes to it)."""
    patch_size: int = 8
    """Vision patch side in pixels."""

    def __post_init__(self) -> None:
        if self.image_size % (2 * self.patch_size):
            raise ValueError(f"image_size {self.image_size} must be a multiple of 2 * patch_size {self.patch_size}")
        if self.hidden_size % self.heads or self.vision_hidden_size % 2:
            raise ValueError("hidden_size must divide by heads and vision_hidden_size by 2")


def _tokenizer(specials: Sequence[str], **tokens: str) -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: ``specials``, the 256 byte symbols, then :data:`RESERVED_TOKENS` reserved tokens."""
    vocab = {name: index for index, name in enumerate(specials)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    for index in range(RESERVED_TOKENS):
        vocab[f"<reserved_{index}>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    named = set(tokens.values())
    return PreTrainedTokenizerFast(tokenizer_object=backend, additional_special_tokens=[
        s for s in specials if s not in named], **tokens)


def _vision(size: TinyVlmSize) -> dict:
    return {"hidden_size": size.vision_hidden_size, "intermediate_size": 2 * size.vision_hidden_size,
            "num_hidden_layers": size.vision_layers, "num_attention_heads": 2, "image_size": size.image_size,
            "patch_size": size.patch_size}


def _text(size: TinyVlmSize, vocab_size: int) -> dict:
    return {"vocab_size": vocab_size, "hidden_size": size.hidden_size, "intermediate_size": 2 * size.hidden_size,
            "num_hidden_layers": size.layers, "num_attention_heads": size.heads, "num_key_value_heads": 1,
            "tie_word_embeddings": False}


def _llava(size: TinyVlmSize) -> tuple[torch.nn.Module, object]:
    tokenizer = _tokenizer(["<pad>", "<s>", "<image>"], pad_token="<pad>", bos_token="<s>")
    config = LlavaConfig(
        vision_config=SiglipVisionConfig(**_vision(size)), text_config=LlamaConfig(**_text(size, len(tokenizer))),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="full",
        vision_feature_layer=-1)
    image_processor = SiglipImageProcessorPil(size={"height": size.image_size, "width": size.image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=size.patch_size,
                               vision_feature_select_strategy="full")
    return LlavaForConditionalGeneration(config), processor


def _idefics3(size: TinyVlmSize) -> tuple[torch.nn.Module, object]:
    tokenizer = _tokenizer(["<pad>", "<s>", "<image>", "<fake_token_around_image>", "<global-img>",
                            "<end_of_utterance>"], pad_token="<pad>", bos_token="<s>")
    scale_factor = 2
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**_vision(size)), text_config=LlamaConfig(**_text(size, len(tokenizer))),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale_factor)
    # One global image, no tiling: a robot camera frame at the tower's size.
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": size.image_size},
                                                max_image_size={"longest_edge": size.image_size})
    image_tokens = (size.image_size // size.patch_size) ** 2 // scale_factor**2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_tokens)
    return Idefics3ForConditionalGeneration(config), processor


def _paligemma(size: TinyVlmSize) -> tuple[torch.nn.Module, object]:
    tokenizer = _tokenizer(["<pad>", "<bos>", "<eos>", "<image>"], pad_token="<pad>", bos_token="<bos>",
                           eos_token="<eos>")
    vocab_size = len(tokenizer)
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**_vision(size), projection_dim=size.hidden_size),
        text_config=GemmaConfig(**_text(size, vocab_size), head_dim=size.hidden_size // size.heads),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vocab_size=vocab_size,
        projection_dim=size.hidden_size, hidden_size=size.hidden_size)
    image_processor = SiglipImageProcessorPil(size={"height": size.image_size, "width": size.image_size})
    image_processor.image_seq_length = (size.image_size // size.patch_size) ** 2
    return PaliGemmaForConditionalGeneration(config), PaliGemmaProcessor(image_processor=image_processor,
                                                                          tokenizer=tokenizer)


_BUILDERS = {"llava": _llava, "idefics3": _idefics3, "paligemma": _paligemma}


def build_tiny_vlm(architecture: str, directory: str | Path, size: TinyVlmSize = TinyVlmSize(), seed: int = 0) -> Path:
    """Write a random-weight ``architecture`` model (:data:`ARCHITECTURES`) and its processor into ``directory``
    with ``save_pretrained`` (safetensors); the same ``seed`` and size give the same weights."""
    if architecture not in _BUILDERS:
        raise ValueError(f"unknown architecture {architecture!r}; one of {ARCHITECTURES}")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[architecture](size)
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("architecture", choices=ARCHITECTURES)
    parser.add_argument("directory")
    parser.add_argument("--seed", type=int, default=0)
    for name, value in asdict(TinyVlmSize()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args(argv)
    size = TinyVlmSize(**{name: getattr(args, name) for name in asdict(TinyVlmSize())})
    print(build_tiny_vlm(args.architecture, args.directory, size, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
