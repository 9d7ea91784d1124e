"""``lumina bag`` end to end, between processes over DDS: record, read back with independent readers (rosbags,
mcap), play into a fresh graph, recover after kill -9, count what the recorder missed, and the replay driver."""

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import PEERS, package_executable

SOURCE = PEERS / "bag_source.py"
TOPICS = ["/bag_test/chatter", "/bag_test/jewels/state", "/bag_test/latched"]


def lumina(*args):
    return [package_executable("lumina"), *args]


def record(processes, bag, *extra):
    recorder = processes.start(lumina("bag", "record", "--topics", *TOPICS, "-o", str(bag), *extra), name="recorder")
    recorder.wait_for_output(r"recording into", timeout=30)
    return recorder


def published_counts(source, timeout=60):
    match = source.wait_for_output(r"published chatter=(\d+) state=(\d+) latched=1", timeout=timeout)
    return int(match.group(1)), int(match.group(2))


def rosbags_messages(bag):
    from rosbags.highlevel import AnyReader

    out = {}
    with AnyReader([Path(bag)]) as reader:
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype), raw))
    return out


def test_recorded_streams_equal_what_was_published_and_play_back_in_order(processes, ros_node, ros_env, tmp_path):
    bag = tmp_path / "night"
    recorder = record(processes, bag)
    source = processes.start_python(SOURCE, "--duration", "3", "--rate", "500", "--batch-rate", "50", name="source")
    n_chat, n_state = published_counts(source)
    recorder.stop()
    assert recorder.popen.returncode == 0, recorder.output()
    assert re.search(r"closed .*: \d+ messages on 3 topics.*missed 0", recorder.output()), recorder.output()
    source.stop()

    # independent reader 1: rosbags (checks the type hashes against the embedded definitions)
    got = rosbags_messages(bag)
    assert [m.data for _, m, _ in got["/bag_test/chatter"]] == [f"msg {i}" for i in range(n_chat)]
    states = got["/bag_test/jewels/state"]
    assert [m.seq for _, m, _ in states] == list(range(n_state))
    assert all(np.all(m.phase == (m.seq % 100) / 100.0) and len(m.ids) == 250 for _, m, _ in states)
    assert [m.data for _, m, _ in got["/bag_test/latched"]] == ["latched"]
    # independent reader 2: mcap + mcap_ros2's decoder, file by file
    from mcap_ros2.reader import read_ros2_messages

    counts = {}
    for path in sorted(bag.glob("*.mcap")):
        for m in read_ros2_messages(str(path)):
            counts[m.channel.topic] = counts.get(m.channel.topic, 0) + 1
            if m.channel.topic == "/bag_test/jewels/state":
                assert m.ros_msg.driver_id == "bag_test"
    assert counts == {"/bag_test/chatter": n_chat, "/bag_test/jewels/state": n_state, "/bag_test/latched": 1}

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["message_count"] == n_chat + n_state + 1
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert topics["/bag_test/latched"]["topic_metadata"]["offered_qos_profiles"][0]["durability"] == "transient_local"
    assert topics["/bag_test/chatter"]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    assert meta["custom_data"]["lumina.dropped_total"] == "0"
    info = subprocess.run(lumina("bag", "info", str(bag)), env=ros_env, capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stderr
    assert f"Topic: /bag_test/chatter | Type: std_msgs/msg/String | Count: {n_chat} |" in info.stdout
    assert "Missed messages:   0" in info.stdout

    # play into the graph (the publishers are gone): same bytes, same order, recorded spacing
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    from lumina_nodes.msg import JewelStateBatch

    received = {name: [] for name in TOPICS}

    def keep(name):
        return lambda data, info: received[name].append((info["received_timestamp"], data))

    qos = QoSProfile(depth=1000)
    ros_node.node.create_subscription(String, TOPICS[0], keep(TOPICS[0]), qos, raw=True)
    ros_node.node.create_subscription(JewelStateBatch, TOPICS[1], keep(TOPICS[1]), qos, raw=True)
    # transient local: the latched message reaches this subscriber whenever it matches
    latched_qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    ros_node.node.create_subscription(String, TOPICS[2], keep(TOPICS[2]), latched_qos, raw=True)
    player = processes.start(
        lumina("bag", "play", str(bag), "--delay", "1", "--disable-keyboard-controls"), name="player"
    )
    ros_node.spin_until(
        lambda: len(received[TOPICS[0]]) == n_chat and len(received[TOPICS[1]]) == n_state,
        timeout=30,
        what="every recorded message played",
    )
    assert player.popen.wait(timeout=15) == 0, player.output()
    for name in TOPICS:
        assert [data for _, data in received[name]] == [raw for _, _, raw in got[name]], name
    recorded = np.array([t for t, _, _ in got[TOPICS[0]]], dtype=np.int64)
    arrived = np.array([t for t, _ in received[TOPICS[0]]], dtype=np.int64)
    # timing error against the replay's own constant latency (its median), not against the first message alone: a
    # first message delivered a few ms off shifted every error by that much (median 7.5 ms in one CI run)
    lag = (arrived - arrived[0]) - (recorded - recorded[0])
    error_ms = np.abs(lag - np.median(lag)) / 1e6
    assert np.median(error_ms) < 2.0 and np.percentile(error_ms, 99) < 20.0, (np.median(error_ms), error_ms.max())


def test_killed_recorder_leaves_a_bag_reindex_recovers(processes, ros_env, tmp_path):
    bag = tmp_path / "killed"
    recorder = record(processes, bag)
    # 20 kB/s: far less than one 768 KiB chunk in the 3 s, so only the once-a-second chunk flush saves any of it
    source = processes.start_python(SOURCE, "--duration", "30", "--rate", "500", "--batch-rate", "1", name="source")
    source.wait_for_output("subscribed", timeout=30)
    time.sleep(3.0)
    recorder._signal_group(signal.SIGKILL)
    recorder.popen.wait(timeout=10)
    source.stop()
    info = subprocess.run(lumina("bag", "info", str(bag)), env=ros_env, capture_output=True, text=True, timeout=30)
    assert info.returncode != 0 and "Traceback" not in info.stderr
    assert "reindex" in info.stderr and str(bag) in info.stderr, info.stderr
    run = subprocess.run(lumina("bag", "reindex", str(bag)), env=ros_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert re.search(r"recovered \d+ messages", run.stdout), run.stdout
    got = rosbags_messages(bag)
    chatter = [m.data for _, m, _ in got["/bag_test/chatter"]]
    # every chunk closed before the kill is back (chunks close at least once a second): a contiguous prefix
    assert chatter == [f"msg {i}" for i in range(len(chatter))]
    # publishing began 0.3 s after 'subscribed'; a chunk closes at least once a second (1.5 s: slack)
    assert len(chatter) >= 500 * (3.0 - 0.3 - 1.5), len(chatter)
    info = subprocess.run(lumina("bag", "info", str(bag)), env=ros_env, capture_output=True, text=True, timeout=30)
    assert info.returncode == 0 and f"Count: {len(chatter)} |" in info.stdout, info.stdout + info.stderr


def test_recorder_counts_the_messages_it_missed(processes, tmp_path):
    """A recorder stopped for a second behind a keep-last-5 publisher loses batches; the seq gaps count each one."""
    bag = tmp_path / "stalled"
    recorder = record(processes, bag)
    source = processes.start_python(
        SOURCE, "--duration", "3", "--rate", "10", "--batch-rate", "200", "--jewels", "2500", name="source"
    )
    source.wait_for_output("subscribed", timeout=30)
    time.sleep(1.0)
    recorder._signal_group(signal.SIGSTOP)
    time.sleep(1.0)
    recorder._signal_group(signal.SIGCONT)
    _, n_state = published_counts(source)
    recorder.stop()
    assert recorder.popen.returncode == 0, recorder.output()
    got = rosbags_messages(bag)
    seqs = [m.seq for _, m, _ in got["/bag_test/jewels/state"]]
    missed = n_state - len(seqs)
    assert seqs[0] == 0 and seqs[-1] == n_state - 1 and missed > 0, (len(seqs), n_state)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"]["lumina.dropped./bag_test/jewels/state"] == str(missed)
    assert meta["custom_data"]["lumina.dropped_total"] == str(missed)
    assert f"missed on /bag_test/jewels/state: {missed} (seq gaps)" in recorder.output(), recorder.output()


def test_replay_driver_publishes_the_recorded_jewel_states(processes, ros_node, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray

    from lumina_nodes.fastpath import from_field
    from lumina_nodes.msg import JewelCommandBatch, JewelStateBatch
    from lumina_nodes.nodes.common import BATCH_QOS, DIAGNOSTICS_QOS

    bag = tmp_path / "plaza"
    recorder = record(processes, bag)
    source = processes.start_python(SOURCE, "--duration", "2", "--rate", "10", "--batch-rate", "50", name="source")
    _, n_state = published_counts(source)
    recorder.stop()
    source.stop()
    batches, statuses = [], []
    ros_node.node.create_subscription(JewelStateBatch, "/bag_test/jewels/state", batches.append, QoSDepth(1000))
    ros_node.node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: statuses.extend(m.status), DIAGNOSTICS_QOS
    )
    command = ros_node.node.create_publisher(JewelCommandBatch, "/bag_test/jewels/command", BATCH_QOS)
    processes.start_node(
        "jewel_driver",
        "-r",
        "__ns:=/bag_test",
        "-p",
        "backend:=replay",
        "-p",
        f"bag:={bag}",
        "-p",
        "driver_id:=bag_test",
        "-p",
        "publish_rate_hz:=50.0",
    )
    ros_node.spin_until(lambda: any(len(b.ids) == 0 for b in batches[5:]), timeout=30, what="the end of the replay")
    replayed = [b for b in batches if len(b.ids)]
    phases = [float(from_field(b.phase, np.float64)[0]) for b in replayed]
    recorded = [(i % 100) / 100.0 for i in range(n_state)]
    # every poll publishes the newest due batch: the recorded sequence, in order, each batch at most missed by
    # a late poll (50 Hz against 50 Hz)
    assert phases == sorted(phases, key=recorded.index)
    # from the first batch this test saw (discovery takes a moment) to the end of the recording
    expected = recorded[recorded.index(phases[0]) :]
    assert phases[-1] == recorded[-1] and len(set(phases)) >= 0.9 * len(expected), (len(set(phases)), len(expected))
    assert all(np.array_equal(from_field(b.ids, np.uint32), np.arange(1, 251)) for b in replayed)
    assert all(b.driver_id == "bag_test" for b in batches)
    ros_node.wait_for_subscribers("/bag_test/jewels/command")
    msg = JewelCommandBatch(driver_id="bag_test", ids=[1, 2], frequency_offset=[0.1, 0.1])
    command.publish(msg)
    ros_node.spin_until(
        lambda: any(
            s.name.endswith("jewel replay")
            and "recording ended" in s.message
            and {v.key: v.value for v in s.values}.get("commands_accepted") == "2"
            for s in statuses
        ),
        timeout=20,
        what="replay diagnostics: ended, 2 commands counted",
    )


def QoSDepth(depth):
    from rclpy.qos import QoSProfile

    return QoSProfile(depth=depth)


def test_city_runs_on_a_recorded_night(processes, ros_node, tmp_path):
    """Record the small city (its record:= argument), then run the city with driver:=replay on that bag: the
    synchronizer locks it."""
    from lumina_nodes.msg import SyncState
    from lumina_nodes.nodes.common import STATE_QOS

    bag = tmp_path / "city"
    city_args = (
        "lumina_nodes",
        "city.launch.xml",
        "size:=small",
        "scenario:=watch",
        "lighting:=sim",
        "biodream:=none",
        "use_sim_time:=true",
    )
    city = processes.start([package_executable("lumina_launch"), *city_args, f"record:={bag}"], name="city")
    city.wait_for_output(r"recording /plaza_4/jewels/state", timeout=60)
    time.sleep(8.0)
    city.stop()
    assert city.popen.returncode == 0, city.output()
    # every batch is counted (seq gaps); a loaded CI machine made the recorder miss 18 of 13,985 once (keep-last 5
    # writers drop what a slow reader has not taken): a few, counted and printed, are the recorder's contract
    closed = re.search(r"closed .*city: (\d+) messages on \d+ topics.* missed (\d+)", city.output())
    assert closed, city.output()
    assert int(closed.group(2)) <= 0.01 * int(closed.group(1)), city.output()
    states = []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    replay = processes.start(
        [package_executable("lumina_launch"), *city_args, "driver:=replay", f"bag:={bag}"], name="replay_city"
    )
    ros_node.spin_until(
        lambda: any(s.jewels_active == 100 and s.order_parameter > 0.9 for s in states[-20:]),
        timeout=60,
        what="the synchronizer locked on the replayed night (100 jewels, r > 0.9)",
    )
    assert "Traceback" not in replay.output()


@pytest.mark.parametrize(
    "args, message",
    [
        (["record"], "nothing to record"),
        (["record", "-a", "--compression-mode", "file"], "not supported"),
        (["record", "-a", "-e", "("], "not a regular expression"),
        (["play", "/nonexistent/bag"], "no such bag"),
        (["play", "/tmp", "--rate", "0"], "out of range"),
        (["info", "/nonexistent/bag"], "no such bag"),
        (["reindex", "/nonexistent/bag"], "not a directory"),
    ],
)
def test_bad_arguments_get_a_clear_error(args, message, ros_env):
    run = subprocess.run(lumina("bag", *args), env=ros_env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr
