"""The `main()` of every node: init rclpy, build the node, spin until Ctrl-C or SIGTERM, clean up, exit code.

Every node spins a SingleThreadedExecutor: on this rclpy a MultiThreadedExecutor made round trips 2x (across
processes) to 100x (in one process) slower (/work/shared/notes/ros2-executors.md). Callbacks therefore stay short;
long work (inference, checkpoint loads, rendering, disk writes) runs in a node's own threads (`rlvla_ros.ros.worker`).
"""

import gc
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

from rlvla_ros.ros.stats import instrument_subscriptions

RCLError = rclpy_implementation.RCLError


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Run the node `make_node()` builds until shutdown; returns the process exit code.

    Invalid parameters (a ValueError while the node is built) are logged FATAL and exit with 1. rclpy's SIGINT and
    SIGTERM handlers shut the context down; spinning then raises ExternalShutdownException or, when the signal lands
    while the executor builds its wait set, an RCLError about the invalid context: both are a requested shutdown.
    `destroy_node()` runs in every case, so nodes release what they hold there (a bag, a renderer).
    """
    with rclpy.init(args=args):
        try:
            node = make_node()
        except ValueError as error:
            rclpy.logging.get_logger(getattr(make_node, "__name__", "node")).fatal(str(error))
            return 1
        prepare_node(node)
        # What imports and start-up built (torch, transformers, MuJoCo: ~400k objects) lives as long as the process:
        # keep it out of the cyclic collector. A full collection of it took 0.3 s, a stall of every callback, and the
        # one at interpreter exit 2-4 s, so the torch-importing nodes missed launch's 5 s SIGINT grace period.
        gc.freeze()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except RCLError:
            if node.context.ok():
                raise
        finally:
            executor.remove_node(node)
            node.destroy_node()
    return 0


def prepare_node(node: Node) -> Node:
    """Set up `node` as every spun node is, deployed or in a test graph; returns it.

    Its subscriptions are timed into its `~/stats` (`instrument_subscriptions`). Its publishers lose rclpy's default
    QoS-event handlers (incompatible QoS, incompatible type): the executor visits every handler at every wake-up, which
    cost 0.1-0.15 ms per callback here (a node with 10 publishers and 5 subscriptions: 0.42 ms per callback with them,
    0.27-0.32 ms without), and the subscription on the other end of an incompatible pair reports it anyway (ours keep
    their handlers and log it).
    """
    instrument_subscriptions(node)
    for publisher in node.publishers:
        for handler in publisher.event_handlers:
            node.remove_waitable(handler)
            handler.destroy()
        publisher.event_handlers = []
    return node

