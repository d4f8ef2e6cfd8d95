"""ArmTrajectory validation and sampling, and SimDriver: episodes, clock, trajectory following, parity with the env."""

import numpy as np
import pytest

from rlvla_ros.contract import ARM_JOINT_NAMES
from rlvla_ros.sim.driver import SimDriver
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.tabletop_sim import GRIPPER_MAX_OPENING_M, HOME_ARM_Q
from rlvla_ros.sim.trajectory import ArmTrajectory

MS = 1_000_000
NAMES = list(ARM_JOINT_NAMES)


@pytest.fixture(scope="module")
def driver():
    made = SimDriver(task="lift", seed=1, image_size=32)
    yield made
    made.close()


def test_trajectory_reorders_joints_to_the_arm_order():
    shuffled = NAMES[::-1]
    q = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    trajectory = ArmTrajectory.from_points(shuffled, [100 * MS], [q[::-1].tolist()])
    np.testing.assert_array_equal(trajectory.positions_rad, [q])
    assert trajectory.duration_ns == 100 * MS


@pytest.mark.parametrize(("names", "times", "positions", "reason"), [
    (NAMES[:4], [MS], [[0.0] * 4], "exactly the arm joints"),
    (NAMES[:4] + ["finger_left"], [MS], [[0.0] * 5], "exactly the arm joints"),
    (NAMES[:4] + [NAMES[0]], [MS], [[0.0] * 5], "exactly the arm joints"),
    (NAMES, [], [], "no points"),
    (NAMES, [MS], [[0.0] * 4], "point 0 has 4 positions"),
    (NAMES, [2 * MS, MS], [[0.0] * 5, [0.0] * 5], "strictly increasing"),
    (NAMES, [MS], [[0.0, np.nan, 1.0, 1.0, 0.0]], "shoulder = nan"),
    (NAMES, [MS, 2 * MS], [[0.0, 0.3, 1.0, 1.0, 0.0], [0.0, 0.3, 3.0, 1.0, 0.0]], "point 1: elbow = 3.0"),
])


def test_trajectory_refuses_bad_content_with_the_reason(names, times, positions, reason):
    with pytest.raises(ValueError, match=reason):
        ArmTrajectory.from_points(names, times, positions)


def test_step_setpoints_hold_each_point_over_its_period_and_linear_reaches_each_point_at_its_time():
    start = np.zeros(5)
    trajectory = ArmTrajectory.from_points(NAMES, [100 * MS, 200 * MS], [[0.1] * 5, [0.3] * 5])
    step = trajectory.setpoints(start, 0, 150, 2 * MS, "step")[:, 0]
    np.testing.assert_array_equal(step[:50], 0.1)
    np.testing.assert_array_equal(step[50:], 0.3)
    linear = trajectory.setpoints(start, 0, 150, 2 * MS, "linear")[:, 0]
    np.testing.assert_allclose(linear[[0, 24, 49, 74, 99, 149]], [0.002, 0.05, 0.1, 0.2, 0.3, 0.3])


def test_reset_draws_reproducible_seeds_and_refuses_unknown_names(driver):
    first = SimDriver(task="push", seed=5, image_size=32)
    drawn = [first.reset(seed=-1).seed for _ in range(3)]
    first.close()
    assert len(set(drawn)) == 3 and all(seed >= 0 for seed in drawn)
    again = SimDriver(task="push", seed=5, image_size=32)
    assert [again.reset(seed=-1).seed for _ in range(3)] == drawn
    again.close()
    with pytest.raises(ValueError, match="valid tasks: lift, place_side, push, stack"):
        driver.reset(task="fold")
    with pytest.raises(ValueError, match="valid splits: id, ood_color"):
        driver.reset(split="ood_weather")
    episode = driver.reset(task="stack", split="ood_color", seed=4, instruction="stack them")
    assert (episode.task, episode.split, episode.seed, episode.instruction) == ("stack", "ood_color", 4, "stack them")
    assert driver.reset(seed=4).instruction == TabletopEnv(task="lift").reset(seed=4)[0]["instruction"]


def test_clock_counts_physics_steps_and_a_period_per_reset(driver):
    before = driver.time_ns
    driver.advance(2)
    driver.reset(seed=3)
    driver.advance(1)
    assert driver.time_ns - before == 4 * driver.control_period_ns == 400 * MS


def test_trajectory_periods_round_the_duration_to_whole_control_periods(driver):
    def periods(duration_ms: int) -> int:
        return driver.periods_for(ArmTrajectory.from_points(NAMES, [duration_ms * MS], [HOME_ARM_Q.tolist()]))

    assert [periods(0), periods(40), periods(100), periods(260), periods(600)] == [1, 1, 1, 3, 6]


def test_gripper_refuses_non_finite_or_out_of_range_openings(driver):
    for opening in (np.nan, -0.001, GRIPPER_MAX_OPENING_M + 0.001):
        with pytest.raises(ValueError, match="gripper opening"):
            driver.set_gripper(opening)


@pytest.mark.parametrize("task", ["lift", "place_side"])
def test_one_period_trajectories_reproduce_the_gymnasium_env_exactly(task):
    driver = SimDriver(task=task, seed=11, image_size=32)
    twin = TabletopEnv(task=task, image_size=32)
    twin.reset(seed=11)
    success = False
    for _ in range(twin.task.max_steps):
        action = twin.expert_action()
        q = twin.kinematics.apply_ee_delta(twin.sim.arm_targets(), action, twin.ee_config)
        gripper = 0.0 if action[4] > 0 else GRIPPER_MAX_OPENING_M
        driver.set_gripper(gripper)
        driver.follow(ArmTrajectory.from_points(NAMES, [100 * MS], [q.tolist()]))
        driver.advance(1)
        _, _, terminated, _, _ = twin.step_joint_targets(q, gripper)
        np.testing.assert_array_equal(driver.joint_state().positions, twin.sim.joint_state().positions)
        success = driver.is_success()
        assert success == terminated
        if success:
            break
    assert success
    driver.close()
    twin.close()
