"""`rlvla launch <file.launch.yaml> [name:=value ...]`: the pip-only stand-in for `ros2 launch`.

Options: `-s/--show-args` lists the file's launch arguments; `-p/--print` evaluates the file and prints each
process's command line and generated parameter files without starting anything.
"""

import argparse
import sys

from rlvla_ros.launching.plan import launch_arguments, parse_launch_file
from rlvla_ros.launching.runner import run_launch_file


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("launch", help="run a YAML launch file (like `ros2 launch`)", description=__doc__)
    parser.add_argument("launch_file", help="YAML launch file, e.g. launch/sim.launch.yaml")
    parser.add_argument("launch_arguments", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("-s", "--show-args", action="store_true", help="list the launch arguments and exit")
    parser.add_argument("-p", "--print", dest="print_plan", action="store_true",
                        help="print the processes the file resolves to and exit")
    parser.set_defaults(handler=run_command)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """`name:=value` items as a dict; ValueError naming a malformed item."""
    arguments = {}
    for item in items:
        name, separator, value = item.partition(":=")
        if not separator or not name:
            raise ValueError(f"malformed launch argument '{item}', expected format '<name>:=<value>'")
        arguments[name] = value
    return arguments


def _show_args(path: str) -> None:
    arguments = launch_arguments(path)
    if not arguments:
        print("\n  No arguments.\n")
        return
    print("Arguments (pass arguments as '<name>:=<value>'):")
    for argument, conditional in arguments:
        print(f"\n    '{argument.name}':" + ("  (conditionally included)" if conditional else ""))
        for line in argument.description.splitlines():
            print(f"        {line}")
        if argument.default is not None:
            print(f"        (default: '{argument.default.source}')")
        if argument.choices is not None:
            print(f"        (choices: {', '.join(argument.choices)})")
    print()


def run_command(args: argparse.Namespace) -> int:
    """Handle `rlvla launch`; returns the exit code."""
    try:
        arguments = parse_launch_arguments(args.launch_arguments)
        if args.show_args:
            _show_args(args.launch_file)
            return 0
        if args.print_plan:
            plan = parse_launch_file(args.launch_file, arguments)
            print(plan.describe())
            plan.cleanup()
            return 0
        return run_launch_file(args.launch_file, arguments)
    except ValueError as error:  # LaunchFileError or a malformed name:=value
        print(f"[ERROR] [launch]: {error}", file=sys.stderr)
        return 1
