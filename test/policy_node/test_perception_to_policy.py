"""Perception feeding the policy node: simulator frames in, the chunks the policy computes on the same frames out."""

import json

import numpy as np
import torch
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String

from rlvla_ros.msg import ActionChunk, EpisodeEvent
from rlvla_ros.nodes.perception import Perception
from rlvla_ros.nodes.policy import PolicyNode
from rlvla_ros.policies import TokenVla, TokenVlaConfig
from rlvla_ros.ros.images import rgb_to_image
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS
from rlvla_ros.ros.stats import STATS_QOS
from rlvla_ros.sim.tabletop_sim import TabletopSim

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
INSTRUCTION = "pick up the red block"
CONTROL_PERIOD_S = 0.1


def test_sim_frames_through_perception_and_policy_match_the_policy_on_the_env_observation(ros_graph, wait_for,
                                                                                           tmp_path):
    torch.manual_seed(7)
    policy = TokenVla(TokenVlaConfig(chunk_size=4)).eval()
    policy.save_pretrained(tmp_path / "ckpt")
    ros_graph.add(Perception(context=ros_graph.context, parameter_overrides=[Parameter("image_size", value=128)]))
    ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=[
        Parameter("checkpoint", value=str(tmp_path / "ckpt")), Parameter("horizon", value=4),
        Parameter("deterministic", value=True)]))
    test = ros_graph.node("driver_and_manager")
    chunks: list[ActionChunk] = []
    perception_stats: dict = {}
    test.create_subscription(ActionChunk, "action_chunk", chunks.append, 10)
    test.create_subscription(String, "perception/stats", lambda m: perception_stats.update(json.loads(m.data)),
                             STATS_QOS)
    camera = test.create_publisher(Image, "camera/image_raw", 10)
    joint_states = test.create_publisher(JointState, "joint_states", 10)
    instruction = test.create_publisher(String, "instruction", LATCHED)
    episode_events = test.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
    for publisher in (camera, joint_states, instruction, episode_events):
        assert wait_for(lambda p=publisher: p.get_subscription_count() > 0, 10.0)
    assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in test.subscriptions), 10.0)
    instruction.publish(String(data=INSTRUCTION))
    episode_events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="sim-0", instruction=INSTRUCTION))
    assert wait_for(lambda: perception_stats.get("episode_id") == "sim-0"
                    and perception_stats.get("instruction") == INSTRUCTION, 5.0)

    sim = TabletopSim()
    sim.set_arm_targets(np.array([0.2, 0.5, 1.5, 1.0, 0.1]))
    for step in range(3):
        stamp = Time(nanoseconds=round((100.0 + step * CONTROL_PERIOD_S) * 1e9)).to_msg()
        state = sim.joint_state()
        pixels = sim.render("front", 128, 128)
        joint_states.publish(JointState(header=Header(stamp=stamp), name=list(state.names),
                                        position=state.positions.tolist()))
        image = rgb_to_image(pixels)
        image.header.stamp = stamp
        camera.publish(image)
        assert wait_for(lambda n=step + 1: len(chunks) == n, 10.0), f"no chunk for step {step}"
        chunk = chunks[-1]
        assert (chunk.episode_id, chunk.step, chunk.source) == ("sim-0", step, "policy")
        expected = policy.predict({"image": pixels[None], "proprio": sim.proprioception()[None],
                                   "instruction": [INSTRUCTION]}, deterministic=True)
        np.testing.assert_array_equal(np.asarray(chunk.actions, np.float32), expected.actions[0].numpy().ravel())
        sim.step(20)
