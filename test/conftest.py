"""Test-session isolation and shared fixtures for tests that use a real rclpy graph.

Other programs on this host may run ROS 2: every test session gets its own ROS_DOMAIN_ID, and Fast DDS a profile
(`fastdds_udp_loopback.xml`) that keeps discovery and data on the loopback interface, set before any test starts a
context (child processes inherit them). The profile also leaves shared memory out, so killed test processes leave no
`/dev/shm/fastdds_*` segments behind (630 after a day). `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` is not set: with it
rmw_fastrtps chooses its own transports, shared memory included, and ignores the profile's.
"""

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = os.path.join(os.path.dirname(__file__), "fastdds_udp_loopback.xml")
os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
os.environ.setdefault("MUJOCO_GL", "egl")


class RosGraph:
    """An rclpy context with the deployed nodes' executor (`rlvla_ros.ros.spinning`: single-threaded, each node
    prepared as `run_node` prepares it) spinning in the background, and the nodes it spins."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes = []
        self._sync_node = None
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node):
        """Spin `node` (created with `context=graph.context`) and destroy it at teardown; returns it."""
        from rlvla_ros.ros.spinning import prepare_node

        self.executor.add_node(prepare_node(node))
        self._nodes.append(node)
        return node

    def node(self, name: str, **kwargs):
        """A plain node on this graph, for test-side publishers, subscriptions and clients."""
        import rclpy

        return self.add(rclpy.create_node(name, context=self.context, **kwargs))

    def action_client(self, action_type, action_name: str):
        """An ActionClient on a node of its own, added to the executor only once the client is whole: rclpy's
        ActionClient adds itself to its node before it creates its lock, and an executor spinning that node in
        between dies on `'ActionClient' object has no attribute '_lock'` (CI, 2026-12-07)."""
        import rclpy
        from rclpy.action import ActionClient

        node = rclpy.create_node(f"action_client_{len(self._nodes)}", context=self.context)
        client = ActionClient(node, action_type, action_name)
        self.add(node)
        return client

    def sync(self, timeout_s: float = 10.0) -> None:
        """Return once the executor has handled a guard condition triggered now: its next wait is built from the
        nodes it spins now (e.g. without one just removed), so nothing published afterwards reaches a removed
        node."""
        if self._sync_node is None:
            self._sync_node = self.node("ros_graph_sync")
        handled = threading.Event()
        guard = self._sync_node.create_guard_condition(handled.set)
        try:
            guard.trigger()
            assert handled.wait(timeout_s), f"the executor did not run a callback within {timeout_s} s"
        finally:
            self._sync_node.destroy_guard_condition(guard)

    def shutdown(self) -> None:
        import rclpy
        from rclpy.action import ActionClient, ActionServer

        # Stop the executor and join its thread before rclpy.shutdown: shutting down under a spinning executor
        # aborts the process with the PyPI wheels.
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        for node in self._nodes:
            node.destroy_node()
            # destroy_node leaves waitables alone, and the handle of an action server or client that its node did not
            # destroy itself keeps the node's DDS participant alive.
            for waitable in [w for w in node.waitables if isinstance(w, (ActionClient, ActionServer))]:
                waitable.destroy()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def ros_graph() -> Iterator[RosGraph]:
    graph = RosGraph()
    yield graph
    graph.shutdown()


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, period_s: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return predicate()


class SkippableClock:
    """Stands in for a module's `time`: `monotonic()` and `time_ns()` run with the real clocks and `skip(s)` moves
    both on at once, so a test makes a timeout (or a late tick) happen when it chooses instead of racing a short one
    against a loaded machine."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def time_ns(self) -> int:
        return time.time_ns() + round(self.offset_s * 1e9)

    def skip(self, seconds: float) -> None:
        self.offset_s += seconds


@pytest.fixture
def skippable_clock(monkeypatch) -> Callable[[object], SkippableClock]:
    """`skippable_clock(module)`: replace the `time` that `module` imported (it must use only `monotonic` and
    `time_ns`)."""

    def install(module) -> SkippableClock:
        clock = SkippableClock()
        monkeypatch.setattr(module, "time", clock)
        return clock

    return install


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """`wait_for(predicate, timeout_s=10.0)`: poll until the predicate holds."""
    return _wait_for
