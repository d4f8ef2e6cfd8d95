"""`rlvla doctor`: check that this environment can run rlvla_ros and say what to fix when it cannot."""

import argparse
import dataclasses
import importlib
import os
import pathlib
from collections.abc import Callable

INTERFACE_KINDS = ("msg", "srv", "action")


@dataclasses.dataclass
class CheckResult:
    """Outcome of one check: `detail` says what was found, or what is missing and how to fix it."""

    name: str
    ok: bool
    detail: str


def check_rclpy() -> str:
    """rclpy imports, a context starts and a node is created on the configured RMW."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("rlvla_doctor", context=context)
        node.destroy_node()
        rmw = rclpy.get_rmw_implementation_identifier()
    finally:
        rclpy.shutdown(context=context)
    return f"rclpy {_version('rclpy')}, ROS_DISTRO={os.environ.get('ROS_DISTRO', 'unset')}, RMW {rmw}"


def check_interfaces() -> str:
    """Every msg/srv/action installed in the package's share directory imports as a Python type."""
    from ament_index_python.packages import get_package_share_directory

    share = pathlib.Path(get_package_share_directory("rlvla_ros"))
    counts = []
    for kind in INTERFACE_KINDS:
        names = sorted(path.stem for path in (share / kind).glob(f"*.{kind}"))
        module = importlib.import_module(f"rlvla_ros.{kind}")
        for name in names:
            getattr(module, name)
        counts.append(f"{len(names)} {kind}")
    return ", ".join(counts) + f" (share: {share})"


def check_torch() -> str:
    """torch imports; a CUDA build on a machine without a GPU is worth knowing about."""
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    return f"torch {torch.__version__} ({build}), {torch.get_num_threads()} threads"


def check_mujoco() -> str:
    """MuJoCo imports and renders offscreen through the configured backend (MUJOCO_GL)."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 1'/><geom type='sphere' size='0.1'/></worldbody></mujoco>")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 16, 16) as renderer:
        renderer.update_scene(data)
        image = renderer.render()
    if image.shape != (16, 16, 3):
        raise RuntimeError(f"offscreen render returned shape {image.shape}")
    return f"mujoco {mujoco.__version__}, offscreen rendering via MUJOCO_GL={os.environ.get('MUJOCO_GL', 'default')}"


CHECKS: dict[str, Callable[[], str]] = {
    "rclpy + RMW": check_rclpy,
    "rlvla_ros interfaces": check_interfaces,
    "torch": check_torch,
    "mujoco render": check_mujoco,
}

HINTS = {
    "rclpy + RMW": "run `make setup` then `. .venv/bin/activate` (pip-only), or `source /opt/ros/<distro>/setup.bash`",
    "rlvla_ros interfaces": "build them: `make setup` (pip-only) or `colcon build` + `source install/setup.bash`",
    "torch": "pip install torch==2.13.0",
    "mujoco render": "pip install mujoco; headless rendering needs EGL (libegl1) or OSMesa: set MUJOCO_GL=egl|osmesa",
}


def run_checks() -> list[CheckResult]:
    """Run every check; a check that raises fails with the error and a hint."""
    results = []
    for name, check in CHECKS.items():
        try:
            results.append(CheckResult(name, True, check()))
        except Exception as error:  # noqa: BLE001 - every failure is reported, none is fatal to the report
            results.append(CheckResult(name, False, f"{type(error).__name__}: {error}. Fix: {HINTS[name]}"))
    return results


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(version unknown)"


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("doctor", help="check the environment (ROS 2, interfaces, torch, MuJoCo)")
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    results = run_checks()
    width = max(len(result.name) for result in results)
    for result in results:
        print(f"[{'ok' if result.ok else 'FAIL':>4}] {result.name:<{width}}  {result.detail}")
    failed = [result.name for result in results if not result.ok]
    if failed:
        print(f"rlvla doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
        return 1
    print("rlvla doctor: all checks passed")
    return 0
