"""``lumina param list|get|set|describe|dump``: ros2 param's verbs, flags and output formats, through the
parameter services every rclpy and rclcpp node offers (so they work on any ROS 2 node of the domain).

Unlike ros2 param set, a rejected set exits 1 (the node's reason is printed), and a whole number given for a
double parameter is sent as a double, as the user means it.
"""

from __future__ import annotations

import sys

import yaml

from .arguments import number
from .graph import CommandError, add_discovery_arguments, graph_session, run_verb

#: Seconds to wait for a node's parameter services to answer.
SERVICE_TIMEOUT_S = 5.0

TYPE_NAMES = {
    1: ("bool", "Boolean value is:", "bool_value"),
    2: ("integer", "Integer value is:", "integer_value"),
    3: ("double", "Double value is:", "double_value"),
    4: ("string", "String value is:", "string_value"),
    5: ("byte_array", "Byte values are:", "byte_array_value"),
    6: ("bool_array", "Boolean values are:", "bool_array_value"),
    7: ("integer_array", "Integer values are:", "integer_array_value"),
    8: ("double_array", "Double values are:", "double_array_value"),
    9: ("string_array", "String values are:", "string_array_value"),
}


def add_parser(commands) -> None:
    parser = commands.add_parser("param", help="parameters of nodes (ros2 param)", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name, help_text, function, node_required=True):
        sub = verbs.add_parser(name, help=help_text)
        sub.add_argument("node_name", nargs=None if node_required else "?", help="e.g. /synchronizer")
        add_discovery_arguments(sub, lookup=True)
        sub.add_argument(
            "--service-timeout",
            type=number(float, 0.1, 600.0),
            default=SERVICE_TIMEOUT_S,
            help=f"seconds to wait for the node's parameter services (0.1..600, default {SERVICE_TIMEOUT_S:g})",
        )
        sub.set_defaults(run=run_verb(function, f"param {name}"))
        return sub

    listing = verb("list", "the parameter names of one node, or of every node", _list, node_required=False)
    listing.add_argument("--param-prefixes", nargs="+", default=[], help="only parameters with these prefixes")
    listing.add_argument("--param-type", action="store_true", help="add each parameter's type")
    listing.add_argument("--filter", help="only names matching this regular expression")

    get = verb("get", "a parameter's value", _get)
    get.add_argument("parameter_name")
    get.add_argument("--hide-type", action="store_true", help="print the value only")

    put = verb("set", "set a parameter (the value is YAML: 5, 0.5, true, text, [1, 2])", _set)
    put.add_argument("parameter_name")
    put.add_argument("value")

    describe = verb("describe", "parameters' types, descriptions, ranges and read-only flags", _describe)
    describe.add_argument("parameter_names", nargs="+")

    verb("dump", "every parameter of a node as a parameter file (YAML) on stdout", _dump)


class ParameterClient:
    """The parameter services of one remote node, called synchronously by spinning the command's node."""

    def __init__(self, graph, node_name: str, timeout: float):
        from rclpy.parameter_client import AsyncParameterClient

        self.graph, self.node_name, self.timeout = graph, node_name, timeout
        self.client = AsyncParameterClient(graph.node, node_name)
        if not graph.wait_until(lambda: self.client.services_are_ready(), timeout):
            raise CommandError(f"the parameter services of {node_name} did not appear within {timeout:g} s")

    def _result(self, future, what):
        if self.graph.wait_until(future.done, self.timeout) is None:
            raise CommandError(f"{self.node_name} did not answer {what} within {self.timeout:g} s")
        if future.exception() is not None:
            raise CommandError(f"{what} of {self.node_name} failed: {future.exception()}")
        return future.result()

    def names(self, prefixes=()):
        return sorted(self._result(self.client.list_parameters(list(prefixes)), "list_parameters").result.names)

    def values(self, names):
        return self._result(self.client.get_parameters(list(names)), "get_parameters").values

    def descriptors(self, names):
        return self._result(self.client.describe_parameters(list(names)), "describe_parameters").descriptors

    def set(self, parameter):
        return self._result(self.client.set_parameters([parameter]), "set_parameters").results[0]


def plain_value(value):
    """A ParameterValue's Python value (lists for arrays), None when not set."""
    entry = TYPE_NAMES.get(value.type)
    if entry is None:
        return None
    result = getattr(value, entry[2])
    return list(result.tolist() if hasattr(result, "tolist") else result) if value.type >= 5 else result


def _client(graph, args) -> ParameterClient:
    return ParameterClient(graph, graph.require_node(args.node_name, args.timeout), args.service_timeout)


def _list(args):
    import re

    try:
        pattern = re.compile(args.filter) if args.filter else None
    except re.error as error:
        raise CommandError(f"--filter {args.filter!r}: not a regular expression ({error})") from None
    with graph_session(0.0 if args.node_name else args.spin_time) as graph:
        nodes = [graph.require_node(args.node_name, args.timeout)] if args.node_name else graph.node_names()
        for node_name in nodes:
            try:
                client = ParameterClient(graph, node_name, args.service_timeout)
                names = client.names(args.param_prefixes)
            except CommandError as error:
                if args.node_name:
                    raise
                print(f"{node_name}: {error}", file=sys.stderr)
                continue
            names = [n for n in names if pattern is None or pattern.match(n)]
            types = {}
            if args.param_type and names:
                types = {d.name: TYPE_NAMES.get(d.type, ("not set",))[0] for d in client.descriptors(names)}
            if not args.node_name and names:
                print(f"{node_name}:")
            for name in names:
                print(f"  {name} (type: {types[name]})" if args.param_type else f"  {name}")


def _get(args):
    with graph_session() as graph:
        values = _client(graph, args).values([args.parameter_name])
    if not values or values[0].type == 0:  # rclpy answers an undeclared name with an unset value
        raise CommandError(f"parameter '{args.parameter_name}' is not set on {args.node_name}")
    label = TYPE_NAMES[values[0].type][1]
    value = plain_value(values[0])
    print(value if args.hide_type else f"{label} {value}")


def _set(args):
    from rclpy.parameter import Parameter

    try:
        value = yaml.safe_load(args.value)
    except yaml.YAMLError:
        value = args.value
    with graph_session() as graph:
        client = _client(graph, args)
        if args.parameter_name not in client.names():
            raise CommandError(f"{args.node_name} has no parameter '{args.parameter_name}'")
        declared = client.descriptors([args.parameter_name])[0].type
        if declared == 3 and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif declared == 8 and isinstance(value, list):
            value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        elif declared == 4 and not isinstance(value, str):
            value = args.value  # a string parameter takes the text as given ('5' stays '5')
        try:
            parameter = Parameter(args.parameter_name, value=value)
        except TypeError as error:
            raise CommandError(f"{args.value!r} is not a parameter value: {error}") from None
        result = client.set(parameter)
    if not result.successful:
        raise CommandError(f"Setting parameter failed: {result.reason or 'no reason given'}")
    print("Set parameter successful")


def _describe(args):
    with graph_session() as graph:
        client = _client(graph, args)
        known = set(client.names())
        missing = [n for n in args.parameter_names if n not in known]
        if missing:
            raise CommandError(f"{args.node_name} has no parameter {', '.join(missing)}")
        descriptors = client.descriptors(args.parameter_names)
    for d in descriptors:
        print("Parameter name:", d.name)
        print("  Type:", TYPE_NAMES.get(d.type, ("not set",))[0])
        if d.description:
            print("  Description:", d.description)
        print("  Constraints:")
        if d.read_only:
            print("    Read only: true")
        ranges = list(d.floating_point_range) + list(d.integer_range)
        if ranges:
            print("    Min value:", ranges[0].from_value)
            print("    Max value:", ranges[0].to_value)
            if ranges[0].step:
                print("    Step:", ranges[0].step)
        if d.additional_constraints:
            print("    Additional constraints:", d.additional_constraints)


def _dump(args):
    with graph_session() as graph:
        client = _client(graph, args)
        full = graph.require_node(args.node_name, args.timeout)
        names = client.names()
        values = client.values(names) if names else []
    parameters = {}
    for name, value in zip(names, values, strict=True):
        # dotted names nest, as in a parameter file
        *groups, leaf = name.split(".")
        target = parameters
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = plain_value(value)
    print(yaml.safe_dump({full: {"ros__parameters": parameters}}, default_flow_style=False), end="")
