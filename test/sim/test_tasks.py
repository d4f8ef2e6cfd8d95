"""Tasks: scripted expert success, instructions, and how the OOD splits differ from id."""

import numpy as np
import pytest

from rlvla_ros.contract import SPLITS
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.tasks import ID_COLORS, ID_REGION, OOD_COLORS, TASKS, PlaceSideTask

SEEDS = range(10)


def _expert_episode(env: TabletopEnv, seed: int, split: str = "id") -> tuple[bool, int]:
    env.reset(seed=seed, options={"split": split})
    terminated = truncated = False
    while not (terminated or truncated):
        action = env.expert_action()
        assert action.shape == (5,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
        _, _, terminated, truncated, info = env.step(action)
    return info["is_success"], env.steps


def _active_blocks(env: TabletopEnv) -> list[int]:
    return [i for i in range(5) if env.sim.block_position(i)[2] > -0.1]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_solves_task_in_at_least_8_of_10_episodes(task: str) -> None:
    env = TabletopEnv(task=task, image_size=32)
    results = [_expert_episode(env, seed) for seed in SEEDS]
    successes = [steps for success, steps in results if success]
    assert len(successes) >= 8
    assert np.mean(successes) <= 60  # short demonstrations


def test_expert_solves_place_side_in_every_ood_split_on_a_sample() -> None:
    env = TabletopEnv(task="place_side", image_size=32)
    for split in SPLITS[1:]:
        assert sum(_expert_episode(env, seed, split)[0] for seed in range(4)) >= 3, split


def test_nothing_succeeds_at_reset() -> None:
    env = TabletopEnv(image_size=32)
    for task in TASKS:
        for split in SPLITS:
            env.reset(seed=3, options={"task": task, "split": split})
            assert not env.task.is_success(env.sim), (task, split)


def test_ood_color_uses_only_colours_and_words_id_never_uses() -> None:
    env = TabletopEnv(image_size=32)
    for seed, task in enumerate(TASKS):
        _, info = env.reset(seed=seed, options={"task": task, "split": "ood_color"})
        words = set(info["instruction"].split())
        assert words & set(OOD_COLORS) and not words & set(ID_COLORS)
        for i in _active_blocks(env):
            rgb = env.sim.model.geom_rgba[env.sim.block_geom_ids[i], :3]
            assert any(np.allclose(rgb, ood_rgb) for ood_rgb in OOD_COLORS.values())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_ood_position_spawns_outside_the_id_region(task: str) -> None:
    env = TabletopEnv(task=task, image_size=32)
    for seed in range(5):
        env.reset(seed=seed, options={"split": "ood_position"})
        for i in _active_blocks(env):
            assert not ID_REGION.contains(env.sim.block_position(i)[:2])
        env.reset(seed=seed, options={"split": "id"})
        for i in _active_blocks(env):
            assert ID_REGION.contains(env.sim.block_position(i)[:2])


def test_ood_distractor_adds_two_cubes() -> None:
    env = TabletopEnv(image_size=32)
    for task in TASKS:
        env.reset(seed=0, options={"task": task, "split": "id"})
        n_id = len(_active_blocks(env))
        env.reset(seed=0, options={"task": task, "split": "ood_distractor"})
        assert len(_active_blocks(env)) == n_id + 2 == TASKS[task].num_blocks + 2


def test_ood_visual_moves_the_camera_and_lights_beyond_id_jitter() -> None:
    env = TabletopEnv(task="lift", image_size=32)
    sim = env.sim
    cam, key = sim.model.camera("front").id, sim.model.light("key").id

    sim.reset()
    nominal_cam_pos, nominal_diffuse = sim.model.cam_pos[cam].copy(), sim.model.light_diffuse[key, 0]

    def variation(seed: int, split: str) -> tuple[float, float]:
        env.reset(seed=seed, options={"split": split})
        camera_shift_m = np.linalg.norm(sim.model.cam_pos[cam] - nominal_cam_pos)
        return camera_shift_m, sim.model.light_diffuse[key, 0] / nominal_diffuse

    for seed in range(5):
        camera_shift_m, light_scale = variation(seed, "id")
        assert camera_shift_m < 0.02 and 0.89 < light_scale < 1.11
        camera_shift_m, light_scale = variation(seed, "ood_visual")
        assert camera_shift_m > 0.035 and not 0.7 < light_scale < 1.2


def test_place_side_left_means_image_left_which_is_world_minus_y() -> None:
    assert PlaceSideTask.SIDES == {"left": -1.0, "right": 1.0}
    env = TabletopEnv(task="place_side", image_size=64)
    sides = set()
    for seed in range(6):
        success, _ = _expert_episode(env, seed)
        side = env.task.side
        sides.add(side)
        assert success and np.sign(env.sim.block_position(0)[1]) == PlaceSideTask.SIDES[side]
    assert sides == {"left", "right"}
