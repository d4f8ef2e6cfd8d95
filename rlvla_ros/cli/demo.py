"""`rlvla demo`: the main job, headless: sim graph, expert bags, BC, online RL, test-time steering, results table.

The stages run in order; a stage whose parts are not built yet is reported as missing, with what it needs.
"""

import argparse
import importlib.util

from rlvla_ros.cli.doctor import run_checks

# Each stage of the main job and the modules it runs on.
STAGES = [
    ("bring up the simulated graph", ["rlvla_ros.sim", "rlvla_ros.nodes.sim_bridge", "rlvla_ros.launching"]),
    ("record scripted-expert demonstrations to a bag", ["rlvla_ros.nodes.recorder", "rlvla_ros.data"]),
    ("train BC from the bag through the learner service", ["rlvla_ros.nodes.learner", "rlvla_ros.algorithms"]),
    ("run online RL through the learner service", ["rlvla_ros.algorithms"]),
    ("evaluate with test-time steering", ["rlvla_ros.nodes.policy"]),
]


def missing_modules(modules: list[str]) -> list[str]:
    """The modules of `modules` that are not importable in this installation."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(module)
    return missing


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("demo", help="run the main job end to end (sim, BC, RL, steering)")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    failed = [result for result in run_checks() if not result.ok]
    for result in failed:
        print(f"environment: {result.name} failed: {result.detail}")
    if failed:
        return 1
    print("environment: ROS 2, interfaces, torch and MuJoCo are ready (rlvla doctor)")
    missing_stages = 0
    for title, modules in STAGES:
        missing = missing_modules(modules)
        missing_stages += bool(missing)
        print(f"stage '{title}': " + (f"missing {', '.join(missing)}" if missing else "available"))
    if missing_stages:
        print(f"rlvla demo: {missing_stages} of {len(STAGES)} stages are not built yet; nothing was trained")
        return 1
    return 0
