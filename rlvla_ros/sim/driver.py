"""The simulated arm as its ROS driver sees it: episodes, a joint trajectory follower, the gripper, a simulated clock.

:class:`SimDriver` wraps :class:`~rlvla_ros.sim.env.TabletopEnv` (its episodes, tasks and success predicates) and
drives its physics through the commands a real arm's controllers accept: an :class:`ArmTrajectory` that replaces the
one being followed from the moment it arrives (as ros2_control's joint_trajectory_controller does), and a gripper
opening. Simulated time is counted in whole physics steps since the driver was made: :meth:`SimDriver.advance` moves
it, and a reset takes one control period of it (never rewinds it), so stamps derived from it are exact and every
sensor sample, across episodes too, has its own.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rlvla_ros.contract import MAX_SEED, SPLITS
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.tabletop_sim import CAMERA_NAMES, GRIPPER_MAX_OPENING_M, CameraIntrinsics, JointState
from rlvla_ros.sim.tasks import TASKS
from rlvla_ros.sim.trajectory import INTERPOLATIONS, ArmTrajectory


@dataclass(frozen=True)
class Episode:
    """What a reset set up."""

    episode_id: str
    """Unique name of the episode."""
    task: str
    split: str
    seed: int
    """Seed the scene was drawn with (reusing it reproduces the episode)."""
    instruction: str
    """Instruction in force: the task's own, or the one the reset asked for."""
    max_steps: int
    """The task's episode length limit in control steps."""

    def as_dict(self) -> dict:
        """Plain fields, e.g. for JSON."""
        return asdict(self)


class SimDriver:
    """Simulated tabletop arm behind driver-like commands; see the module docstring."""

    tasks: Mapping[str, object] = TASKS
    """Valid task names (keys)."""
    splits: Sequence[str] = SPLITS
    """Valid split names."""

    def __init__(
        self,
        task: str = "lift",
        split: str = "id",
        seed: int = 0,
        control_rate_hz: float = 10.0,
        image_size: int = 128,
        interpolation: str = "step",
    ) -> None:
        """Start the first episode of ``task``/``split`` with ``seed``; later resets with a negative seed draw
        theirs from a generator seeded with ``seed`` (negative: from the OS)."""
        self._check(task, split)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}")
        if not control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz}")
        self.sim, self.steps_per_period = self._make_scene(task, split, image_size, control_rate_hz)
        self.default_task, self.default_split = task, split
        self.image_size = image_size
        self.interpolation = interpolation
        self.step_ns = round(self.sim.timestep_s * 1e9)
        self.clock_steps = 0
        """Simulated time since the driver was made, in physics steps."""
        self.episode_step = 0
        """Control periods since the current episode's reset: the step of the sensor set now published."""
        self._seeds = np.random.default_rng(seed if seed >= 0 else None)
        self._trajectory: ArmTrajectory | None = None
        self._trajectory_start_step = 0
        self._trajectory_start_q = self.sim.arm_targets()
        self.episode: Episode
        self.reset(task, split, seed)

    def _make_scene(self, task: str, split: str, image_size: int, control_rate_hz: float) -> tuple:
        """The simulated scene (set points, gripper, physics steps, joint states, cameras) and its physics steps
        per control period."""
        self.env = TabletopEnv(task=task, split=split, image_size=image_size, control_rate_hz=control_rate_hz)
        return self.env.sim, self.env.substeps

    def _reset_scene(self, task: str, split: str, seed: int) -> tuple[str, int]:
        """Set up an episode in the scene; returns its instruction and step limit."""
        self.env.reset(seed=seed, options={"task": task, "split": split})
        return self.env.instruction, self.env.task.max_steps

    @classmethod
    def _check(cls, task: str, split: str) -> None:
        if task not in cls.tasks:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(sorted(cls.tasks))}")
        if split not in cls.splits:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(cls.splits)}")

    @property
    def time_ns(self) -> int:
        """Simulated time since the driver was made."""
        return self.clock_steps * self.step_ns

    @property
    def control_period_ns(self) -> int:
        """Length of one control period (whole physics steps)."""
        return self.steps_per_period * self.step_ns

    def reset(self, task: str = "", split: str = "", seed: int = -1, instruction: str = "") -> Episode:
        """New episode; empty ``task``/``split`` mean the defaults, a negative seed draws one, an empty
        instruction keeps the task's own. ValueError for an unknown task or split, naming the valid ones."""
        task, split = task or self.default_task, split or self.default_split
        self._check(task, split)
        if seed < 0:
            seed = int(self._seeds.integers(0, MAX_SEED, endpoint=True))
        task_instruction, max_steps = self._reset_scene(task, split, seed)
        self._trajectory = None
        self.clock_steps += self.steps_per_period
        self.episode_step = 0
        self.episode = Episode(
            episode_id=f"{task}-{split}-{seed}-{uuid.uuid4().hex[:8]}",
            task=task,
            split=split,
            seed=seed,
            instruction=instruction or task_instruction,
            max_steps=max_steps,
        )
        return self.episode

    def follow(self, trajectory: ArmTrajectory) -> None:
        """Follow ``trajectory`` from now on, starting from the set point currently in force."""
        self._trajectory = trajectory
        self._trajectory_start_step = self.clock_steps
        self._trajectory_start_q = self.sim.arm_targets()

    def trajectory(self, joint_names, times_ns, positions) -> ArmTrajectory:
        """A JointTrajectory's names, point times (ns) and positions checked against the arm's joints and limits,
        in the arm's joint order; ValueError saying what is wrong."""
        return ArmTrajectory.from_points(joint_names, times_ns, positions)

    def set_gripper(self, opening_m: float) -> None:
        """Command the gap between the finger pads; ValueError unless finite and in [0, max opening]."""
        if not (math.isfinite(opening_m) and 0.0 <= opening_m <= GRIPPER_MAX_OPENING_M):
            raise ValueError(f"gripper opening {opening_m} m is not a finite value in [0, {GRIPPER_MAX_OPENING_M}]")
        self.sim.set_gripper(opening_m)

    def periods_for(self, trajectory: ArmTrajectory) -> int:
        """Control periods that cover ``trajectory`` (its duration rounded to periods, at least one)."""
        return max(1, round(trajectory.duration_ns / self.control_period_ns))

    def advance(self, periods: int = 1) -> None:
        """Run ``periods`` control periods of physics, moving the arm set point along the trajectory followed."""
        if periods < 1:
            raise ValueError(f"periods must be >= 1, got {periods}")
        num_steps = periods * self.steps_per_period
        if self._trajectory is None:
            self.sim.step(num_steps)
        else:
            first = self.clock_steps - self._trajectory_start_step
            setpoints = self._trajectory.setpoints(
                self._trajectory_start_q, first, num_steps, self.step_ns, self.interpolation)
            # one mj_step call per run of equal set points: a whole period per point when interpolating by steps
            starts = np.flatnonzero(np.any(np.diff(setpoints, axis=0) != 0, axis=1)) + 1
            for begin, end in zip(np.append(0, starts), np.append(starts, num_steps)):
                self.sim.set_arm_targets(setpoints[begin])
                self.sim.step(int(end - begin))
            if (first + num_steps) * self.step_ns >= self._trajectory.duration_ns:
                self._trajectory = None  # finished: the last set point stays in force
        self.clock_steps += num_steps
        self.episode_step += periods

    def expert_action(self) -> np.ndarray:
        """The current task's scripted expert ``ee_delta`` action for this step (privileged state; call once per
        control period: the expert keeps its phase between calls)."""
        return self.env.expert_action()

    def is_success(self) -> bool:
        """The current task's privileged success predicate."""
        return self.env.task.is_success(self.sim)

    def joint_state(self) -> JointState:
        """Arm then finger joint positions and velocities."""
        return self.sim.joint_state()

    def render(self, camera: str) -> np.ndarray:
        """(image_size, image_size, 3) uint8 RGB image from a camera of :data:`CAMERA_NAMES`."""
        return self.sim.render(camera, self.image_size, self.image_size)

    def camera_intrinsics(self, camera: str) -> CameraIntrinsics:
        """Pinhole intrinsics of a camera at the rendered size."""
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown camera {camera!r}; expected one of {CAMERA_NAMES}")
        return self.sim.camera_intrinsics(camera, self.image_size, self.image_size)

    def close(self) -> None:
        """Free the rendering contexts."""
        self.env.close()
