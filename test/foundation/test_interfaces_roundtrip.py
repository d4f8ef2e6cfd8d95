"""Every rlvla_ros interface crosses a real rclpy graph between two nodes unchanged."""

import importlib
import re

import numpy as np
import pytest
from rclpy.action import ActionServer

MESSAGES = ["Metric", "Observation", "ActionChunk", "Reward", "EpisodeEvent", "FineTuneStatus"]
SERVICES = ["StartFineTune", "StopFineTune", "GetFineTuneStatus", "LoadCheckpoint", "ResetEpisode",
            "StartRecording", "StopRecording"]

_SCALARS = {
    "boolean": True, "string": "x", "float": 1.5, "double": -2.25, "octet": 7, "uint8": 7, "int8": -7,
    "uint16": 700, "int16": -700, "uint32": 70000, "int32": -70000, "uint64": 2**40, "int64": -(2**40),
}


def _value(type_name: str, seed: int):
    """A non-default value of a rosidl field type, different for each seed."""
    sequence = re.fullmatch(r"sequence<(.+?)(?:, \d+)?>", type_name)
    if sequence:
        return [_value(sequence.group(1), seed + i) for i in range(2)]
    if type_name in _SCALARS:
        scalar = _SCALARS[type_name]
        if isinstance(scalar, bool):
            return scalar
        if isinstance(scalar, str):
            return f"{scalar}{seed}"
        return type(scalar)(scalar + (seed % 3))
    package, name = type_name.split("/")
    return filled(getattr(importlib.import_module(f"{package}.msg"), name), seed + 1)


def filled(message_type, seed: int = 0):
    """An instance of `message_type` with every field (recursively) set to a non-default value."""
    message = message_type()
    for field, type_name in message_type.get_fields_and_field_types().items():
        value = _value(type_name, seed)
        if isinstance(getattr(message, field), np.ndarray):
            value = np.asarray(value, dtype=getattr(message, field).dtype)
        elif type_name == "octet":
            value = bytes([value])
        setattr(message, field, value)
    return message


def _equal(a, b) -> bool:
    return a == b if not isinstance(a, np.ndarray) else bool(np.array_equal(a, b))


@pytest.mark.parametrize("name", MESSAGES)
def test_message_crosses_a_topic_unchanged(ros_graph, wait_for, name):
    message_type = getattr(importlib.import_module("rlvla_ros.msg"), name)
    sent = filled(message_type)
    assert sent != message_type(), "the filled message must differ from the default one"
    received = []
    publisher = ros_graph.node("talker").create_publisher(message_type, f"roundtrip/{name}", 10)
    ros_graph.node("listener").create_subscription(message_type, f"roundtrip/{name}", received.append, 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    publisher.publish(sent)
    assert wait_for(lambda: len(received) == 1)
    assert received[0] == sent


@pytest.mark.parametrize("name", SERVICES)
def test_service_request_and_response_cross_unchanged(ros_graph, wait_for, name):
    service_type = getattr(importlib.import_module("rlvla_ros.srv"), name)
    request, response = filled(service_type.Request, seed=1), filled(service_type.Response, seed=2)
    requests = []

    def serve(incoming, outgoing):
        requests.append(incoming)
        return response

    ros_graph.node("server").create_service(service_type, f"roundtrip/{name}", serve)
    client = ros_graph.node("client").create_client(service_type, f"roundtrip/{name}")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(request)
    assert wait_for(future.done)
    assert requests == [request]
    assert future.result() == response


def test_finetune_action_carries_goal_feedback_and_result(ros_graph, wait_for):
    from rlvla_ros.action import FineTune

    goal, feedback, result = filled(FineTune.Goal, 1), filled(FineTune.Feedback, 2), filled(FineTune.Result, 3)
    goals = []

    def execute(goal_handle):
        goals.append(goal_handle.request)
        goal_handle.publish_feedback(feedback)
        goal_handle.succeed()
        return result

    server_node = ros_graph.node("action_server")
    ActionServer(server_node, FineTune, "roundtrip/fine_tune", execute)
    client = ros_graph.action_client(FineTune, "roundtrip/fine_tune")
    assert client.wait_for_server(timeout_sec=10.0)
    feedbacks = []
    send = client.send_goal_async(goal, feedback_callback=lambda message: feedbacks.append(message.feedback))
    assert wait_for(send.done)
    goal_handle = send.result()
    assert goal_handle.accepted
    result_future = goal_handle.get_result_async()
    assert wait_for(result_future.done)
    assert goals == [goal]
    assert result_future.result().result == result
    assert wait_for(lambda: feedbacks == [feedback])


def test_the_contract_codes_are_the_interfaces_codes():
    from rlvla_ros import contract
    from rlvla_ros.msg import EpisodeEvent

    assert (contract.EPISODE_START, contract.EPISODE_END) == (EpisodeEvent.START, EpisodeEvent.END)
    for reason in ("SUCCESS", "TIMEOUT", "ABORT", "INTERVENTION", "STALLED"):
        assert getattr(contract, f"TERMINATION_{reason}") == getattr(EpisodeEvent, f"TERMINATION_{reason}")
