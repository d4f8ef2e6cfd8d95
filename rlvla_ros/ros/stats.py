"""Counters a node publishes as JSON on ``~/stats``, and throttled warnings for the messages it refuses.

A node counts what it does (``count``), records a few current values (``set``) and refuses bad input through
``refuse(reason, detail)``, which counts the refusal under ``refused.<reason>`` and logs the detail at most once per
``throttle_s`` per reason (rclpy's own throttling is per call site, so one bad stream would hide the others). The
counters go out on ``~/stats`` (std_msgs/String holding a JSON object, transient local: a late subscriber gets the
latest) every ``period_s`` when they changed, e.g.
``{"observations": 120, "rate_limited": 240, "refused": {"out_of_sync": 2}}``.

``instrument_subscriptions(node)`` (run by ``run_node`` and the test graph on every node they spin, through
``rlvla_ros.ros.spinning.prepare_node``) adds what the
executor model is judged by: ``callback_latency_ms`` (p50/p99 over the last ``LATENCY_WINDOW`` messages, from the
message's arrival at this process to the end of its callback, so executor queueing counts) and ``dropped`` per
topic (gaps in each publisher's sequence numbers: messages published but never handed to the callback).
"""

from __future__ import annotations

import collections
import inspect
import json
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

STATS_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of ``~/stats``: the latest snapshot, kept for late subscribers."""
LATENCY_WINDOW = 1000
"""Callbacks the latency percentiles are taken over."""

_STATS_OF_NODE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class NodeStats:
    """Counters of one node, published on ``~/stats``; safe to use from several callback threads."""

    def __init__(self, node: Node, period_s: float = 1.0, throttle_s: float = 1.0) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self._logger = node.get_logger()
        self._throttle_s = throttle_s
        self._values: dict[str, Any] = {"refused": {}}
        self._last_warning_s: dict[str, float] = {}
        self._changed = True
        self._lock = threading.Lock()
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._publisher = node.create_publisher(String, "~/stats", STATS_QOS)
        node.create_timer(period_s, self._publish)
        _STATS_OF_NODE[node] = self

    def record_callback(self, topic: str, latency_ms: float, dropped: int) -> None:
        """One subscription callback: its latency and the messages lost before it on ``topic``."""
        with self._lock:
            self._latencies_ms.append(latency_ms)
            if dropped:
                lost = self._values.setdefault("dropped", {})
                lost[topic] = lost.get(topic, 0) + dropped
            self._changed = True

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n
            self._changed = True

    def set(self, name: str, value: Any) -> None:
        """Record the current value of ``name`` (JSON-serialisable)."""
        with self._lock:
            self._changed |= self._values.get(name) != value
            self._values[name] = value

    def refuse(self, reason: str, detail: str) -> None:
        """Count a refused message under ``refused.<reason>`` and log ``detail`` (throttled per reason)."""
        now_s = time.monotonic()
        with self._lock:
            refused = self._values["refused"]
            refused[reason] = refused.get(reason, 0) + 1
            self._changed = True
            if now_s - self._last_warning_s.get(reason, -float("inf")) < self._throttle_s:
                return
            self._last_warning_s[reason] = now_s
            total = refused[reason]
        self._logger.warning(f"refused ({reason}, {total} so far): {detail}")

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counters, as published."""
        with self._lock:
            return json.loads(json.dumps(self._values))

    def _publish(self) -> None:
        with self._lock:
            if not self._changed:
                return
            self._changed = False
            values = dict(self._values)
            if self._latencies_ms:
                p50, p99 = np.percentile(np.fromiter(self._latencies_ms, float), [50, 99])
                values["callback_latency_ms"] = {"p50": round(float(p50), 3), "p99": round(float(p99), 3),
                                                 "window": len(self._latencies_ms)}
            text = json.dumps(values, sort_keys=True)
        self._publisher.publish(String(data=text))


def instrument_subscriptions(node: Node) -> None:
    """Time every subscription callback of ``node`` and count the messages lost before it, into the node's
    :class:`NodeStats` (nodes without one are left as they are)."""
    stats = _STATS_OF_NODE.get(node)
    if stats is None:
        return
    for subscription in node.subscriptions:
        if not getattr(subscription.callback, "_rlvla_timed", False):
            # A content filter leaves gaps in the sequence numbers of the messages it passes: not losses.
            subscription.callback = _timed_callback(subscription.topic_name, subscription.callback, stats,
                                                    count_drops=not subscription.is_cft_enabled)


def _timed_callback(topic: str, callback, stats: NodeStats, count_drops: bool = True):
    try:  # the test rclpy itself makes to tell the two kinds of subscription callback apart
        inspect.signature(callback).bind(object())
        wants_info = False
    except TypeError:
        wants_info = True
    last_sequence: dict[bytes, int] = {}

    def timed(msg, info) -> None:
        try:
            callback(msg, info) if wants_info else callback(msg)
        finally:
            dropped = 0
            sequence, gid = info.get("publication_sequence_number"), info.get("publisher_gid")
            if count_drops and sequence is not None and gid is not None:
                key = bytes(gid["data"]) if isinstance(gid, dict) else bytes(gid)
                previous = last_sequence.get(key)
                dropped = max(0, sequence - previous - 1) if previous is not None else 0
                last_sequence[key] = sequence
            received_ns = info.get("received_timestamp") or time.time_ns()  # 0 where the middleware has none
            stats.record_callback(topic, (time.time_ns() - received_ns) / 1e6, dropped)

    timed._rlvla_timed = True
    return timed


def watch_node_stats(node: Node, namespace: str, names: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Subscribe ``node`` to the ``~/stats`` of the nodes ``names`` under ``namespace`` (none given: of every node
    there that the graph lists now, which misses one this process has not discovered yet); returns a dict, by node
    name, of the latest snapshot of each, kept up to date as snapshots arrive."""
    latest: dict[str, dict[str, Any]] = {}
    prefix = namespace.rstrip("/") + "/"
    names = list(names) or [
        topic[len(prefix):-len("/stats")] for topic, types in node.get_topic_names_and_types()
        if topic.startswith(prefix) and topic.endswith("/stats") and "std_msgs/msg/String" in types]
    for name in names:
        node.create_subscription(String, f"{prefix}{name}/stats",
                                 lambda msg, name=name: latest.__setitem__(name, json.loads(msg.data)), STATS_QOS)
    return latest
