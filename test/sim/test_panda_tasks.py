"""Panda PickCube splits (cube region, colour, lighting) and the scripted expert, judged by gym-hil's predicate."""

import numpy as np
import pytest

from rlvla_ros.envs import PandaPickCubeEnv
from rlvla_ros.training.experiments import expert_episode

ID_LOW, ID_HIGH = np.array([0.3, -0.15]), np.array([0.5, 0.15])


@pytest.fixture
def driver(panda_driver):
    return panda_driver


def test_id_and_ood_position_cubes_lie_inside_and_around_gym_hils_sampling_region(driver):
    for seed in range(20):
        driver.reset(split="id", seed=seed)
        xy = driver.sim.block_position()[:2]
        assert np.all(xy >= ID_LOW) and np.all(xy <= ID_HIGH)
        driver.reset(split="ood_position", seed=seed)
        xy = driver.sim.block_position()[:2]
        assert np.any(xy < ID_LOW) or np.any(xy > ID_HIGH)
        assert np.all(xy >= [0.25, -0.25]) and np.all(xy <= [0.55, 0.25])


def test_colour_and_lighting_splits_change_only_the_look_and_id_restores_it(driver):
    model = driver.sim.model
    rgba, diffuse = model.geom("block").rgba.copy(), model.light_diffuse.copy()
    driver.reset(split="id", seed=7)
    id_image, id_cube = driver.render("front"), driver.sim.block_position()
    driver.reset(split="ood_color", seed=7)
    np.testing.assert_array_equal(driver.sim.block_position(), id_cube)  # same seed, same cube position
    assert np.abs(model.geom("block").rgba[:3] - rgba[:3]).max() > 0.3
    colour_image = driver.render("front")
    driver.reset(split="ood_lighting", seed=7)
    assert np.all(model.light_diffuse <= 0.6 * diffuse + 1e-12)
    dim_image = driver.render("front")
    assert dim_image.mean() < 0.85 * id_image.mean()  # the unlit sky keeps its colour
    assert np.abs(colour_image.astype(int) - id_image).sum() > 0
    driver.reset(split="id", seed=7)
    np.testing.assert_array_equal(model.geom("block").rgba, rgba)
    np.testing.assert_array_equal(model.light_diffuse, diffuse)
    np.testing.assert_array_equal(driver.render("front"), id_image)
    with pytest.raises(ValueError, match="unknown split 'ood_weather'"):
        driver.reset(split="ood_weather", seed=1)


@pytest.fixture(scope="module")
def env():
    panda = PandaPickCubeEnv(image_size=16)
    yield panda
    panda.close()


def test_the_experts_first_action_is_a_full_open_step_towards_the_cube(env):
    env.reset(seed=0)
    action = env.expert_action()
    assert action.shape == (5,) and action[4] == -1.0  # open while approaching
    assert np.linalg.norm(action[:3]) == pytest.approx(1.0, abs=1e-6)  # a full 3 cm step
    pinch = env.safety.kinematics.forward(env.driver.sim.arm_targets()).position_m
    above_cube = env.driver.sim.block_position() + [0.0, 0.0, 0.1]
    np.testing.assert_allclose(action[:3], (above_cube - pinch) / np.linalg.norm(above_cube - pinch), atol=1e-5)


@pytest.mark.parametrize("split, seeds", [("id", range(3)), ("ood_position", [0]), ("ood_color", [0]),
                                          ("ood_lighting", [0])])
def test_the_experts_actions_through_the_safety_filter_pick_the_cube(env, split, seeds):
    for seed in seeds:
        episode = expert_episode(env, "pick_cube", split, seed)
        assert episode.success and episode.termination_reason == "success"
        assert not episode.successes[:-1].any() and episode.rewards.sum() == 1.0


def test_an_expert_that_never_closes_the_gripper_fails(env, monkeypatch):
    monkeypatch.setattr(env.driver, "set_gripper", lambda opening_m: None)  # the fingers stay open
    episode = expert_episode(env, "pick_cube", "id", 0)
    assert not episode.success and episode.termination_reason == "timeout" and len(episode) == 100
