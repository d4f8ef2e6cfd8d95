"""gym-hil's Franka Panda + Robotiq 2F-85 PandaPickCube scene, driven as a ros2_control Franka would drive it.

gym-hil (PyPI, Apache-2.0) supplies the MJCF scene, the episode reset and the task's success predicate. Its own
``step`` is not used: it runs an operational-space controller on end-effector deltas (and that controller calls
MuJoCo 3.x APIs, ``MjData.qM`` and the old ``mj_fullM`` signature, that MuJoCo 4 removed). Instead each joint
follows a position set point through a joint impedance law with gravity and Coriolis compensation,
``tau = Kp (q_ref - q) - Kd dq + bias(q, dq)``, clipped to the Panda's torque limits: what Franka's
joint_impedance controller does behind a joint trajectory controller. Rendering is headless (EGL), with shadows
and multisampling off: together they cost gym-hil's defaults about 13x in frame rate.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from gym_hil.envs.panda_pick_gym_env import _SAMPLING_BOUNDS, PandaPickCubeGymEnv

from rlvla_ros.sim.tabletop_sim import CameraIntrinsics, JointState

PANDA_ARM_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
"""The arm joints as franka_description names them."""
GRIPPER_JOINT_NAME = "robotiq_85_left_knuckle_joint"
"""The 2F-85's driven joint as robotiq_description names it (0 open, :data:`GRIPPER_CLOSED_RAD` closed)."""
GRIPPER_CLOSED_RAD = 0.8
"""The driven joint's angle with the fingers closed."""
JOINT_NAMES = PANDA_ARM_JOINT_NAMES + (GRIPPER_JOINT_NAME,)
GRIPPER_MAX_OPENING_M = 0.085
"""The 2F-85's stroke: gripper commands are openings in [0, this] m, like the Franka Hand's widths."""
CAMERAS = {"front": "front", "wrist": "handcam_rgb"}
"""Driver camera name to the scene's camera."""
STIFFNESS = np.array([600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0])
"""Joint impedance stiffness (N m / rad), franka_example_controllers' joint_impedance values."""
DAMPING = np.array([50.0, 50.0, 50.0, 50.0, 30.0, 25.0, 15.0])
"""Joint impedance damping (N m s / rad)."""
SPLITS = ("id", "ood_position", "ood_color", "ood_lighting")
"""id: gym-hil's scene, the cube in its sampling region (x 0.3..0.5, y -0.15..0.15 m); ood_position: the cube in the
band around that region (x 0.25..0.55, y -0.25..0.25 m, outside it); ood_color: a cube colour far from gym-hil's
purple; ood_lighting: the lights and the headlight dimmed to 35-60% and tinted."""
_OOD_POSITION_BOUNDS = np.array([[0.25, -0.25], [0.55, 0.25]])
_SCENE_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
_SCENE_GRIPPER_JOINT = "left_driver_joint"
_MAX_GRIPPER_CTRL = 255.0


_OOD_COLOURS = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.95, 0.85, 0.1], [0.1, 0.3, 0.9]])
"""Red, green, yellow, blue: far from the ID cube's purple (0.6, 0.3, 0.6)."""


def _cube_position(rng: np.random.Generator, split: str) -> np.ndarray:
    if split != "ood_position":
        return rng.uniform(_SAMPLING_BOUNDS[0], _SAMPLING_BOUNDS[1])
    while True:  # the band around the ID region: about half of the outer box, so a few draws at most
        xy = rng.uniform(_OOD_POSITION_BOUNDS[0], _OOD_POSITION_BOUNDS[1])
        if np.any(xy < _SAMPLING_BOUNDS[0]) or np.any(xy > _SAMPLING_BOUNDS[1]):
            return xy


class PandaPickCubeScene:
    """The PandaPickCube scene with joint set points, a gripper opening, cameras and gym-hil's success predicate."""

    def __init__(self, image_size: int = 128, control_rate_hz: float = 10.0, physics_dt_s: float = 0.002) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.env = PandaPickCubeGymEnv(control_dt=1.0 / control_rate_hz, physics_dt=physics_dt_s, image_obs=False)
        self.model, self.data = self.env.model, self.env.data
        self.timestep_s = self.model.opt.timestep
        self.substeps = max(1, round(1.0 / control_rate_hz / self.timestep_s))
        joints = [self.model.joint(name) for name in _SCENE_JOINTS]
        self._qpos = np.array([int(j.qposadr[0]) for j in joints])
        self._dof = np.array([int(j.dofadr[0]) for j in joints])
        self.arm_limits_rad = np.array([j.range for j in joints])
        gripper = self.model.joint(_SCENE_GRIPPER_JOINT)
        self._gripper_qpos, self._gripper_dof = int(gripper.qposadr[0]), int(gripper.dofadr[0])
        self._arm_ctrl = np.array([self.model.actuator(f"actuator{i}").id for i in range(1, 8)])
        self._torque_limits = self.model.actuator_ctrlrange[self._arm_ctrl, 1]
        self._gripper_ctrl = self.model.actuator("fingers_actuator").id
        self.model.light_castshadow[:] = 0
        self.model.vis.quality.shadowsize = 0
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, image_size)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, image_size)
        self.env.close()  # its renderer was made with shadows and 8x MSAA
        self.image_size = image_size
        self._renderer = mujoco.Renderer(self.model, height=image_size, width=image_size)
        self._targets = np.zeros(7)
        self._block_geom = self.model.geom("block").id
        self._default_rgba = self.model.geom_rgba[self._block_geom].copy()
        self._default_diffuse = self.model.light_diffuse.copy()
        headlight = self.model.vis.headlight
        self._default_headlight = (headlight.ambient.copy(), headlight.diffuse.copy())
        self.reset(np.random.default_rng(0))

    def reset(self, rng: np.random.Generator, split: str = "id") -> None:
        """gym-hil's reset (home pose, cube, the lift height success is measured from), then the cube, its colour and
        the lights of ``split`` (see :data:`SPLITS`) drawn from ``rng``; gripper open, set points at the home pose."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.env.reset()
        block = self.data.jnt("block")
        block.qpos[:2] = _cube_position(rng, split)
        block.qvel[:] = 0.0
        self.model.geom_rgba[self._block_geom] = self._default_rgba
        light = np.ones(3)
        if split == "ood_color":
            self.model.geom_rgba[self._block_geom, :3] = rng.choice(_OOD_COLOURS)
        elif split == "ood_lighting":
            light = rng.uniform(0.35, 0.6) * rng.uniform(0.8, 1.0, 3)
        # the headlight lights most of the scene: it dims with the lights
        self.model.light_diffuse[:] = self._default_diffuse * light
        self.model.vis.headlight.ambient[:] = self._default_headlight[0] * light
        self.model.vis.headlight.diffuse[:] = self._default_headlight[1] * light
        self.data.ctrl[self._gripper_ctrl] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._targets = self.data.qpos[self._qpos].copy()

    def set_arm_targets(self, q: np.ndarray) -> None:
        """Joint position set points (rad, arm joint order)."""
        self._targets = np.asarray(q, dtype=np.float64).copy()

    def arm_targets(self) -> np.ndarray:
        """The set points in force."""
        return self._targets.copy()

    def set_gripper(self, opening_m: float) -> None:
        """Command the finger gap: 0 closed, :data:`GRIPPER_MAX_OPENING_M` open."""
        closed_fraction = 1.0 - min(max(opening_m / GRIPPER_MAX_OPENING_M, 0.0), 1.0)
        self.data.ctrl[self._gripper_ctrl] = closed_fraction * _MAX_GRIPPER_CTRL

    def step(self, num_steps: int) -> None:
        """``num_steps`` physics steps under the joint impedance law."""
        for _ in range(num_steps):
            q, dq = self.data.qpos[self._qpos], self.data.qvel[self._dof]
            tau = STIFFNESS * (self._targets - q) - DAMPING * dq + self.data.qfrc_bias[self._dof]
            self.data.ctrl[self._arm_ctrl] = np.clip(tau, -self._torque_limits, self._torque_limits)
            mujoco.mj_step(self.model, self.data)

    def joint_state(self) -> JointState:
        """Arm joints, then the gripper's driven joint."""
        positions = np.append(self.data.qpos[self._qpos], self.data.qpos[self._gripper_qpos])
        velocities = np.append(self.data.qvel[self._dof], self.data.qvel[self._gripper_dof])
        return JointState(JOINT_NAMES, positions.copy(), velocities.copy())

    def is_success(self) -> bool:
        """gym-hil's PandaPickCube predicate: the cube 10 cm above its start, within 5 cm of the pinch point."""
        return bool(self.env._is_success())  # noqa: SLF001 - gym-hil's task predicate; no public name for it

    def block_position(self) -> np.ndarray:
        """The cube's centre (m, world frame): privileged state."""
        return self.data.sensor("block_pos").data.copy()

    def render(self, camera: str) -> np.ndarray:
        """(image_size, image_size, 3) uint8 RGB image from a camera of :data:`CAMERAS`."""
        self._renderer.update_scene(self.data, camera=CAMERAS[self._check_camera(camera)])
        return self._renderer.render().copy()

    def camera_intrinsics(self, camera: str) -> CameraIntrinsics:
        """Pinhole intrinsics at the rendered size (MuJoCo cameras have square pixels and a vertical fovy)."""
        fovy = math.radians(float(self.model.cam(CAMERAS[self._check_camera(camera)]).fovy[0]))
        focal = self.image_size / 2.0 / math.tan(fovy / 2.0)
        centre = (self.image_size - 1) / 2.0
        return CameraIntrinsics(focal, focal, centre, centre, self.image_size, self.image_size)

    @staticmethod
    def _check_camera(camera: str) -> str:
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; expected one of {tuple(CAMERAS)}")
        return camera

    def close(self) -> None:
        """Free the rendering context."""
        self._renderer.close()
