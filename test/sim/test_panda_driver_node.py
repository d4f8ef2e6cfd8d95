"""The panda_driver node through its topics: Panda joint states, a joint trajectory stepping the lockstep scene,
cameras, gym-hil's success signal, reset_episode, and refusals of commands meant for another arm."""

import functools

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.msg import TaskSuccess
from rlvla_ros.nodes.panda_driver import PandaDriverConfig, PandaDriverNode
from rlvla_ros.sim.panda.scene import JOINT_NAMES, PANDA_ARM_JOINT_NAMES
from rlvla_ros.srv import ResetEpisode

HOME = [0.0, 0.195, 0.0, -2.43, 0.0, 2.62, 0.785]
TOPICS = {"joint_states": JointState, "camera/image_raw": Image, "camera/camera_info": CameraInfo,
          "sim/success": TaskSuccess, "panda_driver/rejected_commands": String}


def test_the_lockstep_panda_driver_serves_the_franka_interfaces(ros_graph, wait_for):
    node = ros_graph.add(PandaDriverNode(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("lockstep_heartbeat_hz", value=0.0),
        Parameter("image_size", value=32)]))
    assert node.get_name() == "panda_driver"
    test = ros_graph.node("panda_driver_test")
    received = {topic: [] for topic in TOPICS}
    for topic, msg_type in TOPICS.items():
        test.create_subscription(msg_type, topic, functools.partial(lambda t, m: received[t].append(m), topic), 10)
    arm = test.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
    gripper = test.create_publisher(Float64MultiArray, "gripper_controller/commands", 10)
    reset = test.create_client(ResetEpisode, "reset_episode")
    assert wait_for(lambda: arm.get_subscription_count() and gripper.get_subscription_count())
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: all(s.get_publisher_count() for s in test.subscriptions))

    future = reset.call_async(ResetEpisode.Request(seed=3))
    assert wait_for(future.done)
    response = future.result()
    assert response.success and response.instruction == "pick up the cube" and response.seed == 3
    assert wait_for(lambda: received["joint_states"] and received["camera/image_raw"] and received["sim/success"])
    state = received["joint_states"][-1]
    assert tuple(state.name) == JOINT_NAMES
    np.testing.assert_allclose(state.position[:7], HOME, atol=1e-9)
    image = received["camera/image_raw"][-1]
    assert (image.height, image.width, image.encoding) == (32, 32, "rgb8")
    assert received["sim/success"][-1].success is False

    count = len(received["joint_states"])
    goal = np.array(HOME) + 0.1
    arm.publish(JointTrajectory(  # answering the reset's sensor set, as lockstep requires
        header=state.header, joint_names=list(PANDA_ARM_JOINT_NAMES), points=[JointTrajectoryPoint(
            positions=goal.tolist(), time_from_start=Duration(seconds=0.5).to_msg())]))
    assert wait_for(lambda: len(received["joint_states"]) > count)  # one sensor set for the 5 periods it ran
    moved = np.array(received["joint_states"][-1].position[:7])
    assert np.all(np.abs(moved - HOME) > 0.03)

    arm.publish(JointTrajectory(joint_names=["base_yaw", "shoulder", "elbow", "wrist_pitch", "wrist_roll"],
                                points=[JointTrajectoryPoint(positions=[0.0] * 5)]))
    gripper.publish(Float64MultiArray(data=[0.2]))
    assert wait_for(lambda: len(received["panda_driver/rejected_commands"]) == 2)
    reasons = sorted(m.data for m in received["panda_driver/rejected_commands"])
    assert "must be exactly the arm joints" in reasons[0] and "not a finite value in [0, 0.085]" in reasons[1]


def test_the_panda_driver_refuses_tabletop_tasks():
    with pytest.raises(ValueError, match=r"task must be one of \['pick_cube'\], got 'lift'"):
        PandaDriverConfig(task="lift")
    with pytest.raises(ValueError, match=r"split must be one of \['id', 'ood_position', 'ood_color', 'ood_lighting'\]"):
        PandaDriverConfig(split="ood_distractor")
    assert (PandaDriverConfig().task, PandaDriverConfig().interpolation) == ("pick_cube", "linear")
