"""`rlvla bench <what> [--json]`: benchmarks that print their numbers; with --json the last line is one JSON object."""

import argparse
import importlib
import json

# Benchmark name -> (module, function, what it measures). Imported lazily: each pulls in a heavy stack.
BENCHMARKS = {
    "sim": ("rlvla_ros.sim.benchmark", "benchmark_sim", "physics steps/s, rendered frames/s, env steps/s"),
    "experts": ("rlvla_ros.sim.benchmark", "benchmark_experts",
                "scripted expert success rate per task and split over 50 seeded episodes"),
    "policy": ("rlvla_ros.policies.benchmark", "benchmark_policies",
               "p50/p95 latency per action chunk for each model and decoding mode"),
    "record": ("rlvla_ros.graph_bench.record_benchmark", "benchmark_recorder",
               "per topic published/written/dropped by a recorder process: 224x224 rgb8 at 30 Hz, joint states at 100 Hz"),
    "rollouts": ("rlvla_ros.rollouts.benchmark", "benchmark_rollouts",
                 "simulated rollout env steps/s in one process and with one rollout worker process"),
    "realtime": ("rlvla_ros.cli.realtime_bench", "benchmark_realtime",
                 "the launched sim graph at 10 Hz with the policy in the loop for 60 s: sensor set -> command latency "
                 "p50/p99, missed control periods"),
    "lockstep": ("rlvla_ros.cli.lockstep_bench", "benchmark_lockstep",
                 "the launched lock-step sim graph with the scripted expert, twice on the same seeds: graph steps/s "
                 "against the in-process env, identical episodes"),
    "fuzz": ("rlvla_ros.graph_bench.graph_fuzz", "benchmark_fuzz",
             "generated malformed requests, messages and parameters into the sim graph: crashes, unsafe commands"),
}


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("bench", help="run a benchmark and print its numbers")
    parser.add_argument("what", choices=sorted(BENCHMARKS), help="; ".join(f"{name}: {spec[2]}"
                                                                         for name, spec in BENCHMARKS.items()))
    parser.add_argument("--json", action="store_true", help="end with the results as one JSON object")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    module, function, _ = BENCHMARKS[args.what]
    results = getattr(importlib.import_module(module), function)()
    for key, value in _flatten(results):
        print(f"{key}: {value}")
    if args.json:
        print(json.dumps(results))
    return 0


def _flatten(results: dict, prefix: str = ""):
    for key, value in results.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
