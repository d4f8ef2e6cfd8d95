"""Counters a node publishes as JSON on ``~/stats``, and throttled warnings for the messages it refuses.

A node counts what it does (``count``), records a few current values (``set``) and refuses bad input through
``refuse(reason, detail)``, which counts the refusal under ``refused.<reason>`` and logs the detail at most once per
``throttle_s`` per reason (rclpy's own throttling is per call site, so one bad stream would hide the others). The
counters go out on ``~/stats`` (std_msgs/String holding a JSON object, transient local: a late subscriber gets the
latest) every ``period_s`` when they changed, e.g.
``{"observations": 120, "rate_limited": 240, "refused": {"out_of_sync": 2}}``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

STATS_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of ``~/stats``: the latest snapshot, kept for late subscribers."""


class NodeStats:
    """Counters of one node, published on ``~/stats``; safe to use from several callback threads."""

    def __init__(self, node: Node, period_s: float, throttle_s: float = 1.0) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self._logger = node.get_logger()
        self._throttle_s = throttle_s
        self._values: dict[str, Any] = {"refused": {}}
        self._last_warning_s: dict[str, float] = {}
        self._changed = True
        self._lock = threading.Lock()
        self._publisher = node.create_publisher(String, "~/stats", STATS_QOS)
        node.create_timer(period_s, self._publish)

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
            text = json.dumps(self._values, sort_keys=True)
        self._publisher.publish(String(data=text))
