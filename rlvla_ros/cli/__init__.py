"""The `rlvla` command: one entry point whose subcommands live in the modules of this package."""

import argparse

from rlvla_ros.cli import bench, dataset, demo, doctor, finetune, launch, run


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per subcommand module."""
    parser = argparse.ArgumentParser(prog="rlvla", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (doctor, run, launch, finetune, bench, dataset, demo):
        module.add_parser(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)
