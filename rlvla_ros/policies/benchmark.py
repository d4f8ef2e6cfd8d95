"""Per-chunk inference latency of the built-in policies and decoding modes (``rlvla bench policy``).

Timed calls are interleaved round-robin across the modes, so load from other processes on a shared machine
hits all of them alike and the parallel-vs-``generate()`` ratio compares like with like.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from rlvla_ros.policies.base import Policy
from rlvla_ros.policies.frozen_encoder import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.token_vla import TokenVla, TokenVlaConfig

BENCH_INSTRUCTION = "pick up the red block and place it on the green pad"


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


def benchmark_policies(
    repeats: int = 30,
    *,
    chunk_size: int = 4,
    batch: int = 1,
    warmup: int = 3,
    num_threads: int | None = None,
    seed: int = 0,
) -> dict:
    """p50/p95 latency per action chunk of each model and decoding mode, and the generate/parallel ratio.

    Modes: ``token_vla_parallel`` (one forward pass), ``token_vla_autoregressive`` (own KV-cache loop),
    ``token_vla_generate`` (transformers ``generate()``), ``frozen_encoder`` (steady state: the instruction
    embedding is cached after the warm-up). Randomly initialised weights: latency does not depend on them.
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
        parallel = TokenVla(TokenVlaConfig(chunk_size=chunk_size, decoding="parallel")).eval()
        autoregressive = TokenVla(TokenVlaConfig(chunk_size=chunk_size, decoding="autoregressive")).eval()
        frozen = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=chunk_size)).eval()
        obs = _observation(batch, parallel.config.image_size, parallel.config.proprio_dim, seed)
        modes: dict[str, tuple[Policy, Callable[[], object]]] = {
            "token_vla_parallel": (parallel, lambda: parallel.predict(obs, deterministic=True)),
            "token_vla_autoregressive": (autoregressive, lambda: autoregressive.predict(obs, deterministic=True)),
            "token_vla_generate": (autoregressive, lambda: autoregressive.generate_actions(obs, deterministic=True)),
            "frozen_encoder": (frozen, lambda: frozen.predict(obs, deterministic=True)),
        }
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
    return {
        "num_threads": threads,
        "chunk_size": chunk_size,
        "batch": batch,
        "repeats": repeats,
        "models": results,
        "generate_over_parallel_p50": results["token_vla_generate"]["p50_ms"] / results["token_vla_parallel"]["p50_ms"],
    }
