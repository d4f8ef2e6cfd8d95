"""Each node's ~/stats reports its subscription callbacks' latency and the messages lost before them, measured by the
executor set-up the nodes are deployed with (`instrument_subscriptions`, which the test graph applies too)."""

import json
import threading

from rclpy.qos import QoSProfile
from std_msgs.msg import Int32, String

from rlvla_ros.ros.stats import NodeStats


def test_stats_report_callback_latency_and_messages_lost_in_the_subscription_queue(ros_graph, wait_for):
    import rclpy

    node = rclpy.create_node("stats_subject", context=ros_graph.context)
    NodeStats(node, period_s=0.05)
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def on_number(msg: Int32) -> None:
        entered.set()
        release.wait(10.0)  # the first callback blocks, so the queue of one overflows
        seen.append(msg.data)

    node.create_subscription(Int32, "numbers", on_number, QoSProfile(depth=1))
    ros_graph.add(node)
    test = ros_graph.node("stats_test")
    published: list[dict] = []
    test.create_subscription(String, "stats_subject/stats", lambda m: published.append(json.loads(m.data)),
                             QoSProfile(depth=10))
    numbers = test.create_publisher(Int32, "numbers", QoSProfile(depth=50))
    assert wait_for(lambda: numbers.get_subscription_count() > 0, 10.0)
    numbers.publish(Int32(data=0))
    assert entered.wait(10.0)  # message 0 is taken: the baseline of the publisher's sequence numbers
    for value in range(1, 20):
        numbers.publish(Int32(data=value))
    release.set()
    assert wait_for(lambda: seen and seen[-1] == 19, 10.0)  # the sentinel: the newest message always gets through
    lost = 20 - len(seen)
    assert lost > 0, seen  # a queue of one behind a blocked callback
    assert wait_for(lambda: published and published[-1].get("dropped", {}).get("/numbers") == lost, 10.0), published
    latency = published[-1]["callback_latency_ms"]
    assert latency["window"] == len(seen) and 0 <= latency["p50"] <= latency["p99"]


def test_messages_a_content_filter_passes_over_are_not_counted_as_lost(ros_graph, wait_for):
    import rclpy
    from rclpy.subscription_content_filter_options import ContentFilterOptions

    node = rclpy.create_node("filtered_subject", context=ros_graph.context)
    NodeStats(node, period_s=0.05)
    seen: list[int] = []
    node.create_subscription(Int32, "numbers", lambda msg: seen.append(msg.data), QoSProfile(depth=50),
                             content_filter_options=ContentFilterOptions(
                                 filter_expression="data = %0 OR data = %1", expression_parameters=["2", "7"]))
    ros_graph.add(node)
    test = ros_graph.node("filtered_test")
    published: list[dict] = []
    test.create_subscription(String, "filtered_subject/stats", lambda m: published.append(json.loads(m.data)),
                             QoSProfile(depth=10))
    numbers = test.create_publisher(Int32, "numbers", QoSProfile(depth=50))
    assert wait_for(lambda: numbers.get_subscription_count() > 0, 10.0)
    for value in range(10):
        numbers.publish(Int32(data=value))
    assert wait_for(lambda: seen == [2, 7], 10.0), seen
    assert wait_for(lambda: published and published[-1].get("callback_latency_ms", {}).get("window") == 2, 10.0)
    assert "dropped" not in published[-1], published[-1]
