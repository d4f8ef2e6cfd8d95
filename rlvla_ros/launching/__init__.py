"""A pip-only runner for ROS 2 YAML launch files: the subset of `ros2 launch` this project's launch files use.

`parse_launch_file` evaluates a file into a `LaunchPlan` (the node processes with their final command lines);
`run_launch_file` runs them like `ros2 launch`. See `entities` for the supported tags and `substitutions` for the
supported substitutions; anything else fails with the file and line.
"""

from rlvla_ros.launching.errors import LaunchFileError
from rlvla_ros.launching.plan import LaunchPlan, ProcessSpec, launch_arguments, parse_launch_file
from rlvla_ros.launching.runner import run_launch_file

__all__ = ["LaunchFileError", "LaunchPlan", "ProcessSpec", "launch_arguments", "parse_launch_file",
           "run_launch_file"]
