"""The ``lumina`` command: ``lumina bag record|play|info|reindex`` and the graph verbs ``lumina node|topic|param|
service|interface`` (ros2 bag's and ros2cli's verbs, flags and output formats where they exist), for a pip-only
install that has no ``ros2``."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import bag, interface, node, param, plot, service, topic, view

    parser = argparse.ArgumentParser(
        prog="lumina",
        description="Lumina's command line. Where a real ROS 2 `ros2` is installed, use it: `ros2 bag` works on the "
        "same bags and `ros2 topic|node|param|service` on the same graph; these verbs exist so a pip-only user is "
        "not blind.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bag.add_parser(commands)
    for verbs in (node, topic, param, service, interface, view):
        verbs.add_parser(commands)
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
