"""Gymnasium environment over :class:`TabletopSim`: language-conditioned tabletop tasks with ``ee_delta`` actions.

Action (the shared ``ee_delta`` contract): ``Box(-1, 1, (5,), float32)`` = ``[dx, dy, dz, dyaw, gripper]``. The
translation is scaled by ``EeDeltaConfig.max_translation_m`` (default 0.03 m per step) and yaw by ``max_yaw_rad``
(default 0.15 rad per step), applied to the currently *commanded* TCP pose (as a real arm's Cartesian controller
holds its set point, so servo lag does not accumulate), clipped to the workspace box and turned into arm joint targets
by :class:`ArmKinematics`. ``gripper`` > 0 closes the gripper, <= 0 opens it. Each step then runs ``1 /
control_rate_hz`` of physics.

Observation: ``{"image": (H, W, 3) uint8 front camera, "proprio": float32 (PROPRIOCEPTION_NAMES order),
"instruction": str}`` plus ``"wrist_image"`` when enabled: the policy observation contract. Reward
(``reward_mode="sparse"``) is 1.0 on the step the task succeeds (then ``terminated``) and 0.0 otherwise;
``truncated`` at the task's ``max_steps``. ``reward_mode="dense"`` adds potential-based shaping (Ng et al. 1999)
with the task's privileged :meth:`~rlvla_ros.sim.tasks.Task.progress_potential` ``phi`` in [0, 1]: ``phi(s') -
phi(s)`` per step, which sums to ``phi(last) - phi(first)`` over an episode, so it guides exploration without
changing which policy is optimal (undiscounted). Sim only: on a real arm the reward node shapes with its success
classifier instead.
``info`` carries ``is_success``, ``task``, ``split`` and ``instruction``.

Vectorised form: :func:`make_vector_env` builds a gymnasium ``SyncVectorEnv``. Its batched ``"instruction"`` is a
tuple of str (gymnasium batches a ``Text`` space as a ``Tuple``), which the policy batch code accepts as a sequence.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlvla_ros.contract import PROPRIOCEPTION_NAMES, SPLITS, potential_shaping
from rlvla_ros.sim.experts import Expert
from rlvla_ros.sim.kinematics import ArmKinematics, EeDeltaConfig, EePose
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_LIMITS_RAD, GRIPPER_MAX_OPENING_M, TabletopSim
from rlvla_ros.sim.tasks import TASKS, Task

ENV_ID = "rlvla/Tabletop-v0"
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.'-"
MAX_INSTRUCTION_LENGTH = 128
REWARD_MODES = ("sparse", "dense")


class TabletopEnv(gym.Env):
    """Language-conditioned tabletop manipulation; see the module docstring for spaces and scaling."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    proprio_names = PROPRIOCEPTION_NAMES
    """The entries of the ``proprio`` observation."""

    def __init__(
        self,
        task: str | None = "lift",
        split: str = "id",
        image_size: int = 128,
        wrist_image: bool = False,
        control_rate_hz: float = 10.0,
        ee_config: EeDeltaConfig | None = None,
        render_mode: str | None = None,
        render_size: int = 256,
        reward_mode: str = "sparse",
    ) -> None:
        """``task`` None draws a task uniformly per episode; ``reset(options=...)`` can override task and split."""
        self._check(task, split)
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        self.reward_mode = reward_mode
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.task_name, self.split = task, split
        self.image_size = image_size
        self.wrist_image = wrist_image
        self.render_mode = render_mode
        self.render_size = render_size
        self.ee_config = ee_config if ee_config is not None else EeDeltaConfig()
        self.sim = TabletopSim()
        self.kinematics = ArmKinematics(self.sim.model)
        self.substeps = max(1, round(1.0 / (control_rate_hz * self.sim.timestep_s)))
        self.action_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
        image_space = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        obs_spaces: dict[str, spaces.Space] = {
            "image": image_space,
            "proprio": spaces.Box(*_proprio_bounds(), dtype=np.float32),
            "instruction": spaces.Text(MAX_INSTRUCTION_LENGTH, charset=INSTRUCTION_CHARSET),
        }
        if wrist_image:
            obs_spaces["wrist_image"] = image_space
        self.observation_space = spaces.Dict(obs_spaces)
        self.task: Task | None = None
        self.episode_split = split
        self.instruction = ""
        self.steps = 0
        self._expert: Expert | None = None
        self._potential = 0.0

    @staticmethod
    def _check(task: str | None, split: str) -> None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)} or None")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        task_name = options.get("task", self.task_name)
        split = options.get("split", self.split)
        self._check(task_name, split)
        if task_name is None:
            task_name = str(self.np_random.choice(sorted(TASKS)))
        self.sim.reset()
        self.task = TASKS[task_name](self.ee_config)
        self.episode_split = split
        self.instruction = self.task.reset(self.sim, self.np_random, split)
        self.steps = 0
        self._expert = None
        self._potential = self.task.progress_potential(self.sim)
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (5,):
            raise ValueError(f"ee_delta action must have shape (5,), got {action.shape}")
        arm_q = self.kinematics.apply_ee_delta(self.sim.arm_targets(), action, self.ee_config)
        return self.step_joint_targets(arm_q, 0.0 if action[4] > 0 else GRIPPER_MAX_OPENING_M)

    def step_joint_targets(
        self, arm_q: np.ndarray, gripper_opening_m: float
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Raw command path: arm joint targets (rad, clipped to limits) and gripper opening (m) for one step."""
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.sim.set_arm_targets(arm_q)
        self.sim.set_gripper(gripper_opening_m)
        self.sim.step(self.substeps)
        self.steps += 1
        success = self.task.is_success(self.sim)
        truncated = not success and self.steps >= self.task.max_steps
        reward = float(success)
        if self.reward_mode == "dense":
            potential = self.task.progress_potential(self.sim)
            reward += potential_shaping(self._potential, potential, discount=1.0)
            self._potential = potential
        return self._observation(), reward, success, truncated, self._info(success)

    def ee_pose(self) -> EePose:
        """The commanded TCP pose, which the next ``ee_delta`` action is applied to."""
        return self.kinematics.forward(self.sim.arm_targets())

    def expert_action(self) -> np.ndarray:
        """Action of the current task's scripted expert (privileged state) for the current step."""
        if self.task is None:
            raise RuntimeError("call reset() before expert_action()")
        if self._expert is None:
            self._expert = self.task.expert()
        return self._expert.act(self.sim, self.ee_pose())

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render("front", self.render_size, self.render_size)

    def close(self) -> None:
        self.sim.close()

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "image": self.sim.render("front", self.image_size, self.image_size),
            "proprio": self.sim.proprioception(),
            "instruction": self.instruction,
        }
        if self.wrist_image:
            obs["wrist_image"] = self.sim.render("wrist", self.image_size, self.image_size)
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        assert self.task is not None
        return {
            "is_success": success,
            "task": self.task.name,
            "split": self.episode_split,
            "instruction": self.instruction,
        }


def _proprio_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Joint limits and gripper range, widened by a margin for the soft limits' small overshoot."""
    margin = 0.1
    low = np.append(ARM_JOINT_LIMITS_RAD[:, 0] - margin, -margin * GRIPPER_MAX_OPENING_M)
    high = np.append(ARM_JOINT_LIMITS_RAD[:, 1] + margin, (1 + margin) * GRIPPER_MAX_OPENING_M)
    return low.astype(np.float32), high.astype(np.float32)


def make_vector_env(n: int, **env_kwargs: Any) -> gym.vector.SyncVectorEnv:
    """``n`` :class:`TabletopEnv` copies stepped in this process (gymnasium's next-step autoreset)."""
    if n < 1:
        raise ValueError(f"need at least one env, got {n}")
    return gym.vector.SyncVectorEnv([lambda: TabletopEnv(**env_kwargs) for _ in range(n)])
