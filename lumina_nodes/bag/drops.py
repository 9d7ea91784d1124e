"""Counting the messages a recorder missed from the ``seq`` counters in the messages themselves.

Lumina's batch messages carry ``seq`` (+1 per published message) after a header and a string; the offset of
``seq`` in the CDR bytes is found from the type's definition once, so the recorder reads one integer per
message and never deserialises it. A ``seq`` that goes back is a publisher restart, not a loss.
"""

from __future__ import annotations

import struct

#: Types of the fields a ``seq`` may follow, and how their CDR form is walked (XCDR1, little or big endian).
_FIXED = {"int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8, "int8": 1, "uint8": 1}


def seq_reader(schema_text: str):
    """A function CDR bytes -> (key, seq) for a type whose top-level ``uint32 seq`` follows only a
    ``std_msgs/Header``, strings and fixed-size primitives; None for other types.

    ``key`` is the first string field after the header (``driver_id``), so counters are kept per sender.
    """
    root = schema_text.split("\n" + "=" * 80 + "\n", 1)[0]
    layout = []
    for line in root.splitlines():
        line = line.split("#", 1)[0].strip()
        tokens = line.split()
        if len(tokens) < 2 or "=" in line:
            continue
        kind, name = tokens[0], tokens[1]
        if name == "seq" and kind == "uint32":
            return _make_reader(layout)
        if kind in ("std_msgs/Header", "Header"):
            layout += ["time", "string"]
        elif kind == "string":
            layout.append("string")
        elif kind in _FIXED:
            layout.append(kind)
        else:
            return None  # an array or a nested type before seq: not walked
    return None


def _make_reader(layout):
    header_fields = 2 if layout[:2] == ["time", "string"] else 0

    def read(data: bytes):
        endian = "<" if data[1] & 1 else ">"
        offset, key, index = 4, "", 0
        for index, kind in enumerate(layout):
            if kind == "time":
                offset = _align(offset, 4) + 8
            elif kind == "string":
                offset = _align(offset, 4)
                (length,) = struct.unpack_from(endian + "I", data, offset)
                if not key and index >= header_fields:
                    key = bytes(data[offset + 4 : offset + 3 + length]).decode("utf-8", "replace")
                offset += 4 + length
            else:
                size = _FIXED[kind]
                offset = _align(offset, size) + size
        offset = _align(offset, 4)
        return key, struct.unpack_from(endian + "I", data, offset)[0]

    return read


def _align(offset: int, size: int) -> int:
    # CDR aligns relative to the start of the payload, after the 4-byte encapsulation header
    rel = offset - 4
    return 4 + ((rel + size - 1) // size) * size


class SeqGapCounter:
    """Missed messages of one topic from its ``seq`` counters: per key, a jump forward of n > 1 is n - 1 lost."""

    __slots__ = ("read", "last", "missed", "restarts", "unreadable")

    def __init__(self, read):
        self.read = read
        self.last: dict[str, int] = {}
        self.missed = 0
        self.restarts = 0
        self.unreadable = 0

    def add(self, data: bytes) -> None:
        try:
            key, seq = self.read(data)
        except (struct.error, IndexError):
            self.unreadable += 1
            return
        last = self.last.get(key)
        if last is not None:
            if seq > last:
                self.missed += seq - last - 1
            elif seq < last and last - seq < 2**31:  # not a wrap of the uint32 counter: a restart
                self.restarts += 1
            elif seq < last:
                self.missed += (seq + 2**32) - last - 1
        self.last[key] = seq
