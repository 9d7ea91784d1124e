"""The graph verbs (`lumina node|topic|param|service|interface`) as separate processes against a running small
city: what they print is checked against what the city really publishes, serves and declares."""

import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from harness import isolated_graph, package_executable


@pytest.fixture(scope="module")
def city():
    """A small city on the wall clock (no lighting output, no Bio-Dream sensors), shared by this module's tests."""
    with isolated_graph("cli_probe") as (manager, probe):
        manager.start(
            [
                package_executable("lumina_launch"),
                *("lumina_nodes", "city.launch.xml", "size:=small", "scenario:=watch"),
                *("lighting:=none", "biodream:=none"),
            ],
            name="city",
        )
        probe.wait_for_publishers("/sync/state", timeout=60)
        for k in range(1, 5):
            probe.wait_for_publishers(f"/plaza_{k}/jewels/state", timeout=60)
        yield manager, probe


def lumina(city, *args, timeout=60.0):
    manager, _ = city
    return subprocess.run(
        [package_executable("lumina"), *args], env=manager.env, capture_output=True, text=True, timeout=timeout
    )


def documents(text):
    """The YAML documents of echo's output (each ended by a '---' line)."""
    return [yaml.safe_load(part) for part in text.split("---\n") if part.strip()]


def test_node_list_and_info_show_the_city(city):
    listed = lumina(city, "node", "list", "--spin-time", "5")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert {"/synchronizer", "/festival_orchestrator"} <= set(names)
    assert {f"/plaza_{k}/jewel_driver" for k in range(1, 5)} <= set(names)
    assert not [n for n in names if "/_" in n], "hidden nodes (this command's own) are listed"
    assert lumina(city, "node", "list", "--all", "--spin-time", "3").stdout.count("/_lumina_cli_") == 1

    info = lumina(city, "node", "info", "/synchronizer")
    assert info.returncode == 0, info.stderr
    sections = dict(re.findall(r"^  (\w[\w ]+):\n((?:    .*\n)*)", info.stdout, re.M))
    assert "    /sync/state: lumina_nodes/msg/SyncState" in sections["Publishers"]
    assert "    /plaza_3/jewels/state: lumina_nodes/msg/JewelStateBatch" in sections["Subscribers"]
    assert "    /sync/set_rhythm: lumina_nodes/srv/SetRhythm" in sections["Service Servers"]


def test_a_missing_node_topic_or_type_exits_non_zero_with_a_message(city):
    for args, message in (
        (("node", "info", "/no_such_node", "--timeout", "1"), "node '/no_such_node' not found"),
        (("topic", "echo", "/no/such/topic", "--timeout", "1"), "topic '/no/such/topic' not found"),
        (("topic", "info", "/no/such/topic", "--timeout", "1"), "topic '/no/such/topic' not found"),
        (("param", "get", "/no_such_node", "x", "--timeout", "1"), "node '/no_such_node' not found"),
        (("param", "get", "/synchronizer", "no_such_parameter"), "'no_such_parameter' is not set"),
        (("service", "call", "/no/such/service", "--timeout", "1"), "service '/no/such/service' not found"),
        (("topic", "echo", "/sync/state", "lumina_nodes/msg/Nope"), "lumina_nodes/msg/Nope is not installed"),
        (("interface", "show", "lumina_nodes/msg/Nope"), "lumina_nodes/msg/Nope is not installed"),
    ):
        result = lumina(city, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_topic_list_and_info_show_types_and_endpoints(city):
    listed = lumina(city, "topic", "list", "-t", "--spin-time", "5")
    assert listed.returncode == 0, listed.stderr
    assert "/sync/state [lumina_nodes/msg/SyncState]" in listed.stdout.splitlines()
    assert "/plaza_2/jewels/command [lumina_nodes/msg/JewelCommandBatch]" in listed.stdout.splitlines()

    info = lumina(city, "topic", "info", "/plaza_1/jewels/state", "-v")
    assert info.returncode == 0, info.stderr
    assert "Type: lumina_nodes/msg/JewelStateBatch" in info.stdout
    assert "Publisher count: 1" in info.stdout
    assert re.search(r"Node name: jewel_driver\nNode namespace: /plaza_1\n", info.stdout), info.stdout
    assert re.search(r"Node name: synchronizer\nNode namespace: /\n.*\n.*\nEndpoint type: SUBSCRIPTION", info.stdout)


def test_echo_prints_what_the_synchronizer_published(city):
    from lumina_nodes.msg import SyncState
    from lumina_nodes.nodes.common import STATE_QOS

    _, probe = city
    seen = {}
    subscription = probe.node.create_subscription(
        SyncState, "/sync/state", lambda m: seen.setdefault((m.header.stamp.sec, m.header.stamp.nanosec), m), STATE_QOS
    )
    try:
        echo = subprocess.Popen(
            [package_executable("lumina"), "topic", "echo", "/sync/state", "--once", "--full-length"],
            env=city[0].env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while echo.poll() is None and time.monotonic() < deadline:
            probe.executor.spin_once(timeout_sec=0.05)
        out, err = echo.communicate(timeout=5)
        probe.spin_for(0.5)
    finally:
        probe.node.destroy_subscription(subscription)
    assert echo.returncode == 0, err
    assert out.endswith("---\n")
    (printed,) = documents(out)
    stamp = (printed["header"]["stamp"]["sec"], printed["header"]["stamp"]["nanosec"])
    assert stamp in seen, "echo printed a message the synchronizer did not publish"
    sent = seen[stamp]
    assert printed["order_parameter"] == sent.order_parameter
    assert printed["jewels_total"] == sent.jewels_total == 100
    assert [p["driver_id"] for p in printed["plazas"]] == [p.driver_id for p in sent.plazas]
    assert printed["timing"]["ticks"] == sent.timing.ticks


def test_echo_field_and_truncation(city):
    fields = lumina(city, "topic", "echo", "/sync/state", "--once", "--field", "jewels_total", "--field", "plazas")
    assert fields.returncode == 0, fields.stderr
    total, plazas = fields.stdout.split("---\n")[0].split("\n", 1)
    assert total == "100"
    assert sorted(p["driver_id"] for p in yaml.safe_load(plazas)) == [f"plaza_{k}" for k in range(1, 5)]

    batch = lumina(city, "topic", "echo", "/plaza_1/jewels/state", "--once", "-l", "3")
    assert batch.returncode == 0, batch.stderr
    (printed,) = documents(batch.stdout)
    assert len(printed["ids"]) == 4 and printed["ids"][-1] == "...", printed["ids"]

    wrong = lumina(city, "topic", "echo", "/sync/state", "--once", "--field", "plazas.nope")
    assert wrong.returncode == 1 and "field 'nope'" in wrong.stderr, wrong.stderr


def test_hz_is_within_5_percent_of_the_true_rate(city):
    """The true rate: the driver's own stamps over the same seconds, received by the probe."""
    from lumina_nodes.msg import JewelStateBatch
    from lumina_nodes.nodes.common import BATCH_QOS

    _, probe = city
    stamps = []
    subscription = probe.node.create_subscription(
        JewelStateBatch,
        "/plaza_2/jewels/state",
        lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
        BATCH_QOS,
    )
    try:
        hz = subprocess.Popen(
            [package_executable("lumina"), "topic", "hz", "/plaza_2/jewels/state"],
            env=city[0].env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        probe.spin_for(8.0)
        hz.send_signal(signal.SIGINT)
        out, err = hz.communicate(timeout=10)
    finally:
        probe.node.destroy_subscription(subscription)
    assert hz.returncode == 0, err
    rates = [float(r) for r in re.findall(r"average rate: ([\d.]+)", out)]
    assert len(rates) >= 4, out
    true_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(rates[-1] - true_rate) <= 0.05 * true_rate, (rates, true_rate)
    assert re.search(r"min: [\d.]+s max: [\d.]+s std dev: [\d.]+s window: \d+", out)


def test_param_get_set_describe_dump(city):
    get = lumina(city, "param", "get", "/synchronizer", "rate_hz")
    assert get.returncode == 0 and get.stdout.strip() == "Double value is: 50.0", (get.stdout, get.stderr)

    describe = lumina(city, "param", "describe", "/synchronizer", "lock_threshold_rad")
    assert describe.returncode == 0, describe.stderr
    assert describe.stdout.startswith("Parameter name: lock_threshold_rad\n  Type: double\n  Description: ")
    assert "    Min value: 0.0\n    Max value: 3.14159" in describe.stdout

    refused = lumina(city, "param", "set", "/synchronizer", "lock_threshold_rad", "50")
    assert refused.returncode == 1
    assert "Setting parameter failed" in refused.stderr and "out of range" in refused.stderr, refused.stderr
    read_only = lumina(city, "param", "set", "/synchronizer", "rate_hz", "10")
    assert read_only.returncode == 1 and "read-only" in read_only.stderr, read_only.stderr

    accepted = lumina(city, "param", "set", "/synchronizer", "lock_threshold_rad", "0.2")
    assert accepted.returncode == 0 and accepted.stdout.strip() == "Set parameter successful", accepted.stderr
    assert lumina(city, "param", "get", "/synchronizer", "lock_threshold_rad", "--hide-type").stdout.strip() == "0.2"
    # the synchronizer's own report follows the new threshold: the set reached the node, not only the service
    echo = lumina(city, "topic", "echo", "/sync/state", "--once", "--field", "lock_threshold")
    assert float(echo.stdout.split()[0]) == pytest.approx(0.2)

    dump = lumina(city, "param", "dump", "/plaza_1/jewel_driver")
    assert dump.returncode == 0, dump.stderr
    parameters = yaml.safe_load(dump.stdout)["/plaza_1/jewel_driver"]["ros__parameters"]
    assert parameters["driver_id"] == "plaza_1" and parameters["publish_rate_hz"] == 50.0
    listed = lumina(city, "param", "list", "/plaza_1/jewel_driver")
    assert sorted(listed.stdout.split()) == sorted(parameters), listed.stdout


def test_service_call_reaches_the_synchronizer(city):
    call = lumina(
        city, "service", "call", "/sync/set_rhythm", "lumina_nodes/srv/SetRhythm", "{frequency: 1, slew_rate: 0.1}"
    )
    assert call.returncode == 0, call.stderr
    # a whole number for a float64 field is sent as the float the user meant
    assert "requester: making request: lumina_nodes.srv.SetRhythm_Request(frequency=1.0, slew_rate=0.1)" in call.stdout
    assert re.search(r"response:\nlumina_nodes\.srv\.SetRhythm_Response\(accepted=True", call.stdout), call.stdout

    # the node's own refusal is its answer, printed like any other (exit 0, as ros2 service call)
    refused = lumina(city, "service", "call", "/sync/set_rhythm", "{frequency: 1, slew_rate: 5}")
    assert refused.returncode == 0 and "accepted=False, message='slew_rate must be in" in refused.stdout

    listed = lumina(city, "service", "list", "-t", "--spin-time", "5")
    assert "/sync/set_rhythm [lumina_nodes/srv/SetRhythm]" in listed.stdout.splitlines()

    bad = lumina(city, "service", "call", "/sync/set_rhythm", "{frequency: fast}")
    assert bad.returncode == 1 and "field 'frequency' (double) cannot take 'fast'" in bad.stderr, bad.stderr
    unknown = lumina(city, "service", "call", "/sync/set_rhythm", "{tempo: 1}")
    assert unknown.returncode == 1 and "has no field 'tempo'" in unknown.stderr, unknown.stderr


def test_pub_once_delivers_the_message(city):
    from lumina_nodes.msg import PlazaSync

    _, probe = city
    got = []
    subscription = probe.node.create_subscription(PlazaSync, "/cli_test/plaza", got.append, 10)
    try:
        pub = subprocess.Popen(
            [package_executable("lumina"), "topic", "pub", "--once", "/cli_test/plaza", "lumina_nodes/msg/PlazaSync"]
            + ["{driver_id: plaza_9, jewels_total: 7, order_parameter: 1}"],
            env=city[0].env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            probe.executor.spin_once(timeout_sec=0.05)
        out, err = pub.communicate(timeout=10)
    finally:
        probe.node.destroy_subscription(subscription)
    assert pub.returncode == 0, err
    assert "publishing #1: lumina_nodes.msg.PlazaSync(driver_id='plaza_9'" in out
    assert [(m.driver_id, m.jewels_total, m.order_parameter) for m in got] == [("plaza_9", 7, 1.0)]

    refused = lumina(
        city, "topic", "pub", "--once", "/cli_test/plaza", "lumina_nodes/msg/PlazaSync", "{jewels_total: -1}"
    )
    assert refused.returncode == 1 and "field 'jewels_total' (uint32) cannot take -1" in refused.stderr


def test_interface_show_expands_nested_types():
    env = dict(os.environ)
    shown = subprocess.run(
        [package_executable("lumina"), "interface", "show", "lumina_nodes/msg/SyncState", "--no-comments"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:5] == [
        "std_msgs/Header header",
        "\tbuiltin_interfaces/Time stamp",
        "\t\tint32 sec",
        "\t\tuint32 nanosec",
        "\tstring frame_id",
    ]
    assert "PlazaSync[] plazas" in lines and "\tstring driver_id" in lines
