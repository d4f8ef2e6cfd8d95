"""The sim graph under a seeded sample of generated malformed input (rlvla_ros.graph_bench.graph_fuzz): every node stays up,
every malformed request or parameter change is refused with a reason, nothing unsafe reaches the arm.

`RLVLA_FUZZ_CASES` and `RLVLA_FUZZ_SEED` change the sample; `rlvla bench fuzz --json` runs a longer one."""

import os

import pytest

from rlvla_ros.graph_bench.command_monitor import gripper_violations, trajectory_violations
from rlvla_ros.graph_bench.graph_fuzz import fuzz_sim_graph
from rlvla_ros.safety.robot_config import load_robot_config, robot_config_path

CASES = int(os.environ.get("RLVLA_FUZZ_CASES", "240"))
SEED = int(os.environ.get("RLVLA_FUZZ_SEED", "17"))


def test_the_sim_graph_survives_a_seeded_fuzz_and_nothing_unsafe_reaches_the_arm(tmp_path):
    report = fuzz_sim_graph(CASES, SEED, tmp_path)
    summary = report.summary()
    assert summary["cases"] == CASES and min(report.cases.values()) >= CASES // 8, summary
    assert report.commands_checked > 0, summary  # the monitor saw the graph drive the arm
    assert report.crashes == [], summary
    assert report.unsafe_commands == [], summary
    assert report.bad_replies == [], summary


@pytest.fixture(scope="module")
def robot():
    return load_robot_config(robot_config_path())


def test_the_monitor_flags_jumps_limits_and_non_finite_commands(robot):
    joints = robot.arm_joint_names
    here = [0.0, 0.5, 1.0, 0.5, 0.0]
    assert trajectory_violations(robot, joints, [0.1, 0.2], [here, [0.1, 0.6, 1.1, 0.6, 0.1]], here) == []
    # The hold of issue 17: every joint at its limit, 0.1 s after being near the middle.
    hold = trajectory_violations(robot, joints, [0.1], [[2.0, 2.0, 2.9, 2.8, 2.9]], here)
    assert any("leaves the limits" in p for p in hold) and any("moves" in p for p in hold)
    assert any("moves" in p for p in trajectory_violations(robot, joints, [0.1], [[1.0] + here[1:]], here))
    assert "finite" in trajectory_violations(robot, joints, [0.1], [[float("nan")] * 5], here)[0]
    assert "joints" in trajectory_violations(robot, joints[::-1], [0.1], [here], here)[0]
    assert gripper_violations(robot, [0.04]) == []
    assert gripper_violations(robot, [float("nan")]) and gripper_violations(robot, [0.5]) and \
        gripper_violations(robot, [0.01, 0.02])
