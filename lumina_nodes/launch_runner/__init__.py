"""Lumina launch runner: runs standard ROS 2 launch XML files without `ros2 launch`.

- :func:`parse_launch_file` resolves a launch file into :class:`ProcessSpec` objects (plain data).
- :func:`run` supervises them (output prefixing, log files, respawn, required nodes, shutdown
  escalation SIGINT -> SIGTERM -> SIGKILL per process group, no orphans).
"""

from .ament_index import find_launch_file_in_package
from .description import LaunchArgument, LaunchError, LaunchResult, ParamFile, ProcessSpec, format_show_args
from .parser import describe_launch_arguments, parse_launch_file
from .runner import run

__all__ = [
    "LaunchArgument",
    "LaunchError",
    "LaunchResult",
    "ParamFile",
    "ProcessSpec",
    "describe_launch_arguments",
    "find_launch_file_in_package",
    "format_show_args",
    "parse_launch_file",
    "run",
]
