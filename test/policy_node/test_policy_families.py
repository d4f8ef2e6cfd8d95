"""Every policy family behind the unchanged nodes: a checkpoint of each, hot-swapped into a running policy node with
LoadCheckpoint, acts exactly like the model that saved it, and its chunks go through the safety filter to the arm
topics and into the recorder's bag."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.msg import ActionChunk, Observation
from rlvla_ros.nodes.policy import PolicyNode
from rlvla_ros.nodes.recorder import Recorder
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.policies import (
    FlowMatchingConfig,
    FlowMatchingPolicy,
    HfVlmConfig,
    HfVlmPolicy,
    TokenVla,
    TokenVlaConfig,
    load_policy,
)
from rlvla_ros.policies.hf_vlm import build_tiny_vlm
from rlvla_ros.ros.images import rgb_to_image
from rlvla_ros.sim.tabletop_sim import HOME_ARM_Q, JOINT_NAMES
from rlvla_ros.srv import LoadCheckpoint, StartRecording, StopRecording

HORIZON = 4
SIZE = 64
FAMILIES = ["token_vla", "flow_matching", "hf_vlm_llava", "hf_vlm_idefics3"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A small checkpoint of each family (64 px, horizon 4), and ``start``: the one the node boots with."""
    root = tmp_path_factory.mktemp("family_checkpoints")
    torch.manual_seed(3)
    token = dict(chunk_size=HORIZON, image_size=SIZE, vision_hidden_size=32, vision_layers=1, vision_heads=2,
                 vision_intermediate_size=64, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                 intermediate_size=128, value_hidden_size=32)
    policies = {
        "start": TokenVla(TokenVlaConfig(**token)),
        "token_vla": TokenVla(TokenVlaConfig(**token)),
        "flow_matching": FlowMatchingPolicy(FlowMatchingConfig(chunk_size=HORIZON, image_size=SIZE, channels=[8, 8],
                                                               strides=[2, 1], expert_hidden_size=32, num_steps=4,
                                                               head_hidden_size=32)),
        "hf_vlm_llava": HfVlmPolicy(HfVlmConfig(base_model_dir=str(build_tiny_vlm("llava", root / "llava")),
                                                chunk_size=HORIZON, image_size=SIZE, decoding="autoregressive")),
        "hf_vlm_idefics3": HfVlmPolicy(HfVlmConfig(base_model_dir=str(build_tiny_vlm("idefics3", root / "idefics3")),
                                                   chunk_size=HORIZON, image_size=SIZE, decoding="parallel")),
    }
    for name, policy in policies.items():
        with torch.no_grad():  # trained weights in every head, not their initial zeros
            for parameter in policy.parameters():
                if parameter.requires_grad and parameter.ndim > 1 and not parameter.any():
                    parameter.normal_(0.0, 0.05)
        policy.save_pretrained(root / name)
    return {name: root / name for name in policies}


def observation(seed: int = 0, step: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    msg = Observation(images=[rgb_to_image(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))],
                      camera_names=["front"], proprioception=rng.normal(size=6).tolist(),
                      proprioception_names=list(PROPRIOCEPTION_NAMES), instruction="lift the red block",
                      episode_id="ep-1", step=step)
    return msg


def policy_input(msg: Observation) -> dict:
    image = msg.images[0]
    return {"image": np.frombuffer(bytes(image.data), np.uint8).reshape(1, image.height, image.width, 3).copy(),
            "proprio": np.asarray([msg.proprioception], dtype=np.float32), "instruction": [msg.instruction]}


def call(wait_for, client, request):
    future = client.call_async(request)
    assert wait_for(future.done, 60.0)
    return future.result()


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_hot_swaps_in_and_acts_exactly_like_the_model_that_saved_it(ros_graph, wait_for, checkpoints,
                                                                                  family):
    node = ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoints["start"])), Parameter("horizon", value=HORIZON),
        Parameter("deterministic", value=True)]))
    test = ros_graph.node("family_test")
    chunks: list[ActionChunk] = []
    test.create_subscription(ActionChunk, "action_chunk", chunks.append, 10)
    observations = test.create_publisher(Observation, "observation", 10)
    load = test.create_client(LoadCheckpoint, "policy/load_checkpoint")
    assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in [*node.subscriptions, *test.subscriptions]),
                    10.0)
    assert load.wait_for_service(timeout_sec=10.0)

    response = call(wait_for, load, LoadCheckpoint.Request(path=str(checkpoints[family])))
    assert response.success and response.policy_version == 1, response.message
    msg = observation(seed=11, step=5)
    observations.publish(msg)
    assert wait_for(lambda: chunks, 30.0)
    chunk = chunks[0]
    saved = load_policy(checkpoints[family])  # the reload outside the node gives the same chunk too
    expected = saved.predict(policy_input(msg), deterministic=True)
    np.testing.assert_array_equal(np.asarray(chunk.actions, np.float32), expected.actions[0].numpy().ravel())
    np.testing.assert_allclose(chunk.log_probs, expected.log_probs[0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunk.value, float(expected.values[0]), rtol=1e-5, atol=1e-6)
    assert (chunk.policy_version, chunk.horizon, chunk.step) == (1, HORIZON, 5)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_drives_the_arm_through_the_safety_filter_into_the_recorders_bag(ros_graph, wait_for, checkpoints,
                                                                                      tmp_path, family):
    ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoints[family])), Parameter("horizon", value=HORIZON),
        Parameter("deterministic", value=True)]))
    ros_graph.add(SafetyFilter(context=ros_graph.context, parameter_overrides=[
        Parameter("joint_state_timeout_s", value=2.0), Parameter("watchdog_timeout_s", value=5.0)]))
    recorder = ros_graph.add(Recorder(context=ros_graph.context, parameter_overrides=[
        Parameter("autostart", value=False), Parameter("output_dir", value=str(tmp_path / "bags")),
        Parameter("discovery_period_s", value=0.1)]))
    test = ros_graph.node("family_graph_test")
    chunks: list[ActionChunk] = []
    trajectories: list[JointTrajectory] = []
    test.create_subscription(ActionChunk, "action_chunk", chunks.append, 10)
    test.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", trajectories.append, 10)
    observations = test.create_publisher(Observation, "observation", 10)
    joint_states = test.create_publisher(JointState, "joint_states", 10)
    test.create_timer(0.05, lambda: joint_states.publish(
        JointState(name=list(JOINT_NAMES), position=[*HOME_ARM_Q, 0.04, 0.04])))
    estop = test.create_client(SetBool, "safety_filter/estop")
    start = test.create_client(StartRecording, "recorder/start_recording")
    stop = test.create_client(StopRecording, "recorder/stop_recording")
    status = test.create_client(Trigger, "recorder/get_status")
    for client in (estop, start, stop, status):
        assert client.wait_for_service(timeout_sec=10.0)
    # The e-stop reply says whether the filter holds a joint state: proof the arm side is connected.
    assert wait_for(lambda: call(wait_for, estop, SetBool.Request(data=True)).message.startswith(
        "e-stop engaged: holding"), 10.0)
    assert call(wait_for, estop, SetBool.Request(data=False)).success
    recording = call(wait_for, start, StartRecording.Request(topics=["action_chunk", "executed_action"]))
    assert recording.success, recording.message
    assert wait_for(lambda: all(recorder._recorded_subscriptions.get(t) is not None and
                                recorder._recorded_subscriptions[t].get_publisher_count() > 0
                                for t in ("/action_chunk", "/executed_action")), 10.0)
    assert wait_for(lambda: observations.get_subscription_count() > 0 and
                    all(s.get_publisher_count() > 0 for s in test.subscriptions), 10.0)

    observations.publish(observation(seed=2))
    assert wait_for(lambda: chunks and trajectories, 30.0), "a chunk and the arm command it became"
    assert np.isfinite([p for point in trajectories[0].points for p in point.positions]).all()
    assert wait_for(lambda: json.loads(call(wait_for, status, Trigger.Request()).message)["per_topic"]
                    .get("/executed_action", {}).get("received", 0) >= 1, 30.0)
    stopped = call(wait_for, stop, StopRecording.Request())
    assert stopped.success, stopped.message
    with AnyReader([Path(stopped.bag_paths[0])]) as reader:
        recorded = {c.topic: [reader.deserialize(raw, c.msgtype) for _, _, raw in reader.messages([c])]
                    for c in reader.connections}
    assert [list(m.actions) for m in recorded["/action_chunk"]] == [list(chunks[0].actions)]
    executed = recorded["/executed_action"][0]
    np.testing.assert_allclose(executed.actions[:4], chunks[0].actions[:4], atol=1e-6)
    assert executed.source == "policy"
