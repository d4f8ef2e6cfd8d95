"""Long work off the executor thread: nodes spin a SingleThreadedExecutor (`rlvla_ros.ros.spinning`), so anything
slow (inference, checkpoint loads) runs in a thread of the node's own and callbacks stay short."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from rclpy.node import Node
from rclpy.task import Future

T = TypeVar("T")


class LatestItemWorker(Generic[T]):
    """A thread that calls ``handle(item)`` on the newest ``submit``-ted item.

    An item replaced before the thread took it is counted in ``replaced`` (the node acts on the newest input, never
    on a backlog). Exceptions from ``handle`` go to ``on_error`` and the thread goes on.
    """

    def __init__(self, name: str, handle: Callable[[T], None], on_error: Callable[[BaseException], None]) -> None:
        self._handle = handle
        self._on_error = on_error
        self._condition = threading.Condition()
        self._item: T | None = None
        self._stopped = False
        self.replaced = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> int:
        """Hand over ``item``; returns how many items it replaced (0 or 1)."""
        with self._condition:
            replaced = int(self._item is not None)
            self.replaced += replaced
            self._item = item
            self._condition.notify()
        return replaced

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the item being handled finish, then end the thread."""
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._item is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                item, self._item = self._item, None
            try:
                self._handle(item)
            except Exception as error:  # noqa: BLE001 - reported by the node; the worker must not die
                self._on_error(error)


class BackgroundCalls:
    """Run a function in the node's own thread pool from an ``async`` callback: ``await calls.run(fn, *args)``.

    The executor goes on with other callbacks meanwhile; a service answered this way replies when ``fn`` returns.
    The awaiting callback needs a callback group of its own (or a reentrant one): rclpy holds a callback's group
    until its coroutine ends, and the node's default group would hold back every other callback of the node.
    """

    def __init__(self, node: Node, name: str, max_workers: int = 1) -> None:
        self._node = node
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        future: Future = Future(executor=self._node.executor)
        # A done callback makes completion wake the executor, which then resumes the awaiting callback.
        future.add_done_callback(lambda _: None)

        def call() -> None:
            try:
                future.set_result(fn(*args))
            except Exception as error:  # noqa: BLE001 - re-raised in the awaiting callback
                future.set_exception(error)

        self._pool.submit(call)
        return await future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
