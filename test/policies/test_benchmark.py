from rlvla_ros.policies.benchmark import benchmark_policies

MODES = ("token_vla_parallel", "token_vla_autoregressive", "token_vla_generate", "frozen_encoder")


def test_benchmark_reports_latency_per_mode_and_parallel_beats_generate():
    report = benchmark_policies(repeats=3, warmup=1, chunk_size=4)
    assert set(report["models"]) == set(MODES)
    for mode in MODES:
        stats = report["models"][mode]
        assert 0 < stats["p50_ms"] <= stats["p95_ms"]
        assert stats["params_trainable"] > 0
    # One forward pass against 20 sequential decoding steps: the gap is large even on a loaded machine.
    assert report["generate_over_parallel_p50"] > 1.5
    assert report["num_threads"] == 1 and report["chunk_size"] == 4
