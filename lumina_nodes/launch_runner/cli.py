"""`lumina_launch`: run a ROS 2 launch XML file like `ros2 launch`.

    lumina_launch <package> <file.launch.xml> [name:=value ...]
    lumina_launch <path/to/file.launch.xml> [name:=value ...]

Options: -s/--show-args, -p/--print, --log-dir DIR.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from .ament_index import find_launch_file_in_package
from .description import LaunchError, format_show_args
from .parser import describe_launch_arguments, parse_launch_file
from .runner import format_process, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lumina_launch", description="Run a ROS 2 launch XML file (a faithful stand-in for `ros2 launch`)."
    )
    p.add_argument(
        "-s",
        "--show-args",
        "--show-arguments",
        action="store_true",
        help="show the arguments that may be given to the launch file",
    )
    p.add_argument(
        "-p",
        "--print",
        "--print-description",
        action="store_true",
        help="print the resolved processes (command lines, generated parameter files) without running them",
    )
    p.add_argument(
        "--log-dir",
        metavar="DIR",
        help="directory for this run's log files (default: a new directory under "
        "$ROS_LOG_DIR, $ROS_HOME/log or ~/.ros/log)",
    )
    p.add_argument(
        "--launch-prefix",
        metavar="PREFIX",
        help='prefix command for every process (e.g. "gdb -ex run --args"), sets '
        "the 'launch-prefix' launch configuration like ros2 launch",
    )
    p.add_argument(
        "-n",
        "--noninteractive",
        action="store_true",
        help="accepted for compatibility with ros2 launch: lumina_launch always "
        "sends SIGINT to its children itself (they run in their own sessions)",
    )
    p.add_argument("package_name", help="name of the package, or path to a launch file")
    p.add_argument("launch_file_name", nargs="?", help="name of the launch file (when a package name is given)")
    p.add_argument(
        "launch_arguments",
        nargs="*",
        metavar="name:=value",
        help="arguments to the launch file, in '<name>:=<value>' form",
    )
    return p


def _ensure_ament_prefix_path():
    """The pip ROS wheels install an ament index under sys.prefix but do not export it."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        return
    marker = os.path.join(sys.prefix, "share", "ament_index", "resource_index", "packages")
    if os.path.isdir(marker):
        os.environ["AMENT_PREFIX_PATH"] = sys.prefix


def _split_args(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if ":=" not in item:
            raise ValueError(f"malformed launch argument '{item}', expected format '<name>:=<value>'")
        name, value = item.split(":=", 1)
        if not name:
            raise ValueError(f"malformed launch argument '{item}', expected format '<name>:=<value>'")
        out.append((name, value))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    _ensure_ament_prefix_path()
    rest = list(args.launch_arguments)
    try:
        if args.launch_file_name is None or ":=" in args.launch_file_name or (os.path.isfile(args.package_name)):
            # `lumina_launch <path> [args]`
            path = args.package_name
            if args.launch_file_name is not None:
                rest.insert(0, args.launch_file_name)
            if not os.path.isfile(path):
                raise LookupError(
                    f"launch file '{path}' does not exist (or, if this is a "
                    "package name, no launch file name was given)"
                )
        else:
            path = find_launch_file_in_package(args.package_name, args.launch_file_name)
        launch_args = _split_args(rest)
        if args.launch_prefix is not None:
            launch_args.insert(0, ("launch-prefix", args.launch_prefix))
    except (LookupError, ValueError) as e:
        print(f"lumina_launch: error: {e}", file=sys.stderr)
        return 2
    path = os.path.abspath(path)
    # -p only prints: the parameter files it generates (their contents are printed) go into a directory removed
    # afterwards, instead of piling up in /tmp as a run's do
    with tempfile.TemporaryDirectory(prefix="lumina_launch_print_") as print_dir:
        try:
            if args.show_args:
                sys.stdout.write(format_show_args(describe_launch_arguments(path)))
                return 0
            result = parse_launch_file(path, launch_args, params_dir=print_dir if args.print else None)
        except LaunchError as e:
            print(f"[ERROR] [launch]: {e}", file=sys.stderr)
            return 1
        for w in result.warnings:
            print(f"[WARNING] [launch]: {w}", file=sys.stderr)
        if args.print:
            for spec in result.processes:
                print(format_process(spec))
            return 0
    try:
        return run(result.processes, log_dir=args.log_dir)
    except OSError as e:
        print(f"[ERROR] [launch]: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
