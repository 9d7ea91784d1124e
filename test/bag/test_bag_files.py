"""Bag files (lumina_nodes.bag), no DDS: bags written by BagWriter from serialize_message bytes read back with
independent readers (rosbags AnyReader, mcap / mcap_ros2), metadata.yaml and MCAP records as rosbag2 writes
them, splitting, compression, recovery of truncated and damaged files, reader errors, seq gap counting and
schema texts.

Note on the data: rmw_fastrtps_cpp's serialize_message returns the *estimated* serialized size (it aligns every
sequence of 8-byte elements, even an empty one), so a JewelStateBatch with empty float64[] arrays comes back with
up to 16 trailing bytes of uninitialised memory, which rosbags rejects ("CDR message size mismatch"); padding
bytes inside are not zeroed either. Raw subscriptions get the exact length from the wire, so the messages here
have non-empty arrays (see check_cdr_length).
"""

import itertools
import json
import math
import struct
import warnings

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from mcap.reader import make_reader
from mcap.records import Footer
from mcap.stream_reader import StreamReader
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from std_msgs.msg import Header, String

from lumina_nodes.bag import BagError, definitions
from lumina_nodes.bag.definitions import SEPARATOR, message_definition, share_directory
from lumina_nodes.bag.drops import SeqGapCounter, seq_reader
from lumina_nodes.bag.metadata import QOS_KEYS, qos_entry
from lumina_nodes.bag.reader import BagReader
from lumina_nodes.bag.reindex import reindex
from lumina_nodes.bag.writer import BagWriter
from lumina_nodes.msg import ClusterState, JewelStateBatch, LoopTiming, PlazaSync, SyncState

with warnings.catch_warnings():  # mcap_ros2.reader imports the deprecated mcap_ros1.reader
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcap_ros2.reader import read_ros2_messages

STRING, BATCH, SYNC = "std_msgs/msg/String", "lumina_nodes/msg/JewelStateBatch", "lumina_nodes/msg/SyncState"
QOS = {
    "/chatter": [qos_entry(history="keep_last", depth=10)],
    "/jewels/state": [qos_entry(reliability="best_effort"), qos_entry(durability="transient_local", depth=1)],
    "/sync/state": [qos_entry(deadline_ns=50_000_000, liveliness="manual_by_topic")],
}
TYPES = {"/chatter": STRING, "/jewels/state": BATCH, "/sync/state": SYNC}
T0 = 1_790_000_000_000_000_000
DATA_END = 1 + 8 + 4  # MCAP DataEnd record


def type_hash(type_name):
    """RIHS01 hash of a type as rosidl generated it (share/<pkg>/msg/<Type>.json)."""
    package, _, name = type_name.split("/")
    description = json.loads((share_directory(package) / "msg" / f"{name}.json").read_text())
    return description["type_hashes"][0]["hash_string"]


def batch(k, driver="plaza_north", n=3):
    rng = np.random.default_rng(k)
    return JewelStateBatch(
        header=Header(stamp=Time(sec=k, nanosec=7 * k), frame_id="jewels" if k % 2 else "j"),
        driver_id=driver,
        seq=k,
        ids=np.arange(1, n + 1, dtype=np.uint32) + k,
        phase=rng.uniform(-math.pi, math.pi, n),
        frequency=rng.uniform(0.5, 2.0, n),
        frequency_offset=rng.normal(0, 0.01, n),
        sample_age=rng.uniform(0, 0.1, n),
        intensity=rng.uniform(0, 1, n).astype(np.float32),
        status=np.array([k % 8] * (k % 3), np.uint8),
    )


def sync(k):
    return SyncState(
        header=Header(stamp=Time(sec=k, nanosec=1), frame_id="sync"),
        mode=k % 2,
        order_parameter=0.5 + k / 1000,
        mean_phase=-1.25,
        jewels_total=100 + k,
        jewels_active=90,
        clusters=[
            ClusterState(index=i, size=10 * i, center_frequency=1.0 + i / 10, resolution=i % 3) for i in range(k % 3)
        ],
        plazas=[PlazaSync(driver_id=f"plaza_{i}", jewels_total=i, lock_fraction=0.25 * i) for i in range(1 + k % 2)],
        coupling_scale=1.5,
        timing=LoopTiming(rate_hz=50.0, ticks=2**40 + k, deadline_misses=k, latency_p99=0.004),
    )


def message(topic, k):
    if topic == "/chatter":
        return String(data=f"hello {k} " + "é" * (k % 4))
    return batch(k) if topic == "/jewels/state" else sync(k)


def sample_messages(count, step_ns=10_000_000):
    """[(topic, recv_ns, send_ns, message)] in arrival order over the three topics."""
    topics = list(TYPES)
    return [
        (topics[k % 3], T0 + k * step_ns, T0 + k * step_ns - 1000 - k, message(topics[k % 3], k)) for k in range(count)
    ]


def write_bag(path, messages, **options):
    """Write ``messages`` (tuples as sample_messages gives) with BagWriter; returns [(topic, recv, send, bytes)]."""
    writer = BagWriter(path, **options)
    ids = {topic: writer.add_topic(topic, TYPES[topic], QOS[topic], type_hash(TYPES[topic])) for topic in TYPES}
    written = []
    for topic, recv, send, msg in messages:
        data = serialize_message(msg)
        writer.write(ids[topic], recv, send, data)
        written.append((topic, recv, send, data))
    writer.close()
    return written


def assert_same(expected, actual, where=""):
    """Fields of an rclpy message equal to those of a message decoded by another library (recursively)."""
    for name, kind in expected.get_fields_and_field_types().items():
        a, b = getattr(expected, name), getattr(actual, name)
        here = f"{where}.{name}"
        if hasattr(a, "get_fields_and_field_types"):
            assert_same(a, b, here)
        elif kind.startswith("sequence<") and "/" in kind:
            assert len(a) == len(b), here
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                assert_same(x, y, f"{here}[{i}]")
        elif kind.startswith("sequence<"):
            assert np.array_equal(as_numbers(a), as_numbers(b)), here
        else:
            assert a == b, here


def as_numbers(values):
    """A numeric array of a sequence field (mcap_ros2 gives uint8[] as bytes)."""
    if isinstance(values, bytes | bytearray):
        values = list(values)
    return np.asarray(values, np.float64)


def mcap_files(bag):
    return sorted(bag.glob("*.mcap"), key=lambda p: int(p.stem.rpartition("_")[2]))


def assert_independent_readers(bag, written, messages):
    """rosbags AnyReader and mcap_ros2 decode every message, in order, with the log times written."""
    order = sorted(range(len(written)), key=lambda i: written[i][1])
    with AnyReader([bag]) as reader:  # checks the recorded type hashes against the embedded definitions
        got = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
    if len(mcap_files(bag)) > 1:  # rosbags reads a split bag file after file, each in log time order
        got.sort(key=lambda item: item[1])
    assert [(t, r) for t, r, _ in got] == [written[i][:2] for i in order]
    for i, (_, _, decoded) in zip(order, got, strict=True):
        assert_same(messages[i][3], decoded, written[i][0])
    decoded = [m for path in mcap_files(bag) for m in read_ros2_messages(str(path))]
    decoded.sort(key=lambda m: m.log_time_ns)
    assert [(m.channel.topic, m.log_time_ns, m.publish_time_ns) for m in decoded] == [written[i][:3] for i in order]
    for i, m in zip(order, decoded, strict=True):
        assert_same(messages[i][3], m.ros_msg, written[i][0])


def check_cdr_length(data, type_name):
    """rosbags' deserialiser accepts ``data`` (at most 3 bytes of padding after the last field)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(message_definition(type_name)[1], type_name))
    _, text = message_definition(type_name)
    for section in text.split("\n" + SEPARATOR + "\n")[1:]:
        head, body = section.split("\n", 1)
        store.register(get_types_from_msg(body, head[len("MSG: ") :]))
    store.deserialize_cdr(data, type_name)


# -- 1. independent readers ------------------------------------------------------------------------------------


def test_a_bag_reads_back_with_rosbags_and_mcap_ros2_field_for_field(tmp_path):
    messages = sample_messages(30)
    written = write_bag(tmp_path / "bag", messages)
    assert_independent_readers(tmp_path / "bag", written, messages)
    # and with BagReader: the bytes as written, with both timestamps
    assert list(BagReader(tmp_path / "bag").messages()) == written


def test_serialize_message_of_empty_float64_arrays_has_trailing_garbage():
    """What made rosbags say "CDR message size mismatch": the message, not the bag (see the module docstring)."""
    full = serialize_message(batch(1))
    check_cdr_length(full, BATCH)  # non-empty arrays: exact length
    empty = JewelStateBatch(driver_id="ab")  # 60 bytes of CDR; the estimate adds alignment for each float64[]
    data = serialize_message(empty)
    from rclpy.serialization import deserialize_message

    assert deserialize_message(data, JewelStateBatch).driver_id == "ab"
    if len(data) > 60 + 3:  # rmw_fastrtps_cpp (the estimate); another rmw may return the exact 60
        with pytest.raises(Exception, match="size mismatch"):
            check_cdr_length(data, BATCH)


# -- 2. metadata.yaml and the MCAP records -----------------------------------------------------------------------


def test_metadata_yaml_and_mcap_records_are_as_rosbag2_writes_them(tmp_path):
    bag = tmp_path / "night"
    messages = sample_messages(31)
    write_bag(bag, messages, custom_data={"drops": 0})
    document = yaml.safe_load((bag / "metadata.yaml").read_text())
    meta = document["rosbag2_bagfile_information"]
    for key in ("version", "storage_identifier", "duration", "starting_time", "message_count",
                "topics_with_message_count", "compression_format", "compression_mode", "relative_file_paths",
                "files", "custom_data", "ros_distro"):  # fmt: skip
        assert key in meta, key
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["compression_format"] == "" and meta["compression_mode"] == ""
    assert meta["starting_time"] == {"nanoseconds_since_epoch": T0}
    assert meta["duration"] == {"nanoseconds": 30 * 10_000_000}
    assert meta["message_count"] == 31
    assert meta["relative_file_paths"] == ["night_0.mcap"]
    assert meta["files"] == [
        {"path": "night_0.mcap", "starting_time": {"nanoseconds_since_epoch": T0},
         "duration": {"nanoseconds": 300_000_000}, "message_count": 31}
    ]  # fmt: skip
    assert meta["custom_data"] == {"drops": "0"}
    assert isinstance(meta["ros_distro"], str) and meta["ros_distro"]
    counts = {"/chatter": 11, "/jewels/state": 10, "/sync/state": 10}
    assert [t["topic_metadata"]["name"] for t in meta["topics_with_message_count"]] == list(TYPES)
    for entry in meta["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        name = topic["name"]
        assert entry["message_count"] == counts[name]
        assert topic["type"] == TYPES[name] and topic["serialization_format"] == "cdr"
        assert topic["type_description_hash"] == type_hash(TYPES[name])
        qos = topic["offered_qos_profiles"]
        assert isinstance(qos, list) and len(qos) == len(QOS[name])
        for profile in qos:
            assert list(profile) == list(QOS_KEYS)
            for key in ("history", "reliability", "durability", "liveliness"):
                assert isinstance(profile[key], str)
            for key in ("deadline", "lifespan", "liveliness_lease_duration"):
                assert set(profile[key]) == {"sec", "nsec"}
        assert qos == QOS[name]
    assert qos[0]["deadline"] == {"sec": 0, "nsec": 50_000_000}
    assert QOS["/chatter"][0]["lifespan"] == {"sec": 9223372036, "nsec": 854775807}

    with open(bag / "night_0.mcap", "rb") as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert sorted(schemas) == sorted(TYPES.values())
        for name, schema in schemas.items():
            assert schema.encoding == "ros2msg"
            assert schema.data.decode() == expected_definition(name)
        assert "MSG: lumina_nodes/ClusterState\n" in schemas[SYNC].data.decode()
        for channel in summary.channels.values():
            assert channel.message_encoding == "cdr"
            assert summary.schemas[channel.schema_id].name == TYPES[channel.topic]
            assert isinstance(channel.metadata["offered_qos_profiles"], str)
            assert yaml.safe_load(channel.metadata["offered_qos_profiles"]) == QOS[channel.topic]
            assert channel.metadata["topic_type_hash"] == type_hash(TYPES[channel.topic])
        records = list(reader.iter_metadata())
    assert [r.name for r in records] == ["rosbag2"]
    assert yaml.safe_load(records[0].metadata["serialized_metadata"]) == meta


def msg_text(type_name):
    package, _, name = type_name.replace("/msg/", "/").partition("/")
    return (share_directory(package) / "msg" / f"{name}.msg").read_text()


def expected_definition(type_name):
    """Root .msg text, then each dependency once after '=' * 80 and 'MSG: pkg/Type' (breadth first)."""
    dependencies = {
        STRING: [],
        BATCH: ["std_msgs/Header", "builtin_interfaces/Time"],
        SYNC: ["std_msgs/Header", "lumina_nodes/ClusterState", "lumina_nodes/PlazaSync", "lumina_nodes/LoopTiming",
               "builtin_interfaces/Time"],
    }[type_name]  # fmt: skip
    text = msg_text(type_name)
    for dependency in dependencies:
        text += f"\n{'=' * 80}\nMSG: {dependency}\n{msg_text(dependency)}"
    return text


# -- 3. splitting ------------------------------------------------------------------------------------------------


def data_section(path):
    """Bytes of a file before its summary, without the rosbag2 metadata record and DataEnd."""
    with open(path, "rb") as stream:
        summary = make_reader(stream).get_summary()
        stream.seek(0)
        footer = next(r for r in StreamReader(stream).records if isinstance(r, Footer))
    (metadata_index,) = summary.metadata_indexes
    return footer.summary_start - metadata_index.length - DATA_END, summary


def record_bytes(record):
    from mcap.data_stream import RecordBuilder

    builder = RecordBuilder()
    record.write(builder)
    return builder.count


def test_size_split_files_stay_within_max_bag_size_but_for_their_summary(tmp_path):
    """The promise: a file passes max_bag_size by its summary and rosbag2 metadata record only, and it is full
    (the next file's first message would not have fitted)."""
    rng = np.random.default_rng(3)
    messages = []
    for k in range(1500):  # small messages: the message index (16 bytes each) matters
        topic = "/chatter" if k % 7 else "/sync/state"
        msg = String(data="x" * int(rng.integers(0, 120))) if topic == "/chatter" else sync(k)
        messages.append((topic, T0 + k * 1000, T0, msg))
    messages.append(("/jewels/state", T0 + 10**7, T0, batch(1, n=900)))  # alone bigger than max_bag_size
    messages.append(("/chatter", T0 + 10**7 + 1, T0, String(data="after")))
    max_size = 20_000
    written = write_bag(tmp_path / "b", messages, max_bag_size=max_size, chunk_size=4096)
    files = mcap_files(tmp_path / "b")
    assert len(files) > 5
    sections = [data_section(f) for f in files]
    for i, (data, summary) in enumerate(sections[:-1]):
        channels = {c.topic for c in summary.channels.values()}
        if summary.statistics.message_count == 1 and data > max_size:
            continue  # the one message bigger than the limit, alone in its file
        assert data <= max_size, (files[i].name, data)
        # the first message of the next file, with its index entry (and its channel, schema if new here)
        next_topic, _, _, next_data = written[sum(s.statistics.message_count for _, s in sections[: i + 1])]
        cost = len(next_data) + 31 + 16 + 15 + 53
        if next_topic not in channels:
            nxt = sections[i + 1][1]
            channel = next(c for c in nxt.channels.values() if c.topic == next_topic)
            cost += record_bytes(channel) + record_bytes(nxt.schemas[channel.schema_id])
        assert data + cost > max_size, (files[i].name, data, "split too early")
    alone = [data for data, s in sections if s.statistics.message_count == 1 and data > max_size]
    assert len(alone) == 1 and alone[0] > len(written[-2][3])  # the big batch, in a file of its own
    assert list(BagReader(tmp_path / "b").messages()) == sorted(written, key=lambda m: m[1])
    assert_independent_readers(tmp_path / "b", written, messages)


def test_duration_split_by_receive_time_and_reader_merges_files_in_receive_time_order(tmp_path):
    rng = np.random.default_rng(5)
    messages = sample_messages(60, step_ns=100_000_000)  # 6 s
    # receive times out of arrival order: /sync/state is stamped 250 ms early, the others jitter (a recorder's view)
    messages = [
        (t, r + int(rng.integers(-40, 40)) * 1_000_000 - (250_000_000 if t == "/sync/state" else 0), s, m)
        for t, r, s, m in messages
    ]
    bag = tmp_path / "run"
    written = write_bag(bag, messages, max_bag_duration=1.0)
    files = mcap_files(bag)
    assert [f.name for f in files] == [f"run_{k}.mcap" for k in range(len(files))]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == [f.name for f in files]
    # the rule: a message goes to a new file when it is received >= 1 s after the earliest one of the current file
    expected, start = [[]], None
    for m in written:
        if expected[-1] and m[1] - start >= 1_000_000_000:
            expected.append([])
        start = m[1] if not expected[-1] else min(start, m[1])
        expected[-1].append(m)
    assert len(files) == len(expected) >= 5
    for i, (f, part) in enumerate(zip(files, expected, strict=True)):
        with open(f, "rb") as stream:
            stats = make_reader(stream).get_summary().statistics
        times = [r for _, r, _, _ in part]
        assert stats.message_count == len(part) == meta["files"][i]["message_count"], f.name
        assert (stats.message_start_time, stats.message_end_time) == (min(times), max(times)), f.name
        assert meta["files"][i]["starting_time"]["nanoseconds_since_epoch"] == min(times)
        assert meta["files"][i]["duration"]["nanoseconds"] == max(times) - min(times)
    # the files overlap in receive time, so reading them one after the other would not be in order
    assert any(max(r for _, r, _, _ in a) > min(r for _, r, _, _ in b) for a, b in itertools.pairwise(expected))
    assert meta["message_count"] == len(written)
    assert list(BagReader(bag).messages()) == sorted(written, key=lambda m: m[1])
    assert_independent_readers(bag, written, messages)


# -- 4. chunk compression ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compressed_chunks_read_back_with_both_readers(tmp_path, compression):
    messages = sample_messages(90)
    bag = tmp_path / compression
    written = write_bag(bag, messages, compression=compression, chunk_size=2048)
    with open(bag / f"{compression}_0.mcap", "rb") as stream:
        chunks = make_reader(stream).get_summary().chunk_indexes
    assert len(chunks) > 3 and {c.compression for c in chunks} == {compression}
    assert all(c.compressed_size < c.uncompressed_size for c in chunks)
    assert_independent_readers(bag, written, messages)
    assert list(BagReader(bag).messages()) == written
    assert BagReader(bag).files[0].compression == {compression}


# -- 5. and 6. truncated and damaged files ------------------------------------------------------------------------


def chunk_messages(path):
    """[(chunk start, chunk end, log times of its messages)] from the file's chunk indexes and message indexes."""
    with open(path, "rb") as stream:
        summary = make_reader(stream).get_summary()
        result = []
        for index in summary.chunk_indexes:
            times = []
            for offset in index.message_index_offsets.values():
                stream.seek(offset)
                opcode, _length, _channel, size = struct.unpack("<BQHI", stream.read(15))
                assert opcode == 0x07  # MessageIndex
                entries = stream.read(size)
                times += [struct.unpack_from("<QQ", entries, i)[0] for i in range(0, size, 16)]
            result.append((index.chunk_start_offset, index.chunk_start_offset + index.chunk_length, sorted(times)))
    return result


def complete_bag(tmp_path, name, count=240, **options):
    messages = sample_messages(count)
    written = write_bag(tmp_path / name, messages, chunk_size=2048, **options)
    path = tmp_path / name / f"{name}_0.mcap"
    return messages, written, path, chunk_messages(path)


def test_a_truncated_file_is_named_and_reindex_recovers_every_complete_chunk(tmp_path):
    messages, written, original, chunks = complete_bag(tmp_path, "full")
    assert len(chunks) > 6
    start, end, _ = chunks[4]
    cut = (start + end) // 2  # the recorder was killed while writing chunk 4
    bag = tmp_path / "killed"
    bag.mkdir()
    killed = bag / "killed_0.mcap"
    killed.write_bytes(original.read_bytes()[:cut])
    with pytest.raises(BagError) as error:
        BagReader(bag)
    assert str(killed) in str(error.value) and "reindex" in str(error.value)

    report = reindex(bag)
    assert report[0].startswith("killed_0.mcap: recovered")
    expected = sorted(t for s, e, times in chunks if e <= cut for t in times)
    assert len(expected) == sum(len(times) for times in (c[2] for c in chunks[:4]))
    reader = BagReader(bag)
    got = list(reader.messages())
    assert [r for _, r, _, _ in got] == expected
    by_time = {m[1]: m for m in written}
    assert got == [by_time[t] for t in expected]
    assert (bag / "killed_0.mcap.damaged").read_bytes() == original.read_bytes()[:cut]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] == len(expected) and meta["relative_file_paths"] == ["killed_0.mcap"]
    assert meta["starting_time"]["nanoseconds_since_epoch"] == expected[0]
    assert meta["duration"]["nanoseconds"] == expected[-1] - expected[0]
    assert {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
            for t in meta["topics_with_message_count"]} == QOS  # fmt: skip
    kept = [i for i, m in enumerate(written) if m[1] in set(expected)]
    assert_independent_readers(bag, [written[i] for i in kept], [messages[i] for i in kept])


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_damaged_bytes_in_a_chunk_give_bag_error_with_file_and_offset(tmp_path, compression):
    messages, written, path, chunks = complete_bag(tmp_path, "bag", compression=compression)
    start, end, _ = chunks[3]
    data = bytearray(path.read_bytes())
    middle = (start + end) // 2
    data[middle : middle + 4] = bytes(b ^ 0x5A for b in data[middle : middle + 4])
    path.write_bytes(bytes(data))
    reader = BagReader(tmp_path / "bag")  # the summary is intact
    with pytest.raises(BagError) as error:
        list(reader.messages())
    text = str(error.value)
    assert str(path) in text
    offset = int(text.split("byte offset ")[1].split(":")[0])
    assert start <= offset <= end, (offset, start, end)

    report = reindex(tmp_path / "bag")
    assert report[0].startswith("bag_0.mcap: recovered")
    expected = sorted(t for s, e, times in chunks[:3] for t in times)
    got = list(BagReader(tmp_path / "bag").messages())
    assert [r for _, r, _, _ in got] == expected
    by_time = {m[1]: m for m in written}
    assert got == [by_time[t] for t in expected]
    assert (tmp_path / "bag" / "bag_0.mcap.damaged").read_bytes() == bytes(data)


# -- 7. reader errors --------------------------------------------------------------------------------------------


def test_bag_reader_names_the_path_of_every_unreadable_bag(tmp_path):
    def error_of(path):
        with pytest.raises(BagError) as error:
            BagReader(path)
        return str(error.value)

    assert str(tmp_path / "nothing") in error_of(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty") in error_of(tmp_path / "empty")

    write_bag(tmp_path / "bag", sample_messages(6))
    metadata = tmp_path / "bag" / "metadata.yaml"
    good = metadata.read_text()
    metadata.write_text("rosbag2_bagfile_information: {version: 9, [")
    assert str(metadata) in error_of(tmp_path / "bag") and "YAML" in error_of(tmp_path / "bag")
    metadata.write_text("- just\n- a list\n")
    assert str(metadata) in error_of(tmp_path / "bag")
    for key in ("relative_file_paths", "storage_identifier", "version"):
        document = yaml.safe_load(good)
        del document["rosbag2_bagfile_information"][key]
        metadata.write_text(yaml.safe_dump(document))
        text = error_of(tmp_path / "bag")
        assert str(metadata) in text and key in text
    metadata.write_text(good)
    assert BagReader(tmp_path / "bag").message_count == 6
    (tmp_path / "bag" / "bag_0.mcap").rename(tmp_path / "bag" / "elsewhere.mcap")
    text = error_of(tmp_path / "bag")
    assert str(tmp_path / "bag" / "bag_0.mcap") in text and "missing" in text


# -- 8. seq gaps -------------------------------------------------------------------------------------------------


def test_seq_reader_reads_the_driver_and_seq_after_any_header():
    read = seq_reader(message_definition(BATCH)[1])
    for frame_id in ("", "a", "abc", "abcd", "frame_id_long"):
        for driver in ("", "n", "north", "plaza_nort"):
            msg = batch(5, driver=driver)
            msg.header.frame_id = frame_id
            msg.seq = 4_000_000_001
            assert read(serialize_message(msg)) == (driver, 4_000_000_001)
    assert seq_reader(message_definition(STRING)[1]) is None
    assert seq_reader(message_definition(SYNC)[1]) is None
    assert seq_reader("std_msgs/Header header\nuint32[] ids\nuint32 seq\n") is None  # an array before seq
    assert seq_reader("std_msgs/Header header\nPoint p\nuint32 seq\n") is None  # a nested type before seq


def test_seq_gap_counter_counts_losses_per_driver_not_restarts_and_survives_the_wrap():
    counter = SeqGapCounter(seq_reader(message_definition(BATCH)[1]))

    def feed(driver, *seqs):
        for seq in seqs:
            msg = batch(1, driver=driver)
            msg.seq = seq
            counter.add(serialize_message(msg))

    feed("north", 1, 2, 3, 5)  # 4 lost
    feed("south", 10, 11, 14)  # 12, 13 lost; interleaved drivers do not count as gaps of each other
    feed("north", 6, 7)
    assert (counter.missed, counter.restarts) == (3, 0)
    feed("north", 0, 1, 2)  # the driver restarted: not a loss
    assert (counter.missed, counter.restarts) == (3, 1)
    feed("east", 2**32 - 2, 2**32 - 1, 0, 2)  # wrap of the uint32 counter: only 1 lost
    assert (counter.missed, counter.restarts) == (4, 1)
    feed("east", 2**32 - 3)  # far back from 2: taken as a wrap forward, 2**32 - 6 lost
    assert counter.missed == 4 + 2**32 - 6
    assert counter.last == {"north": 2, "south": 14, "east": 2**32 - 3}
    counter.add(b"\x00\x01\x00\x00\x01")  # unreadable bytes are counted, not raised
    assert counter.unreadable == 1


# -- 9. schema texts ---------------------------------------------------------------------------------------------


def test_message_definition_lists_each_dependency_once(tmp_path, monkeypatch):
    package = tmp_path / "share" / "fake_msgs" / "msg"
    package.mkdir(parents=True)
    (package / "Root.msg").write_text(
        "# Root: Point twice, a Pair of Points, Header directly and inside Pair\n"
        "std_msgs/Header header\nPoint a\nfake_msgs/Point[] b\nPair pair\nPair[<=3] pairs\nuint8 K=1\n"
        "string NAME = 'Point'\nbuiltin_interfaces/Time t\n"
    )
    (package / "Pair.msg").write_text("Point first\nPoint second  # comment Pair\nstd_msgs/Header header\n")
    (package / "Point.msg").write_text("float64 x\nfloat64 y\n")
    real = share_directory

    def fake_share(name):
        return tmp_path / "share" / "fake_msgs" if name == "fake_msgs" else real(name)

    monkeypatch.setattr(definitions, "share_directory", fake_share)
    encoding, text = definitions.message_definition.__wrapped__("fake_msgs/msg/Root")
    assert encoding == "ros2msg"
    sections = text.split("\n" + SEPARATOR + "\n")
    assert sections[0] == (package / "Root.msg").read_text()
    names = [s.split("\n", 1)[0] for s in sections[1:]]
    assert sorted(names) == sorted(
        ["MSG: std_msgs/Header", "MSG: fake_msgs/Point", "MSG: fake_msgs/Pair", "MSG: builtin_interfaces/Time"]
    )
    for section in sections[1:]:
        head, body = section.split("\n", 1)
        name = head[len("MSG: ") :]
        source = package / f"{name.partition('/')[2]}.msg" if name.startswith("fake_msgs/") else None
        assert body == (source.read_text() if source else msg_text(name)), name
    # the installed types, as the bags carry them
    assert message_definition(SYNC) == ("ros2msg", expected_definition(SYNC))
    assert message_definition(BATCH)[1].count("MSG: ") == 2


def test_definition_of_a_missing_type_is_a_bag_error():
    with pytest.raises(BagError, match="NoSuchType"):
        message_definition("std_msgs/msg/NoSuchType")
