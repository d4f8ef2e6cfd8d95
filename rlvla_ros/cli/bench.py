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
    "record": ("rlvla_ros.ros.record_benchmark", "benchmark_recorder",
               "images/s written and drops of the recorder node for a 30 Hz 224x224 stream"),
    "rollouts": ("rlvla_ros.training.rollout_benchmark", "benchmark_rollouts",
                 "simulated rollout env steps/s in one process and with one rollout worker process"),
    "lockstep": ("rlvla_ros.ros.lockstep_benchmark", "benchmark_lockstep",
                 "lock-step control steps/s over ROS: trajectory command -> sim_bridge sensor set received"),
    "fuzz": ("rlvla_ros.ros.graph_fuzz", "benchmark_fuzz",
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
