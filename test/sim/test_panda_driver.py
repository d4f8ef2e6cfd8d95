"""The gym-hil Panda driver core: Panda joint names, joint trajectories tracked by the impedance law, the 2F-85
gripper, seeded resets, gym-hil's success predicate, headless cameras; bad commands refused."""

import math

import mujoco
import numpy as np
import pytest

from rlvla_ros.sim.panda.scene import JOINT_NAMES, PANDA_ARM_JOINT_NAMES

HOME = np.array([0.0, 0.195, 0.0, -2.43, 0.0, 2.62, 0.785])
"""gym-hil's PandaPickCube home pose."""


@pytest.fixture
def driver(panda_driver):
    return panda_driver


def test_joint_states_name_the_panda_joints_and_start_at_home(driver):
    driver.reset(seed=1)
    state = driver.joint_state()
    assert state.names == JOINT_NAMES == (*(f"panda_joint{i}" for i in range(1, 8)), "robotiq_85_left_knuckle_joint")
    np.testing.assert_allclose(state.positions[:7], HOME, atol=1e-9)
    assert state.positions[7] == pytest.approx(0.0, abs=1e-3)  # open


def test_a_joint_trajectory_is_followed_and_its_last_point_held_to_within_0_02_rad(driver):
    driver.reset(seed=2)
    goal = HOME + np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.4])
    reversed_names = list(reversed(PANDA_ARM_JOINT_NAMES))  # any joint order, as a JointTrajectory may have
    points = [((HOME + goal) / 2)[::-1], goal[::-1]]
    trajectory = driver.trajectory(reversed_names, [500_000_000, 1_000_000_000], points)
    np.testing.assert_array_equal(trajectory.positions_rad[-1], goal)
    driver.follow(trajectory)
    assert driver.periods_for(trajectory) == 10
    driver.advance(5)
    halfway = driver.joint_state().positions[:7]
    assert np.all(np.abs(halfway - HOME) > 0.05) and np.all(np.abs(halfway - goal) > 0.05)
    driver.advance(15)  # the motion, then 1 s holding the last point
    np.testing.assert_allclose(driver.joint_state().positions[:7], goal, atol=0.02)


def test_bad_trajectories_and_gripper_openings_are_refused(driver):
    with pytest.raises(ValueError, match="must be exactly the arm joints"):
        driver.trajectory(["base_yaw", "shoulder", "elbow", "wrist_pitch", "wrist_roll"], [10**8], [[0.0] * 5])
    beyond = HOME.copy()
    beyond[3] = 0.0  # panda_joint4 must stay below -0.0698 rad
    with pytest.raises(ValueError, match=r"panda_joint4 = 0.0 is not a finite position within \[-3.0718, -0.0698\]"):
        driver.trajectory(PANDA_ARM_JOINT_NAMES, [10**8], [beyond])
    with pytest.raises(ValueError, match="not a finite position"):
        driver.trajectory(PANDA_ARM_JOINT_NAMES, [10**8], [[math.nan, *HOME[1:]]])
    for opening in (-0.01, 0.09, math.nan):
        with pytest.raises(ValueError, match=r"not a finite value in \[0, 0.085\]"):
            driver.set_gripper(opening)


def test_the_gripper_command_closes_and_opens_the_2f85(driver):
    driver.reset(seed=3)
    driver.set_gripper(0.0)
    driver.advance(5)
    assert driver.joint_state().positions[7] > 0.7  # closed: the knuckle near 0.8 rad
    driver.set_gripper(0.085)
    driver.advance(5)
    assert driver.joint_state().positions[7] < 0.05


def test_a_seed_reproduces_the_cube_position_inside_gym_hils_sampling_region(driver):
    driver.reset(seed=11)
    first = driver.sim.block_position()
    driver.reset(seed=12)
    other = driver.sim.block_position()
    driver.reset(seed=11)
    np.testing.assert_array_equal(driver.sim.block_position(), first)
    assert not np.allclose(first[:2], other[:2])
    for position in (first, other):
        assert 0.3 <= position[0] <= 0.5 and -0.15 <= position[1] <= 0.15


def test_success_is_gym_hils_pick_cube_predicate(driver):
    driver.reset(seed=4)
    assert not driver.is_success()
    scene = driver.sim
    scene.data.jnt("block").qpos[:3] = scene.data.sensor("2f85/pinch_pos").data  # in the fingers, not lifted
    mujoco.mj_forward(scene.model, scene.data)
    assert not driver.is_success()
    scene.data.qpos[1] = -0.2  # panda_joint2 back: the hand 21 cm higher
    mujoco.mj_forward(scene.model, scene.data)
    pinch = scene.data.sensor("2f85/pinch_pos").data.copy()
    scene.data.jnt("block").qpos[:3] = pinch
    mujoco.mj_forward(scene.model, scene.data)
    assert driver.is_success()
    scene.data.jnt("block").qpos[:3] = pinch + np.array([0.0, 0.0, 0.06])  # lifted, but 6 cm from the fingers
    mujoco.mj_forward(scene.model, scene.data)
    assert not driver.is_success()


def test_cameras_render_headless_with_pinhole_intrinsics(driver):
    driver.reset(seed=5)
    front, wrist = driver.render("front"), driver.render("wrist")
    assert front.shape == wrist.shape == (48, 48, 3) and front.dtype == np.uint8
    assert front.std() > 10 and wrist.std() > 5 and not np.array_equal(front, wrist)
    intrinsics = driver.camera_intrinsics("front")
    assert intrinsics.fy == pytest.approx(24 / math.tan(math.radians(45 / 2)))
    assert (intrinsics.cx, intrinsics.width) == (23.5, 48)
    with pytest.raises(ValueError, match="unknown camera 'side'"):
        driver.render("side")
