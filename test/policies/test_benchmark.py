from rlvla_ros.policies.benchmark import BENCH_VLM_SIZE, benchmark_policies

MODES = ("token_vla_parallel", "token_vla_autoregressive", "token_vla_generate", "hf_vlm_parallel",
         "hf_vlm_autoregressive", "llava_adapter", "flow_matching", "film_keypoints", "frozen_encoder")


def test_benchmark_reports_latency_of_every_family_and_parallel_beats_generate():
    report = benchmark_policies(repeats=3, warmup=1, chunk_size=4, image_size=64)
    assert set(report["models"]) == set(MODES)
    for mode in MODES:
        stats = report["models"][mode]
        assert 0 < stats["p50_ms"] <= stats["p95_ms"]
        assert stats["params_trainable"] > 0
    # One forward pass against 20 sequential decoding steps: the gap is large even on a loaded machine.
    assert report["generate_over_parallel_p50"] > 1.5
    assert report["num_threads"] == 1 and report["chunk_size"] == 4
    vlm = report["models"]["hf_vlm_parallel"]
    assert vlm["params_trainable"] < 0.2 * vlm["params_total"], "LoRA adapters and heads train, not the base"
    assert report["hf_vlm_size"]["hidden_size"] == BENCH_VLM_SIZE.hidden_size
