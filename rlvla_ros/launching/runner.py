"""`run_launch_file`: evaluate a YAML launch file and supervise its processes until they are done."""

import datetime
import os
import socket
import sys
from typing import TextIO

from rlvla_ros.launching.plan import parse_launch_file
from rlvla_ros.launching.supervisor import Supervisor


def default_log_dir() -> str:
    """Where ros2 launch logs: `$ROS_LOG_DIR`, else `$ROS_HOME/log`, else `~/.ros/log`, then a per-run folder."""
    base = os.environ.get("ROS_LOG_DIR") or os.path.join(
        os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros"), "log")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
    return os.path.join(base, f"{stamp}-{socket.gethostname()}-{os.getpid()}")


def run_launch_file(path: str, arguments: dict[str, str] | None = None, *, screen: TextIO = sys.stdout,
                    log_dir: str | None = None) -> int:
    """Launch the YAML launch file at `path` with `arguments`; returns when all its processes have exited.

    Exit code: 0, or 1 if a process without `respawn` exited with an error before shutdown was requested.
    Raises LaunchFileError (naming file and line) before starting anything if the file cannot be evaluated.
    """
    plan = parse_launch_file(path, arguments)
    try:
        log_dir = log_dir or default_log_dir()
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "launch.log"), "a", encoding="utf-8") as log:
            screen.write(f"[INFO] [launch]: All log files can be found below {log_dir}\n")
            for warning in plan.warnings:
                screen.write(f"[WARNING] [launch]: {warning}\n")
            screen.flush()
            return Supervisor(plan.processes, screen, log).run()
    finally:
        plan.cleanup()
