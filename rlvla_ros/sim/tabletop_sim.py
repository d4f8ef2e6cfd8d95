"""A thin physics handle over the MuJoCo tabletop scene, shaped like a real arm's driver.

The driver-like part (joint position targets, gripper command, joint state, camera images and intrinsics) is what the
ROS bridge uses; the object part (placing, colouring and parking cubes and pads) is what tasks use to set up episodes.
Cubes and pads a task does not use are parked below the table with collisions off and gravity compensated, so they
cost no contacts and stay where they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from rlvla_ros.contract import ARM_JOINT_NAMES, FINGER_JOINT_NAMES, JOINT_NAMES

MODEL_PATH = Path(__file__).parent / "assets" / "tabletop.xml"
"""The scene MJCF shipped with the package."""


ARM_JOINT_LIMITS_RAD = np.array([[-2.0, 2.0], [-1.2, 2.0], [-0.3, 2.9], [-1.0, 2.8], [-2.9, 2.9]])
"""(5, 2) lower/upper position limit of each arm joint, as in the MJCF (checked against the model at load)."""

GRIPPER_MAX_OPENING_M = 0.08
"""Widest gap between the finger pads."""


HOME_ARM_Q = np.array([0.0, 0.357, 1.662, 1.122, 0.0])
"""Arm pose at reset: gripper pointing down about 0.2 m above the middle of the table."""

NUM_BLOCKS = 5
NUM_PADS = 2
BLOCK_HALF_SIZE_M = 0.02
"""Cubes are 4 cm on a side."""
PAD_RADIUS_M = 0.05
TABLE_TOP_Z_M = 0.0
PARK_Z_M = -0.5
"""Height of parked objects: under the table, out of every camera's view."""

CAMERA_NAMES = ("front", "wrist")


@dataclass
class JointState:
    """One joint-state sample, as a driver would publish it."""

    names: tuple[str, ...]
    """Joint names, :data:`JOINT_NAMES`."""
    positions: np.ndarray
    """Joint positions (rad for revolute, m for slide joints)."""
    velocities: np.ndarray
    """Joint velocities (rad/s, m/s)."""


@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics in pixels for a ``sensor_msgs/CameraInfo`` (pixel centres at integer coordinates)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class VisualVariation:
    """Per-episode appearance changes; the defaults leave the scene as modelled."""

    light_scale: float = 1.0
    """Multiplier on the diffuse intensity of every light."""
    light_shift_m: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Offset added to the key light's position (its direction is kept pointing at the table)."""
    table_rgb: tuple[float, float, float] | None = None
    """Table colour; None keeps the modelled one."""
    front_camera_shift_m: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Offset added to the front camera position."""
    front_camera_tilt_rad: float = 0.0
    """Extra rotation of the front camera about its own horizontal (image x) axis; positive looks further down."""


class TabletopSim:
    """MuJoCo tabletop scene with a 5-joint arm, a parallel gripper, cubes and target pads."""

    def __init__(self, model_path: str | Path = MODEL_PATH) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(model_path))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qpos_ids = np.array([m.jnt_qposadr[m.joint(n).id] for n in ARM_JOINT_NAMES])
        self.arm_dof_ids = np.array([m.jnt_dofadr[m.joint(n).id] for n in ARM_JOINT_NAMES])
        self.finger_qpos_ids = np.array([m.jnt_qposadr[m.joint(n).id] for n in FINGER_JOINT_NAMES])
        self.finger_dof_ids = np.array([m.jnt_dofadr[m.joint(n).id] for n in FINGER_JOINT_NAMES])
        self.arm_actuator_ids = np.array([m.actuator(n).id for n in ARM_JOINT_NAMES])
        self.gripper_actuator_id = m.actuator("gripper").id
        model_limits = np.array([m.jnt_range[m.joint(n).id] for n in ARM_JOINT_NAMES])
        if not np.allclose(model_limits, ARM_JOINT_LIMITS_RAD):
            raise ValueError(f"{model_path}: arm joint ranges {model_limits.tolist()} differ from ARM_JOINT_LIMITS_RAD")
        self.block_body_ids = np.array([m.body(f"block{i}").id for i in range(NUM_BLOCKS)])
        self.block_geom_ids = np.array([m.geom(f"block{i}").id for i in range(NUM_BLOCKS)])
        self.block_qpos_ids = np.array([m.jnt_qposadr[m.joint(f"block{i}").id] for i in range(NUM_BLOCKS)])
        self.block_dof_ids = np.array([m.jnt_dofadr[m.joint(f"block{i}").id] for i in range(NUM_BLOCKS)])
        self.pad_geom_ids = np.array([m.geom(f"pad{i}").id for i in range(NUM_PADS)])
        self.finger_geom_ids = np.array([m.geom(n).id for n in FINGER_JOINT_NAMES])
        self.tcp_site_id = m.site("tcp").id
        self._nominal = {
            "geom_rgba": m.geom_rgba.copy(),
            "geom_contype": m.geom_contype.copy(),
            "geom_conaffinity": m.geom_conaffinity.copy(),
            "body_gravcomp": m.body_gravcomp.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "light_pos": m.light_pos.copy(),
            "light_dir": m.light_dir.copy(),
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
        }
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.reset()

    # --- driver-like interface -------------------------------------------------------------------------------------

    @property
    def timestep_s(self) -> float:
        """Physics step length."""
        return float(self.model.opt.timestep)

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset."""
        return float(self.data.time)

    def reset(self, arm_q: np.ndarray = HOME_ARM_Q) -> None:
        """Reset physics and appearance, put the arm at ``arm_q`` with the gripper open, and park every object."""
        m = self.model
        for key, value in self._nominal.items():
            getattr(m, key)[:] = value
        mujoco.mj_resetData(m, self.data)
        self.data.qpos[self.arm_qpos_ids] = arm_q
        self.data.qpos[self.finger_qpos_ids] = GRIPPER_MAX_OPENING_M / 2
        self.set_arm_targets(arm_q)
        self.set_gripper(GRIPPER_MAX_OPENING_M)
        for i in range(NUM_BLOCKS):
            self.park_block(i)
        for i in range(NUM_PADS):
            self.park_pad(i)
        self.forward()

    def forward(self) -> None:
        """Recompute poses and contacts after objects were moved, without advancing time."""
        mujoco.mj_forward(self.model, self.data)

    def set_arm_targets(self, q: np.ndarray) -> np.ndarray:
        """Command arm joint positions (rad), clipped to the joint limits; returns the commanded vector."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(ARM_JOINT_NAMES),):
            raise ValueError(f"arm targets must have shape ({len(ARM_JOINT_NAMES)},), got {q.shape}")
        q = np.clip(q, ARM_JOINT_LIMITS_RAD[:, 0], ARM_JOINT_LIMITS_RAD[:, 1])
        self.data.ctrl[self.arm_actuator_ids] = q
        return q

    def arm_targets(self) -> np.ndarray:
        """Currently commanded arm joint positions."""
        return self.data.ctrl[self.arm_actuator_ids].copy()

    def set_gripper(self, opening_m: float) -> None:
        """Command the gap between the finger pads (m); 0 closes fully, squeezing whatever is in between."""
        self.data.ctrl[self.gripper_actuator_id] = np.clip(opening_m, 0.0, GRIPPER_MAX_OPENING_M) / 2

    def step(self, n_steps: int = 1) -> None:
        """Advance physics by ``n_steps`` timesteps with the current commands."""
        mujoco.mj_step(self.model, self.data, nstep=n_steps)

    def advance(self, duration_s: float) -> None:
        """Advance physics by ``duration_s`` (rounded to whole timesteps, at least one)."""
        self.step(max(1, round(duration_s / self.timestep_s)))

    def joint_state(self) -> JointState:
        """Positions and velocities of :data:`JOINT_NAMES`."""
        qpos_ids = np.concatenate([self.arm_qpos_ids, self.finger_qpos_ids])
        dof_ids = np.concatenate([self.arm_dof_ids, self.finger_dof_ids])
        return JointState(JOINT_NAMES, self.data.qpos[qpos_ids].copy(), self.data.qvel[dof_ids].copy())

    def arm_positions(self) -> np.ndarray:
        """Measured arm joint positions (rad)."""
        return self.data.qpos[self.arm_qpos_ids].copy()

    def gripper_opening_m(self) -> float:
        """Measured gap between the finger pads."""
        return float(self.data.qpos[self.finger_qpos_ids].sum())

    def proprioception(self) -> np.ndarray:
        """float32 vector in :data:`PROPRIOCEPTION_NAMES` order."""
        return np.append(self.arm_positions(), self.gripper_opening_m()).astype(np.float32)

    def tcp_position(self) -> np.ndarray:
        """World position of the tool centre point (between the finger pads)."""
        return self.data.site_xpos[self.tcp_site_id].copy()

    def render(self, camera: str = "front", height: int = 128, width: int = 128) -> np.ndarray:
        """RGB image (height, width, 3) uint8 from a named camera."""
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown camera {camera!r}; expected one of {CAMERA_NAMES}")
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height, width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._renderers[(height, width)] = renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def camera_intrinsics(self, camera: str = "front", height: int = 128, width: int = 128) -> CameraIntrinsics:
        """Pinhole intrinsics of a named camera rendered at ``height`` x ``width`` (MuJoCo's fovy is vertical)."""
        fovy_rad = np.deg2rad(self.model.camera(camera).fovy[0])
        f = 0.5 * height / np.tan(0.5 * fovy_rad)
        return CameraIntrinsics(fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)

    def close(self) -> None:
        """Free the rendering contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # --- appearance ------------------------------------------------------------------------------------------------

    def apply_visual_variation(self, variation: VisualVariation) -> None:
        """Change lights, table colour and front camera pose relative to the modelled scene."""
        m = self.model
        m.light_diffuse[:] = self._nominal["light_diffuse"] * variation.light_scale
        key = m.light("key").id
        m.light_pos[key] = self._nominal["light_pos"][key] + variation.light_shift_m
        to_table = np.array([0.4, 0.0, 0.0]) - m.light_pos[key]
        m.light_dir[key] = to_table / np.linalg.norm(to_table)
        if variation.table_rgb is not None:
            m.geom_rgba[m.geom("table").id, :3] = variation.table_rgb
        cam = m.camera("front").id
        m.cam_pos[cam] = self._nominal["cam_pos"][cam] + variation.front_camera_shift_m
        tilt = np.zeros(4)
        # rotating about the camera's local x axis by -tilt turns the view downwards
        mujoco.mju_axisAngle2Quat(tilt, np.array([1.0, 0.0, 0.0]), -variation.front_camera_tilt_rad)
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, self._nominal["cam_quat"][cam], tilt)
        m.cam_quat[cam] = quat

    # --- objects ---------------------------------------------------------------------------------------------------

    def place_block(self, index: int, xy: np.ndarray, yaw_rad: float, rgb: tuple[float, float, float]) -> None:
        """Put cube ``index`` at rest on the table at ``xy`` with yaw ``yaw_rad`` and colour ``rgb``."""
        m = self.model
        geom, body = self.block_geom_ids[index], self.block_body_ids[index]
        m.geom_contype[geom] = self._nominal["geom_contype"][geom]
        m.geom_conaffinity[geom] = self._nominal["geom_conaffinity"][geom]
        m.body_gravcomp[body] = self._nominal["body_gravcomp"][body]
        m.geom_rgba[geom] = (*rgb, 1.0)
        self._set_block_pose(index, np.array([xy[0], xy[1], TABLE_TOP_Z_M + BLOCK_HALF_SIZE_M]), yaw_rad)

    def park_block(self, index: int) -> None:
        """Take cube ``index`` out of the scene: under the table, no collisions, floating."""
        m = self.model
        geom, body = self.block_geom_ids[index], self.block_body_ids[index]
        m.geom_contype[geom] = 0
        m.geom_conaffinity[geom] = 0
        m.body_gravcomp[body] = 1.0
        self._set_block_pose(index, np.array([0.2 * index, 0.0, PARK_Z_M]), 0.0)

    def place_pad(self, index: int, xy: np.ndarray, rgb: tuple[float, float, float]) -> None:
        """Lay target pad ``index`` flat on the table centred at ``xy``."""
        geom = self.pad_geom_ids[index]
        self.model.geom_pos[geom] = (xy[0], xy[1], TABLE_TOP_Z_M + 0.0011)
        self.model.geom_rgba[geom] = (*rgb, 1.0)

    def park_pad(self, index: int) -> None:
        """Take target pad ``index`` out of the scene."""
        self.model.geom_pos[self.pad_geom_ids[index]] = (0.2 * index, 0.3, PARK_Z_M)

    def block_position(self, index: int) -> np.ndarray:
        """World position of cube ``index``'s centre."""
        return self.data.xpos[self.block_body_ids[index]].copy()

    def block_yaw(self, index: int) -> float:
        """Rotation of cube ``index`` about the world vertical (rad, from its x axis)."""
        x_axis = self.data.xmat[self.block_body_ids[index]].reshape(3, 3)[:, 0]
        return float(np.arctan2(x_axis[1], x_axis[0]))

    def pad_position(self, index: int) -> np.ndarray:
        """World position of pad ``index``'s centre."""
        return self.model.geom_pos[self.pad_geom_ids[index]].copy()

    def block_in_finger_contact(self, index: int) -> tuple[bool, bool]:
        """Whether the (left, right) finger pads touch cube ``index``."""
        contact = self.data.contact
        pairs = np.stack([contact.geom1, contact.geom2], axis=1)
        with_block = pairs[(pairs == self.block_geom_ids[index]).any(axis=1)]
        left, right = (bool((with_block == finger).any()) for finger in self.finger_geom_ids)
        return left, right

    def is_grasped(self, index: int) -> bool:
        """True when both finger pads touch cube ``index``."""
        return all(self.block_in_finger_contact(index))

    def _set_block_pose(self, index: int, pos: np.ndarray, yaw_rad: float) -> None:
        adr, dof = self.block_qpos_ids[index], self.block_dof_ids[index]
        self.data.qpos[adr : adr + 3] = pos
        self.data.qpos[adr + 3 : adr + 7] = (np.cos(yaw_rad / 2), 0.0, 0.0, np.sin(yaw_rad / 2))
        self.data.qvel[dof : dof + 6] = 0.0
