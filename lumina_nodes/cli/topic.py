"""``lumina topic list|echo|hz|info|pub|type``: ros2 topic's verbs, flags and output formats, on any ROS 2 graph
of the domain (echo prints YAML documents ended by ``---``, as ros2 topic echo does)."""

from __future__ import annotations

import time

import numpy as np

from .arguments import number
from .graph import (
    LOOKUP_TIMEOUT_S,
    CommandError,
    Graph,
    add_discovery_arguments,
    add_list_verb,
    graph_session,
    run_verb,
)
from .messages import checked, fill, interface_class, is_message, message_field, parse_values, to_plain, to_yaml

#: ros2 topic echo's default --truncate-length, and hz's default --window.
TRUNCATE_LENGTH = 128
HZ_WINDOW = 10000


def add_parser(commands) -> None:
    parser = commands.add_parser("topic", help="topics of the ROS graph (ros2 topic)", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add_list_verb(verbs, "topic", Graph.topics)

    echo = verbs.add_parser("echo", help="print the messages of a topic as YAML")
    echo.add_argument("topic_name", help="topic to print, e.g. /sync/state")
    echo.add_argument("message_type", nargs="?", help="type of the topic (default: discovered)")
    echo.add_argument("--once", action="store_true", help="print the first message received and exit")
    echo.add_argument(
        "--timeout",
        type=number(float, 0.001, 86400.0),
        help="stop after this many seconds (0.001..86400); with --once and no message it is an error",
    )
    echo.add_argument(
        "--field", action="append", help="print only this field (dotted, e.g. plazas or timing.latency_p99)"
    )
    echo.add_argument(
        "-l",
        "--truncate-length",
        type=number(int, 0, 2**31 - 1),
        default=TRUNCATE_LENGTH,
        help=f"show at most this many items of arrays and characters of strings (default {TRUNCATE_LENGTH})",
    )
    echo.add_argument("-f", "--full-length", action="store_true", help="do not truncate arrays and strings")
    echo.add_argument("--no-arr", action="store_true", help="do not print array fields")
    echo.add_argument("--no-str", action="store_true", help="do not print string fields")
    _add_qos_arguments(echo)
    add_discovery_arguments(echo)
    echo.set_defaults(run=run_verb(_echo, "topic echo"))

    hz = verbs.add_parser("hz", help="the receiving rate of topics, printed every second")
    hz.add_argument("topic_name", nargs="+", help="topics to measure")
    hz.add_argument(
        "-w",
        "--window",
        type=number(int, 1, 10**7),
        default=HZ_WINDOW,
        help=f"messages the rate is computed over (default {HZ_WINDOW})",
    )
    hz.add_argument(
        "--wall-time", action="store_true", help="accepted for ros2 compatibility: the rate is always on the wall clock"
    )
    hz.add_argument("--timeout", type=number(float, 0.001, 86400.0), help="stop after this many seconds")
    _add_qos_arguments(hz)
    add_discovery_arguments(hz)
    hz.set_defaults(run=run_verb(_hz, "topic hz"))

    info = verbs.add_parser("info", help="a topic's type and its publishers and subscriptions")
    info.add_argument("topic_name")
    info.add_argument("-v", "--verbose", action="store_true", help="each endpoint: node, type hash, GID, QoS")
    add_discovery_arguments(info, lookup=True)
    info.set_defaults(run=run_verb(_info, "topic info"))

    kind = verbs.add_parser("type", help="a topic's type")
    kind.add_argument("topic_name")
    add_discovery_arguments(kind, lookup=True)
    kind.set_defaults(run=run_verb(_type, "topic type"))

    pub = verbs.add_parser("pub", help="publish a message given as YAML")
    pub.add_argument("topic_name")
    pub.add_argument("message_type", help="e.g. lumina_nodes/msg/JewelCommandBatch")
    pub.add_argument("values", nargs="?", default="{}", help="the message's fields as a YAML mapping (default {})")
    pub.add_argument(
        "-r", "--rate", type=number(float, 0.001, 10000.0), default=1.0, help="messages per second (default 1)"
    )
    pub.add_argument(
        "-p", "--print", type=number(int, 0, 2**31 - 1), default=1, help="print every N-th message (0: none)"
    )
    pub.add_argument("-1", "--once", action="store_true", help="publish one message and exit")
    pub.add_argument("-t", "--times", type=number(int, 0, 2**31 - 1), default=0, help="publish N messages, then exit")
    pub.add_argument(
        "-w",
        "--wait-matching-subscriptions",
        type=number(int, 0, 10000),
        help="wait for this many subscriptions before publishing (default 1 with --once or --times, else 0)",
    )
    pub.add_argument(
        "--max-wait-time-secs",
        type=number(float, 0.001, 86400.0),
        help="give up waiting for subscriptions after this many seconds (error)",
    )
    pub.add_argument(
        "--keep-alive",
        type=number(float, 0.0, 3600.0),
        default=0.1,
        help="seconds to stay up after the last message (default 0.1)",
    )
    _add_qos_arguments(pub)
    pub.set_defaults(run=run_verb(_pub, "topic pub"))


def _add_qos_arguments(parser) -> None:
    parser.add_argument(
        "--qos-reliability", choices=("reliable", "best_effort"), help="default: what the publishers offer"
    )
    parser.add_argument(
        "--qos-durability", choices=("volatile", "transient_local"), help="default: what the publishers offer"
    )
    parser.add_argument("--qos-depth", type=number(int, 1, 100000), default=10, help="history depth (default 10)")


def _qos(graph, topic, args, publishing=False):
    """The publishers' offers adapted (rosbag2's rule), then the --qos-* flags; ros2's default for a publisher."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from lumina_nodes.nodes.bag_recorder import adapted_qos, offered_qos

    offers = [] if publishing else offered_qos(graph.node.get_publishers_info_by_topic(topic))
    qos = adapted_qos(offers, args.qos_depth)
    if publishing:
        qos.reliability = ReliabilityPolicy.RELIABLE
    if args.qos_reliability:
        qos.reliability = ReliabilityPolicy[args.qos_reliability.upper()]
    if args.qos_durability:
        qos.durability = DurabilityPolicy[args.qos_durability.upper()]
    return qos


def _echo(args):
    truncate = None if args.full_length else args.truncate_length
    with graph_session(args.spin_time) as graph:
        type_name = graph.require_topic_type(args.topic_name, args.timeout or LOOKUP_TIMEOUT_S, args.message_type)
        message_class = interface_class(type_name)
        if args.field:  # a wrong field path fails now, not at the first message
            for path in args.field:
                message_field(message_class(), path)
        received = []

        def on_message(msg):
            parts = [message_field(msg, path) for path in args.field] if args.field else [msg]
            for part in parts:
                if is_message(part):
                    print(to_yaml(to_plain(part, truncate, args.no_arr, args.no_str)), end="")
                else:
                    value = to_plain_value(part, truncate)
                    nested = isinstance(value, list) and value and isinstance(value[0], dict)
                    print(to_yaml(value), end="") if nested else print(value)
            print("---", flush=True)
            received.append(True)

        graph.node.create_subscription(message_class, args.topic_name, on_message, _qos(graph, args.topic_name, args))
        end = time.monotonic() + args.timeout if args.timeout else None
        while not (args.once and received) and (end is None or time.monotonic() < end):
            graph.executor.spin_once(timeout_sec=0.05)
    if args.once and not received:
        raise CommandError(f"no message on {args.topic_name} within {args.timeout:g} s")


def to_plain_value(value, truncate):
    """A field that is not a message, printed as ros2 topic echo --field prints it (lists as lists)."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        items = [to_plain(v, truncate) if is_message(v) else v for v in items]
        return items if truncate is None or len(items) <= truncate else items[:truncate] + ["..."]
    return value


class RateWindow:
    """Receive times of the last ``window`` messages of one topic, and ros2 topic hz's statistics of them."""

    def __init__(self, window: int):
        self.times = np.empty(window + 1)
        self.count = 0
        self.printed_at = 0

    def add(self, now: float) -> None:
        self.times[self.count % len(self.times)] = now
        self.count += 1

    def stats(self):
        """(rate Hz, min s, max s, std s, window) over the intervals in the window; None before two messages."""
        n = min(self.count, len(self.times))
        if n < 2:
            return None
        start = self.count - n
        times = np.roll(self.times, -(start % len(self.times)))[:n]
        gaps = np.diff(times)
        mean = gaps.mean()
        return (1.0 / mean if mean > 0 else 0.0), gaps.min(), gaps.max(), gaps.std(), len(gaps)


def _hz(args):
    with graph_session(args.spin_time) as graph:
        windows = {}
        for topic in args.topic_name:
            type_name = graph.require_topic_type(topic, LOOKUP_TIMEOUT_S)
            window = windows[topic] = RateWindow(args.window)
            # raw: no deserialisation, so the measured rate is the middleware's, not Python's
            graph.node.create_subscription(
                interface_class(type_name),
                topic,
                lambda data, w=window: w.add(time.monotonic()),
                _qos(graph, topic, args),
                raw=True,
            )
        end = time.monotonic() + args.timeout if args.timeout else None
        next_print = time.monotonic() + 1.0
        while end is None or time.monotonic() < end:
            graph.executor.spin_once(timeout_sec=0.01)
            if time.monotonic() >= next_print:
                next_print += 1.0
                _print_rates(windows)


def _print_rates(windows) -> None:
    rows = []
    for topic, window in windows.items():
        stats = window.stats()
        if stats is not None and window.count != window.printed_at:
            window.printed_at = window.count
            rows.append((topic, *stats))
    if len(windows) == 1:
        for _, rate, low, high, std, n in rows:
            print(f"average rate: {rate:.3f}\n\tmin: {low:.3f}s max: {high:.3f}s std dev: {std:.5f}s window: {n}")
    elif rows:
        header = ("topic", "rate", "min_delta", "max_delta", "std_dev", "window")
        cells = [(t, f"{r:.3f}", f"{lo:.3f}", f"{hi:.3f}", f"{s:.5f}", str(n)) for t, r, lo, hi, s, n in rows]
        widths = [max(len(h), *(len(c[k]) for c in cells)) for k, h in enumerate(header)]
        print("   ".join(h.center(w) for h, w in zip(header, widths, strict=True)))
        print("=" * (sum(widths) + 3 * (len(widths) - 1)))
        for c in cells:
            print("   ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    print(end="", flush=True)


def _info(args):
    with graph_session() as graph:
        type_name = graph.require_topic_type(args.topic_name, args.timeout)
        graph.spin_for(args.spin_time)  # endpoints of the topic may still be arriving
        node = graph.node
        end = "\n\n" if args.verbose else "\n"
        print(f"Type: {type_name}", end=end)
        print(f"Publisher count: {node.count_publishers(args.topic_name)}", end=end)
        if args.verbose:
            for endpoint in node.get_publishers_info_by_topic(args.topic_name):
                print(endpoint, end=end)
        print(f"Subscription count: {node.count_subscribers(args.topic_name)}", end=end)
        if args.verbose:
            for endpoint in node.get_subscriptions_info_by_topic(args.topic_name):
                print(endpoint, end=end)


def _type(args):
    with graph_session() as graph:
        graph.require_topic_type(args.topic_name, args.timeout)
        print(*graph.topics(include_hidden=True)[args.topic_name], sep="\n")


def _pub(args):
    message_class = interface_class(args.message_type)
    msg = fill(checked(message_class), parse_values(args.values))
    times = 1 if args.once else args.times
    wait_for = args.wait_matching_subscriptions
    if wait_for is None:
        wait_for = 1 if times else 0
    with graph_session() as graph:
        publisher = graph.node.create_publisher(
            message_class, args.topic_name, _qos(graph, args.topic_name, args, True)
        )
        if wait_for:
            limit = args.max_wait_time_secs or float("inf")
            if not graph.wait_until(lambda: publisher.get_subscription_count() >= wait_for, limit):
                raise CommandError(
                    f"{args.topic_name}: {publisher.get_subscription_count()} of {wait_for} matching subscriptions "
                    f"after {args.max_wait_time_secs:g} s"
                )
        print("publisher: beginning loop")
        period = 1.0 / args.rate
        next_time = time.monotonic()
        count = 0
        while not times or count < times:
            count += 1
            publisher.publish(msg)
            if args.print and (count - 1) % args.print == 0:
                print(f"publishing #{count}: {msg!r}\n", flush=True)
            if times and count >= times:
                break
            next_time += period
            graph.spin_for(max(0.0, next_time - time.monotonic()))
        graph.spin_for(args.keep_alive)
