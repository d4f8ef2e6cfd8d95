"""The gym-hil Panda as its ROS driver sees it: :class:`PandaDriver` is a :class:`~rlvla_ros.sim.driver.SimDriver`
(the same trajectory following, simulated clock and episode bookkeeping) over :class:`PandaPickCubeScene`."""

from __future__ import annotations

import math

import numpy as np

from rlvla_ros.sim.driver import SimDriver
from rlvla_ros.sim.panda.scene import GRIPPER_MAX_OPENING_M, PANDA_ARM_JOINT_NAMES, SPLITS, PandaPickCubeScene
from rlvla_ros.sim.tabletop_sim import CameraIntrinsics
from rlvla_ros.sim.trajectory import ArmTrajectory

PANDA_TASKS = {"pick_cube": "pick up the cube"}
"""Task name to instruction."""
PANDA_SPLITS = SPLITS
PANDA_MAX_STEPS = 100
"""gym-hil's PandaPickCube episode limit (control steps)."""
PANDA_PROPRIOCEPTION_NAMES = PANDA_ARM_JOINT_NAMES + ("gripper_opening_m",)
"""The policy's proprio on the Panda (config/robots/panda_nodes.yaml): the arm joints, then the 2F-85's knuckle angle
(rad) under perception's gripper entry name."""


class PandaDriver(SimDriver):
    """Franka Panda + Robotiq 2F-85 behind driver-like commands (joint trajectories in ``panda_joint1..7``, a
    gripper opening in m); episodes of :data:`PANDA_TASKS`. Arguments as :class:`SimDriver`'s."""

    tasks = PANDA_TASKS
    splits = PANDA_SPLITS

    def __init__(self, task: str = "pick_cube", split: str = "id", seed: int = 0, control_rate_hz: float = 10.0,
                 image_size: int = 128, interpolation: str = "linear") -> None:
        super().__init__(task, split, seed, control_rate_hz, image_size, interpolation)

    def _make_scene(self, task: str, split: str, image_size: int, control_rate_hz: float) -> tuple:
        self._expert = None
        scene = PandaPickCubeScene(image_size=image_size, control_rate_hz=control_rate_hz)
        return scene, scene.substeps

    def _reset_scene(self, task: str, split: str, seed: int) -> tuple[str, int]:
        self.sim.reset(np.random.default_rng(seed), split)
        if self._expert is not None:
            self._expert.reset()
        return PANDA_TASKS[task], PANDA_MAX_STEPS

    def trajectory(self, joint_names, times_ns, positions) -> ArmTrajectory:
        """A trajectory message's content checked against the Panda's joints and limits; ValueError if bad."""
        return ArmTrajectory.from_points(joint_names, times_ns, positions, PANDA_ARM_JOINT_NAMES,
                                         self.sim.arm_limits_rad)

    def set_gripper(self, opening_m: float) -> None:
        """Command the 2F-85's finger gap; ValueError unless finite and in [0, 0.085] m."""
        if not (math.isfinite(opening_m) and 0.0 <= opening_m <= GRIPPER_MAX_OPENING_M):
            raise ValueError(f"gripper opening {opening_m} m is not a finite value in [0, {GRIPPER_MAX_OPENING_M}]")
        self.sim.set_gripper(opening_m)

    def expert_action(self) -> np.ndarray:
        """The scripted pick expert's ``ee_delta`` action for this step (privileged state; once per control
        period, as :meth:`SimDriver.expert_action`)."""
        if self._expert is None:
            from rlvla_ros.sim.panda.expert import PandaPickExpert  # it drives this class: imported on first use

            self._expert = PandaPickExpert(self)
        return self._expert.ee_delta()

    def is_success(self) -> bool:
        """gym-hil's PandaPickCube success predicate."""
        return self.sim.is_success()

    def render(self, camera: str) -> np.ndarray:
        """(image_size, image_size, 3) uint8 RGB image from ``front`` or ``wrist``."""
        return self.sim.render(camera)

    def camera_intrinsics(self, camera: str) -> CameraIntrinsics:
        """Pinhole intrinsics of a camera at the rendered size."""
        return self.sim.camera_intrinsics(camera)

    def close(self) -> None:
        """Free the rendering context."""
        self.sim.close()
