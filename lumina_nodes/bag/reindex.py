"""Recovering a bag whose recorder was killed (``lumina bag reindex``), as ``ros2 bag reindex`` does.

Every ``.mcap`` file of the directory is checked. A file with a summary is kept as it is; a file without one (the
recorder died before closing it) or with damage is read record by record up to the first incomplete or corrupt
record, and every complete chunk before it is written into a new file with a summary. The original is kept beside
it as ``<name>.damaged`` (nothing is deleted). Then ``metadata.yaml`` is rebuilt from the files' summaries.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, IndexType, Writer

from . import BagError
from .metadata import FileSpan, TopicCount, bag_metadata, read_metadata, write_metadata
from .reader import READ_ERRORS, BagReader, _file_index, _summary
from .writer import LIBRARY, PROFILE


def recover_file(path: Path) -> dict:
    """Rewrite ``path`` from its readable prefix; returns {messages, orphans (messages whose channel record is
    missing: not written), stopped_at, reason}."""
    schemas, channels, messages, orphans = {}, {}, 0, 0
    stopped_at, reason = None, ""
    tmp = path.with_name(path.name + ".reindex")
    with open(path, "rb") as source, open(tmp, "wb") as target:
        writer = Writer(target, compression=CompressionType.NONE, index_types=IndexType.ALL)
        writer.start(profile=PROFILE, library=LIBRARY)
        new_channel, new_schema = {}, {}
        records = StreamReader(source, validate_crcs=True).records
        try:
            for record in records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    channel = channels.get(record.channel_id)
                    if channel is None:  # its channel record was lost: the message cannot be attributed
                        orphans += 1
                        continue
                    if channel.id not in new_channel:
                        schema = schemas.get(channel.schema_id)  # None: a channel without a schema (id 0)
                        if schema is not None and schema.id not in new_schema:
                            new_schema[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
                        new_channel[channel.id] = writer.register_channel(
                            channel.topic,
                            channel.message_encoding,
                            new_schema[schema.id] if schema is not None else 0,
                            channel.metadata,
                        )
                    writer.add_message(
                        new_channel[channel.id], record.log_time, record.data, record.publish_time, record.sequence
                    )
                    messages += 1
        except READ_ERRORS as error:
            stopped_at, reason = source.tell(), str(error) or type(error).__name__
        writer.finish()
    os.replace(path, path.with_name(path.name + ".damaged"))
    os.replace(tmp, path)
    return {"messages": messages, "orphans": orphans, "stopped_at": stopped_at, "reason": reason}


def _check_records(path: Path) -> None:
    """BagError if a record of ``path`` is damaged (a chunk whose CRC does not match, a bad length...)."""
    try:
        with open(path, "rb") as source:
            for _ in StreamReader(source, validate_crcs=True).records:
                pass
    except READ_ERRORS as error:
        raise BagError(f"{path}: damaged: {error}") from error


def reindex(bag_dir) -> list[str]:
    """Recover the files of ``bag_dir`` and rebuild its metadata.yaml; returns one report line per file."""
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise BagError(f"{bag_dir}: not a directory (reindex works on a bag directory)")
    paths = sorted(bag_dir.glob("*.mcap"), key=_file_index)
    if not paths:
        raise BagError(f"{bag_dir}: no .mcap file to reindex")
    report = []
    for path in paths:
        try:
            _summary(path)
            _check_records(path)
            report.append(f"{path.name}: complete")
        except BagError:
            result = recover_file(path)
            where = (
                f"; the rest from byte {result['stopped_at']} is unreadable ({result['reason']})"
                if result["stopped_at"] is not None
                else ""
            )
            report.append(
                f"{path.name}: recovered {result['messages']} messages{where}; original kept as {path.name}.damaged"
                + (f"; {result['orphans']} messages of an unknown channel left out" if result["orphans"] else "")
            )
    custom = {}
    if (bag_dir / "metadata.yaml").exists():
        try:
            custom = read_metadata(bag_dir).get("custom_data") or {}
        except BagError:
            custom = {}
        os.replace(bag_dir / "metadata.yaml", bag_dir / "metadata.yaml.old")
    reader = BagReader(bag_dir)  # no metadata.yaml now: reads the files' summaries
    files = [FileSpan(f.path.name, f.start_ns, f.end_ns, f.message_count) for f in reader.files]
    topics = [TopicCount(t.name, t.type, t.qos, t.type_hash, t.message_count) for t in reader.topics.values()]
    write_metadata(bag_dir, bag_metadata(files=files, topics=topics, custom_data=custom))
    report.append(f"metadata.yaml rebuilt: {reader.message_count} messages in {len(files)} files")
    return report
