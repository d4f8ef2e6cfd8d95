"""Safety layer between the policy and the arm: robot limits, kinematics, the action filter, the plausibility of
measured joint states and a watchdog."""

from rlvla_ros.safety.action_filter import ActionSafetyFilter, FilterResult, SafeCommand, parse_chunk
from rlvla_ros.safety.joint_state_monitor import JointStateFault, JointStateMonitor, MonitorLimits
from rlvla_ros.safety.kinematics import Kinematics, make_kinematics, mujoco_kinematics, register_kinematics_backend
from rlvla_ros.safety.robot_config import KinematicsConfig, RobotConfig, load_robot_config, robot_config_path
from rlvla_ros.safety.watchdog import Watchdog

__all__ = [
    "ActionSafetyFilter",
    "FilterResult",
    "JointStateFault",
    "JointStateMonitor",
    "Kinematics",
    "KinematicsConfig",
    "MonitorLimits",
    "RobotConfig",
    "SafeCommand",
    "Watchdog",
    "load_robot_config",
    "make_kinematics",
    "mujoco_kinematics",
    "parse_chunk",
    "register_kinematics_backend",
    "robot_config_path",
]
