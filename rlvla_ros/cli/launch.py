"""`rlvla launch [<package>] <file.launch.yaml> [name:=value ...]`: the pip-only stand-in for `ros2 launch`.

With a package, the file is looked up in the package's share directory (`<share>/launch/<file>`), as `ros2 launch
rlvla_ros sim.launch.yaml` does; without one it is a path.

Options: `-s/--show-args` lists the file's launch arguments; `-p/--print` evaluates the file and prints each
process's command line and generated parameter files without starting anything.
"""

import argparse
import pathlib
import sys

from rlvla_ros.launching.plan import launch_arguments, parse_launch_file
from rlvla_ros.launching.runner import run_launch_file


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("launch", help="run a YAML launch file (like `ros2 launch`)", description=__doc__)
    parser.add_argument("launch_file", help="a YAML launch file path, or a package name followed by a file name")
    parser.add_argument("launch_arguments", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("-s", "--show-args", action="store_true", help="list the launch arguments and exit")
    parser.add_argument("-p", "--print", dest="print_plan", action="store_true",
                        help="print the processes the file resolves to and exit")
    parser.set_defaults(handler=run_command)


def resolve_launch_file(first: str, rest: list[str]) -> tuple[str, list[str]]:
    """(launch file path, name:=value items) from `<path> ...` or `<package> <file> ...`."""
    if rest and ":=" not in rest[0] and ":=" not in first and not pathlib.Path(first).is_file():
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            share = pathlib.Path(get_package_share_directory(first))
        except PackageNotFoundError:
            raise ValueError(f"'{first}' is neither a launch file nor a package on AMENT_PREFIX_PATH") from None
        matches = sorted(share.rglob(rest[0]))
        if not matches:
            raise ValueError(f"no launch file '{rest[0]}' in package '{first}' ({share})")
        return str(matches[0]), rest[1:]
    return first, rest


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
        path, items = resolve_launch_file(args.launch_file, args.launch_arguments)
        arguments = parse_launch_arguments(items)
        if args.show_args:
            _show_args(path)
            return 0
        if args.print_plan:
            plan = parse_launch_file(path, arguments)
            print(plan.describe())
            plan.cleanup()
            return 0
        return run_launch_file(path, arguments)
    except ValueError as error:  # LaunchFileError or a malformed name:=value
        print(f"[ERROR] [launch]: {error}", file=sys.stderr)
        return 1
