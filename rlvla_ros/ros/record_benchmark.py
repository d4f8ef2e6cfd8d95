"""Node-level recording benchmark: the recorder node and a camera-like publisher in one process, over real rclpy.

Unlike `rlvla_ros.data.benchmark` (the writer alone), this measures the whole path: DDS transport, the rclpy
executor and the recorder's subscriptions and writer thread. The count of images written is read back from the bag.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from rlvla_ros.data.bag_reader import open_bag
from rlvla_ros.nodes.recorder import Recorder
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.srv import StopRecording

IMAGE_TOPIC = "/rlvla_bench/camera/image_raw"
JOINTS_TOPIC = "/rlvla_bench/joint_states"


def benchmark_recorder(
    rate_hz: float = 30.0, seconds: float = 5.0, size: int = 224, reliable: bool = True, joints_rate_hz: float = 100.0
) -> dict:
    """Publish `size`x`size` rgb8 images at `rate_hz` and JointStates at `joints_rate_hz` for `seconds` into a
    recorder node (same process, its own executor threads), stop it through `~/stop_recording`, and count what the
    bag holds. `reliable` picks the publishers' QoS (False: best-effort, like many camera drivers).

    Returns images and joint states published and written, images/s written over the publishing window, dropped
    images (published - written) and the recorder's own writer-queue drops.
    """
    if rate_hz <= 0 or seconds <= 0 or size <= 0 or joints_rate_hz <= 0:
        raise ValueError("rate_hz, seconds, size and joints_rate_hz must be > 0")
    with tempfile.TemporaryDirectory(prefix="rlvla_record_bench_") as tmp, in_process_graph() as (context, executor):
        recorder = Recorder(context=context, parameter_overrides=[
            Parameter("output_dir", value=tmp),
            Parameter("topics", value=[IMAGE_TOPIC, JOINTS_TOPIC]),
            Parameter("autostart", value=True),
            Parameter("discovery_period_s", value=0.1),
        ])
        publisher_node = rclpy.create_node("record_bench_publisher", context=context)
        executor.add_node(recorder)
        executor.add_node(publisher_node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else
                         ReliabilityPolicy.BEST_EFFORT)
        image_pub = publisher_node.create_publisher(Image, IMAGE_TOPIC, qos)
        joints_pub = publisher_node.create_publisher(JointState, JOINTS_TOPIC, qos)
        if not wait_until(lambda: image_pub.get_subscription_count() and joints_pub.get_subscription_count(), 10.0):
            raise RuntimeError("the recorder did not subscribe within 10 s")
        time.sleep(0.5)  # let the subscriptions' matching settle before timing starts
        published_images, published_joints = _publish(image_pub, joints_pub, publisher_node, rate_hz,
                                                      joints_rate_hz, seconds, size)
        client = publisher_node.create_client(StopRecording, "/recorder/stop_recording")
        if not client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("no ~/stop_recording service")
        time.sleep(0.5)  # the last messages are in flight
        future = client.call_async(StopRecording.Request())
        if not wait_until(future.done, 60.0) or not future.result().success:
            raise RuntimeError("stop_recording failed")
        result = future.result()
        counts = _count_messages(result.bag_paths)
        bag_bytes = sum(f.stat().st_size for p in result.bag_paths for f in Path(p).iterdir())
    images_written = counts.get(IMAGE_TOPIC, 0)
    return {
        "rate_hz": rate_hz,
        "seconds": seconds,
        "size": size,
        "reliable": reliable,
        "images_published": published_images,
        "images_written": images_written,
        "images_per_s": images_written / seconds,
        "images_dropped": published_images - images_written,
        "joint_states_published": published_joints,
        "joint_states_written": counts.get(JOINTS_TOPIC, 0),
        "writer_queue_dropped": recorder.dropped_total,
        "bag_bytes": bag_bytes,
    }


def _publish(image_pub, joints_pub, node, rate_hz: float, joints_rate_hz: float, seconds: float,
             size: int) -> tuple[int, int]:
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
            return images, joint_states
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
