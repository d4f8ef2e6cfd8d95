"""`rlvla bench realtime`: the launched sim graph in realtime mode (10 Hz) with the policy in the loop: a fresh
model of the demo recipe's policy type (the one `rlvla demo` trains and runs on the graph) at the recipe's settings.

A monitor node in this process watches the graph for `seconds`: the latency of each executed command is its arrival
(`executed_action`, which the safety filter publishes with the arm command, stamped like the sensor set the policy
saw) minus that sensor set's stamp; missed control periods are the periods between consecutive sensor sets
(`joint_states` stamps) beyond one. The simulated clock of realtime mode starts at the wall clock and keeps up with
it, so a stamp compares with the arrival time.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState

from rlvla_ros.msg import ActionChunk
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.training.recipes import load_recipe

NAMESPACE = "/rlvla"
RATE_HZ = 10.0
"""The sim bridge's rate_hz in config/sim_bridge.yaml (the robot's control rate)."""


def benchmark_realtime(seconds: float = 60.0, image_size: int = 64) -> dict:
    """Watch the realtime graph for `seconds` once commands flow; see the module docstring."""
    from rlvla_ros.cli.demo import _config_overrides, _launch_arguments, _sim_launch_file
    from rlvla_ros.launching.background import BackgroundLaunch
    from rlvla_ros.ros.param_files import write_config_overlay

    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    recipe = dataclasses.replace(load_recipe("demo"), image_size=image_size)
    overrides = _config_overrides(recipe)
    with tempfile.TemporaryDirectory(prefix="rlvla_realtime_bench_") as tmp:
        out = Path(tmp)
        launch = BackgroundLaunch(_sim_launch_file(), _launch_arguments(
            write_config_overlay(out / "config", overrides), out, clock_mode="realtime", watchdog_timeout_s="0.5"),
            out / "graph.log")
        with launch, in_process_graph() as (context, executor):
            node = rclpy.create_node("rlvla_realtime_bench", namespace=NAMESPACE, context=context)
            latencies_ms: list[float] = []
            sensor_stamps: list[int] = []
            node.create_subscription(ActionChunk, "executed_action",
                                     lambda msg: latencies_ms.append((time.time_ns() - stamp_ns(msg)) / 1e6), 100)
            node.create_subscription(JointState, "joint_states", lambda msg: sensor_stamps.append(stamp_ns(msg)),
                                     QoSProfile(depth=100))
            executor.add_node(node)
            if not wait_until(lambda: len(latencies_ms) >= 5, 180.0):
                raise RuntimeError(f"no commands from the graph within 180 s\n{launch.log_tail()}")
            latencies_ms.clear()
            sensor_stamps.clear()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(0.5)
                if not launch.running():
                    raise RuntimeError(f"the graph stopped\n{launch.log_tail()}")
            watched_s = time.monotonic() - started
            executor.remove_node(node)
            latencies, stamps = list(latencies_ms), list(sensor_stamps)
    period_ns = 1e9 / RATE_HZ
    gaps = np.diff(np.asarray(stamps, dtype=np.int64))
    missed = int(np.sum(np.maximum(np.rint(gaps / period_ns) - 1, 0))) if len(gaps) else 0
    return {
        "policy": recipe.policy_type,
        "seconds": round(watched_s, 1),
        "rate_hz": RATE_HZ,
        "commands": len(latencies),
        "sensor_sets": len(stamps),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2) if latencies else None,
        "missed_periods": missed,
    }
