"""What the graph verbs (node, topic, param, service) share: one hidden rclpy node on the domain, waits for
discovery, and errors that end the command with a message.

There is no ros2 daemon in a pip-only install, so every command discovers the graph itself (ros2cli's
``--no-daemon`` path): ``--spin-time`` is how long a listing waits for the graph to fill in; a lookup of one
name (a node, a topic, a service) waits up to ``--timeout`` for it to appear.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from .arguments import number

#: Defaults of the discovery waits, s. A loaded 2-core machine took over 1 s to discover a whole city (CI).
SPIN_TIME_S = 2.0
LOOKUP_TIMEOUT_S = 5.0


class CommandError(Exception):
    """Ends a graph verb: the message goes to stderr and the command exits 1."""


def add_discovery_arguments(parser: argparse.ArgumentParser, lookup: bool = False) -> None:
    parser.add_argument(
        "--spin-time",
        type=number(float, 0.0, 60.0),
        default=SPIN_TIME_S,
        help=f"seconds to wait for discovery before answering (0..60, default {SPIN_TIME_S:g})",
    )
    if lookup:
        parser.add_argument(
            "--timeout",
            type=number(float, 0.0, 3600.0),
            default=LOOKUP_TIMEOUT_S,
            help="seconds to wait for the named node, topic or service to appear "
            f"(0..3600, default {LOOKUP_TIMEOUT_S:g})",
        )


def run_verb(function, verb: str):
    """An argparse ``run`` callable: the verb's function with errors and Ctrl-C turned into exit codes."""

    def run(args) -> int:
        try:
            return function(args) or 0
        except CommandError as error:
            print(f"lumina {verb}: error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # the way to end echo, hz and a repeating pub or call
            return 0

    return run


def add_list_verb(verbs, noun: str, names_and_types) -> None:
    """``list [-t] [-c] [--include-hidden-<noun>s]``, as ros2 topic list and ros2 service list: ``names_and_types``
    is the Graph method giving {name: [types]} (Graph.topics or Graph.services)."""
    listing = verbs.add_parser("list", help=f"the {noun}s, one a line")
    listing.add_argument("-t", "--show-types", action="store_true", help=f"add each {noun}'s type")
    listing.add_argument(
        "-c", f"--count-{noun}s", dest="count", action="store_true", help=f"only print the number of {noun}s"
    )
    listing.add_argument(
        f"--include-hidden-{noun}s", dest="hidden", action="store_true", help=f"show hidden {noun}s as well"
    )
    add_discovery_arguments(listing)

    def run(args):
        with graph_session(args.spin_time) as graph:
            found = names_and_types(graph, args.hidden)
        if args.count:
            print(len(found))
            return
        for name, types in found.items():
            print(f"{name} [{', '.join(types)}]" if args.show_types else name)

    listing.set_defaults(run=run_verb(run, f"{noun} list"))


def absolute_name(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def is_hidden(name: str) -> bool:
    """ros2cli's rule: a name with a part that starts with '_' is hidden."""
    return any(part.startswith("_") for part in name.split("/"))


class Graph:
    """A hidden node of this command on the domain, with the graph queries the verbs need."""

    def __init__(self, node, executor):
        self.node = node
        self.executor = executor

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def wait_until(self, predicate, timeout: float):
        """Spin until ``predicate()`` returns something truthy (returned), or None after ``timeout`` s."""
        end = time.monotonic() + timeout
        while True:
            found = predicate()
            if found or time.monotonic() >= end:
                return found or None
            self.executor.spin_once(timeout_sec=0.05)

    def node_names(self, include_hidden: bool = False) -> list[str]:
        names = {(namespace.rstrip("/") + "/" + name) for name, namespace in self.node.get_node_names_and_namespaces()}
        return sorted(n for n in names if include_hidden or not is_hidden(n))

    def topics(self, include_hidden: bool = False) -> dict[str, list[str]]:
        return {
            name: types
            for name, types in sorted(self.node.get_topic_names_and_types())
            if include_hidden or not is_hidden(name)
        }

    def services(self, include_hidden: bool = False) -> dict[str, list[str]]:
        return {
            name: types
            for name, types in sorted(self.node.get_service_names_and_types())
            if include_hidden or not is_hidden(name)
        }

    def require_node(self, name: str, timeout: float) -> str:
        full = absolute_name(name)
        if not self.wait_until(lambda: full in self.node_names(include_hidden=True), timeout):
            raise CommandError(f"node '{full}' not found (waited {timeout:g} s; `lumina node list` shows the nodes)")
        return full

    def require_topic_type(self, topic: str, timeout: float, type_name: str | None = None) -> str:
        """The type of ``topic`` (waiting for it to appear), or ``type_name`` when given."""
        if type_name:
            return normalize_type(type_name)
        types = self.wait_until(lambda: self.topics(include_hidden=True).get(topic), timeout)
        if not types:
            raise CommandError(
                f"topic '{topic}' not found (waited {timeout:g} s; `lumina topic list` shows the topics, "
                "or name its type after the topic)"
            )
        if len(types) > 1:
            raise CommandError(f"topic '{topic}' has several types {types}: name the one to use after the topic")
        return types[0]


def normalize_type(type_name: str) -> str:
    """'pkg/Type' -> 'pkg/msg/Type'; 'pkg/msg/Type' and 'pkg/srv/Type' unchanged."""
    from lumina_nodes.bag.definitions import split_type

    try:
        return "/".join(split_type(type_name))
    except ValueError as error:
        raise CommandError(str(error)) from None


@contextlib.contextmanager
def graph_session(spin_time: float = 0.0):
    """A Graph for the duration of a command; discovery has had ``spin_time`` s when it is handed over."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(
        f"_lumina_cli_{os.getpid()}", context=context, enable_rosout=False, start_parameter_services=False
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        graph = Graph(node, executor)
        graph.spin_for(spin_time)
        yield graph
    finally:
        executor.shutdown(timeout_sec=0.5)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
