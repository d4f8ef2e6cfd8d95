"""Robot description for the safety layer: kinematics, joint and workspace limits, ``ee_delta`` scaling.

One YAML file per robot in ``config/robots/<robot>.yaml``. Every key is required and unknown keys are refused, so a
typo in a limit is an error at start-up rather than a silently ignored value; every error names the file and the
key. See ``config/robots/tabletop_sim.yaml`` for the annotated format.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlvla_ros.sim.kinematics import EeDeltaConfig
from rlvla_ros.sim.tabletop_sim import MODEL_PATH

KINEMATICS_BACKENDS = ("mujoco", "mjcf", "moveit")

_SECTIONS = {
    "": ("name", "control_rate_hz", "dry_run", "arm", "gripper", "workspace", "ee_delta", "kinematics"),
    "arm": ("joint_names", "position_limits_rad", "limit_margin_rad", "max_velocity_rad_s", "max_tracking_error_rad"),
    "gripper": ("joint_names", "max_opening_m"),
    "workspace": ("min_m", "max_m", "tolerance_m"),
    "ee_delta": ("max_translation_m", "max_yaw_rad"),
    "kinematics/mujoco": ("backend", "model_path"),
    "kinematics/mjcf": ("backend", "model_path", "model_joint_names", "tip_site"),
    "kinematics/moveit": ("backend", "group", "tip_link", "ik_timeout_s"),
}


@dataclass(frozen=True)
class KinematicsConfig:
    """Which forward/inverse kinematics the safety filter uses."""

    backend: str
    """``mujoco`` (our simulated arm's MJCF), ``mjcf`` (any arm's MJCF, e.g. a 7-DoF Panda) or ``moveit`` (moveit_py
    with the robot's MoveIt config)."""
    model_path: Path | None = None
    """mujoco, mjcf: the MJCF file."""
    model_joint_names: tuple[str, ...] = ()
    """mjcf: the model's joints for ``arm.joint_names``, in that order."""
    tip_site: str = ""
    """mjcf: the model's site whose pose is the end effector (z pointing down with the gripper)."""
    group: str = ""
    """moveit: planning group of the arm joints."""
    tip_link: str = ""
    """moveit: link whose pose is the end effector (z down, y along the finger closing axis at zero yaw)."""
    ik_timeout_s: float = 0.0
    """moveit: time budget of one IK solve."""

    def __post_init__(self) -> None:
        if self.backend not in KINEMATICS_BACKENDS:
            raise ValueError(f"kinematics.backend must be one of {KINEMATICS_BACKENDS}, got {self.backend!r}")
        if self.backend in ("mujoco", "mjcf") and (self.model_path is None or not Path(self.model_path).is_file()):
            raise ValueError(f"kinematics.model_path: no MJCF file at {self.model_path}")
        if self.backend == "mjcf" and (not self.model_joint_names or not self.tip_site):
            raise ValueError("kinematics.model_joint_names and kinematics.tip_site must name the model's arm joints "
                             "and end-effector site")
        if self.backend == "moveit":
            if not self.group or not self.tip_link:
                raise ValueError("kinematics.group and kinematics.tip_link must name the arm group and its tip link")
            if not self.ik_timeout_s > 0:
                raise ValueError(f"kinematics.ik_timeout_s must be > 0, got {self.ik_timeout_s}")


@dataclass(frozen=True)
class RobotConfig:
    """Limits and kinematics of one arm, as read from ``config/robots/<robot>.yaml`` (YAML key in brackets)."""

    name: str
    """Robot name [name]."""
    control_rate_hz: float
    """Rate at which ``ee_delta`` actions are executed [control_rate_hz]."""
    dry_run: bool
    """Force the safety filter into dry run (compute and log, command nothing) whatever its parameter says [dry_run]."""
    arm_joint_names: tuple[str, ...]
    """Arm joints, base to tip, as in ``joint_states`` and the trajectory controller [arm.joint_names]."""
    joint_limits_rad: np.ndarray
    """(N, 2) lower/upper position limit per arm joint [arm.position_limits_rad]."""
    joint_limit_margin_rad: float
    """Commanded positions stay this far inside the limits [arm.limit_margin_rad]."""
    max_joint_velocity_rad_s: np.ndarray
    """(N,) largest commanded joint speed [arm.max_velocity_rad_s]."""
    max_tracking_error_rad: float
    """Largest gap between the last set point and the measured joints for the next action to build on the set
    point rather than on the measured joints [arm.max_tracking_error_rad]."""
    finger_joint_names: tuple[str, ...]
    """Gripper joints in ``joint_states`` [gripper.joint_names]."""
    gripper_max_opening_m: float
    """Widest gap between the fingers, commanded for an open gripper [gripper.max_opening_m]."""
    workspace_min_m: np.ndarray
    """(3,) lower corner of the box the end-effector target is clipped to, robot base frame [workspace.min_m]."""
    workspace_max_m: np.ndarray
    """(3,) upper corner of that box [workspace.max_m]."""
    workspace_tolerance_m: float
    """How far outside the box an IK solution may leave the end effector before the command is refused
    [workspace.tolerance_m]."""
    max_translation_m: float
    """End-effector displacement per control step for a translation action of 1 [ee_delta.max_translation_m]."""
    max_yaw_rad: float
    """Yaw change per control step for a ``dyaw`` of 1 [ee_delta.max_yaw_rad]."""
    kinematics: KinematicsConfig
    """Kinematics backend [kinematics]."""

    def __post_init__(self) -> None:
        n = len(self.arm_joint_names)
        if not self.name:
            raise ValueError("name must not be empty")
        if not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {self.control_rate_hz}")
        if n == 0:
            raise ValueError("arm.joint_names must list at least one joint")
        limits = self.joint_limits_rad
        if limits.shape != (n, 2) or not np.isfinite(limits).all() or not (limits[:, 0] < limits[:, 1]).all():
            raise ValueError(f"arm.position_limits_rad must be {n} finite [lower, upper] pairs with lower < upper, "
                             f"got {limits.tolist()}")
        margin = self.joint_limit_margin_rad
        if not 0 <= margin < 0.5 * float(np.min(limits[:, 1] - limits[:, 0])):
            raise ValueError(f"arm.limit_margin_rad must be >= 0 and less than half of every joint's range, "
                             f"got {margin}")
        velocity = self.max_joint_velocity_rad_s
        if velocity.shape != (n,) or not np.isfinite(velocity).all() or not (velocity > 0).all():
            raise ValueError(f"arm.max_velocity_rad_s must be {n} positive numbers, got {velocity.tolist()}")
        if not self.max_tracking_error_rad > 0:
            raise ValueError(f"arm.max_tracking_error_rad must be > 0, got {self.max_tracking_error_rad}")
        if not self.gripper_max_opening_m > 0:
            raise ValueError(f"gripper.max_opening_m must be > 0, got {self.gripper_max_opening_m}")
        low, high = self.workspace_min_m, self.workspace_max_m
        if low.shape != (3,) or high.shape != (3,) or not np.isfinite([low, high]).all() or not (low < high).all():
            raise ValueError(f"workspace.min_m and workspace.max_m must be finite xyz corners with min < max, "
                             f"got {low.tolist()} and {high.tolist()}")
        if not self.workspace_tolerance_m >= 0:
            raise ValueError(f"workspace.tolerance_m must be >= 0, got {self.workspace_tolerance_m}")
        model_joints = self.kinematics.model_joint_names
        if self.kinematics.backend == "mjcf" and len(model_joints) != n:
            raise ValueError(f"kinematics.model_joint_names lists {len(model_joints)} joints for the {n} of "
                             "arm.joint_names")
        if not self.max_translation_m > 0 or not self.max_yaw_rad > 0:
            raise ValueError(f"ee_delta.max_translation_m and ee_delta.max_yaw_rad must be > 0, "
                             f"got {self.max_translation_m} and {self.max_yaw_rad}")

    @property
    def control_period_s(self) -> float:
        """Duration of one control step."""
        return 1.0 / self.control_rate_hz

    def ee_delta_config(self) -> EeDeltaConfig:
        """The same scaling and workspace as the simulator's :class:`EeDeltaConfig`."""
        return EeDeltaConfig(self.max_translation_m, self.max_yaw_rad, self.workspace_min_m.copy(),
                             self.workspace_max_m.copy())


def load_robot_config(path: str | Path) -> RobotConfig:
    """Read and validate a robot YAML file; ValueError naming the file and the offending key."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
        return _parse(document, path.parent)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: {error}") from None


def robot_config_path(robot: str = "tabletop_sim") -> Path:
    """``config/robots/<robot>.yaml`` from the installed package share directory, else from the source tree."""
    relative = Path("config") / "robots" / f"{robot}.yaml"
    roots = (_installed_share_dir(), Path(__file__).resolve().parents[2])
    candidates = [root / relative for root in roots if root is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no robot config {relative} in {', '.join(str(c.parent) for c in candidates)}")


def _installed_share_dir() -> Path | None:
    """``share/rlvla_ros`` of the installed package, or None outside a ROS environment."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory("rlvla_ros"))
    except PackageNotFoundError:
        return None


def _parse(document: Any, base_dir: Path) -> RobotConfig:
    root = _section(document, "")
    arm = _section(root["arm"], "arm")
    gripper = _section(root["gripper"], "gripper")
    workspace = _section(root["workspace"], "workspace")
    ee_delta = _section(root["ee_delta"], "ee_delta")
    return RobotConfig(
        name=_string(root["name"], "name"),
        control_rate_hz=_number(root["control_rate_hz"], "control_rate_hz"),
        dry_run=_flag(root["dry_run"], "dry_run"),
        arm_joint_names=_names(arm["joint_names"], "arm.joint_names"),
        joint_limits_rad=_numbers(arm["position_limits_rad"], "arm.position_limits_rad"),
        joint_limit_margin_rad=_number(arm["limit_margin_rad"], "arm.limit_margin_rad"),
        max_joint_velocity_rad_s=_numbers(arm["max_velocity_rad_s"], "arm.max_velocity_rad_s"),
        max_tracking_error_rad=_number(arm["max_tracking_error_rad"], "arm.max_tracking_error_rad"),
        finger_joint_names=_names(gripper["joint_names"], "gripper.joint_names"),
        gripper_max_opening_m=_number(gripper["max_opening_m"], "gripper.max_opening_m"),
        workspace_min_m=_numbers(workspace["min_m"], "workspace.min_m"),
        workspace_max_m=_numbers(workspace["max_m"], "workspace.max_m"),
        workspace_tolerance_m=_number(workspace["tolerance_m"], "workspace.tolerance_m"),
        max_translation_m=_number(ee_delta["max_translation_m"], "ee_delta.max_translation_m"),
        max_yaw_rad=_number(ee_delta["max_yaw_rad"], "ee_delta.max_yaw_rad"),
        kinematics=_kinematics(root["kinematics"], base_dir),
    )


def _kinematics(value: Any, base_dir: Path) -> KinematicsConfig:
    backend = value.get("backend") if isinstance(value, dict) else None
    if backend not in KINEMATICS_BACKENDS:
        raise ValueError(f"kinematics.backend must be one of {KINEMATICS_BACKENDS}, got {backend!r}")
    section = _section(value, "kinematics", schema=f"kinematics/{backend}")
    if backend == "moveit":
        return KinematicsConfig(backend, group=_string(section["group"], "kinematics.group"),
                                tip_link=_string(section["tip_link"], "kinematics.tip_link"),
                                ik_timeout_s=_number(section["ik_timeout_s"], "kinematics.ik_timeout_s"))
    if backend == "mjcf":
        return KinematicsConfig(
            backend, model_path=_model_file(_string(section["model_path"], "kinematics.model_path"), base_dir),
            model_joint_names=_names(section["model_joint_names"], "kinematics.model_joint_names"),
            tip_site=_string(section["tip_site"], "kinematics.tip_site"))
    # null means the MJCF that ships with rlvla_ros.sim, which has no stable path relative to an installed config.
    model_path = section["model_path"]
    if model_path is None:
        return KinematicsConfig(backend, model_path=MODEL_PATH)
    return KinematicsConfig(backend, model_path=base_dir / _string(model_path, "kinematics.model_path"))


def _model_file(value: str, base_dir: Path) -> Path:
    """``<python package>:<path inside it>`` (e.g. ``gym_hil:assets/scene.xml``), else a path relative to the
    config file's folder."""
    package, separator, inside = value.partition(":")
    if not separator or "/" in package:
        return base_dir / value
    try:
        return Path(str(importlib.resources.files(package).joinpath(inside)))
    except ModuleNotFoundError:
        raise ValueError(f"kinematics.model_path: no Python package {package!r} for {value!r}") from None


def _section(value: Any, name: str, schema: str | None = None) -> dict[str, Any]:
    where = f"section '{name}'" if name else "the document"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping, got {type(value).__name__}")
    expected = _SECTIONS[name if schema is None else schema]
    prefix = f"{name}." if name else ""
    missing = [f"{prefix}{key}" for key in expected if key not in value]
    unknown = [f"{prefix}{key}" for key in value if key not in expected]
    if missing:
        raise ValueError(f"missing key {', '.join(missing)}")
    if unknown:
        raise ValueError(f"unknown key {', '.join(map(str, unknown))} (expected {', '.join(expected)} in {where})")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def _numbers(value: Any, key: str) -> np.ndarray:
    """A list (or list of equal-length lists) of numbers as a float array."""
    rows = value if isinstance(value, list) and all(isinstance(v, list) for v in value) else [value]
    if not all(isinstance(row, list) for row in rows) or len({len(row) for row in rows}) > 1 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for row in rows for v in row):
        raise ValueError(f"{key} must be a list of numbers (or of equal-length lists of numbers), got {value!r}")
    return np.array(value, dtype=np.float64)


def _names(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value):
        raise ValueError(f"{key} must be a list of distinct non-empty names, got {value!r}")
    return tuple(value)
