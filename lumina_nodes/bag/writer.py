"""Writing a rosbag2 bag directory with MCAP storage (:class:`BagWriter`).

Files are ``<dir name>_<k>.mcap``. A new file starts when the current one would pass ``max_bag_size`` bytes
with the chunk in progress, its message index and the records a new topic adds (so a file overshoots only by its
summary and rosbag2 metadata record, or by its first message if that alone is bigger; not by a cache as in
rosbag2#2310; compressed chunks are counted uncompressed, so such a file stays smaller) or spans
``max_bag_duration`` of receive time. Chunks are also closed every ``flush_interval`` seconds of wall time, so a
recorder killed with SIGKILL loses at most that much; ``metadata.yaml`` is rewritten at every split and at close.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mcap.data_stream import RecordBuilder
from mcap.records import Channel, Schema
from mcap.writer import CompressionType, IndexType, Writer

from . import BagError
from .definitions import message_definition
from .metadata import FileSpan, TopicCount, bag_metadata, qos_yaml, write_metadata

COMPRESSION = {"none": CompressionType.NONE, "zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}
PROFILE = "ros2"
LIBRARY = "lumina_nodes bag writer (mcap-python)"
#: rosbag2's default MCAP chunk size (libmcap default, 768 KiB).
CHUNK_SIZE = 768 * 1024
#: Bytes a message adds to a chunk beside its data (MCAP message record: opcode, length, fields).
MESSAGE_OVERHEAD = 1 + 8 + 2 + 4 + 8 + 8
#: Bytes a message adds to its chunk's message index (log time, offset in the chunk).
INDEX_ENTRY = 8 + 8
#: Bytes of each channel's message index record after a chunk, beside its entries (opcode, length, id, array length).
INDEX_OVERHEAD = 1 + 8 + 2 + 4
#: Bytes of a chunk record beside its data and compression name (opcode, length, start and end time, uncompressed
#: size and CRC, name length, data length).
CHUNK_OVERHEAD = 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8


class _Topic:
    __slots__ = ("name", "type", "qos", "type_hash", "schema_id", "count", "channel_ids")

    def __init__(self, name, type_name, qos, type_hash, schema):
        self.name, self.type, self.qos, self.type_hash = name, type_name, list(qos), type_hash
        self.schema_id = schema
        self.count = 0
        self.channel_ids: dict[int, int] = {}  # file index -> channel id in that file


class BagWriter:
    """A bag being written. ``add_topic`` once per topic, then ``write`` messages in arrival order, ``close``.

    ``compression``: 'none' | 'zstd' | 'lz4' (MCAP chunk compression); ``max_bag_size`` bytes and
    ``max_bag_duration`` seconds (0 = no limit) split the bag; ``custom_data`` goes to metadata.yaml and can be
    updated until close (the recorder puts its drop counts there).
    """

    def __init__(
        self,
        path,
        *,
        compression: str = "none",
        max_bag_size: int = 0,
        max_bag_duration: float = 0.0,
        chunk_size: int = CHUNK_SIZE,
        flush_interval: float = 1.0,
        custom_data: dict | None = None,
    ):
        if compression not in COMPRESSION:
            raise ValueError(f"compression {compression!r}: choose one of {', '.join(COMPRESSION)}")
        if max_bag_size < 0 or max_bag_duration < 0 or chunk_size < 1024 or flush_interval <= 0:
            raise ValueError("max_bag_size and max_bag_duration must be >= 0, chunk_size >= 1024, flush_interval > 0")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path}: already exists; choose another output (-o) or remove it")
        try:
            self.path.mkdir(parents=True)
        except OSError as error:
            raise BagError(f"{self.path}: cannot create the bag directory: {error.strerror}") from error
        self.compression = compression
        self.max_bag_size = int(max_bag_size)
        self.max_bag_duration_ns = int(max_bag_duration * 1e9)
        self.chunk_size = int(chunk_size)
        self.flush_interval = float(flush_interval)
        self.custom_data = dict(custom_data or {})
        self.topics: list[_Topic] = []
        self.files: list[dict] = []
        self.message_count = 0
        self.bytes_written = 0  # of the closed files
        self._schemas: dict[str, tuple[str, str]] = {}
        self._stream = None
        self._writer = None
        self._pending = 0  # bytes the chunk in progress adds to the file when it is closed (with its index)
        self._chunk_records = 0  # bytes of the records in it (what the library compares with chunk_size)
        self._chunk_channels: set[int] = set()  # channels with messages in it
        self._chunk_open = False
        self._last_flush = time.monotonic()
        # write/tick/close may come from two threads (a recorder's stop watchdog closes the bag)
        self._lock = threading.Lock()
        self.closed = False
        self._open_file()

    # -- topics and messages --------------------------------------------------------------------------------

    def add_topic(self, name: str, type_name: str, qos: list[dict], type_hash: str = "") -> int:
        """Register a topic; returns its id for :meth:`write`. BagError if the type's definition is missing."""
        if type_name not in self._schemas:
            self._schemas[type_name] = message_definition(type_name)
        self.topics.append(_Topic(name, type_name, qos, type_hash, None))
        return len(self.topics) - 1

    def definition(self, type_name: str) -> tuple[str, str]:
        """(encoding, text) of a registered type's schema."""
        return self._schemas[type_name]

    def write(self, topic_id: int, recv_ns: int, send_ns: int, data: bytes) -> None:
        """Append one message (CDR bytes, as a raw subscription delivers them) received at ``recv_ns``.

        After :meth:`close` it is ignored (a late callback of a recorder that is shutting down)."""
        with self._lock:
            if not self.closed:
                self._write(topic_id, recv_ns, send_ns, data)

    def _write(self, topic_id, recv_ns, send_ns, data):
        topic = self.topics[topic_id]
        if self._should_split(recv_ns, len(data), topic):
            self._split()
        current = self.files[-1]
        file_index = len(self.files) - 1
        channel = topic.channel_ids.get(file_index)
        if channel is None:
            channel = self._register(topic, file_index)
        self._writer.add_message(channel, log_time=recv_ns, data=data, publish_time=send_ns)
        self._chunk_add(len(data) + MESSAGE_OVERHEAD, channel)
        topic.count += 1
        self.message_count += 1
        if current["message_count"] == 0:
            current["start"] = current["end"] = recv_ns
        else:
            current["start"] = min(current["start"], recv_ns)
            current["end"] = max(current["end"], recv_ns)
        current["message_count"] += 1

    def tick(self) -> None:
        """Close the chunk in progress if it is older than ``flush_interval`` (call often; cheap)."""
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self._last_flush = now
            if self._chunk_channels:
                self._writer.flush()
                self._reset_chunk()

    @property
    def bytes_total(self) -> int:
        return self.bytes_written + (self._stream.tell() if self._stream else 0) + self._pending

    def close(self) -> None:
        """Finish the current file (summary, index, rosbag2 metadata record) and write metadata.yaml."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._finish_file()
            self._writer = None
            write_metadata(self.path, self.metadata())

    # -- files ---------------------------------------------------------------------------------------------

    def _should_split(self, recv_ns: int, size: int, topic: _Topic) -> bool:
        current = self.files[-1]
        if not current["message_count"]:
            return False
        if self.max_bag_duration_ns and recv_ns - current["start"] >= self.max_bag_duration_ns:
            return True
        if self.max_bag_size:
            # the file's data section if this message were written and its chunk closed: the chunk record, the
            # message index after it and, for a topic new to the file, its channel (and schema) records
            added = size + MESSAGE_OVERHEAD + INDEX_ENTRY
            channel = topic.channel_ids.get(len(self.files) - 1)
            if channel is None:
                added += INDEX_OVERHEAD + self._channel_bytes(topic)
                if topic.type not in self._schema_ids:
                    added += self._schema_bytes(topic.type)
            elif channel not in self._chunk_channels:
                added += INDEX_OVERHEAD
            if not self._chunk_open:
                added += self._chunk_overhead()
            return self._stream.tell() + self._pending + added > self.max_bag_size
        return False

    def _chunk_overhead(self) -> int:
        compression = "" if self.compression == "none" else self.compression
        return CHUNK_OVERHEAD + len(compression)

    def _chunk_add(self, record_bytes: int, channel: int | None = None):
        """Count a record added to the chunk in progress (a message of ``channel``, or a schema or channel)."""
        if not self._chunk_open:
            self._chunk_open = True
            self._pending += self._chunk_overhead()
        self._chunk_records += record_bytes
        self._pending += record_bytes
        if channel is not None:
            self._pending += INDEX_ENTRY
            if channel not in self._chunk_channels:
                self._chunk_channels.add(channel)
                self._pending += INDEX_OVERHEAD
        if self._chunk_records > self.chunk_size and self._chunk_channels:
            self._reset_chunk()  # the library closed the chunk (it does once it passes chunk_size with messages)

    def _reset_chunk(self):
        self._pending = 0
        self._chunk_records = 0
        self._chunk_channels = set()
        self._chunk_open = False

    def _schema_bytes(self, type_name: str) -> int:
        encoding, text = self._schemas[type_name]
        return _record_bytes(Schema(id=0, name=type_name, encoding=encoding, data=text.encode()))

    def _channel_bytes(self, topic: _Topic) -> int:
        return _record_bytes(
            Channel(id=0, topic=topic.name, message_encoding="cdr", schema_id=0, metadata=_channel_metadata(topic))
        )

    def _open_file(self):
        name = f"{self.path.name}_{len(self.files)}.mcap"
        try:
            self._stream = open(self.path / name, "wb")
        except OSError as error:
            raise BagError(f"{self.path / name}: cannot create: {error.strerror}") from error
        self._writer = Writer(
            self._stream,
            chunk_size=self.chunk_size,
            compression=COMPRESSION[self.compression],
            index_types=IndexType.ALL,
            enable_crcs=True,
        )
        self._writer.start(profile=PROFILE, library=LIBRARY)
        self._schema_ids: dict[str, int] = {}
        self._reset_chunk()
        self.files.append({"path": name, "message_count": 0, "start": 0, "end": 0})

    def _register(self, topic: _Topic, file_index: int) -> int:
        # the records go into the chunk in progress (just before a message of the channel, so it is written)
        schema_id = self._schema_ids.get(topic.type)
        if schema_id is None:
            encoding, text = self._schemas[topic.type]
            schema_id = self._writer.register_schema(topic.type, encoding, text.encode())
            self._schema_ids[topic.type] = schema_id
            self._chunk_add(self._schema_bytes(topic.type))
        channel = self._writer.register_channel(topic.name, "cdr", schema_id, _channel_metadata(topic))
        self._chunk_add(self._channel_bytes(topic))
        topic.channel_ids[file_index] = channel
        return channel

    def _finish_file(self):
        self._writer.add_metadata("rosbag2", {"serialized_metadata": _serialized(self.metadata())})
        self._writer.finish()
        self.bytes_written += self._stream.tell()
        self._stream.close()
        self._stream = None
        self._reset_chunk()

    def _split(self):
        self._finish_file()
        write_metadata(self.path, self.metadata())
        self._open_file()

    def metadata(self) -> dict:
        """BagMetadata (version 9) of what was written so far."""
        files = [FileSpan(f["path"], f["start"], f["end"], f["message_count"]) for f in self.files]
        topics = [TopicCount(t.name, t.type, t.qos, t.type_hash, t.count) for t in self.topics]
        return bag_metadata(files=files, topics=topics, custom_data=self.custom_data)


def _channel_metadata(topic: _Topic) -> dict:
    return {"offered_qos_profiles": qos_yaml(topic.qos), "topic_type_hash": topic.type_hash}


def _record_bytes(record) -> int:
    builder = RecordBuilder()
    record.write(builder)
    return builder.count


def _serialized(metadata: dict) -> str:
    import yaml

    return yaml.safe_dump(metadata, sort_keys=False)
