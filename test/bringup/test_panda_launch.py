"""panda_sim.launch.yaml: real.launch.yaml's graph, unchanged, on the panda_driver under franka_ros2 topic names; with
dry run off it runs policy episodes on the Panda."""

import pathlib

import numpy as np
import pytest
import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState

from rlvla_ros.launching.background import BackgroundLaunch
from rlvla_ros.msg import ActionChunk, EpisodeEvent
from rlvla_ros.policies import new_policy
from rlvla_ros.ros.param_files import write_config_overlay

from .test_launch_files import GRAPH_NODES, resolved

LAUNCH = pathlib.Path(__file__).resolve().parents[2] / "launch"
NAMESPACE = "panda_e2e"


def test_the_real_bringup_runs_on_the_panda_driver_with_dry_run_on_by_default():
    nodes = resolved("panda_sim.launch.yaml")
    assert set(nodes) == GRAPH_NODES | {"panda_driver"}
    assert {node["ns"] for node in nodes.values()} == {"/rlvla"}
    safety = nodes["safety_filter"]
    assert safety["params"]["dry_run"] is True
    assert safety["params"]["robot_config"].endswith("config/robots/panda.yaml")
    assert safety["remaps"]["arm_controller/joint_trajectory"] == "/panda_arm_controller/joint_trajectory"
    assert nodes["panda_driver"]["remaps"]["arm_controller/joint_trajectory"] == \
        "/panda_arm_controller/joint_trajectory"
    assert nodes["panda_driver"]["remaps"]["camera/image_raw"] == nodes["perception"]["remaps"]["camera/image_raw"]
    assert nodes["reward"]["params"]["source"] == "sim_privileged"
    assert nodes["episode_manager"]["params"]["tasks"] == ["pick_cube"]
    assert nodes["perception"]["params"]["gripper_joint_names"] == ["robotiq_85_left_knuckle_joint"]
    assert resolved("panda_sim.launch.yaml", dry_run="false")["safety_filter"]["params"]["dry_run"] is False
    real = resolved("real.launch.yaml")  # without robot_node_config the nodes keep their own files' values
    assert real["episode_manager"]["params"]["tasks"] == ["lift", "push", "stack", "place_side"]
    assert real["perception"]["params"]["gripper_joint_names"] == ["finger_left", "finger_right"]


@pytest.fixture
def panda_graph(tmp_path):
    """panda_sim.launch.yaml (real.launch.yaml on the panda_driver) with dry run off, lock-step, a fresh
    film_keypoints policy of proprio_dim 8 and 6-step episodes."""
    checkpoint = tmp_path / "policy"
    new_policy("film_keypoints", image_size=32, proprio_dim=8).save_pretrained(checkpoint)
    config_dir = write_config_overlay(tmp_path / "config", {"panda_driver": {"image_size": 32},
                                                            "perception": {"image_size": 32}})
    nodes_file = config_dir / "robots" / "panda_nodes.yaml"
    nodes = yaml.safe_load(nodes_file.read_text())
    nodes["/**/episode_manager"]["ros__parameters"]["max_steps"] = [6]
    nodes_file.write_text(yaml.safe_dump(nodes))
    launch = BackgroundLaunch(LAUNCH / "panda_sim.launch.yaml", {
        "namespace": NAMESPACE, "config_dir": str(config_dir), "checkpoint": str(checkpoint), "dry_run": "false",
        "clock_mode": "lockstep", "watchdog_timeout_s": "30.0", "learner_output_dir": str(tmp_path / "learner"),
        "data_root": str(tmp_path)}, tmp_path / "launch.log")
    with launch:
        yield launch
    assert launch.process.returncode == 0, launch.log_tail()


def test_with_dry_run_off_the_real_bringup_runs_policy_episodes_on_the_panda(panda_graph, ros_graph, wait_for):
    probe = ros_graph.node("panda_probe")
    ends, executed, arm = [], [], []
    probe.create_subscription(
        EpisodeEvent, f"/{NAMESPACE}/episode_event",
        lambda event: ends.append(event) if event.event == EpisodeEvent.END else None,
        QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe.create_subscription(ActionChunk, f"/{NAMESPACE}/executed_action", executed.append, 10)
    probe.create_subscription(JointState, "/joint_states", lambda msg: arm.append(np.array(msg.position[:7])), 10)
    # A lost message stalls lock-step; the episode manager then runs the episode again.
    finished = lambda: [event for event in ends if event.termination_reason != EpisodeEvent.TERMINATION_STALLED]
    assert wait_for(lambda: len(finished()) >= 2, timeout_s=240.0), panda_graph.log_tail()
    assert {event.task for event in finished()} == {"pick_cube"}
    assert all(event.termination_reason in ("success", "timeout") and event.length <= 6 for event in finished())
    # The safety filter publishes executed actions only when it commands the arm (never in dry run) ...
    assert executed and {chunk.source for chunk in executed} == {ActionChunk.SOURCE_POLICY}
    # ... and the Panda followed them: its joints left the home pose.
    assert max(np.abs(q - arm[0]).max() for q in arm) > 0.01, panda_graph.log_tail()
    assert "dry run:" not in panda_graph.log_path.read_text()
