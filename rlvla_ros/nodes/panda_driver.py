"""panda_driver node: gym-hil's Franka Panda + Robotiq 2F-85 (PandaPickCube) behind the topics of a ros2_control
Franka setup.

The sim_bridge node's interfaces, clock modes and rules (see :mod:`rlvla_ros.nodes.sim_bridge`) over
:class:`~rlvla_ros.sim.panda.driver.PandaDriver`:

- ``joint_states``: ``panda_joint1`` .. ``panda_joint7``, then ``robotiq_85_left_knuckle_joint`` (0 open, 0.8 rad
  closed);
- ``arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory): exactly ``panda_joint1..7`` within the
  Panda's joint limits; followed by a joint impedance law, points linearly interpolated by default, as Franka's
  joint_trajectory_controller does;
- ``gripper_controller/commands`` (std_msgs/Float64MultiArray): one opening in [0, 0.085] m;
- ``camera/image_raw`` + ``camera/camera_info`` (front), ``wrist_camera/...`` when ``wrist_camera`` is set;
- ``reset_episode`` and the privileged ``sim/success`` (gym-hil's PandaPickCube predicate), ``sim/episode``.

``publish_expert_action`` publishes the scripted pick expert's ``ee_delta`` actions on ``sim/expert_action``
(:mod:`rlvla_ros.sim.panda.expert`), for demonstrations through the safety filter's teleop input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlvla_ros.nodes.sim_bridge import SimBridge, SimBridgeConfig
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.sim.panda.driver import PANDA_SPLITS, PANDA_TASKS, PandaDriver


@dataclass
class PandaDriverConfig(SimBridgeConfig):
    """Parameters of the panda_driver node (the sim_bridge's, with the Panda's tasks)."""

    valid_tasks: ClassVar[tuple[str, ...]] = tuple(sorted(PANDA_TASKS))
    valid_splits: ClassVar[tuple[str, ...]] = PANDA_SPLITS
    task: str = field(default="pick_cube", metadata={
        "description": f"task of the first episode and of resets that name none ({', '.join(sorted(PANDA_TASKS))})"})
    split: str = field(default="id", metadata={
        "description": f"split of the first episode and of resets that name none ({', '.join(PANDA_SPLITS)})"})
    interpolation: str = field(default="linear", metadata={
        "description": "trajectory set points: linear (as the joint_trajectory_controller) or step"})


class PandaDriverNode(SimBridge):
    """Driver topics and services over :class:`PandaDriver`; see the module docstring."""

    node_name = "panda_driver"
    config_class = PandaDriverConfig
    driver_class = PandaDriver


def main(args: list[str] | None = None) -> int:
    return run_node(PandaDriverNode, args)
