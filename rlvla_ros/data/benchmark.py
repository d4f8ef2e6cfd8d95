"""Recording throughput benchmark: camera images plus small state topics through `BagWriter`, in real time."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from rlvla_ros.data.bag_writer import BagWriter, make_qos
from rlvla_ros.data.typestore import make_typestore

_IMAGE = "sensor_msgs/msg/Image"
_JOINTS = "sensor_msgs/msg/JointState"


def _sample_messages(size: int, rng: np.random.Generator) -> tuple[list[bytes], bytes]:
    """A few distinct serialised rgb8 images (noise: incompressible, the worst case) and one JointState."""
    store = make_typestore()
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="cam")
    images = [
        store.serialize_cdr(
            types[_IMAGE](
                header=header,
                height=size,
                width=size,
                encoding="rgb8",
                is_bigendian=0,
                step=size * 3,
                data=rng.integers(0, 256, size * size * 3, dtype=np.uint8),
            ),
            _IMAGE,
        )
        for _ in range(4)
    ]
    joints = store.serialize_cdr(
        types[_JOINTS](
            header=header,
            name=[f"joint{i}" for i in range(7)],
            position=rng.normal(size=7),
            velocity=rng.normal(size=7),
            effort=np.zeros(7),
        ),
        _JOINTS,
    )
    return images, joints


def _open_writer(root: Path) -> BagWriter:
    writer = BagWriter(root, prefix="bench")
    writer.add_topic("/camera/image_raw", _IMAGE, [make_qos(depth=5, reliable=False)])
    writer.add_topic("/joint_states", _JOINTS, [make_qos()])
    return writer


def benchmark_bag_write(rate_hz: float = 30.0, seconds: float = 5.0, size: int = 224, queue_depth: int = 10) -> dict:
    """Publish a `size`x`size` rgb8 image and a JointState at `rate_hz` for `seconds` of wall time from a producer
    thread into a bounded queue (like a KEEP_LAST subscription of `queue_depth`) that one writer thread drains.

    Returns images/s and bytes/s actually written, messages dropped because the writer fell behind, the p99 write
    latency of an image, and `max_images_per_s`: images/s written back to back without pacing (headroom).
    """
    if rate_hz <= 0 or seconds <= 0 or size <= 0 or queue_depth <= 0:
        raise ValueError("rate_hz, seconds, size and queue_depth must be > 0")
    images, joints = _sample_messages(size, np.random.default_rng(0))
    inbox: queue.Queue = queue.Queue(maxsize=2 * queue_depth)
    dropped = 0
    count = int(round(rate_hz * seconds))

    def produce() -> None:
        nonlocal dropped
        start = time.perf_counter()
        for k in range(count):
            time.sleep(max(0.0, start + k / rate_hz - time.perf_counter()))
            stamp_ns = time.time_ns()
            for topic, data in (("/camera/image_raw", images[k % len(images)]), ("/joint_states", joints)):
                try:
                    inbox.put_nowait((topic, data, stamp_ns))
                except queue.Full:
                    dropped += 1
        inbox.put(None)

    latencies_s = []
    with tempfile.TemporaryDirectory(prefix="rlvla_bench_") as tmp:
        writer = _open_writer(Path(tmp) / "paced")
        producer = threading.Thread(target=produce, daemon=True)
        start = time.perf_counter()
        producer.start()
        image_count = 0
        while (item := inbox.get()) is not None:
            topic, data, stamp_ns = item
            before = time.perf_counter()
            writer.write(topic, data, stamp_ns)
            if topic == "/camera/image_raw":
                latencies_s.append(time.perf_counter() - before)
                image_count += 1
        writer.close()
        elapsed_s = time.perf_counter() - start
        producer.join()
        bytes_written = sum(f.stat().st_size for bag in writer.bag_paths for f in bag.iterdir())
        messages_written = writer.message_count

        unpaced = _open_writer(Path(tmp) / "unpaced")
        start = time.perf_counter()
        for k in range(count):
            unpaced.write("/camera/image_raw", images[k % len(images)], k)
        unpaced.close()
        max_images_per_s = count / (time.perf_counter() - start)

    return {
        "rate_hz": rate_hz,
        "seconds": seconds,
        "size": size,
        "images_offered": count,
        "images_written": image_count,
        "images_per_s": image_count / elapsed_s,
        "messages_written": messages_written,
        "bytes_written": bytes_written,
        "bytes_per_s": bytes_written / elapsed_s,
        "dropped": dropped,
        "write_latency_p99_ms": float(np.percentile(latencies_s, 99) * 1e3) if latencies_s else 0.0,
        "max_images_per_s": max_images_per_s,
    }
