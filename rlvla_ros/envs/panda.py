"""Gymnasium environment over gym-hil's Franka Panda PandaPickCube, acting as the real-arm graph acts.

Action (the shared ``ee_delta`` contract): ``Box(-1, 1, (5,), float32)`` = ``[dx, dy, dz, dyaw, gripper]``. Each step
hands it to the :class:`~rlvla_ros.safety.ActionSafetyFilter` on ``config/robots/panda.yaml``, the safety filter node's
core in ``real.launch.yaml``: clamp to [-1, 1], 3 cm / 0.15 rad per unit on the pose of the reference joints (the
last set point while the arm tracks it, else the measured joints), the workspace box, damped least-squares IK of the
2F-85's pinch site, joint limits and the velocity bound. The :class:`~rlvla_ros.sim.panda.driver.PandaDriver` then
follows the joint command as the one-point trajectory the node publishes (reached in one control period, linearly
interpolated) and the gripper opening, and runs one control period of physics. An action the filter refuses (a
non-finite value, or a command its last check rejects) commands nothing, as on the graph, where the node publishes
nothing: the arm holds its set point for the step and ``info["refused"]`` is True. So each action takes the path one
executed chunk row takes on the graph, safety filter included. (How many rows of a chunk run before the policy is
asked again is the caller's: in-process rollouts run the whole chunk, the graph's safety filter ``execute_steps``.)

Observation: ``{"image": (H, W, 3) uint8 front camera, "proprio": (8,) float32, "instruction": str}`` with proprio
in :data:`PANDA_PROPRIOCEPTION_NAMES` order (the Panda's perception config: ``panda_joint1..7``, then the 2F-85's
knuckle angle under the name ``gripper_opening_m``, 0 open to 0.8 rad closed). Reward: 1.0 on the step gym-hil's
PandaPickCube predicate holds (then ``terminated``), else 0; ``truncated`` after gym-hil's 100 steps. ``info``
carries ``is_success``, ``task``, ``split``, ``instruction`` and ``refused``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.sim.driver import MAX_SEED
from rlvla_ros.sim.env import INSTRUCTION_CHARSET, MAX_INSTRUCTION_LENGTH
from rlvla_ros.sim.panda.driver import PANDA_PROPRIOCEPTION_NAMES, PANDA_SPLITS, PANDA_TASKS, PandaDriver
from rlvla_ros.sim.panda.scene import GRIPPER_CLOSED_RAD, PANDA_ARM_JOINT_NAMES

PANDA_ENV_ID = "rlvla/PandaPickCube-v0"
ROBOT_CONFIG = "panda"
"""``config/robots/<this>.yaml``: the robot config real.launch.yaml gets on the Panda."""


class PandaPickCubeEnv(gym.Env):
    """gym-hil's PandaPickCube through the safety filter; see the module docstring."""

    metadata = {"render_modes": [], "render_fps": 10}
    proprio_names = PANDA_PROPRIOCEPTION_NAMES
    """The entries of the ``proprio`` observation."""

    def __init__(self, task: str | None = "pick_cube", split: str = "id", image_size: int = 128,
                 reward_mode: str = "sparse") -> None:
        """``task`` None is the only task, ``pick_cube``; ``reset(options=...)`` can override task and split.
        Only sparse rewards: the Panda task has no progress potential."""
        task = task or "pick_cube"
        self._check(task, split)
        if reward_mode != "sparse":
            raise ValueError(f"the Panda's {task} has sparse rewards only, got reward_mode {reward_mode!r}")
        self.task_name, self.split = task, split
        self.image_size = image_size
        self.driver = PandaDriver(task, split, image_size=image_size)
        robot = load_robot_config(robot_config_path(ROBOT_CONFIG))
        if abs(robot.control_period_s * 1e9 - self.driver.control_period_ns) > 1:
            raise ValueError(f"robot config {ROBOT_CONFIG!r} runs at {robot.control_rate_hz} Hz, the driver at "
                             f"{1e9 / self.driver.control_period_ns} Hz")
        self.safety = ActionSafetyFilter(robot, make_kinematics(robot))
        self.action_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
        limits = self.driver.sim.arm_limits_rad
        margin = 0.1  # the impedance law's small overshoot past a limit
        low = np.append(limits[:, 0] - margin, -margin).astype(np.float32)
        high = np.append(limits[:, 1] + margin, GRIPPER_CLOSED_RAD + margin).astype(np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "proprio": spaces.Box(low, high, dtype=np.float32),
            "instruction": spaces.Text(MAX_INSTRUCTION_LENGTH, charset=INSTRUCTION_CHARSET),
        })
        self._setpoint: np.ndarray | None = None

    @staticmethod
    def _check(task: str, split: str) -> None:
        if task not in PANDA_TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(PANDA_TASKS)}")
        if split not in PANDA_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {PANDA_SPLITS}")

    @property
    def instruction(self) -> str:
        return self.driver.episode.instruction

    @property
    def episode_split(self) -> str:
        return self.driver.episode.split

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        task, split = options.get("task") or self.task_name, options.get("split", self.split)
        self._check(task, split)
        if seed is None:
            seed = int(self.np_random.integers(0, MAX_SEED, endpoint=True))
        self.driver.reset(task, split, seed)
        self._setpoint = None
        return self._observation(), self._info(False, False)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (5,):
            raise ValueError(f"ee_delta action must have shape (5,), got {action.shape}")
        driver = self.driver
        q = driver.joint_state().positions[: len(PANDA_ARM_JOINT_NAMES)]
        result = self.safety.filter(action, q, self.safety.reference_joints(q, self._setpoint))
        if result.command is not None:
            self._setpoint = result.command.joint_positions_rad
            driver.set_gripper(result.command.gripper_opening_m)
            driver.follow(driver.trajectory(PANDA_ARM_JOINT_NAMES, [driver.control_period_ns], [self._setpoint]))
        driver.advance(1)
        success = driver.is_success()
        truncated = not success and driver.episode_step >= driver.episode.max_steps
        return self._observation(), float(success), success, truncated, self._info(success, result.command is None)

    def expert_action(self) -> np.ndarray:
        """The scripted pick expert's ``ee_delta`` action for this step (privileged state; once per step)."""
        return self.driver.expert_action()

    def close(self) -> None:
        self.driver.close()

    def _observation(self) -> dict[str, Any]:
        return {
            "image": self.driver.render("front"),
            "proprio": self.driver.joint_state().positions.astype(np.float32),
            "instruction": self.instruction,
        }

    def _info(self, success: bool, refused: bool) -> dict[str, Any]:
        episode = self.driver.episode
        return {"is_success": success, "task": episode.task, "split": episode.split,
                "instruction": episode.instruction, "refused": refused}
