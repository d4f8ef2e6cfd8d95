"""`rlvla run <executable> [args...]`: start one of this package's node executables, like `ros2 run rlvla_ros`."""

import argparse
import os

from rlvla_ros.launching.executables import find_executable


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("run", help="run a node executable of rlvla_ros (like `ros2 run rlvla_ros`)")
    parser.add_argument("executable", help="node executable name, e.g. policy or sim_bridge")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="passed on, e.g. --ros-args -p rate_hz:=20")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        path = find_executable("rlvla_ros", args.executable)
    except LookupError as error:
        print(f"rlvla run: {error}")
        return 1
    os.execv(path, [path, *args.arguments])
