"""Recording helpers for the recorder node: QoS matching for discovered publishers, message classes by type name,
and a writer thread that keeps disk writes off the executor thread.
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos

from rlvla_ros.data.bag_writer import BagWriter, make_qos


def subscription_qos(publisher_profiles: Sequence[QoSProfile], depth: int) -> QoSProfile:
    """A KEEP_LAST(``depth``) profile that matches every publisher: best-effort if any publisher is best-effort
    (a reliable subscription would not match it), transient-local only if all are (to get their latched data)."""
    if not publisher_profiles:
        raise ValueError("no publisher QoS to match")
    best_effort = any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in publisher_profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publisher_profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def offered_qos(profile: QoSProfile) -> Qos:
    """A publisher's QoS as bag metadata (what `ros2 bag play` offers on replay)."""
    return make_qos(
        depth=max(1, profile.depth),
        reliable=profile.reliability != ReliabilityPolicy.BEST_EFFORT,
        transient_local=profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
    )


def message_class(type_name: str) -> type:
    """The Python message class of a ROS type name such as ``sensor_msgs/msg/Image``; ValueError if unknown."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise ValueError(f"not a message type name: {type_name!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise ValueError(f"message type {type_name} is not installed in this environment") from None


class BagWriterThread:
    """Owns a :class:`BagWriter` and runs every call on it in one background thread, fed by a bounded queue.

    ``write`` only enqueues (the subscription callbacks stay cheap); a full queue drops the message and counts it
    in ``dropped``; ``topic_counts()`` says per topic how many were received, written and dropped. If the writer
    fails (e.g. the disk is full) the thread stops, ``error`` holds the exception and further writes are dropped.
    ``close`` writes everything queued, finishes the bag (an empty one if nothing came) and joins the thread.
    """

    def __init__(self, root: Path | str, *, max_queued: int = 2000, **writer_kwargs) -> None:
        self.writer = BagWriter(root, **writer_kwargs)
        self.dropped = 0
        """Messages not recorded because the queue was full or the writer had failed."""
        self._received: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="bag_writer", daemon=True)
        self._thread.start()

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Register a topic now (ValueError for a type the bag's typestore does not know)."""
        if msgtype not in self.writer.typestore.fielddefs:
            raise ValueError(f"message type {msgtype} is unknown to the bag typestore")
        if not self._put(("add", topic, msgtype, tuple(qos)), wait_s=5.0):
            raise RuntimeError(f"cannot add {topic}: the bag writer is stuck or has failed ({self.error})")

    def write(self, topic: str, data: bytes, timestamp_ns: int) -> None:
        """Queue one serialised message; never blocks."""
        self._received[topic] = self._received.get(topic, 0) + 1
        if self.error is not None or not self._put(("write", topic, data, timestamp_ns)):
            self.dropped += 1
            self._dropped[topic] = self._dropped.get(topic, 0) + 1
            self.writer.note_dropped(topic)

    def topic_counts(self) -> dict[str, dict[str, int]]:
        """``{topic: {"received", "written", "dropped"}}`` so far; received - written - dropped are still queued."""
        written = dict(self.writer.topic_counts)
        return {topic: {"received": received, "written": written.get(topic, 0), "dropped": self._dropped.get(topic, 0)}
                for topic, received in sorted(self._received.items())}

    def flush(self) -> None:
        """Queue a flush of the pending chunk to the OS."""
        self._put(("flush",))

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, finish the bag (summary + metadata.yaml), stop the thread."""
        if self._thread.is_alive() and self._put(None, wait_s=timeout_s):
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"the bag writer did not finish within {timeout_s} s")

    @property
    def queued(self) -> int:
        """Messages waiting to be written."""
        return self._queue.qsize()

    def _put(self, item, wait_s: float = 0.0) -> bool:
        """Enqueue, waiting up to `wait_s` for room (a dead thread never makes room); False if it did not fit."""
        try:
            self._queue.put(item, timeout=wait_s) if wait_s > 0 else self._queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if item[0] == "write":
                    self.writer.write(*item[1:])
                elif item[0] == "add":
                    self.writer.add_topic(*item[1:])
                else:
                    self.writer.flush()
        except BaseException as error:  # kept for the node to report; the thread must not die silently
            self.error = error
        finally:
            try:
                if not self.writer.bag_paths:  # a session that got no message still ends in a valid, empty bag
                    self.writer.start_bag()
                self.writer.close()
            except Exception as error:  # noqa: BLE001 - reported like a write error
                self.error = self.error or error
