"""``lumina service list|type|call``: ros2 service's verbs, flags and output, on any ROS 2 graph of the domain."""

from __future__ import annotations

import time

from .arguments import number
from .graph import CommandError, Graph, add_discovery_arguments, add_list_verb, graph_session, run_verb
from .messages import checked, fill, interface_class, parse_values


def add_parser(commands) -> None:
    parser = commands.add_parser("service", help="services of the ROS graph (ros2 service)", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add_list_verb(verbs, "service", Graph.services)

    kind = verbs.add_parser("type", help="a service's type")
    kind.add_argument("service_name")
    add_discovery_arguments(kind, lookup=True)
    kind.set_defaults(run=run_verb(_type, "service type"))

    call = verbs.add_parser("call", help="call a service with a request given as YAML")
    call.add_argument("service_name", help="e.g. /plaza_1/jewel_driver/inject_disruption")
    call.add_argument("service_type", nargs="?", help="e.g. lumina_nodes/srv/SetRhythm (default: discovered)")
    call.add_argument("values", nargs="?", default="{}", help="the request's fields as a YAML mapping (default {})")
    call.add_argument(
        "-r", "--rate", type=number(float, 0.001, 1000.0), help="repeat the call this many times a second"
    )
    call.add_argument(
        "--response-timeout",
        type=number(float, 0.001, 3600.0),
        default=10.0,
        help="seconds to wait for the response (error after it; default 10)",
    )
    add_discovery_arguments(call, lookup=True)
    call.set_defaults(run=run_verb(_call, "service call"))


def _service_types(graph, name, timeout):
    types = graph.wait_until(lambda: graph.services(include_hidden=True).get(name), timeout)
    if not types:
        raise CommandError(f"service '{name}' not found (waited {timeout:g} s; `lumina service list` shows them)")
    return types


def _type(args):
    with graph_session() as graph:
        print(*_service_types(graph, args.service_name, args.timeout), sep="\n")


def _call(args):
    service_type, values = args.service_type, args.values
    if service_type and service_type.lstrip().startswith("{"):  # `call NAME '{a: 1}'`, the type left out
        service_type, values = None, service_type
    with graph_session() as graph:
        if not service_type:
            types = _service_types(graph, args.service_name, args.timeout)
            if len(types) > 1:
                raise CommandError(f"service '{args.service_name}' has several types {types}: name one")
            service_type = types[0]
        service_class = interface_class(service_type)
        if not hasattr(service_class, "Request"):
            raise CommandError(f"{service_type} is not a service type")
        request = fill(checked(service_class.Request), parse_values(values))
        client = graph.node.create_client(service_class, args.service_name)
        if not graph.wait_until(client.service_is_ready, args.timeout):
            raise CommandError(f"service '{args.service_name}' is not available (waited {args.timeout:g} s)")
        while True:
            started = time.monotonic()
            print(f"requester: making request: {request!r}\n")
            future = client.call_async(request)
            if graph.wait_until(future.done, args.response_timeout) is None:
                raise CommandError(f"no response from {args.service_name} within {args.response_timeout:g} s")
            if future.exception() is not None:
                raise CommandError(f"the call failed: {future.exception()}")
            print(f"response:\n{future.result()!r}\n", flush=True)
            if args.rate is None:
                return
            graph.spin_for(max(0.0, started + 1.0 / args.rate - time.monotonic()))
