"""Per-chunk inference latency of every policy family and decoding mode (``rlvla bench policy``).

Timed calls are interleaved round-robin across the modes, so load from other processes on a shared machine
hits all of them alike and the ratios (parallel vs ``generate()``, LoRA VLM vs token VLA) compare like with like.
The Hugging Face VLM family runs on a random-weight model of SmolVLM's architecture (Idefics3: SigLIP-style tower
with pixel shuffle + Llama) at :data:`BENCH_VLM_SIZE` with LoRA adapters of rank 8 on every linear layer (no
pretrained VLM ships offline here; latency does not depend on the weights), and ``llava_adapter`` on a random
LLaVA of the same size.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rlvla_ros.policies.adapter import LlavaActionAdapter
from rlvla_ros.policies.base import Policy
from rlvla_ros.policies.film_keypoints import FilmKeypointsConfig, FilmKeypointsPolicy
from rlvla_ros.policies.flow_matching import FlowMatchingConfig, FlowMatchingPolicy
from rlvla_ros.policies.frozen_encoder import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.hf_vlm import HfVlmConfig, HfVlmPolicy, TinyVlmSize, build_tiny_vlm
from rlvla_ros.policies.token_vla import TokenVla, TokenVlaConfig

BENCH_INSTRUCTION = "pick up the red block and place it on the green pad"
BENCH_VLM_SIZE = TinyVlmSize(hidden_size=256, layers=4, heads=4, vision_hidden_size=128, vision_layers=2,
                             image_size=64, patch_size=8)
"""The documented size of the ``hf_vlm`` benchmark model: Llama LM 256 wide, 4 layers, SigLIP-style tower 128
wide, 2 layers, 64 px input in 8 px patches (16 image tokens after Idefics3's pixel shuffle)."""
VLM_LORA_RANK = 8


def _observation(batch: int, image_size: int, proprio_dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8),
        "proprio": rng.normal(size=(batch, proprio_dim)).astype(np.float32),
        "instruction": [BENCH_INSTRUCTION] * batch,
    }


def _param_counts(policy: Policy) -> dict[str, int]:
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    return {"params_total": sum(p.numel() for p in policy.parameters()), "params_trainable": trainable}


def _percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def _policies(chunk_size: int, image_size: int, vlm_root: Path) -> dict[str, Policy]:
    """Every family at its benchmark size, in eval mode."""
    idefics3 = build_tiny_vlm("idefics3", vlm_root / "idefics3", BENCH_VLM_SIZE)
    llava = build_tiny_vlm("llava", vlm_root / "llava", BENCH_VLM_SIZE)

    def hf_vlm(decoding: str) -> HfVlmPolicy:
        return HfVlmPolicy(HfVlmConfig(base_model_dir=str(idefics3), chunk_size=chunk_size, image_size=image_size,
                                       decoding=decoding, lora_rank=VLM_LORA_RANK))

    policies: dict[str, Policy] = {
        "token_vla_parallel": TokenVla(TokenVlaConfig(chunk_size=chunk_size, image_size=image_size)),
        "token_vla_autoregressive": TokenVla(TokenVlaConfig(chunk_size=chunk_size, image_size=image_size,
                                                            decoding="autoregressive")),
        "hf_vlm_parallel": hf_vlm("parallel"),
        "hf_vlm_autoregressive": hf_vlm("autoregressive"),
        "llava_adapter": LlavaActionAdapter.from_checkpoint(str(llava), chunk_size=chunk_size),
        "flow_matching": FlowMatchingPolicy(FlowMatchingConfig(chunk_size=chunk_size, image_size=image_size)),
        "film_keypoints": FilmKeypointsPolicy(FilmKeypointsConfig(chunk_size=chunk_size, image_size=image_size)),
        "frozen_encoder": FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=chunk_size, image_size=image_size)),
    }
    return {name: policy.eval() for name, policy in policies.items()}


def benchmark_policies(
    repeats: int = 30,
    *,
    chunk_size: int = 4,
    image_size: int = 128,
    batch: int = 1,
    warmup: int = 3,
    num_threads: int | None = None,
    seed: int = 0,
) -> dict:
    """p50/p95 latency per action chunk of each family and decoding mode, and two ratios of p50s.

    Modes: ``token_vla_parallel`` (one forward pass), ``token_vla_autoregressive`` (own KV-cache loop),
    ``token_vla_generate`` (transformers ``generate()``), ``hf_vlm_parallel`` / ``hf_vlm_autoregressive`` (the LoRA
    VLM family, see the module docstring), ``llava_adapter``, ``flow_matching`` (10 denoising steps),
    ``film_keypoints`` and ``frozen_encoder`` (steady state: instruction embeddings are cached after the warm-up).
    Deterministic chunks of randomly initialised weights: latency does not depend on the weights.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    previous_threads = torch.get_num_threads()
    # One intra-op thread by default: batch-1 ops on these small models are too short to amortise thread
    # synchronisation, and on a robot the control loop shares the cores with the sim and the other nodes.
    threads = num_threads or 1
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        with tempfile.TemporaryDirectory(prefix="rlvla-bench-vlm-") as vlm_root:
            policies = _policies(chunk_size, image_size, Path(vlm_root))
            obs = _observation(batch, image_size, 6, seed)
            modes: dict[str, tuple[Policy, Callable[[], object]]] = {
                name: (policy, lambda policy=policy: policy.predict(obs, deterministic=True))
                for name, policy in policies.items()
            }
            autoregressive = policies["token_vla_autoregressive"]
            modes["token_vla_generate"] = (autoregressive,
                                           lambda: autoregressive.generate_actions(obs, deterministic=True))
            timings: dict[str, list[float]] = {name: [] for name in modes}
            with torch.inference_mode():
                for _ in range(warmup):
                    for _, run in modes.values():
                        run()
                for _ in range(repeats):
                    for name, (_, run) in modes.items():
                        start = time.perf_counter()
                        run()
                        timings[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
    results = {name: {**_percentiles_ms(timings[name]), **_param_counts(policy)} for name, (policy, _) in modes.items()}
    p50 = {name: stats["p50_ms"] for name, stats in results.items()}
    return {
        "num_threads": threads,
        "chunk_size": chunk_size,
        "image_size": image_size,
        "batch": batch,
        "repeats": repeats,
        "hf_vlm_size": {**BENCH_VLM_SIZE.__dict__, "architecture": "idefics3", "lora_rank": VLM_LORA_RANK},
        "models": results,
        "generate_over_parallel_p50": p50["token_vla_generate"] / p50["token_vla_parallel"],
        "hf_vlm_parallel_under_100ms": p50["hf_vlm_parallel"] < 100.0,
    }
