"""The Panda's Gymnasium environment: the policy observation contract, ee_delta actions through the safety filter on
the Panda's robot config (what the real-arm graph runs), refusals, seeds, and the task registry."""

import gymnasium
import numpy as np
import pytest
import yaml

from rlvla_ros.envs import PANDA_ENV_ID, PandaPickCubeEnv, family_of, family_of_tasks
from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.sim.panda.scene import PANDA_ARM_JOINT_NAMES


@pytest.fixture(scope="module")
def env():
    panda = PandaPickCubeEnv(image_size=24)
    yield panda
    panda.close()


@pytest.fixture(scope="module")
def graph_filter():
    """The safety filter as the safety_filter node builds it from real.launch.yaml's robot_config."""
    robot = load_robot_config(robot_config_path("panda"))
    return ActionSafetyFilter(robot, make_kinematics(robot))


def test_observations_follow_the_policy_contract_with_the_graphs_panda_proprioception(env):
    observation, info = env.reset(seed=0)
    assert observation["image"].shape == (24, 24, 3) and observation["image"].dtype == np.uint8
    assert observation["proprio"].shape == (8,) and observation["proprio"].dtype == np.float32
    np.testing.assert_array_equal(observation["proprio"], env.driver.joint_state().positions.astype(np.float32))
    assert observation["instruction"] == "pick up the cube" == info["instruction"]
    assert observation in env.observation_space
    nodes = yaml.safe_load((robot_config_path("panda").parent / "panda_nodes.yaml").read_text())
    assert tuple(nodes["/**/perception"]["ros__parameters"]["proprioception_names"]) == env.proprio_names
    assert info == {"is_success": False, "task": "pick_cube", "split": "id", "instruction": "pick up the cube",
                    "refused": False}


def test_each_action_becomes_the_safety_filters_joint_command(env, graph_filter):
    env.reset(seed=1)
    setpoint = None
    for action in ([1.0, 0.0, 0.0, 0.0, -1.0], [0.0, 0.5, -0.5, 0.3, 1.0], [2.0, 0.0, 0.0, 0.0, 1.0]):
        q = env.driver.joint_state().positions[:7]
        expected = graph_filter.filter(np.array(action), q, graph_filter.reference_joints(q, setpoint)).command
        _, reward, terminated, truncated, info = env.step(np.array(action, dtype=np.float32))
        setpoint = expected.joint_positions_rad
        np.testing.assert_allclose(env.driver.sim.arm_targets(), setpoint, atol=1e-12)
        gripper_ctrl = env.driver.sim.data.ctrl[env.driver.sim.model.actuator("fingers_actuator").id]
        assert gripper_ctrl == (255.0 if expected.gripper_opening_m == 0.0 else 0.0)
        assert (reward, terminated, truncated, info["refused"]) == (0.0, False, False, False)
    assert env.driver.episode_step == 3


def test_a_refused_action_commands_nothing_and_the_arm_holds(env):
    env.reset(seed=2)
    env.step(np.array([0.0, 0.0, -1.0, 0.0, -1.0], dtype=np.float32))
    held = env.driver.sim.arm_targets()
    observation, reward, terminated, truncated, info = env.step(np.array([np.nan, 0, 0, 0, 0], dtype=np.float32))
    assert info["refused"] and reward == 0.0 and not terminated
    np.testing.assert_array_equal(env.driver.sim.arm_targets(), held)
    assert np.isfinite(observation["proprio"]).all()
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        env.step(np.zeros(7, dtype=np.float32))


def test_an_episode_is_truncated_after_100_steps_without_success(env):
    env.reset(seed=3)
    for step in range(1, 101):
        _, reward, terminated, truncated, _ = env.step(np.array([0.0, 0.0, 0.0, 0.0, -1.0], dtype=np.float32))
        assert reward == 0.0 and not terminated and truncated == (step == 100)


def test_the_same_seed_and_actions_give_the_same_episode(env):
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 5)).astype(np.float32)
    runs = []
    for _ in range(2):
        observations = [env.reset(seed=4, options={"split": "ood_color"})[0]]
        observations += [env.step(action)[0] for action in actions]
        runs.append(observations)
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first["image"], second["image"])
        np.testing.assert_array_equal(first["proprio"], second["proprio"])
    assert env.episode_split == "ood_color"


def test_bad_tasks_splits_and_reward_modes_are_refused(env):
    with pytest.raises(ValueError, match="unknown split 'ood_distractor'"):
        env.reset(seed=0, options={"split": "ood_distractor"})
    with pytest.raises(ValueError, match="unknown task 'lift'"):
        env.reset(seed=0, options={"task": "lift"})
    with pytest.raises(ValueError, match="sparse rewards only"):
        PandaPickCubeEnv(reward_mode="dense")


def test_gymnasium_makes_it_by_id():
    made = gymnasium.make(PANDA_ENV_ID, image_size=16)
    try:
        assert isinstance(made.unwrapped, PandaPickCubeEnv)
        observation, _ = made.reset(seed=0)
        assert observation["image"].shape == (16, 16, 3)
    finally:
        made.close()


def test_tasks_name_their_robot_and_one_job_works_with_one():
    assert family_of("pick_cube").name == "panda" and family_of("lift").name == "tabletop"
    assert family_of("pick_cube").proprio_names == (*PANDA_ARM_JOINT_NAMES, "gripper_opening_m")
    assert family_of_tasks(["pick_cube"], ["id", "ood_lighting"]).splits[0] == "id"
    with pytest.raises(ValueError, match="run on different robots"):
        family_of_tasks(["lift", "pick_cube"])
    with pytest.raises(ValueError, match="unknown split 'ood_lighting' for the tabletop tasks"):
        family_of_tasks(["lift"], ["ood_lighting"])
    with pytest.raises(ValueError, match="unknown task 'stack_panda'"):
        family_of("stack_panda")
