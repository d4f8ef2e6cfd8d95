"""Forward and inverse kinematics of the arm's tool centre point, and the ``ee_delta`` action mapping.

Works from an arm joint-position vector alone (its own ``MjData``), so the safety filter can turn end-effector
actions into joint targets for the real arm exactly as the simulator does. The gripper is always kept pointing
straight down; the end-effector pose is therefore the TCP position plus a yaw about the world vertical, measured as
the angle of the finger closing axis from world +y (0 at the home pose).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from rlvla_ros.contract import ARM_JOINT_NAMES
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_LIMITS_RAD, MODEL_PATH

# Gripper pointing down at zero yaw: hand x along world -x, closing axis (hand y) along world +y, hand z down.
_R_DOWN = np.diag([-1.0, 1.0, -1.0])


@dataclass
class EeDeltaConfig:
    """Scaling of the ``ee_delta`` action ``[dx, dy, dz, dyaw, gripper]`` (each in [-1, 1]) per control step."""

    max_translation_m: float = 0.03
    """TCP displacement per step for a translation component of 1 (0.3 m/s at 10 Hz)."""
    max_yaw_rad: float = 0.15
    """Yaw change per step for a ``dyaw`` of 1."""
    workspace_min_m: np.ndarray = field(default_factory=lambda: np.array([0.15, -0.45, 0.017]))
    """Lower corner of the box the TCP target is clipped to (z keeps the fingertips just above the table)."""
    workspace_max_m: np.ndarray = field(default_factory=lambda: np.array([0.72, 0.45, 0.40]))
    """Upper corner of the TCP target box."""


@dataclass
class EePose:
    """Tool centre point pose with the gripper pointing down."""

    position_m: np.ndarray
    """(3,) TCP position in the robot base (world) frame."""
    yaw_rad: float
    """Rotation of the finger closing axis about the vertical, in (-pi, pi]."""


def yaw_rotation(yaw_rad: float) -> np.ndarray:
    """Gripper orientation (3x3) pointing straight down with the given yaw."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ _R_DOWN


def orientation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Small-angle rotation vector (world frame) taking rotation matrix ``current`` towards ``target``."""
    a, b = current, target  # sum over the columns i of a[:, i] x b[:, i], written out (np.cross is slow here)
    return 0.5 * np.array([(a[1] * b[2] - a[2] * b[1]).sum(), (a[2] * b[0] - a[0] * b[2]).sum(),
                           (a[0] * b[1] - a[1] * b[0]).sum()])


class ArmKinematics:
    """TCP kinematics of an arm over its MuJoCo model: the tabletop arm unless ``joint_names`` (the model's arm joints,
    base to tip), ``site`` (the TCP site) and ``joint_limits_rad`` ((N, 2)) name another, e.g. a 7-DoF Panda."""

    def __init__(
        self,
        model: mujoco.MjModel | None = None,
        damping: float = 0.05,
        orientation_weight: float = 0.3,
        max_iters: int = 50,
        tolerance_m: float = 2e-4,
        joint_names: tuple[str, ...] = ARM_JOINT_NAMES,
        site: str = "tcp",
        joint_limits_rad: np.ndarray = ARM_JOINT_LIMITS_RAD,
    ) -> None:
        self.model = model if model is not None else mujoco.MjModel.from_xml_path(str(MODEL_PATH))
        self.data = mujoco.MjData(self.model)
        self.damping = damping
        self.orientation_weight = orientation_weight
        self.max_iters = max_iters
        self.tolerance_m = tolerance_m
        m = self.model
        self._qpos_ids = np.array([m.jnt_qposadr[m.joint(n).id] for n in joint_names])
        self._dof_ids = np.array([m.jnt_dofadr[m.joint(n).id] for n in joint_names])
        self._limits = np.asarray(joint_limits_rad, dtype=np.float64)
        if self._limits.shape != (len(joint_names), 2):
            raise ValueError(f"joint_limits_rad must be ({len(joint_names)}, 2), got {self._limits.shape}")
        self._site = m.site(site).id
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))

    def _set(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self._qpos_ids),):
            raise ValueError(f"arm joint vector must have shape ({len(self._qpos_ids)},), got {q.shape}")
        self.data.qpos[self._qpos_ids] = q
        mujoco.mj_kinematics(self.model, self.data)

    def _rotation(self) -> np.ndarray:
        return self.data.site_xmat[self._site].reshape(3, 3).copy()

    def forward(self, q: np.ndarray) -> EePose:
        """TCP position and yaw for arm joint positions ``q`` (rad)."""
        self._set(q)
        y_axis = self._rotation()[:, 1]
        return EePose(self.data.site_xpos[self._site].copy(), float(np.arctan2(-y_axis[0], y_axis[1])))

    def inverse(self, target: EePose, q_init: np.ndarray) -> np.ndarray:
        """Joint positions within limits that put the TCP at ``target`` (gripper down), by damped least squares.

        Starts from ``q_init`` and returns the best reachable solution when the target is out of reach.
        """
        lower, upper = self._limits[:, 0], self._limits[:, 1]
        q = np.clip(np.asarray(q_init, dtype=np.float64), lower, upper)
        target_rot = yaw_rotation(target.yaw_rad)
        w = self.orientation_weight
        for _ in range(self.max_iters):
            self._set(q)
            pos_err = target.position_m - self.data.site_xpos[self._site]
            rot_err = orientation_error(self._rotation(), target_rot)
            if np.linalg.norm(pos_err) < self.tolerance_m and np.linalg.norm(rot_err) * w < self.tolerance_m:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dof_ids], w * self._jacr[:, self._dof_ids]])
            err = np.concatenate([pos_err, w * rot_err])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            q = np.clip(q + dq, lower, upper)
        return q

    def ee_delta_target(self, q: np.ndarray, action: np.ndarray, config: EeDeltaConfig) -> EePose:
        """TCP pose an ``ee_delta`` action asks for from joint positions ``q``; the gripper component is ignored."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if action.shape != (5,):
            raise ValueError(f"ee_delta action must have shape (5,), got {action.shape}")
        pose = self.forward(q)
        position = np.clip(
            pose.position_m + action[:3] * config.max_translation_m, config.workspace_min_m, config.workspace_max_m
        )
        return EePose(position, pose.yaw_rad + action[3] * config.max_yaw_rad)

    def apply_ee_delta(self, q: np.ndarray, action: np.ndarray, config: EeDeltaConfig) -> np.ndarray:
        """Arm joint targets (rad) that carry out one ``ee_delta`` action from joint positions ``q``."""
        return self.inverse(self.ee_delta_target(q, action, config), q)
