"""Spinning a node until Ctrl-C or SIGTERM, treating every way rclpy reports that shutdown as a clean end."""

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.impl.implementation_singleton import rclpy_implementation

RCLError = rclpy_implementation.RCLError


def spin_until_shutdown(node: Node) -> None:
    """`rclpy.spin(node)` until the context shuts down. rclpy's SIGINT/SIGTERM handlers shut the context down;
    spin then raises ExternalShutdownException, or, when the signal lands while the executor builds its wait set,
    an RCLError about an invalid context: both are a requested shutdown, not a crash."""
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if node.context.ok():
            raise
