"""The safety filter's ``moveit`` kinematics backend: FK/IK through moveit_py with the robot's MoveIt configuration.

It builds geometry_msgs poses and runs a MoveItPy node, so it lives at the ROS edge; importing this module registers
the backend with :func:`rlvla_ros.safety.kinematics.make_kinematics`.
"""

from __future__ import annotations

import mujoco
import numpy as np

from rlvla_ros.safety.kinematics import register_kinematics_backend
from rlvla_ros.safety.robot_config import RobotConfig
from rlvla_ros.sim.kinematics import EePose, yaw_rotation


class MoveItKinematics:
    """FK/IK through moveit_py (``RobotState.get_pose`` / ``set_from_ik``) with the robot's MoveIt configuration.

    Untested here: MoveIt is not installable in this project's pip environment. ``moveit_py`` is imported only when
    this backend is selected; the MoveIt config (robot_description, semantic, kinematics.yaml with an IK plugin)
    comes from the launch parameters, as for any MoveItPy program. The tip link must follow the ``ee_delta``
    convention: z pointing down and y along the finger closing axis at zero yaw.
    """

    def __init__(self, group: str, tip_link: str, ik_timeout_s: float, node_name: str = "safety_filter_moveit") -> None:
        try:
            from moveit.core.robot_state import RobotState
            from moveit.planning import MoveItPy
        except ImportError as error:
            raise ImportError(f"kinematics backend 'moveit' needs moveit_py (MoveIt 2), which is not importable: "
                              f"{error}") from error
        self.group = group
        self.tip_link = tip_link
        self.ik_timeout_s = ik_timeout_s
        self._moveit = MoveItPy(node_name=node_name)
        self._state = RobotState(self._moveit.get_robot_model())

    def forward(self, q: np.ndarray) -> EePose:
        self._state.set_joint_group_positions(self.group, np.asarray(q, dtype=np.float64))
        self._state.update()
        pose = self._state.get_pose(self.tip_link)
        rotation = np.zeros(9)
        o = pose.orientation
        mujoco.mju_quat2Mat(rotation, np.array([o.w, o.x, o.y, o.z]))
        y_axis = rotation.reshape(3, 3)[:, 1]
        position = np.array([pose.position.x, pose.position.y, pose.position.z])
        return EePose(position, float(np.arctan2(-y_axis[0], y_axis[1])))

    def inverse(self, target: EePose, q_init: np.ndarray) -> np.ndarray:
        from geometry_msgs.msg import Pose

        quaternion = np.zeros(4)
        mujoco.mju_mat2Quat(quaternion, yaw_rotation(target.yaw_rad).ravel())
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in target.position_m)
        pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in quaternion)
        self._state.set_joint_group_positions(self.group, np.asarray(q_init, dtype=np.float64))
        self._state.update()
        if not self._state.set_from_ik(self.group, pose, self.tip_link, self.ik_timeout_s):
            raise ValueError(f"no IK solution for {self.tip_link} at {target.position_m.round(3).tolist()} "
                             f"yaw {target.yaw_rad:.3f} rad")
        return np.asarray(self._state.get_joint_group_positions(self.group), dtype=np.float64)


def moveit_kinematics(config: RobotConfig) -> MoveItKinematics:
    """:class:`MoveItKinematics` for the group, tip link and IK timeout of the robot config."""
    return MoveItKinematics(config.kinematics.group, config.kinematics.tip_link, config.kinematics.ik_timeout_s)


register_kinematics_backend("moveit", moveit_kinematics)
