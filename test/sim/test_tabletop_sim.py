"""TabletopSim: driver-like interface, joint limits, rendering, camera intrinsics and visual variation."""

import itertools

import mujoco
import numpy as np
import pytest

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.sim.tabletop_sim import (
    ARM_JOINT_LIMITS_RAD,
    ARM_JOINT_NAMES,
    BLOCK_HALF_SIZE_M,
    GRIPPER_MAX_OPENING_M,
    JOINT_NAMES,
    TabletopSim,
    VisualVariation,
)
from rlvla_ros.sim.tasks import ID_COLORS


@pytest.fixture(scope="module")
def sim() -> TabletopSim:
    sim = TabletopSim()
    yield sim
    sim.close()


def test_joint_state_lists_arm_and_finger_joints(sim: TabletopSim) -> None:
    sim.reset()
    state = sim.joint_state()
    assert state.names == JOINT_NAMES == ARM_JOINT_NAMES + ("finger_left", "finger_right")
    assert state.positions.shape == state.velocities.shape == (7,)
    assert len(sim.proprioception()) == len(PROPRIOCEPTION_NAMES) == 6
    assert sim.gripper_opening_m() == pytest.approx(GRIPPER_MAX_OPENING_M)


def test_arm_tracks_joint_targets_within_a_control_period(sim: TabletopSim) -> None:
    sim.reset()
    target = sim.arm_positions() + np.array([0.2, -0.1, 0.15, -0.1, 0.3])
    sim.set_arm_targets(target)
    sim.advance(0.3)
    np.testing.assert_allclose(sim.arm_positions(), target, atol=0.01)


def test_arm_stays_within_joint_limits_under_out_of_range_commands(sim: TabletopSim) -> None:
    sim.reset()
    lower, upper = ARM_JOINT_LIMITS_RAD[:, 0], ARM_JOINT_LIMITS_RAD[:, 1]
    for target in (upper + 1.0, lower - 1.0):
        commanded = sim.set_arm_targets(target)
        np.testing.assert_array_equal(commanded, np.clip(target, lower, upper))
        for _ in range(10):
            sim.advance(0.1)
            q = sim.arm_positions()
            assert np.all(q >= lower - 0.02) and np.all(q <= upper + 0.02)


def test_gripper_closes_and_opens(sim: TabletopSim) -> None:
    sim.reset()
    sim.set_gripper(0.0)
    sim.advance(0.3)
    assert sim.gripper_opening_m() < 0.002
    sim.set_gripper(GRIPPER_MAX_OPENING_M)
    sim.advance(0.3)
    assert sim.gripper_opening_m() > GRIPPER_MAX_OPENING_M - 0.002


@pytest.mark.parametrize("camera", ["front", "wrist"])
@pytest.mark.parametrize("size", [(128, 128), (96, 160)])
def test_render_is_uint8_rgb_of_requested_size(sim: TabletopSim, camera: str, size: tuple[int, int]) -> None:
    sim.reset()
    image = sim.render(camera, *size)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert image.std() > 5  # a scene, not a blank frame


def test_unknown_camera_is_rejected(sim: TabletopSim) -> None:
    with pytest.raises(ValueError, match="unknown camera"):
        sim.render("ceiling")


def test_camera_intrinsics_project_a_block_onto_its_pixels(sim: TabletopSim) -> None:
    sim.reset()
    sim.place_block(0, np.array([0.5, 0.1]), 0.3, ID_COLORS["red"])
    sim.step()
    height, width = 120, 160
    renderer = mujoco.Renderer(sim.model, height, width)
    renderer.enable_segmentation_rendering()
    renderer.update_scene(sim.data, camera="front")
    rows, cols = np.nonzero(renderer.render()[..., 0] == sim.block_geom_ids[0])
    renderer.close()
    k = sim.camera_intrinsics("front", height, width)
    cam = sim.data.camera("front")
    corners = sim.block_position(0) + (np.array(list(itertools.product([-1, 1], repeat=3))) * BLOCK_HALF_SIZE_M) @ (
        sim.data.xmat[sim.block_body_ids[0]].reshape(3, 3).T
    )
    p_cam = (corners - cam.xpos) @ cam.xmat.reshape(3, 3)
    u = k.cx + k.fx * p_cam[:, 0] / -p_cam[:, 2]  # MuJoCo cameras look along -z with y up
    v = k.cy - k.fy * p_cam[:, 1] / -p_cam[:, 2]
    # pixel centres are at integer coordinates, so a silhouette spans half a pixel beyond its extreme pixels
    np.testing.assert_allclose([cols.min() - 0.5, cols.max() + 0.5], [u.min(), u.max()], atol=1.0)
    np.testing.assert_allclose([rows.min() - 0.5, rows.max() + 0.5], [v.min(), v.max()], atol=1.0)


def test_visual_variation_changes_the_image_and_reset_restores_it(sim: TabletopSim) -> None:
    sim.reset()
    nominal = sim.render("front").astype(int)
    sim.apply_visual_variation(
        VisualVariation(light_scale=0.5, table_rgb=(0.2, 0.3, 0.4), front_camera_shift_m=np.array([0, 0.05, 0]))
    )
    varied = sim.render("front").astype(int)
    assert np.abs(varied - nominal).mean() > 20
    sim.reset()
    np.testing.assert_array_equal(sim.render("front").astype(int), nominal)


def test_parked_blocks_are_out_of_the_scene(sim: TabletopSim) -> None:
    sim.reset()
    sim.advance(1.0)
    assert sim.data.ncon == 0  # parked cubes collide with nothing and stay put
    assert all(sim.block_position(i)[2] == pytest.approx(-0.5, abs=1e-6) for i in range(5))
