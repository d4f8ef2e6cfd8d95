"""Header stamps as integers: the data time that nodes pair and order messages by."""

from typing import Any

from rclpy.time import Time


def stamp_ns(message: Any) -> int:
    """The message's ``header.stamp`` in nanoseconds (0 for an unstamped message)."""
    return Time.from_msg(message.header.stamp).nanoseconds
