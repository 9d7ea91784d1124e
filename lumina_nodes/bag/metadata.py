"""rosbag2's ``metadata.yaml`` (BagMetadata version 9) and its QoS entries, as plain dicts.

Field names, the required keys and the enum strings follow rosbag2_storage's ``yaml.hpp`` / ``qos.cpp`` and rmw's
``qos_string_conversions.c``; a duration of infinity is written as ``{sec: 9223372036, nsec: 854775807}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import yaml

from . import BagError

VERSION = 9
STORAGE_ID = "mcap"
INFINITE_NS = 2**63 - 1
#: Keys every QoS entry has (rosbag2 refuses an entry without one).
QOS_KEYS = (
    "history",
    "depth",
    "reliability",
    "durability",
    "deadline",
    "lifespan",
    "liveliness",
    "liveliness_lease_duration",
    "avoid_ros_namespace_conventions",
)
QOS_CHOICES = {
    "history": ("keep_last", "keep_all", "system_default", "unknown"),
    "reliability": ("reliable", "best_effort", "system_default", "unknown"),
    "durability": ("transient_local", "volatile", "system_default", "unknown"),
    "liveliness": ("automatic", "manual_by_topic", "system_default", "unknown"),
}


def duration_entry(nanoseconds: int) -> dict:
    """``{sec, nsec}`` of a duration in ns (rosbag2's form; infinity is INT64_MAX ns)."""
    nanoseconds = min(int(nanoseconds), INFINITE_NS)
    return {"sec": nanoseconds // 1_000_000_000, "nsec": nanoseconds % 1_000_000_000}


def entry_ns(entry: dict) -> int:
    return int(entry["sec"]) * 1_000_000_000 + int(entry["nsec"])


def qos_entry(
    *,
    history="unknown",
    depth=0,
    reliability="reliable",
    durability="volatile",
    deadline_ns=INFINITE_NS,
    lifespan_ns=INFINITE_NS,
    liveliness="automatic",
    liveliness_lease_duration_ns=INFINITE_NS,
    avoid_ros_namespace_conventions=False,
) -> dict:
    """One ``offered_qos_profiles`` entry (string enums, version 9); ValueError for an unknown enum value."""
    entry = {
        "history": history,
        "depth": int(depth),
        "reliability": reliability,
        "durability": durability,
        "deadline": duration_entry(deadline_ns),
        "lifespan": duration_entry(lifespan_ns),
        "liveliness": liveliness,
        "liveliness_lease_duration": duration_entry(liveliness_lease_duration_ns),
        "avoid_ros_namespace_conventions": bool(avoid_ros_namespace_conventions),
    }
    for key, choices in QOS_CHOICES.items():
        if entry[key] not in choices:
            raise ValueError(f"QoS {key} {entry[key]!r} is not one of {', '.join(choices)}")
    return entry


def qos_yaml(entries: list[dict]) -> str:
    """The QoS list as the YAML string rosbag2 puts in the MCAP channel metadata (``offered_qos_profiles``)."""
    return yaml.safe_dump(list(entries), sort_keys=False, default_flow_style=False)


class FileSpan(NamedTuple):
    """One storage file of a bag: its name in the bag directory, first and last receive time (ns), messages."""

    path: str
    start_ns: int
    end_ns: int
    message_count: int


class TopicCount(NamedTuple):
    """One topic of a bag: name, type, offered QoS (list of :func:`qos_entry`), type hash, messages."""

    name: str
    type: str
    qos: list
    type_hash: str
    message_count: int


def bag_metadata(*, files: list[FileSpan], topics: list[TopicCount], custom_data: dict) -> dict:
    """BagMetadata (version 9) of a bag. Compression format and mode are empty: rosbag2 writes none for MCAP's own
    chunk compression."""
    counted = [f for f in files if f.message_count]
    start = min((f.start_ns for f in counted), default=0)
    end = max((f.end_ns for f in counted), default=0)
    return {
        "version": VERSION,
        "storage_identifier": STORAGE_ID,
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f.message_count for f in files),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.type,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": list(t.qos),
                    "type_description_hash": t.type_hash,
                },
                "message_count": t.message_count,
            }
            for t in topics
        ],
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": [f.path for f in files],
        "files": [
            {
                "path": f.path,
                "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                "duration": {"nanoseconds": f.end_ns - f.start_ns},
                "message_count": f.message_count,
            }
            for f in files
        ],
        "custom_data": {str(k): str(v) for k, v in custom_data.items()} or None,
        "ros_distro": os.environ.get("ROS_DISTRO") or "kilted",
    }


def dump_metadata(metadata: dict) -> str:
    """Text of metadata.yaml (block style, with rosbag2's top-level key)."""
    return yaml.safe_dump({"rosbag2_bagfile_information": metadata}, sort_keys=False, default_flow_style=False)


def write_metadata(bag_dir: Path, metadata: dict) -> None:
    """Write ``bag_dir/metadata.yaml`` atomically (a kill mid-write leaves the previous file)."""
    target = Path(bag_dir) / "metadata.yaml"
    tmp = target.with_name(".metadata.yaml.tmp")
    tmp.write_text(dump_metadata(metadata))
    os.replace(tmp, target)


def read_metadata(bag_dir: Path) -> dict:
    """The BagMetadata of ``bag_dir/metadata.yaml``; BagError naming the file and the problem."""
    path = Path(bag_dir) / "metadata.yaml"
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise BagError(f"{path}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise BagError(f"{path}: not valid YAML: {error}") from error
    metadata = document.get("rosbag2_bagfile_information") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        raise BagError(f"{path}: no rosbag2_bagfile_information mapping (not a rosbag2 metadata file)")
    for key in ("version", "storage_identifier", "relative_file_paths", "topics_with_message_count"):
        if key not in metadata:
            raise BagError(f"{path}: key '{key}' missing")
    return metadata
