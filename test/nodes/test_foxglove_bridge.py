"""The Foxglove bridge in its own process, with a synchronizer and a sim jewel driver over DDS, and a WebSocket
client (websockets, subprotocol foxglove.sdk.v1) in the test: what it advertises, that the CDR it forwards is the
publisher's message unchanged, latched topics for every client, loopback-only listening, refused parameters."""

import json
import re
import struct
import subprocess
import time

import psutil
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message, serialize_message
from websockets.sync.client import connect

from harness import REPO, package_executable
from lumina_nodes.bag.definitions import message_definition
from lumina_nodes.constants import EXIT_CONFIG
from lumina_nodes.msg import BioDreamSample, FestivalState, SyncState, TreeLighting
from lumina_nodes.nodes.bag_recorder import message_class
from lumina_nodes.nodes.common import FESTIVAL_QOS, STATE_QOS
from lumina_nodes.nodes.foxglove_bridge import DEFAULT_TOPICS, bind_warning, topic_pattern

SUBPROTOCOL = "foxglove.sdk.v1"
MESSAGE_DATA = 1  # binary opcode of a server MessageData frame


def start_bridge(processes, *params):
    args = [arg for param in params for arg in ("-p", param)]
    bridge = processes.start_node("foxglove_bridge", "-p", "port:=0", *args)
    match = bridge.wait_for_output(r"foxglove bridge up: ws://(\S+):(\d+) ", timeout=30)
    bridge.url_host = match.group(1)
    return bridge, int(match.group(2))


class Client:
    """A Foxglove WebSocket client: the channels advertised so far and the MessageData frames per subscription."""

    def __init__(self, port, ros_node):
        self.url, self.ros_node = f"ws://127.0.0.1:{port}", ros_node
        self.server_info = None
        self.channels = {}  # topic -> advertised channel
        self.frames = {}  # subscription id -> [(log time ns, payload bytes)]

    def __enter__(self):
        self._connection = connect(self.url, subprotocols=[SUBPROTOCOL], open_timeout=10)
        self.ws = self._connection.__enter__()
        return self

    def __exit__(self, *exc):
        return self._connection.__exit__(*exc)

    def pump(self, duration=0.05):
        """Take what the server sent within ``duration`` s, and spin the test's ROS node (its subscriptions)."""
        deadline = time.monotonic() + duration
        while True:
            try:
                frame = self.ws.recv(timeout=0.01)
            except TimeoutError:
                frame = None
            if isinstance(frame, bytes):
                assert frame[0] == MESSAGE_DATA, frame[:1]
                sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
                self.frames.setdefault(sub_id, []).append((log_time, frame[13:]))
            elif frame is not None:
                message = json.loads(frame)
                if message["op"] == "serverInfo":
                    self.server_info = message
                elif message["op"] == "advertise":
                    self.channels.update({channel["topic"]: channel for channel in message["channels"]})
            self.ros_node.executor.spin_once(timeout_sec=0)
            if time.monotonic() > deadline:
                return

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; advertised: {list(self.channels)}"
                )
            self.pump()

    def subscribe(self, sub_id, topic):
        channel = self.channels[topic]["id"]
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": sub_id, "channelId": channel}]}))


def bridge_status(diagnostics, name):
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name == f"foxglove_bridge: {name}":
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def test_bridge_forwards_the_publishers_cdr_unchanged(processes, ros_node):
    bridge, port = start_bridge(
        processes, "topics:=[/sync/state, /festival/state, /plaza_*/jewels/state, /nothing/*]", "rescan_period_s:=0.2"
    )
    # what the synchronizer publishes, as a separate rclpy subscriber receives it
    states, diagnostics = [], []
    deep = QoSProfile(depth=1000, reliability=STATE_QOS.reliability, durability=STATE_QOS.durability)
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, deep)
    wire = {}  # stamp -> the same messages' bytes, as the middleware delivered them

    def keep_bytes(data):
        stamp = deserialize_message(data, SyncState).header.stamp
        wire[(stamp.sec, stamp.nanosec)] = data

    ros_node.node.create_subscription(SyncState, "/sync/state", keep_bytes, deep, raw=True)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 100)
    # a latched topic, published once before anyone bridges it
    festival_pub = ros_node.node.create_publisher(FestivalState, "/festival/state", FESTIVAL_QOS)
    festival_pub.publish(FestivalState(program="bridge_test", phase="gathering", phase_count=3))

    with Client(port, ros_node) as client:
        client.wait(lambda: client.server_info is not None, 10, "serverInfo")
        assert client.server_info["name"] == "lumina"
        # the city starts after the bridge and the client: its topics are advertised as they appear
        processes.start_node("jewel_driver", "-r", "__ns:=/plaza_1", "-p", "jewel_count:=50", "-p", "seed:=1")
        processes.start_node("synchronizer")
        client.wait(
            lambda: {"/sync/state", "/plaza_1/jewels/state", "/festival/state"} <= set(client.channels),
            30,
            "the city's channels advertised",
        )
        channel = client.channels["/sync/state"]
        assert channel["encoding"] == "cdr"
        assert channel["schemaEncoding"] == "ros2msg"
        assert channel["schemaName"] == "lumina_nodes/msg/SyncState"
        assert channel["schema"] == message_definition("lumina_nodes/msg/SyncState")[1]
        assert client.channels["/plaza_1/jewels/state"]["schemaName"] == "lumina_nodes/msg/JewelStateBatch"
        # a channel nobody subscribed to is not subscribed in ROS: the jewel batches only go to the synchronizer
        ros_node.wait_for_subscribers("/plaza_1/jewels/state")
        client.pump(0.5)
        assert ros_node.node.count_subscribers("/plaza_1/jewels/state") == 1

        client.subscribe(7, "/sync/state")
        client.wait(lambda: len(client.frames.get(7, [])) >= 40, 30, "40 /sync/state frames")
        frames = client.frames[7]
        forwarded = [deserialize_message(payload, SyncState) for _, payload in frames]
        payloads = {
            (m.header.stamp.sec, m.header.stamp.nanosec): p for m, (_, p) in zip(forwarded, frames, strict=True)
        }
        last = (forwarded[-1].header.stamp.sec, forwarded[-1].header.stamp.nanosec)
        ros_node.spin_until(
            lambda: last in wire and last in {(m.header.stamp.sec, m.header.stamp.nanosec) for m in states},
            10,
            "the probe to receive the last forwarded state",
        )
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in states}
        for message in forwarded:
            stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
            assert stamp in by_stamp, f"forwarded state {stamp} never published"
            # the same values (compared serialised: the timing fields are NaN until the synchronizer has a window)
            assert serialize_message(message) == serialize_message(by_stamp[stamp])
            # and the very bytes the middleware delivered (re-serialising need not give them: CDR padding bytes
            # are not zeroed)
            assert payloads[stamp] == wire[stamp]
        assert len({(m.header.stamp.sec, m.header.stamp.nanosec) for m in forwarded}) == len(forwarded), "duplicates"
        assert forwarded[-1].jewels_total == 50
        log_times = [log_time for log_time, _ in frames]
        assert log_times == sorted(log_times)
        assert abs(log_times[-1] - time.time_ns()) < 5e9  # the node clock (wall time here) at receive

        # the latched state reaches every client that subscribes, whenever it does
        client.subscribe(8, "/festival/state")
        client.wait(lambda: client.frames.get(8), 15, "the latched /festival/state")
        assert deserialize_message(client.frames[8][0][1], FestivalState).program == "bridge_test"
        with Client(port, ros_node) as late:
            late.wait(lambda: "/festival/state" in late.channels, 10, "advertise to a late client")
            late.subscribe(1, "/festival/state")
            late.wait(lambda: late.frames.get(1), 15, "the latched /festival/state for the late client")
            assert deserialize_message(late.frames[1][0][1], FestivalState).phase == "gathering"

        def reported():
            status, values = bridge_status(diagnostics, "topics")
            return status is not None and int(values["messages forwarded"]) >= 40

        client.wait(reported, 10, "the bridge's /diagnostics")
        status, values = bridge_status(diagnostics, "topics")
        assert status.level == b"\x01" and "/nothing/*" in status.message, status
        assert values["patterns matching no topic"] == "/nothing/*"
        assert values["topics served"] == "3"
        _, server = bridge_status(diagnostics, "server")
        assert server["port"] == str(port) and server["address"] == "127.0.0.1"
        assert int(server["clients subscribed"]) >= 1
    assert bridge.running(), bridge.output()
    assert bridge.stop() == 0, bridge.output()


def test_bridge_listens_on_loopback_only(processes):
    bridge, port = start_bridge(processes)
    listening = [
        c.laddr for c in psutil.Process(bridge.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert [(address.ip, address.port) for address in listening] == [("127.0.0.1", port)]
    assert bridge.url_host == "127.0.0.1" and "WARN" not in bridge.output()


def test_an_address_beyond_loopback_is_warned_about():
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert bind_warning(loopback) is None, loopback
    assert "every interface" in bind_warning("0.0.0.0") and "no authentication" in bind_warning("0.0.0.0")
    assert "not loopback" in bind_warning("192.168.1.20")
    with pytest.raises(ValueError, match="not an IP address"):
        bind_warning("viewer.example.org")


def test_topic_globs():
    assert topic_pattern("/plaza_*/jewels/state").match("/plaza_12/jewels/state")
    assert not topic_pattern("/trees/*/lighting").match("/trees/a/b/lighting")
    assert topic_pattern("/trees/**").match("/trees/a/b/lighting")
    assert not topic_pattern("/sync/state").match("/sync/state_x")
    with pytest.raises(ValueError):
        topic_pattern("sync/state")


@pytest.mark.parametrize(
    "param, message",
    [
        ("port:=70000", "Parameter port out of range. Min: 0, Max: 65535, value: 70000"),
        ("address:=viewer.example.org", "address 'viewer.example.org' is not an IP address or localhost"),
        ("topics:=[sync/state]", "'sync/state' is not an absolute topic name"),
    ],
)
def test_a_bad_parameter_is_refused_with_a_clear_message(param, message, ros_env):
    run = subprocess.run(
        [package_executable("foxglove_bridge"), "--ros-args", "-p", param],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == EXIT_CONFIG, run.stdout + run.stderr
    assert message in run.stderr and "FATAL" in run.stderr, run.stderr
    assert "foxglove bridge up" not in run.stdout + run.stderr


LAYOUT = REPO / "config" / "foxglove" / "lumina_city.json"
PANEL_TYPES = {"Plot", "StateTransitions", "DiagnosticSummary", "RawMessages", "Tab"}
LAYOUT_TOPICS = {
    "/sync/state": SyncState,
    "/festival/state": FestivalState,
    "/biodream/samples": BioDreamSample,
    "/diagnostics": DiagnosticArray,
    **{f"/trees/tree_plaza_{k}_{j}/lighting": TreeLighting for k in range(1, 5) for j in (1, 2)},
}


def mosaic_panels(node):
    """The panel ids of a mosaic layout (a panel id, or a split of two)."""
    if isinstance(node, str):
        return [node]
    assert set(node) <= {"direction", "first", "second", "splitPercentage"}, node
    assert node["direction"] in ("row", "column") and 0 < node["splitPercentage"] < 100, node
    return mosaic_panels(node["first"]) + mosaic_panels(node["second"])


def field_type(msg_class, name):
    fields = msg_class.get_fields_and_field_types()
    assert name in fields, f"{msg_class.__name__} has no field {name!r}"
    return fields[name]


def resolve(path):
    """Walk a Foxglove message path (/topic{filter}.field[i]{filter}.field) over the message definitions; returns
    the final field's type."""
    topic = next((t for t in sorted(LAYOUT_TOPICS, key=len, reverse=True) if path.startswith(t)), None)
    assert topic, f"{path}: topic not in the city"
    current, type_text = LAYOUT_TOPICS[topic], None
    for token in re.findall(r"\{[^}]*\}|\.\w+|\[[^\]]*\]", path[len(topic) :]):
        if token.startswith("{"):
            field_type(current, re.match(r"\{(\w+)==", token).group(1))
        elif token.startswith("."):
            type_text = field_type(current, token[1:])
            inner = re.sub(r"^sequence<(.*)>$|\[\d*\]$", r"\1", type_text)
            current = message_class(inner.replace("/", "/msg/")) if "/" in inner else None
        else:
            assert re.fullmatch(r"\[(\d+|:)\]", token), token
            assert type_text.startswith("sequence<") or type_text.endswith("]"), f"{path}: {token} on {type_text}"
    return type_text


def test_the_layout_shows_the_city_from_the_bridged_topics():
    layout = json.loads(LAYOUT.read_text())
    configs = layout["configById"]
    tabs = configs[layout["layout"]]["tabs"]
    assert [tab["title"] for tab in tabs] == ["City", "Trees"]
    panels = [layout["layout"]] + [panel for tab in tabs for panel in mosaic_panels(tab["layout"])]
    assert sorted(panels) == sorted(configs), "a panel without a place in the layout, or a place without a config"
    assert {panel.split("!")[0] for panel in panels} == PANEL_TYPES
    paths = [
        series["value"]
        for panel, config in configs.items()
        if panel.split("!")[0] in ("Plot", "StateTransitions")
        for series in config["paths"]
    ]
    for path in paths:
        resolve(path)
    for needed in (
        "/sync/state.order_parameter",
        "/sync/state.collective_frequency",
        "/sync/state.clusters[0].center_frequency",
        '/sync/state.plazas[:]{driver_id=="plaza_1"}.order_parameter',
        "/trees/tree_plaza_1_1/lighting.rgb[0]",
        "/biodream/samples{participant_id==$sleeper_1}.stage",
    ):
        assert needed in paths, needed
    variables = set(re.findall(r"\$(\w+)", " ".join(paths)))
    assert variables <= set(layout["globalVariables"]), variables
    assert configs["DiagnosticSummary!city"]["topicToRender"] == "/diagnostics"
    assert configs["RawMessages!festival"]["topicPath"] == "/festival/state"
    # the bridge's default topics serve everything the layout shows
    default = [topic_pattern(glob) for glob in DEFAULT_TOPICS]
    for topic in LAYOUT_TOPICS:
        assert any(pattern.match(topic) for pattern in default), topic
