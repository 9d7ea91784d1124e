"""``lumina node list|info``: ros2 node's verbs, flags and output, on any ROS 2 graph of the domain."""

from __future__ import annotations

from .graph import add_discovery_arguments, graph_session, is_hidden, run_verb


def add_parser(commands) -> None:
    parser = commands.add_parser("node", help="nodes of the ROS graph (ros2 node)", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    listing = verbs.add_parser("list", help="the running nodes, one full name a line")
    listing.add_argument("-a", "--all", action="store_true", help="show hidden nodes as well")
    listing.add_argument("-c", "--count-nodes", action="store_true", help="only print the number of nodes")
    add_discovery_arguments(listing)
    listing.set_defaults(run=run_verb(_list, "node list"))

    info = verbs.add_parser("info", help="a node's subscribers, publishers, services and actions")
    info.add_argument("node_name", help="fully qualified node name, e.g. /synchronizer")
    info.add_argument("--include-hidden", action="store_true", help="show hidden topics and services as well")
    add_discovery_arguments(info, lookup=True)
    info.set_defaults(run=run_verb(_info, "node info"))


def _list(args):
    with graph_session(args.spin_time) as graph:
        names = graph.node_names(include_hidden=args.all)
    print(len(names)) if args.count_nodes else print(*names, sep="\n")


def _info(args):
    with graph_session() as graph:
        full = graph.require_node(args.node_name, args.timeout)
        graph.spin_for(args.spin_time)  # the node is known; its endpoints may still be arriving
        namespace, name = full.rsplit("/", 1)
        namespace = namespace or "/"
        from rclpy.action.graph import (
            get_action_client_names_and_types_by_node,
            get_action_server_names_and_types_by_node,
        )

        node = graph.node
        sections = (
            ("Subscribers", node.get_subscriber_names_and_types_by_node(name, namespace)),
            ("Publishers", node.get_publisher_names_and_types_by_node(name, namespace)),
            ("Service Servers", node.get_service_names_and_types_by_node(name, namespace)),
            ("Service Clients", node.get_client_names_and_types_by_node(name, namespace)),
            ("Action Servers", get_action_server_names_and_types_by_node(node, name, namespace)),
            ("Action Clients", get_action_client_names_and_types_by_node(node, name, namespace)),
        )
    print(full)
    for title, entries in sections:
        print(f"  {title}:")
        for topic, types in sorted(entries):
            if args.include_hidden or not is_hidden(topic):
                print(f"    {topic}: {', '.join(types)}")
