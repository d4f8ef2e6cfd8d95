"""TabletopEnv: Gymnasium API conformance, determinism, reward/termination, raw joint path, vectorised form."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.sim import ENV_ID, TASKS, make_vector_env
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_LIMITS_RAD


def _rollout(env: TabletopEnv, seed: int, actions: np.ndarray) -> list[dict]:
    obs, _ = env.reset(seed=seed)
    observations = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        observations.append(obs)
    return observations


def test_passes_gymnasium_env_checker() -> None:
    env = gym.make(ENV_ID, task="stack").unwrapped
    check_env(env, skip_render_check=True)
    env.close()


def test_observation_matches_the_policy_contract() -> None:
    env = TabletopEnv(task="push", image_size=96, wrist_image=True)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == obs["wrist_image"].shape == (96, 96, 3)
    assert obs["image"].dtype == np.uint8
    assert obs["proprio"].shape == (len(PROPRIOCEPTION_NAMES),) and obs["proprio"].dtype == np.float32
    assert obs["instruction"] == info["instruction"] and obs["instruction"].startswith("push the ")
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    assert info == {"is_success": False, "task": "push", "split": "id", "instruction": obs["instruction"]}
    assert env.observation_space.contains(obs)
    env.close()


def test_same_seed_and_actions_give_identical_rollouts() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 5)).astype(np.float32)
    env_a, env_b = TabletopEnv(task="stack"), TabletopEnv(task="stack")
    for obs_a, obs_b in zip(_rollout(env_a, 7, actions), _rollout(env_b, 7, actions)):
        np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
        np.testing.assert_array_equal(obs_a["proprio"], obs_b["proprio"])
        assert obs_a["instruction"] == obs_b["instruction"]
    assert not np.array_equal(env_a.reset(seed=8)[0]["image"], env_b.reset(seed=7)[0]["image"])


def test_reward_is_one_only_on_success_which_terminates() -> None:
    env = TabletopEnv(task="lift", image_size=32)
    env.reset(seed=1)
    rewards, terminated, truncated = [], False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        rewards.append(reward)
    assert terminated and not truncated and info["is_success"]
    assert rewards[-1] == 1.0 and set(rewards[:-1]) == {0.0}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dense_reward_adds_shaping_that_telescopes_to_the_progress_gained(task: str) -> None:
    sparse, dense = TabletopEnv(task=task, image_size=32), TabletopEnv(task=task, image_size=32, reward_mode="dense")
    sparse.reset(seed=2)
    dense.reset(seed=2)
    start = dense.task.progress_potential(dense.sim)
    sparse_rewards, dense_rewards, terminated = [], [], False
    while not terminated:
        action = dense.expert_action()
        sparse_rewards.append(sparse.step(action)[1])
        _, reward, terminated, truncated, _ = dense.step(action)
        dense_rewards.append(reward)
        assert not truncated
    end = dense.task.progress_potential(dense.sim)
    # The expert's solved episode ends near full progress, from a start that is far from it.
    assert start < 0.45 and end > 0.8
    shaping = np.asarray(dense_rewards) - np.asarray(sparse_rewards)
    assert shaping.sum() == pytest.approx(end - start, abs=1e-9)
    assert sparse_rewards[-1] == 1.0 and np.count_nonzero(shaping) > len(shaping) // 2


def test_an_unknown_reward_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="reward_mode must be one of \\('sparse', 'dense'\\), got 'shaped'"):
        TabletopEnv(task="lift", reward_mode="shaped")


def test_episode_truncates_at_the_task_step_limit() -> None:
    env = TabletopEnv(task="place_side", image_size=32)
    env.reset(seed=0)
    zero = np.zeros(5, np.float32)
    for step in range(1, TASKS["place_side"].max_steps + 1):
        _, reward, terminated, truncated, _ = env.step(zero)
        assert reward == 0.0 and not terminated
        assert truncated == (step == TASKS["place_side"].max_steps)


def test_reset_options_choose_task_and_split() -> None:
    env = TabletopEnv(task="lift", image_size=32)
    _, info = env.reset(seed=0, options={"task": "stack", "split": "ood_color"})
    assert (info["task"], info["split"]) == ("stack", "ood_color")
    tasks = {TabletopEnv(task=None, image_size=32).reset(seed=s)[1]["task"] for s in range(12)}
    assert tasks == set(TASKS)  # task=None draws every task
    with pytest.raises(ValueError, match="unknown task"):
        env.reset(options={"task": "juggle"})
    with pytest.raises(ValueError, match="unknown split"):
        TabletopEnv(split="ood_everything")


def test_raw_joint_target_path_drives_the_arm_within_limits() -> None:
    env = TabletopEnv(task="lift", image_size=32)
    env.reset(seed=0)
    target = env.sim.arm_positions() + np.array([0.3, 0.1, -0.2, 0.1, -0.5])
    for _ in range(3):
        obs, *_ = env.step_joint_targets(target, gripper_opening_m=0.0)
    np.testing.assert_allclose(obs["proprio"][:5], target, atol=0.01)
    assert obs["proprio"][5] < 0.002
    obs, *_ = env.step_joint_targets(np.full(5, 10.0), gripper_opening_m=0.08)
    np.testing.assert_array_equal(env.sim.arm_targets(), ARM_JOINT_LIMITS_RAD[:, 1])


def test_ee_delta_steps_move_the_tcp_by_the_documented_scale() -> None:
    env = TabletopEnv(task="lift", image_size=32)
    env.reset(seed=0)
    start = env.sim.tcp_position()
    for _ in range(3):
        env.step(np.array([0.0, 1.0, -0.5, 0.0, -1.0], np.float32))
    env.step(np.zeros(5, np.float32))  # let the servos settle on the last target
    expected = start + 3 * np.array([0.0, 1.0, -0.5]) * env.ee_config.max_translation_m
    np.testing.assert_allclose(env.sim.tcp_position(), expected, atol=0.003)


def test_vector_env_batches_observations_of_per_env_seeds() -> None:
    envs = make_vector_env(3, task=None, image_size=32)
    obs, info = envs.reset(seed=0)
    assert obs["image"].shape == (3, 32, 32, 3) and obs["proprio"].shape == (3, len(PROPRIOCEPTION_NAMES))
    assert len(obs["instruction"]) == 3 and all(isinstance(s, str) for s in obs["instruction"])
    assert list(info["task"]) == [TabletopEnv(task=None).reset(seed=s)[1]["task"] for s in range(3)]
    obs, reward, terminated, truncated, _ = envs.step(np.zeros((3, 5), np.float32))
    assert reward.shape == terminated.shape == truncated.shape == (3,)
    envs.close()
