"""Sleep Jewel serial protocol: frame codec (see docs/jewel_protocol.md, which is the specification).

Wire format of one frame::

    0x00 | COBS( header(8) | body(n) | crc16(2) ) | 0x00

* header, little-endian: ``u8 version`` (major << 4 | minor), ``u8 type``, ``u16 seq``, ``u32 jewel_id``
* crc16: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) over header + body,
  stored little-endian.
* COBS removes every 0x00 from the frame, so 0x00 is only ever a delimiter; the leading delimiter isolates any
  garbage the line carried before the frame.

No rclpy, no numpy: plain Python so the emulator, the serial backend and tests share it.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
VERSION_BYTE = (PROTOCOL_MAJOR << 4) | PROTOCOL_MINOR

HEADER = struct.Struct("<BBHI")  # version, type, seq, jewel_id
HEADER_SIZE = HEADER.size  # 8
CRC_SIZE = 2
MAX_BODY = 246
MAX_FRAME = HEADER_SIZE + MAX_BODY + CRC_SIZE  # 256 bytes decoded
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1  # COBS overhead, without delimiters

JEWEL_BUS = 0  # jewel_id of bus-level frames (HELLO broadcast, bus HEARTBEAT)
JEWEL_BROADCAST = 0xFFFFFFFF

# message types
T_HELLO = 0x01
T_IDENTIFY = 0x02
T_STATE = 0x03
T_COMMAND = 0x04
T_HEARTBEAT = 0x05
T_ERROR = 0x7F

# STATE status bits (same values as JewelStateBatch.STATUS_*)
ST_OK = 0
ST_STALE = 1
ST_LOW_BATTERY = 2
ST_FAULT = 4

# ERROR codes
E_BAD_CRC = 1
E_UNKNOWN_TYPE = 2
E_BAD_LENGTH = 3
E_UNSUPPORTED_VERSION = 4
E_UNKNOWN_JEWEL = 5
E_OUT_OF_RANGE = 6
E_NOT_FINITE = 7
E_BUSY = 8
ERROR_NAMES = {
    E_BAD_CRC: "bad_crc",
    E_UNKNOWN_TYPE: "unknown_type",
    E_BAD_LENGTH: "bad_length",
    E_UNSUPPORTED_VERSION: "unsupported_version",
    E_UNKNOWN_JEWEL: "unknown_jewel",
    E_OUT_OF_RANGE: "out_of_range",
    E_NOT_FINITE: "not_finite",
    E_BUSY: "busy",
}

# decoder error counter names
DECODE_ERRORS = ("cobs", "crc", "short", "oversize", "unsupported_version", "unknown_type", "bad_length")


# --------------------------------------------------------------------------------------------------- CRC
def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table.append(crc)
    return table


_CRC_TABLE = _make_crc_table()


def crc16_ccitt_false(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE. Check value: crc16_ccitt_false(b"123456789") == 0x29B1."""
    tbl = _CRC_TABLE
    for b in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ tbl[((crc >> 8) ^ b) & 0xFF]
    return crc


# --------------------------------------------------------------------------------------------------- COBS
def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing; the result contains no 0x00 byte."""
    out = bytearray()
    for block in bytes(data).split(b"\x00"):
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


class CobsError(ValueError):
    pass


def cobs_decode(enc: bytes) -> bytes:
    """Inverse of cobs_encode; raises CobsError on a malformed block (0x00 inside, block past the end)."""
    out = bytearray()
    i, n = 0, len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsError("zero byte inside COBS frame")
        i += 1
        end = i + code - 1
        if end > n:
            raise CobsError("COBS block runs past the end of the frame")
        block = enc[i:end]
        if 0 in block:
            raise CobsError("zero byte inside COBS frame")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------------------------------- messages
@dataclass
class Message:
    """Common header fields. ``version_minor`` is the minor version the frame was sent with."""

    TYPE: ClassVar[int] = -1
    BODY: ClassVar[struct.Struct | None] = None
    FIELDS: ClassVar[tuple] = ()

    jewel_id: int = JEWEL_BUS
    seq: int = 0

    def body(self) -> bytes:
        return self.BODY.pack(*(getattr(self, f) for f in self.FIELDS))

    @classmethod
    def from_body(cls, body: bytes, jewel_id: int, seq: int, minor: int) -> Message:
        size = cls.BODY.size
        # same or older minor: exact length; newer minor: known fields first, extra trailing bytes ignored
        if len(body) < size or (len(body) != size and minor <= PROTOCOL_MINOR):
            raise ValueError("bad_length")
        values = cls.BODY.unpack_from(body, 0)
        return cls(jewel_id, seq, *values)


@dataclass
class Hello(Message):
    """Gateway -> bus: 'identify yourselves'. jewel_id 0 (bus) asks every jewel; a jewel id asks only that one."""

    TYPE: ClassVar[int] = T_HELLO
    BODY: ClassVar[struct.Struct] = struct.Struct("<BBI")
    FIELDS: ClassVar[tuple] = ("gateway_major", "gateway_minor", "nonce")
    gateway_major: int = PROTOCOL_MAJOR
    gateway_minor: int = PROTOCOL_MINOR
    nonce: int = 0


@dataclass
class Identify(Message):
    """Jewel -> gateway, one per jewel, in answer to HELLO (and once after device power-up)."""

    TYPE: ClassVar[int] = T_IDENTIFY
    BODY: ClassVar[struct.Struct] = struct.Struct("<BBHfffHHI")
    FIELDS: ClassVar[tuple] = (
        "fw_major",
        "fw_minor",
        "fw_patch",
        "comfort_limit",
        "max_slew",
        "state_rate",
        "bus_index",
        "bus_count",
        "nonce",
    )
    fw_major: int = 0
    fw_minor: int = 0
    fw_patch: int = 0
    comfort_limit: float = 0.25  # Hz, |offset| limit
    max_slew: float = 0.5  # Hz/s
    state_rate: float = 50.0  # Hz, STATE reports per second for this jewel
    bus_index: int = 0
    bus_count: int = 1
    nonce: int = 0  # echoes the HELLO nonce (0 if unsolicited)


@dataclass
class State(Message):
    """Jewel -> gateway, periodic (default 50 Hz per jewel)."""

    TYPE: ClassVar[int] = T_STATE
    BODY: ClassVar[struct.Struct] = struct.Struct("<QfffffBB")
    FIELDS: ClassVar[tuple] = (
        "device_time_us",
        "phase",
        "frequency",
        "frequency_offset",
        "offset_target",
        "intensity",
        "status",
        "battery",
    )
    device_time_us: int = 0  # device clock, microseconds since device start (monotonic)
    phase: float = 0.0  # rad, [-pi, pi), at device_time_us
    frequency: float = 0.0  # Hz, natural + offset in effect
    frequency_offset: float = 0.0  # Hz, offset in effect (slewing)
    offset_target: float = 0.0  # Hz, last accepted commanded offset
    intensity: float = 0.0  # 0..1
    status: int = ST_OK  # ST_* bits
    battery: int = 100  # percent


@dataclass
class Command(Message):
    """Gateway -> jewel: absolute frequency offset (Hz) and intensity (0..1)."""

    TYPE: ClassVar[int] = T_COMMAND
    BODY: ClassVar[struct.Struct] = struct.Struct("<ff")
    FIELDS: ClassVar[tuple] = ("frequency_offset", "intensity")
    frequency_offset: float = 0.0
    intensity: float = 0.0


@dataclass
class Heartbeat(Message):
    """Either direction, 1 Hz. Carries the sender's clock."""

    TYPE: ClassVar[int] = T_HEARTBEAT
    BODY: ClassVar[struct.Struct] = struct.Struct("<QB")
    FIELDS: ClassVar[tuple] = ("time_us", "flags")
    time_us: int = 0
    flags: int = 0


@dataclass
class Error(Message):
    """Either direction: NACK of a frame (ref_type, ref_seq) with an E_* code and a short UTF-8 text."""

    TYPE: ClassVar[int] = T_ERROR
    BODY: ClassVar[struct.Struct] = struct.Struct("<BBH")
    FIELDS: ClassVar[tuple] = ("code", "ref_type", "ref_seq")
    code: int = 0
    ref_type: int = 0
    ref_seq: int = 0
    text: str = ""

    def body(self) -> bytes:
        text = self.text.encode("utf-8", "replace")[: MAX_BODY - self.BODY.size]
        return self.BODY.pack(self.code, self.ref_type, self.ref_seq) + text

    @classmethod
    def from_body(cls, body: bytes, jewel_id: int, seq: int, minor: int) -> Error:
        if len(body) < cls.BODY.size:
            raise ValueError("bad_length")
        code, rtype, rseq = cls.BODY.unpack_from(body, 0)
        text = bytes(body[cls.BODY.size :]).decode("utf-8", "replace")
        return cls(jewel_id, seq, code, rtype, rseq, text)


MESSAGE_TYPES = {cls.TYPE: cls for cls in (Hello, Identify, State, Command, Heartbeat, Error)}
AnyMessage = Hello | Identify | State | Command | Heartbeat | Error


# --------------------------------------------------------------------------------------------------- encode
def build_frame(
    msg_type: int, jewel_id: int, seq: int, body: bytes, version: int = VERSION_BYTE, corrupt_crc: bool = False
) -> bytes:
    """Raw frame builder (also for tests and the emulator's misbehaviour: unknown types, bad CRC)."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes exceeds {MAX_BODY}")
    raw = HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, jewel_id & 0xFFFFFFFF) + body
    crc = crc16_ccitt_false(raw)
    if corrupt_crc:
        crc ^= 0x5A5A
    return b"\x00" + cobs_encode(raw + struct.pack("<H", crc)) + b"\x00"


def encode(msg: Message, corrupt_crc: bool = False) -> bytes:
    """Encode one message to a complete, delimited wire frame."""
    return build_frame(msg.TYPE, msg.jewel_id, msg.seq, msg.body(), corrupt_crc=corrupt_crc)


def decode_frame(raw: bytes) -> Message:
    """Decode one COBS-decoded frame (header + body + crc). Raises ValueError(<counter name>)."""
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise ValueError("short")
    (crc_rx,) = struct.unpack_from("<H", raw, len(raw) - CRC_SIZE)
    if crc16_ccitt_false(raw[:-CRC_SIZE]) != crc_rx:
        raise ValueError("crc")
    version, mtype, seq, jewel_id = HEADER.unpack_from(raw, 0)
    major, minor = version >> 4, version & 0x0F
    if major != PROTOCOL_MAJOR:
        raise ValueError("unsupported_version")
    cls = MESSAGE_TYPES.get(mtype)
    if cls is None:
        raise ValueError("unknown_type")
    return cls.from_body(raw[HEADER_SIZE:-CRC_SIZE], jewel_id, seq, minor)


# --------------------------------------------------------------------------------------------------- stream
@dataclass
class DecodeError:
    kind: str  # one of DECODE_ERRORS
    msg_type: int = -1  # for unknown_type / bad_length: the type byte, else -1
    jewel_id: int = -1
    seq: int = -1


class StreamDecoder:
    """Incremental decoder: feed arbitrary byte chunks, get whole messages back; never raises on bad input.

    Counters: ``errors`` (Counter over DECODE_ERRORS), ``frames_ok``, ``bytes_in``, ``bytes_discarded``.
    ``last_errors`` holds the most recent DecodeError records (bounded) so a gateway can NACK unknown types.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED, keep_errors: int = 32):
        self._buf = bytearray()
        self._discarding = False  # inside an oversize frame: drop bytes until the next delimiter
        self.max_encoded = max_encoded
        self.errors: Counter = Counter(dict.fromkeys(DECODE_ERRORS, 0))
        self.frames_ok = 0
        self.bytes_in = 0
        self.bytes_discarded = 0
        self.last_errors: list[DecodeError] = []
        self._keep = keep_errors

    def reset(self) -> None:
        """Forget a partial frame (e.g. after a reconnect); counters are kept."""
        self.bytes_discarded += len(self._buf)
        self._buf.clear()
        self._discarding = False

    def _error(self, kind: str, raw: bytes | None = None) -> None:
        self.errors[kind] += 1
        rec = DecodeError(kind)
        if (
            raw is not None
            and len(raw) >= HEADER_SIZE
            and kind in ("unknown_type", "bad_length", "unsupported_version")
        ):
            _, rec.msg_type, rec.seq, rec.jewel_id = HEADER.unpack_from(raw, 0)
        self.last_errors.append(rec)
        if len(self.last_errors) > self._keep:
            del self.last_errors[: len(self.last_errors) - self._keep]

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        out: list[Message] = []
        try:
            data = bytes(data)
        except Exception:
            self._error("cobs")
            return out
        self.bytes_in += len(data)
        pos, n = 0, len(data)
        while pos < n:
            z = data.find(b"\x00", pos)
            if z < 0:
                chunk = data[pos:]
                pos = n
                if self._discarding:
                    self.bytes_discarded += len(chunk)
                    continue
                self._buf += chunk
                if len(self._buf) > self.max_encoded:
                    self._error("oversize")
                    self.bytes_discarded += len(self._buf)
                    self._buf.clear()
                    self._discarding = True
                continue
            chunk = data[pos:z]
            pos = z + 1
            if self._discarding:
                self.bytes_discarded += len(chunk)
                self._discarding = False
                continue
            self._buf += chunk
            if not self._buf:
                continue  # empty frame: consecutive delimiters, used for resync
            enc = bytes(self._buf)
            self._buf.clear()
            if len(enc) > self.max_encoded:
                self._error("oversize")
                self.bytes_discarded += len(enc)
                continue
            msg = self._decode_one(enc)
            if msg is not None:
                out.append(msg)
        return out

    def _decode_one(self, enc: bytes) -> Message | None:
        try:
            raw = cobs_decode(enc)
        except CobsError:
            self._error("cobs")
            self.bytes_discarded += len(enc)
            return None
        try:
            msg = decode_frame(raw)
        except ValueError as exc:
            kind = str(exc) if str(exc) in DECODE_ERRORS else "bad_length"
            self._error(kind, raw)
            self.bytes_discarded += len(enc)
            return None
        except Exception:
            self._error("bad_length", raw)
            self.bytes_discarded += len(enc)
            return None
        self.frames_ok += 1
        return msg

    def stats(self) -> dict:
        return {
            "frames_ok": self.frames_ok,
            "bytes_in": self.bytes_in,
            "bytes_discarded": self.bytes_discarded,
            **{f"err_{k}": v for k, v in self.errors.items()},
        }


def decode_stream(data: bytes) -> list[Message]:
    """Convenience: decode a complete byte string."""
    return StreamDecoder().feed(data)


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def f32(x: float) -> float:
    """Round a Python float through float32 (what goes over the wire)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]
