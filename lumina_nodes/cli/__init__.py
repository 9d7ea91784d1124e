"""The ``lumina`` command: ``lumina bag record|play|info|reindex`` (ros2 bag's verbs and flags where they exist)."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import bag, plot

    parser = argparse.ArgumentParser(
        prog="lumina",
        description="Lumina's command line. Where a real ROS 2 `ros2` is installed, `ros2 bag` works on the same bags.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bag.add_parser(commands)
    plot.add_parser(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error of the command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
