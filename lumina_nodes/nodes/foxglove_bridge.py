"""Foxglove bridge: serves chosen ROS topics over WebSocket (Foxglove SDK, subprotocol foxglove.sdk.v1), so the
Foxglove app shows the city live (connect it to ws://127.0.0.1:8765; layout: config/foxglove/lumina_city.json).

Topics:
  subscribes  the topics matching ``topics`` (glob patterns: ``*`` within one name segment, ``**`` across
              segments, ``?`` one character), raw: the CDR bytes are forwarded unchanged
  publishes   /diagnostics   clients, topics bridged, messages forwarded, patterns that match no topic

The graph is scanned every ``rescan_period_s``: a topic that appears later is advertised then. Each topic is one
Foxglove channel, message encoding ``cdr``, schema ``ros2msg`` (the definition text rosbag2 writes, from
lumina_nodes.bag.definitions) named ``pkg/msg/Type``. A topic is subscribed in ROS only while a Foxglove client
subscribes to its channel, with the QoS its publishers offer (as ``lumina bag record`` adapts it: reliable and
transient local only when every publisher is). A latched topic (/festival/state) is subscribed again for each new
client, so every client gets its latched message (the clients already subscribed get it once more).

The server listens on 127.0.0.1 unless ``address`` says otherwise. The Foxglove WebSocket protocol has no
authentication: on any other address everyone who can reach this host on ``port`` reads every bridged topic, so
the node says so at WARN. ``address`` must be an IP address or ``localhost`` (a host name would need a lookup).
"""

import ipaddress
import re
from collections import deque

import foxglove
from foxglove import Capability, Channel, Schema
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy

from lumina_nodes.bag import BagError
from lumina_nodes.bag.definitions import message_definition
from lumina_nodes.constants import DiagnosticLevel
from lumina_nodes.nodes.bag_recorder import adapted_qos, message_class, offered_qos
from lumina_nodes.nodes.common import (
    DiagnosticsPublisher,
    Param,
    StartupError,
    declare_parameters,
    diagnostic_status,
    run_node,
)

DEFAULT_TOPICS = ["/sync/state", "/festival/state", "/biodream/samples", "/trees/*/lighting", "/diagnostics"]
# The deepest keep-last history the bridge requests (a publisher offering more, e.g. keep all, gets this).
MAX_DEPTH = 1000

PARAMETERS = (
    Param("address", "127.0.0.1", "Address the WebSocket server binds to: an IP address or localhost.", read_only=True),
    Param(
        "port", 8765, "TCP port of the WebSocket server (0: any free port, logged at start).", 0, 65535, read_only=True
    ),
    Param(
        "topics",
        DEFAULT_TOPICS,
        "Topics to serve: names or glob patterns (* within a segment, ** across segments, ? one character), "
        "matched against the live graph. The jewel batches are left out by default (every jewel at 50 Hz per "
        "plaza); add '/plaza_*/jewels/state' to see them.",
        read_only=True,
    ),
    Param(
        "rescan_period_s", 1.0, "How often the graph is scanned for new matching topics, s.", 0.05, 60.0, read_only=True
    ),
    Param(
        "client_backlog",
        1024,
        "Messages buffered per client; a slow client loses the oldest data messages first.",
        16,
        1_000_000,
        read_only=True,
    ),
)

_PATTERN_CHARS = re.compile(r"^/[A-Za-z0-9_/*?]*$")


def topic_pattern(glob: str) -> re.Pattern:
    """A glob over ROS names as a regex: ``**`` any characters, ``*`` any within a segment, ``?`` one character."""
    if not _PATTERN_CHARS.match(glob) or "//" in glob:
        raise ValueError(f"{glob!r} is not an absolute topic name or glob (e.g. /sync/state, /trees/*/lighting)")
    parts = re.split(r"(\*\*|\*|\?)", glob)
    wildcard = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcard.get(part, re.escape(part)) for part in parts) + r"\Z")


def bind_warning(address: str) -> str | None:
    """The WARN text for a bind address beyond loopback; None for loopback. ValueError for a host name."""
    if address == "localhost":
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"address {address!r} is not an IP address or localhost (a host name would be looked up; "
            "use e.g. 127.0.0.1, ::1, or 0.0.0.0 for every interface)"
        ) from None
    if ip.is_loopback:
        return None
    where = "every interface of this host" if ip.is_unspecified else f"{address}"
    return (
        f"listening on {where}, not loopback (address:={address} was chosen explicitly): the Foxglove WebSocket "
        "protocol has no authentication or encryption, so everyone who can reach this port reads every bridged "
        "topic; use address:=127.0.0.1 (the default) and an SSH tunnel for remote viewing"
    )


def ws_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"ws://{host}:{port}"


class _Listener:
    """Foxglove server callbacks. They run on the SDK's threads: they only queue the change and wake the node."""

    def __init__(self, queue, wake):
        self._queue, self._wake = queue, wake

    def on_subscribe(self, client, channel):
        self._queue.append(("subscribe", channel.topic, client.id))
        self._wake()

    def on_unsubscribe(self, client, channel):
        self._queue.append(("unsubscribe", channel.topic, client.id))
        self._wake()


class _Bridged:
    """One topic served as one Foxglove channel."""

    def __init__(self, topic, type_name, msg_type, channel):
        self.topic, self.type_name, self.msg_type, self.channel = topic, type_name, msg_type, channel
        self.subscription = None
        self.latched = False
        self.clients = set()
        self.forwarded = 0
        self.bytes = 0


class FoxgloveBridge(Node):
    def __init__(self):
        super().__init__("foxglove_bridge")
        self.p = declare_parameters(self, PARAMETERS)
        try:
            self.patterns = {glob: topic_pattern(glob) for glob in self.p["topics"]}
            warning = bind_warning(self.p["address"])
        except ValueError as error:
            raise StartupError(f"invalid parameter: {error}") from error
        if not self.patterns:
            raise StartupError("parameter topics is empty: nothing to serve")
        self.sim_time = self.get_parameter("use_sim_time").value
        self.bridged: dict[str, _Bridged] = {}
        self.matched: set[str] = set()  # patterns that matched a topic in the last scan
        self.skipped: dict[str, str] = {}  # topic -> why it is not bridged
        self.changes = deque()  # (change, topic, client id) from the server's threads; deque appends are atomic
        self.wake = self.create_guard_condition(self._apply_changes)
        self.fox_context = foxglove.Context()
        try:
            self.server = foxglove.start_server(
                name="lumina",
                host=self.p["address"],
                port=self.p["port"],
                context=self.fox_context,
                server_listener=_Listener(self.changes, self.wake.trigger),
                capabilities=[Capability.Time] if self.sim_time else [],
                message_backlog_size=self.p["client_backlog"],
            )
        except RuntimeError as error:
            raise StartupError(
                f"cannot serve on {ws_url(self.p['address'], self.p['port'])}: {error}"
                + (" (another bridge running? port:=0 picks a free port)" if "in use" in str(error) else "")
            ) from error
        self.port = self.server.port
        if warning:
            self.get_logger().warning(warning)
        self.scan()
        self.create_timer(self.p["rescan_period_s"], self.scan)
        if self.sim_time:  # Foxglove's live clock follows the sim clock, like the log times below
            self.create_timer(0.1, lambda: self.server.broadcast_time(self.get_clock().now().nanoseconds))
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        self.get_logger().info(
            f"foxglove bridge up: {ws_url(self.p['address'], self.port)} (subprotocol foxglove.sdk.v1), "
            f"topics {', '.join(self.p['topics'])}"
        )

    def scan(self):
        """Advertise every topic of the graph that matches a pattern, has publishers and is not served yet."""
        matched = set()
        for name, types in self.get_topic_names_and_types():
            globs = [glob for glob, pattern in self.patterns.items() if pattern.match(name)]
            if not globs or not self.count_publishers(name):
                continue
            matched.update(globs)
            if name in self.bridged:
                if self.bridged[name].type_name not in types:
                    self._skip(
                        name, f"type changed to {', '.join(types)}; still served as {self.bridged[name].type_name}"
                    )
                continue
            if len(types) != 1:
                self._skip(name, f"several types ({', '.join(types)})")
                continue
            try:
                msg_type = message_class(types[0])
                encoding, text = message_definition(types[0])
            except (ValueError, BagError) as error:
                self._skip(name, str(error))
                continue
            channel = Channel(
                name,
                schema=Schema(name=types[0], encoding=encoding, data=text.encode()),
                message_encoding="cdr",
                context=self.fox_context,
            )
            self.bridged[name] = _Bridged(name, types[0], msg_type, channel)
            self.skipped.pop(name, None)
            self.get_logger().info(f"serving {name} ({types[0]})")
        self.matched = matched

    def _skip(self, name, why):
        if self.skipped.get(name) != why:
            self.skipped[name] = why
            self.get_logger().warning(f"topic {name} not served: {why}")

    def _apply_changes(self):
        """Client subscriptions, queued by the server's threads, applied on the executor thread."""
        while self.changes:
            change, topic, client = self.changes.popleft()
            entry = self.bridged.get(topic)
            if entry is None:
                continue
            if change == "subscribe":
                entry.clients.add(client)
            else:
                entry.clients.discard(client)
            if change == "subscribe" and (entry.subscription is None or entry.latched):
                self._subscribe(entry)
            elif not entry.clients and entry.subscription is not None:
                self.destroy_subscription(entry.subscription)
                entry.subscription = None

    def _subscribe(self, entry):
        if entry.subscription is not None:
            self.destroy_subscription(entry.subscription)
        offers = offered_qos(self.get_publishers_info_by_topic(entry.topic))
        depth = min(MAX_DEPTH, max([o["depth"] for o in offers] + [1]))
        qos = adapted_qos(offers, depth)
        entry.latched = qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
        log, clock = entry.channel.log, self.get_clock()

        def forward(data):
            # log time: the receive time on the node clock. Every topic has one (a header stamp needs a Header first
            # field and the deserialisation this bridge avoids); it never goes backwards within a topic, as
            # Foxglove's live view expects; and under use_sim_time it is sim time like the stamps the city's nodes
            # write (the middleware's receive stamp is wall time), so plots by receive time and by header stamp
            # share one time axis.
            log(data, log_time=clock.now().nanoseconds)
            entry.forwarded += 1
            entry.bytes += len(data)

        entry.subscription = self.create_subscription(entry.msg_type, entry.topic, forward, qos, raw=True)

    def _diagnostics(self):
        clients = set().union(*(entry.clients for entry in self.bridged.values()))
        subscriptions = sum(len(entry.clients) for entry in self.bridged.values())
        unmatched = [glob for glob in self.patterns if glob not in self.matched]
        server = diagnostic_status(
            DiagnosticLevel.OK,
            "server",
            f"{ws_url(self.p['address'], self.port)}, {len(clients)} client(s) subscribed",
            values={
                "address": self.p["address"],
                "port": self.port,
                # foxglove-sdk 0.30.3 reports subscriptions, not connections: a client connected without a
                # subscription is not counted
                "clients subscribed": len(clients),
                "client subscriptions": subscriptions,
            },
        )
        values = {
            "topics served": len(self.bridged),
            "topics subscribed": sum(entry.subscription is not None for entry in self.bridged.values()),
            "messages forwarded": sum(entry.forwarded for entry in self.bridged.values()),
            "bytes forwarded": sum(entry.bytes for entry in self.bridged.values()),
            "patterns matching no topic": ", ".join(unmatched) or "none",
        }
        values.update({f"not served {name}": why for name, why in self.skipped.items()})
        values.update({f"forwarded {name}": entry.forwarded for name, entry in sorted(self.bridged.items())})
        problems = [f"{len(unmatched)} pattern(s) match no topic: {', '.join(unmatched)}"] if unmatched else []
        problems += [f"{len(self.skipped)} topic(s) not served"] if self.skipped else []
        topics = diagnostic_status(
            DiagnosticLevel.WARN if problems else DiagnosticLevel.OK,
            "topics",
            "; ".join(problems) or f"{len(self.bridged)} topic(s) served",
            values=values,
        )
        return [server, topics]

    def close(self):
        self.server.stop()


def main(args=None):
    return run_node(FoxgloveBridge, args, PARAMETERS)
