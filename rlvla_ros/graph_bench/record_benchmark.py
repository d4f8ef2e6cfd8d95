"""Node-level recording benchmark: the recorder node in a process of its own (as deployed) records a camera-like
and a joint-state publisher in this process, over real rclpy.

Unlike `rlvla_ros.data.benchmark` (the writer alone), this measures the whole path: DDS transport between processes,
the recorder's executor, subscriptions and writer thread. What was written is read back from the bag; the recording
stops once the recorder's `~/get_status` says it received the last message of each topic (the sentinel), so no
waiting on the clock decides what counts as lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from rlvla_ros.data.bag_reader import open_bag
from rlvla_ros.launching.executables import find_executable
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.srv import StopRecording

NAMESPACE = "/rlvla_record_bench"
IMAGE_TOPIC = f"{NAMESPACE}/camera/image_raw"
JOINTS_TOPIC = f"{NAMESPACE}/joint_states"


def benchmark_recorder(
    rate_hz: float = 30.0, seconds: float = 5.0, size: int = 224, reliable: bool = True, joints_rate_hz: float = 100.0
) -> dict:
    """Publish `size`x`size` rgb8 images at `rate_hz` and JointStates at `joints_rate_hz` for `seconds` into a
    recorder node process, stop it through `~/stop_recording`, and count what the bag holds. `reliable` picks the
    publishers' QoS (False: best-effort, like many camera drivers).

    Returns per topic `published` / `written` / `dropped` (published - written), `dropped_total`, images/s written
    over the publishing window and the recorder's own per-topic counts from `~/get_status`.
    """
    if rate_hz <= 0 or seconds <= 0 or size <= 0 or joints_rate_hz <= 0:
        raise ValueError("rate_hz, seconds, size and joints_rate_hz must be > 0")
    with tempfile.TemporaryDirectory(prefix="rlvla_record_bench_") as tmp:
        recorder = subprocess.Popen([
            find_executable("rlvla_ros", "recorder"), "--ros-args", "-r", f"__ns:={NAMESPACE}",
            "-p", f"output_dir:={tmp}", "-p", f"topics:=[{IMAGE_TOPIC}, {JOINTS_TOPIC}]",
            "-p", "discovery_period_s:=0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
        try:
            with in_process_graph() as (context, executor):
                node = rclpy.create_node("record_bench_publisher", context=context)
                executor.add_node(node)
                qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else
                                 ReliabilityPolicy.BEST_EFFORT)
                image_pub = node.create_publisher(Image, IMAGE_TOPIC, qos)
                joints_pub = node.create_publisher(JointState, JOINTS_TOPIC, qos)
                status = _Client(node, Trigger, f"{NAMESPACE}/recorder/get_status")
                stop = _Client(node, StopRecording, f"{NAMESPACE}/recorder/stop_recording")
                subscribed = lambda: sorted(json.loads(status.call(Trigger.Request()).message).get("topics", []))
                if not wait_until(lambda: subscribed() == sorted([IMAGE_TOPIC, JOINTS_TOPIC])
                                  and image_pub.get_subscription_count() and joints_pub.get_subscription_count(), 30.0):
                    raise RuntimeError("the recorder did not subscribe within 30 s")
                published = _publish(image_pub, joints_pub, node, rate_hz, joints_rate_hz, seconds, size)

                def received() -> dict:
                    return json.loads(status.call(Trigger.Request()).message).get("per_topic", {})

                # The sentinel: the recorder holds (received) the last message of each topic, or gave up on it.
                wait_until(lambda: all(received().get(t, {}).get("received", 0) >= n for t, n in published.items()),
                           30.0)
                recorder_counts = received()
                result = stop.call(StopRecording.Request(), timeout_s=60.0)
                if not result.success:
                    raise RuntimeError(f"stop_recording failed: {result.message}")
                bag_paths = list(result.bag_paths)
                written = _count_messages(bag_paths)
                bag_bytes = sum(f.stat().st_size for p in bag_paths for f in Path(p).iterdir())
        finally:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(30.0)
            except subprocess.TimeoutExpired:
                recorder.kill()
    topics = {topic: {"published": n, "written": written.get(topic, 0), "dropped": n - written.get(topic, 0)}
              for topic, n in published.items()}
    return {
        "rate_hz": rate_hz,
        "joints_rate_hz": joints_rate_hz,
        "seconds": seconds,
        "size": size,
        "reliable": reliable,
        "topics": topics,
        "dropped_total": sum(t["dropped"] for t in topics.values()),
        "images_per_s": written.get(IMAGE_TOPIC, 0) / seconds,
        "recorder": recorder_counts,
        "bag_bytes": bag_bytes,
    }


class _Client:
    """A blocking service call from this thread while the graph's executor spins in its own."""

    def __init__(self, node, srv_type, name: str) -> None:
        self._client = node.create_client(srv_type, name)
        if not self._client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError(f"no {name} service within 30 s")

    def call(self, request, timeout_s: float = 10.0):
        future = self._client.call_async(request)
        if not wait_until(future.done, timeout_s) or future.result() is None:
            raise RuntimeError(f"no answer from {self._client.srv_name} within {timeout_s} s")
        return future.result()


def _publish(image_pub, joints_pub, node, rate_hz: float, joints_rate_hz: float, seconds: float,
             size: int) -> dict[str, int]:
    """Paced publishing from this thread; images are noise (incompressible), a few distinct ones reused."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size * size * 3, dtype=np.uint8).tobytes() for _ in range(4)]
    image = Image(height=size, width=size, encoding="rgb8", is_bigendian=0, step=size * 3)
    joints = JointState(name=[f"joint{i}" for i in range(7)])
    start = time.perf_counter()
    images = joint_states = 0
    while True:
        now = time.perf_counter() - start
        next_image, next_joints = images / rate_hz, joint_states / joints_rate_hz
        if min(next_image, next_joints) >= seconds:
            return {IMAGE_TOPIC: images, JOINTS_TOPIC: joint_states}
        if next_image <= next_joints:
            time.sleep(max(0.0, next_image - now))
            image.header.stamp = node.get_clock().now().to_msg()
            image.data = frames[images % len(frames)]
            image_pub.publish(image)
            images += 1
        else:
            time.sleep(max(0.0, next_joints - now))
            joints.header.stamp = node.get_clock().now().to_msg()
            joints.position = rng.normal(size=7).tolist()
            joints_pub.publish(joints)
            joint_states += 1


def _count_messages(bag_paths) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in bag_paths:
        with open_bag(path) as reader:
            for connection, _, _ in reader.messages():
                counts[connection.topic] = counts.get(connection.topic, 0) + 1
    return counts
