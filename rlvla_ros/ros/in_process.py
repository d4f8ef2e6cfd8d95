"""An rclpy graph inside the calling process, for benchmarks: its own context, the deployed nodes' executor
(SingleThreadedExecutor, see `rlvla_ros.ros.spinning`) spinning in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor


@contextmanager
def in_process_graph() -> Iterator[tuple[Context, SingleThreadedExecutor]]:
    """Yield a fresh context and its executor, which spins once the first node is added.

    On exit the executor is shut down and its thread joined before the context: shutting rclpy down under a spinning
    executor aborts the process with the PyPI wheels.
    """
    context = Context()
    rclpy.init(context=context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor(context=context)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    try:
        spinner.start()
        yield context, executor
    finally:
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        rclpy.shutdown(context=context)


def wait_until(predicate: Callable[[], object], timeout_s: float) -> bool:
    """Poll `predicate` every 10 ms until it is true or `timeout_s` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
