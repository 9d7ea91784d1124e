"""Reading a rosbag2 bag directory with MCAP storage (:class:`BagReader`), or one bare ``.mcap`` file.

Information comes from the files' MCAP summaries (statistics, channels, chunk indexes), so it is instant on a big
bag; messages come in receive-time (MCAP log time) order over every file of the bag. A file that cannot be read
gives a :class:`BagError` naming it and the byte offset, never a traceback.
"""

from __future__ import annotations

import heapq
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader

from . import BagError
from .metadata import read_metadata

#: What the mcap library and its decompressors raise on damaged bytes.
READ_ERRORS = (McapError, struct.error, zlib.error, ValueError, EOFError, KeyError, RuntimeError)
try:  # the decompressors' own error types
    import zstandard

    READ_ERRORS += (zstandard.ZstdError,)
except ImportError:  # pragma: no cover
    pass


@dataclass
class TopicInfo:
    """One topic of a bag: name, type, message count, offered QoS list, type hash, schema (encoding, text)."""

    name: str
    type: str
    message_count: int = 0
    qos: list = field(default_factory=list)
    type_hash: str = ""
    schema_encoding: str = ""
    schema_text: str = ""
    message_encoding: str = ""


@dataclass
class FileInfo:
    path: Path
    size: int
    message_count: int
    start_ns: int
    end_ns: int
    chunk_count: int
    compression: set


def _summary(path: Path):
    try:
        with open(path, "rb") as stream:
            summary = make_reader(stream).get_summary()
    except OSError as error:
        raise BagError(f"{path}: cannot open: {error.strerror}") from error
    except READ_ERRORS as error:
        raise BagError(
            f"{path}: not a readable MCAP file ({error}); `lumina bag reindex` recovers a bag whose recorder was killed"
        ) from error
    if summary is None or summary.statistics is None:
        raise BagError(
            f"{path}: the file has no summary (the recorder was killed before closing it?); run "
            f"`lumina bag reindex {path.parent}` to recover every chunk written"
        )
    return summary


class BagReader:
    """A bag directory (``metadata.yaml`` + ``.mcap`` files) or a single ``.mcap`` file, opened for reading."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (directory or .mcap file)")
        self.metadata = None
        if self.path.is_dir():
            if (self.path / "metadata.yaml").exists():
                self.metadata = read_metadata(self.path)
                if self.metadata["storage_identifier"] != "mcap":
                    raise BagError(
                        f"{self.path}: storage '{self.metadata['storage_identifier']}' is not supported (mcap only)"
                    )
                paths = [self.path / p for p in self.metadata["relative_file_paths"]]
            else:
                paths = sorted(self.path.glob("*.mcap"), key=_file_index)
                if not paths:
                    raise BagError(f"{self.path}: no metadata.yaml and no .mcap file: not a bag")
        else:
            paths = [self.path]
        for p in paths:
            if not p.is_file():
                raise BagError(f"{p}: listed in metadata.yaml but missing")
        self.file_paths = paths
        self.topics: dict[str, TopicInfo] = {}
        self.files: list[FileInfo] = []
        for p in paths:
            self._add_summary(p, _summary(p))

    def _add_summary(self, path, summary):
        stats = summary.statistics
        for channel_id, channel in summary.channels.items():
            schema = summary.schemas.get(channel.schema_id)
            topic = self.topics.get(channel.topic)
            if topic is None:
                qos = yaml.safe_load(channel.metadata.get("offered_qos_profiles", "") or "[]") or []
                topic = self.topics[channel.topic] = TopicInfo(
                    channel.topic,
                    schema.name if schema else "",
                    qos=qos,
                    type_hash=channel.metadata.get("topic_type_hash", ""),
                    schema_encoding=schema.encoding if schema else "",
                    schema_text=schema.data.decode("utf-8", "replace") if schema else "",
                    message_encoding=channel.message_encoding,
                )
            topic.message_count += stats.channel_message_counts.get(channel_id, 0)
        self.files.append(
            FileInfo(
                path,
                path.stat().st_size,
                stats.message_count,
                stats.message_start_time,
                stats.message_end_time,
                stats.chunk_count,
                {c.compression or "none" for c in summary.chunk_indexes},
            )
        )

    @property
    def message_count(self) -> int:
        return sum(f.message_count for f in self.files)

    @property
    def start_ns(self) -> int:
        return min((f.start_ns for f in self.files if f.message_count), default=0)

    @property
    def end_ns(self) -> int:
        return max((f.end_ns for f in self.files if f.message_count), default=0)

    @property
    def custom_data(self) -> dict:
        return (self.metadata or {}).get("custom_data") or {}

    def messages(self, topics=None, start_ns: int | None = None, end_ns: int | None = None):
        """Yield ``(topic, recv_ns, send_ns, data)`` in receive-time order over every file.

        ``topics``: names to keep (None: all); ``start_ns``/``end_ns``: receive-time bounds (inclusive start,
        exclusive end). BagError (file, offset) on damaged data.
        """
        wanted = None if topics is None else set(topics)
        streams = [self._file_messages(p, wanted, start_ns, end_ns) for p in self.file_paths]
        yield from heapq.merge(*streams, key=lambda item: item[1])

    def decoded_messages(self, topics=None, start_ns: int | None = None, end_ns: int | None = None):
        """Yield ``(topic, recv_ns, message)`` as :meth:`messages` does, each message decoded from CDR with
        mcap_ros2's decoder and the ``ros2msg`` schema stored in the bag (no rclpy, no generated interfaces: the
        message is a plain object with the fields as attributes; ``uint8[]`` fields are ``bytes``).

        BagError when a topic's schema is not ``ros2msg``/``cdr`` or a message does not decode against it.
        """
        from mcap.records import Schema
        from mcap_ros2.decoder import DecoderFactory

        factory, decoders = DecoderFactory(), {}
        for topic, recv_ns, _, data in self.messages(topics, start_ns, end_ns):
            decode = decoders.get(topic)
            if decode is None:
                info = self.topics[topic]
                schema = Schema(
                    id=len(decoders) + 1, name=info.type, encoding=info.schema_encoding, data=info.schema_text.encode()
                )
                try:
                    decode = factory.decoder_for(info.message_encoding, schema)
                except Exception as error:  # the schema text does not parse (mcap_ros2 raises several kinds)
                    raise BagError(f"{self.path}: {topic}: schema of {info.type} does not parse: {error}") from error
                if decode is None:
                    raise BagError(
                        f"{self.path}: {topic}: cannot decode {info.message_encoding!r} messages with a "
                        f"{info.schema_encoding!r} schema (cdr and ros2msg only)"
                    )
                decoders[topic] = decode
            try:
                message = decode(data)
            except Exception as error:  # truncated or foreign bytes: struct, index, unicode errors ...
                raise BagError(
                    f"{self.path}: {topic}: a message at {recv_ns} ns does not decode as {self.topics[topic].type}: "
                    f"{error}"
                ) from error
            yield topic, recv_ns, message

    def _file_messages(self, path, wanted, start_ns, end_ns):
        try:
            stream = open(path, "rb")
        except OSError as error:
            raise BagError(f"{path}: cannot open: {error.strerror}") from error
        try:
            reader = make_reader(stream, validate_crcs=True)  # chunk CRCs: damaged bytes are found, not returned
            iterator = reader.iter_messages(
                topics=None if wanted is None else sorted(wanted),
                start_time=start_ns,
                end_time=end_ns,
                log_time_order=True,
            )
            while True:
                try:
                    _, channel, message = next(iterator)
                except StopIteration:
                    return
                except READ_ERRORS as error:
                    raise BagError(f"{path}: damaged data near byte offset {stream.tell()}: {error}") from error
                yield channel.topic, message.log_time, message.publish_time, message.data
        finally:
            stream.close()


def _file_index(path: Path) -> tuple:
    stem = path.name[: -len(".mcap")]
    head, _, tail = stem.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (stem, -1)
