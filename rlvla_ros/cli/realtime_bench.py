"""`rlvla bench realtime`: the launched sim graph in realtime mode (10 Hz) with the policy in the loop: a fresh
model of the demo recipe's policy type (the one `rlvla demo` trains and runs on the graph) at the recipe's settings.

A monitor node in this process watches the graph for `seconds`. The latency of each command is the time the safety
filter published it (the DDS source timestamp of `executed_action`, which goes out with the arm command, stamped like
the sensor set the policy saw) minus that sensor set's stamp: sensor set to joint command, without the monitor's own
delivery delay. Missed control periods are the periods between consecutive sensor sets (`joint_states` stamps)
beyond one. `stages_ms_p50` and `stages_ms_p99` split the latency along the path, each the publication of a message
that carries the set's stamp: the sensor set (`joint_states`), its `observation`, the policy's `action_chunk`.
`callback_latency_ms` is each node's own figure from its `~/stats` (arrival in that node to the end of the
callback). The simulated clock of realtime mode starts at the wall clock and keeps up with it, so a stamp compares
with the publication time (both the system clock).
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState

from rlvla_ros.msg import ActionChunk, Observation
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import watch_node_stats
from rlvla_ros.training.recipes import load_recipe

NAMESPACE = "/rlvla"
RATE_HZ = 10.0
"""The sim bridge's rate_hz in config/sim_bridge.yaml (the robot's control rate)."""
STAGES = {"sensor_set": (JointState, "joint_states"), "observation": (Observation, "observation"),
          "action_chunk": (ActionChunk, "action_chunk"), "executed_action": (ActionChunk, "executed_action")}
"""The path of a control step, in order: the topic each stage's message arrives on, stamped like its sensor set."""


def benchmark_realtime(seconds: float = 60.0, image_size: int = 64) -> dict:
    """Watch the realtime graph for `seconds` once commands flow; see the module docstring."""
    from rlvla_ros.cli.demo import _config_overrides, _launch_arguments, _sim_launch_file
    from rlvla_ros.launching.background import BackgroundLaunch
    from rlvla_ros.ros.param_files import write_config_overlay

    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    recipe = replace(load_recipe("demo"), image_size=image_size)
    overrides = _config_overrides(recipe)
    with tempfile.TemporaryDirectory(prefix="rlvla_realtime_bench_") as tmp:
        out = Path(tmp)
        launch = BackgroundLaunch(_sim_launch_file(), _launch_arguments(
            write_config_overlay(out / "config", overrides), out, clock_mode="realtime", watchdog_timeout_s="0.5"),
            out / "graph.log")
        with launch, in_process_graph() as (context, executor):
            node = rclpy.create_node("rlvla_realtime_bench", namespace=NAMESPACE, context=context)
            # Per stage, the publication time minus the sensor set's stamp: where the latency builds up.
            published_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}
            sensor_stamps: list[int] = []

            def published(stage: str, msg, info) -> None:
                published_ms[stage].append((info["source_timestamp"] - stamp_ns(msg)) / 1e6)
                if stage == "sensor_set":
                    sensor_stamps.append(stamp_ns(msg))

            for stage, (msg_type, topic) in STAGES.items():
                node.create_subscription(msg_type, topic, functools.partial(published, stage), QoSProfile(depth=100))
            executor.add_node(node)
            latencies_ms = published_ms["executed_action"]
            if not wait_until(lambda: len(latencies_ms) >= 5, 180.0):
                raise RuntimeError(f"no commands from the graph within 180 s\n{launch.log_tail()}")
            node_stats = watch_node_stats(node, NAMESPACE)
            for values in published_ms.values():
                values.clear()
            sensor_stamps.clear()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(0.5)
                if not launch.running():
                    raise RuntimeError(f"the graph stopped\n{launch.log_tail()}")
            watched_s = time.monotonic() - started
            executor.remove_node(node)
            stages = {stage: list(values) for stage, values in published_ms.items()}
            latencies, stamps = stages["executed_action"], list(sensor_stamps)
    period_ns = 1e9 / RATE_HZ
    gaps = np.diff(np.asarray(stamps, dtype=np.int64))
    missed = int(np.sum(np.maximum(np.rint(gaps / period_ns) - 1, 0))) if len(gaps) else 0
    return {
        "policy": recipe.policy_type,
        "seconds": round(watched_s, 1),
        "rate_hz": RATE_HZ,
        "commands": len(latencies),
        "sensor_sets": len(stamps),
        "latency_ms_p50": _percentile(latencies, 50),
        "latency_ms_p99": _percentile(latencies, 99),
        "missed_periods": missed,
        "stages_ms_p50": _percentiles(stages, 50),
        "stages_ms_p99": _percentiles(stages, 99),
        "callback_latency_ms": {name: stats.get("callback_latency_ms") for name, stats in sorted(node_stats.items())},
    }


def _percentiles(stages: dict[str, list[float]], q: float) -> dict[str, float | None]:
    return {stage: _percentile(values, q) for stage, values in stages.items()}


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None
