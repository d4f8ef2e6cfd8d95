"""Panda PickCube splits (cube region, colour, lighting) and the scripted expert, judged by gym-hil's predicate."""

import numpy as np
import pytest

from rlvla_ros.rollouts.panda_expert import main, run_ee_delta_episode
from rlvla_ros.rollouts.statistics import wilson_interval
from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.sim.panda.expert import PandaPickExpert, run_episode

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


@pytest.mark.parametrize("split, seeds", [("id", range(4)), ("ood_position", [0]), ("ood_color", [0]),
                                          ("ood_lighting", [0])])


def test_the_scripted_expert_picks_the_cube_by_gym_hils_predicate(driver, split, seeds):
    expert = PandaPickExpert(driver)
    for seed in seeds:
        driver.reset(split=split, seed=seed)
        assert not driver.is_success()
        assert run_episode(driver, expert, seed, split)
        assert expert.phase == "lift" and driver.episode.split == split


def test_the_experts_ee_delta_actions_through_the_safety_filter_pick_the_cube(driver):
    robot = load_robot_config(robot_config_path("panda"))
    safety = ActionSafetyFilter(robot, make_kinematics(robot))
    driver.reset(seed=0)
    action = driver.expert_action()
    assert action.shape == (5,) and action[4] == -1.0  # open while approaching
    assert np.linalg.norm(action[:3]) == pytest.approx(1.0, abs=1e-6)  # a full 3 cm step towards the cube
    for seed in (0, 1):
        assert run_ee_delta_episode(driver, safety, seed)


def test_an_expert_that_never_closes_the_gripper_fails(driver, monkeypatch):
    expert = PandaPickExpert(driver)
    monkeypatch.setattr(driver, "set_gripper", lambda opening_m: None)  # the fingers stay open
    assert not run_episode(driver, expert, 0, max_steps=60)


def test_the_expert_success_interval_is_wilsons_and_zero_episodes_are_refused(capsys):
    assert wilson_interval(50, 50) == pytest.approx((0.9287, 1.0), abs=1e-4)
    assert wilson_interval(40, 50) == pytest.approx((0.6696, 0.8876), abs=1e-4)
    with pytest.raises(SystemExit):
        main(["--episodes", "0"])
    assert "--episodes must be >= 1" in capsys.readouterr().err
