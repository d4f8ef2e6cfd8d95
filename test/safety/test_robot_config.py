"""Robot configs: the shipped files agree with the simulator, and mistakes are refused naming file and key."""

import numpy as np
import pytest
import yaml

from rlvla_ros.safety import load_robot_config, make_kinematics, mujoco_kinematics, robot_config_path
from rlvla_ros.sim.kinematics import EeDeltaConfig
from rlvla_ros.sim.tabletop_sim import (
    ARM_JOINT_LIMITS_RAD,
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAMES,
    GRIPPER_MAX_OPENING_M,
    HOME_ARM_Q,
    MODEL_PATH,
)


def write_variant(tmp_path, change):
    """A copy of tabletop_sim.yaml edited by `change(document)`; returns its path."""
    document = yaml.safe_load(robot_config_path("tabletop_sim").read_text())
    change(document)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_sim_robot_config_matches_the_simulator(sim_robot):
    sim_ee = EeDeltaConfig()
    assert sim_robot.arm_joint_names == ARM_JOINT_NAMES
    assert sim_robot.finger_joint_names == FINGER_JOINT_NAMES
    np.testing.assert_array_equal(sim_robot.joint_limits_rad, ARM_JOINT_LIMITS_RAD)
    assert sim_robot.gripper_max_opening_m == GRIPPER_MAX_OPENING_M
    assert (sim_robot.max_translation_m, sim_robot.max_yaw_rad) == (sim_ee.max_translation_m, sim_ee.max_yaw_rad)
    np.testing.assert_array_equal(sim_robot.workspace_min_m, sim_ee.workspace_min_m)
    np.testing.assert_array_equal(sim_robot.workspace_max_m, sim_ee.workspace_max_m)
    assert sim_robot.control_rate_hz == 10.0 and sim_robot.control_period_s == pytest.approx(0.1)
    assert sim_robot.kinematics.backend == "mujoco" and sim_robot.kinematics.model_path == MODEL_PATH
    assert not sim_robot.dry_run


def test_example_arm_is_a_tighter_dry_run_template(sim_robot):
    example = load_robot_config(robot_config_path("example_arm"))
    assert example.dry_run
    assert np.all(example.joint_limits_rad[:, 0] >= sim_robot.joint_limits_rad[:, 0])
    assert np.all(example.joint_limits_rad[:, 1] <= sim_robot.joint_limits_rad[:, 1])
    assert np.all(example.max_joint_velocity_rad_s <= sim_robot.max_joint_velocity_rad_s / 2)
    assert np.all(example.workspace_min_m >= sim_robot.workspace_min_m)
    assert np.all(example.workspace_max_m <= sim_robot.workspace_max_m)
    # the policy's actions must keep their meaning
    assert (example.max_translation_m, example.max_yaw_rad) == (sim_robot.max_translation_m, sim_robot.max_yaw_rad)
    assert np.all(HOME_ARM_Q >= example.joint_limits_rad[:, 0]) and np.all(HOME_ARM_Q <= example.joint_limits_rad[:, 1])


def test_mujoco_kinematics_put_the_home_pose_above_the_table(kinematics):
    pose = kinematics.forward(HOME_ARM_Q)
    np.testing.assert_allclose(pose.position_m, [0.42, 0.0, 0.2], atol=0.005)
    assert pose.yaw_rad == pytest.approx(0.0, abs=1e-6)


def test_missing_key_is_named_with_the_file(tmp_path):
    path = write_variant(tmp_path, lambda d: d["arm"].pop("max_velocity_rad_s"))
    with pytest.raises(ValueError, match=r"variant.yaml: missing key arm.max_velocity_rad_s"):
        load_robot_config(path)


def test_misspelt_key_is_refused(tmp_path):
    path = write_variant(tmp_path, lambda d: d["workspace"].update(tolerence_m=0.01))
    with pytest.raises(ValueError, match=r"unknown key workspace.tolerence_m"):
        load_robot_config(path)


@pytest.mark.parametrize("section, key, value, message", [
    ("arm", "position_limits_rad", [[1.0, -1.0]] * 5, "arm.position_limits_rad must be 5 finite"),
    ("arm", "max_velocity_rad_s", [1.0, 1.0], "arm.max_velocity_rad_s must be 5 positive numbers"),
    ("arm", "max_velocity_rad_s", [1.0, 1.0, 1.0, 1.0, "fast"], "arm.max_velocity_rad_s must be a list of numbers"),
    ("arm", "limit_margin_rad", 1.7, "arm.limit_margin_rad must be >= 0 and less than half"),
    ("arm", "joint_names", ["a", "a"], "arm.joint_names must be a list of distinct"),
    ("workspace", "min_m", [0.8, 0.0, 0.0], "workspace.min_m and workspace.max_m must be finite xyz corners"),
    ("ee_delta", "max_translation_m", "0.03", "ee_delta.max_translation_m must be a number"),
    ("gripper", "max_opening_m", -0.1, "gripper.max_opening_m must be > 0"),
    ("kinematics", "backend", "pybullet", "kinematics.backend must be one of"),
    ("kinematics", "model_path", "missing.xml", "kinematics.model_path: no MJCF file"),
])
def test_invalid_values_are_refused_naming_the_key(tmp_path, section, key, value, message):
    path = write_variant(tmp_path, lambda d: d[section].update({key: value}))
    with pytest.raises(ValueError, match=message):
        load_robot_config(path)


def test_dry_run_must_be_a_boolean(tmp_path):
    path = write_variant(tmp_path, lambda d: d.update(dry_run="yes"))
    with pytest.raises(ValueError, match="dry_run must be true or false, got 'yes'"):
        load_robot_config(path)


def test_model_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "arm.xml").write_text(MODEL_PATH.read_text())
    path = write_variant(tmp_path, lambda d: d["kinematics"].update(model_path="arm.xml"))
    assert load_robot_config(path).kinematics.model_path == tmp_path / "arm.xml"


def test_moveit_backend_loads_lazily_and_says_what_is_missing(tmp_path):
    def use_moveit(document):
        document["kinematics"] = {"backend": "moveit", "group": "arm", "tip_link": "tcp", "ik_timeout_s": 0.02}

    config = load_robot_config(write_variant(tmp_path, use_moveit))
    assert (config.kinematics.group, config.kinematics.tip_link) == ("arm", "tcp")
    with pytest.raises(ImportError, match="kinematics backend 'moveit' needs moveit_py"):
        make_kinematics(config)


def test_mujoco_backend_refuses_joint_names_it_cannot_drive(tmp_path):
    path = write_variant(tmp_path, lambda d: d["arm"].update(joint_names=["j1", "j2", "j3", "j4", "j5"]))
    with pytest.raises(ValueError, match="the mujoco kinematics backend drives the joints"):
        mujoco_kinematics(load_robot_config(path))


def test_unknown_robot_is_not_found():
    with pytest.raises(FileNotFoundError, match="no robot config config/robots/no_such_arm.yaml"):
        robot_config_path("no_such_arm")
