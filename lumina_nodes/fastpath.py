"""Move numpy arrays in and out of the array fields of ROS 2 messages without per-element Python work.

The generated setter of a ``float64[]`` (or ``uint32[]``, ...) field checks a numpy array or list element by
element (~90 ns per element). An ``array.array`` with the field's type code is taken as it is, and filling one
from a numpy buffer is a single copy. Reading back, ``numpy.frombuffer`` over the field's buffer is zero-copy.
See ``bench/msg_fastpath.py`` for the measured difference.

Example::

    msg.phase = to_field(phase, np.float64)        # numpy -> message, one memcpy
    phase = from_field(msg.phase, np.float64)      # message -> numpy view, no copy

The batch messages, the big ones, skip the message object both ways: ``encode_state_batch`` /
``encode_command_batch`` build the serialized bytes a publisher takes, ``decode_state_batch`` /
``decode_command_batch`` read the bytes of a ``raw=True`` subscription into numpy views.
"""

import array
import struct
from dataclasses import dataclass

import numpy as np

# numpy dtype -> array.array type code of the same size, as rosidl's Python generator uses them.
_TYPECODES = {
    np.dtype(np.float64): "d",
    np.dtype(np.float32): "f",
    np.dtype(np.int8): "b",
    np.dtype(np.uint8): "B",
    np.dtype(np.int16): "h",
    np.dtype(np.uint16): "H",
    np.dtype(np.int32): "i",
    np.dtype(np.uint32): "I",
    np.dtype(np.int64): "q",
    np.dtype(np.uint64): "Q",
}
for _dtype, _code in _TYPECODES.items():
    if array.array(_code).itemsize != _dtype.itemsize:  # pragma: no cover - platform guard
        raise ImportError(f"array type code {_code!r} is not {_dtype.itemsize} bytes on this platform")


def to_field(values, dtype) -> array.array:
    """Return an ``array.array`` holding ``values`` as ``dtype``, ready to assign to a message array field.

    Parameters
    ----------
    values : array_like, shape (n,)
        Converted to ``dtype`` first (a copy only when the dtype differs or the array is not contiguous).
    dtype : numpy dtype of the field (``np.float64`` for ``float64[]``, ``np.uint32`` for ``uint32[]``, ...).
    """
    dtype = np.dtype(dtype)
    data = np.ascontiguousarray(values, dtype=dtype)
    if data.ndim != 1:
        raise ValueError(f"message array fields are one-dimensional, got shape {data.shape}")
    out = array.array(_TYPECODES[dtype])
    out.frombytes(memoryview(data).cast("B"))
    return out


def from_field(field, dtype) -> np.ndarray:
    """Return a numpy view of a message array field, without copying.

    The view shares memory with the message: copy it if the message is reused or modified afterwards.
    """
    return np.frombuffer(field, dtype=np.dtype(dtype))


# ---------------------------------------------------------------------------------------------------- CDR
# A whole batch message straight to its serialized form (the bytes rclpy's Publisher.publish also takes): the
# arrays are copied once, into the buffer, instead of numpy -> array.array -> the C message -> CDR. The layout is
# plain CDR, little-endian (encapsulation 00 01 00 00), as rmw_fastrtps serializes these messages: a primitive
# aligned to its size (8 at most) counted from the end of the 4-byte encapsulation header, a string as uint32
# length (with the NUL) + bytes + NUL, a sequence as uint32 count + elements. test/nodes/test_fastpath_cdr.py
# checks every encoder against the generated type support (rclpy.serialization).
_ENCAPSULATION_LE = b"\x00\x01\x00\x00"


class _Cdr:
    """One message's bytes: ``u32``/``i32``/``string``/``array`` in field order, then :meth:`finish`. The pieces
    (a numpy array as its own buffer, no copy) are joined once: each array is copied exactly once."""

    __slots__ = ("size", "pieces")

    def __init__(self):
        self.size = 0  # payload bytes so far (after the encapsulation header)
        self.pieces = [_ENCAPSULATION_LE]

    def _align(self, n):
        pad = -self.size % n
        if pad:
            self.pieces.append(b"\x00" * pad)
            self.size += pad

    def u32(self, value):
        self._align(4)
        self.pieces.append(struct.pack("<I", int(value)))
        self.size += 4

    def i32(self, value):
        self._align(4)
        self.pieces.append(struct.pack("<i", int(value)))
        self.size += 4

    def string(self, text):
        data = text.encode() + b"\x00"
        self.u32(len(data))
        self.pieces.append(data)
        self.size += len(data)

    def array(self, values, dtype):
        data = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
        if data.ndim != 1:
            raise ValueError(f"message array fields are one-dimensional, got shape {data.shape}")
        self.u32(data.shape[0])
        if data.shape[0]:  # Fast CDR aligns the elements, not an empty sequence's nothing
            self._align(min(data.itemsize, 8))
            self.pieces.append(memoryview(data).cast("B"))
            self.size += data.nbytes

    def finish(self) -> bytes:
        return b"".join(self.pieces)


def _stamp_parts(stamp):
    """(sec, nanosec) of a builtin_interfaces/Time-like object or a (sec, nanosec) pair."""
    if isinstance(stamp, tuple):
        return stamp
    return stamp.sec, stamp.nanosec


def _batch_head(stamp, frame_id, driver_id, seq):
    """A CDR writer holding the fields both batches begin with: header (stamp, frame_id), driver_id, seq."""
    sec, nanosec = _stamp_parts(stamp)
    c = _Cdr()
    c.i32(sec)
    c.u32(nanosec)
    c.string(frame_id)
    c.string(driver_id)
    c.u32(seq)
    return c


def encode_state_batch(
    stamp, driver_id, seq, ids, phase, frequency, frequency_offset, sample_age, intensity, status, frame_id=""
) -> bytes:
    """Serialized ``lumina_nodes/msg/JewelStateBatch`` (CDR bytes, ready for ``Publisher.publish``).

    ``stamp``: the header stamp, a ``builtin_interfaces/Time`` or ``(sec, nanosec)``; the arrays are converted to
    the fields' types (uint32 ids, float64 phase/frequency/frequency_offset/sample_age, float32 intensity, uint8
    status) as they are copied in."""
    c = _batch_head(stamp, frame_id, driver_id, seq)
    c.array(ids, np.uint32)
    c.array(phase, np.float64)
    c.array(frequency, np.float64)
    c.array(frequency_offset, np.float64)
    c.array(sample_age, np.float64)
    c.array(intensity, np.float32)
    c.array(status, np.uint8)
    return c.finish()


def encode_command_batch(
    stamp, driver_id, seq, source_stamp, ids, frequency_offset, intensity=(), frame_id=""
) -> bytes:
    """Serialized ``lumina_nodes/msg/JewelCommandBatch`` (CDR bytes); ``stamp`` and ``source_stamp`` as in
    :func:`encode_state_batch`; uint32 ids, float64 frequency_offset, float32 intensity (empty: leave it)."""
    src_sec, src_nanosec = _stamp_parts(source_stamp)
    c = _batch_head(stamp, frame_id, driver_id, seq)
    c.i32(src_sec)
    c.u32(src_nanosec)
    c.array(ids, np.uint32)
    c.array(frequency_offset, np.float64)
    c.array(np.asarray(intensity, dtype=np.float32), np.float32)
    return c.finish()


class _CdrReader:
    """Reads one message's bytes in field order, as :class:`_Cdr` writes them; arrays come out as numpy views of
    the bytes (of an aligned copy of them where the payload is not 8-aligned). Anything that does not fit (a
    truncated message, a count beyond the end, a string without its NUL or not UTF-8, another encapsulation)
    raises ValueError saying where. Bytes after the last field are not looked at: rmw_fastrtps's serialized
    messages end with some (its size estimate pads empty sequences, which the serializer does not)."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data):
        if bytes(data[:4]) != _ENCAPSULATION_LE:
            raise ValueError(f"not little-endian plain CDR (encapsulation {bytes(data[:4]).hex() or 'missing'})")
        buffer = np.frombuffer(data, np.uint8)
        if (buffer.ctypes.data + 4) % 8:
            # the payload is not 8-aligned in memory (a bytes object's is 4 off): one copy that is, since numpy's
            # loops over unaligned float64 views cost more than the copy
            block = np.empty(buffer.size + 8, np.uint8)
            shift = -(block.ctypes.data + 4) % 8
            block[shift : shift + buffer.size] = buffer
            buffer = block[shift : shift + buffer.size]
        self.data = buffer
        self.pos, self.end = 0, buffer.size - 4  # payload offsets (after the encapsulation header)

    def _take(self, size, align, what):
        self.pos += -self.pos % align
        at = self.pos
        if at + size > self.end:
            raise ValueError(f"{what} at byte {at} runs past the end of the {self.end}-byte payload")
        self.pos = at + size
        return at + 4

    def u32(self, what="uint32"):
        return struct.unpack_from("<I", self.data, self._take(4, 4, what))[0]

    def i32(self, what="int32"):
        return struct.unpack_from("<i", self.data, self._take(4, 4, what))[0]

    def string(self, what):
        size = self.u32(f"{what} length")
        at = self._take(size, 1, what)
        raw = bytes(self.data[at : at + size])
        if not raw or raw[-1] != 0:
            raise ValueError(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode()
        except UnicodeDecodeError as error:
            raise ValueError(f"{what} is not UTF-8: {error}") from None

    def array(self, dtype, what):
        dtype = np.dtype(dtype).newbyteorder("<")
        count = self.u32(f"{what} count")
        if not count:
            return np.zeros(0, dtype)
        at = self._take(count * dtype.itemsize, min(dtype.itemsize, 8), what)
        return np.frombuffer(self.data, dtype, count, at)


@dataclass(frozen=True)
class StateBatchView:
    """A decoded ``JewelStateBatch``: the header stamp as (sec, nanosec), the arrays as read-only numpy views of
    the message bytes (shape (n,) each, or another length in a malformed batch: the caller checks)."""

    stamp: tuple
    frame_id: str
    driver_id: str
    seq: int
    ids: np.ndarray  # uint32
    phase: np.ndarray  # float64, rad
    frequency: np.ndarray  # float64, Hz
    frequency_offset: np.ndarray  # float64, Hz
    sample_age: np.ndarray  # float64, s
    intensity: np.ndarray  # float32
    status: np.ndarray  # uint8


@dataclass(frozen=True)
class CommandBatchView:
    """A decoded ``JewelCommandBatch`` (stamps as (sec, nanosec), arrays as numpy views of the bytes)."""

    stamp: tuple
    frame_id: str
    driver_id: str
    seq: int
    source_stamp: tuple
    ids: np.ndarray  # uint32
    frequency_offset: np.ndarray  # float64, Hz
    intensity: np.ndarray  # float32


def _read_head(r):
    stamp = (r.i32("header.stamp.sec"), r.u32("header.stamp.nanosec"))
    return stamp, r.string("header.frame_id"), r.string("driver_id"), r.u32("seq")


def decode_state_batch(data) -> StateBatchView:
    """The fields of a serialized ``lumina_nodes/msg/JewelStateBatch`` (the bytes of a ``raw=True``
    subscription), arrays as numpy views (one copy of the bytes at most, see :class:`_CdrReader`): the generated
    type support's deserialization copies each array twice. Raises ValueError on bytes that are not one."""
    r = _CdrReader(data)
    stamp, frame_id, driver_id, seq = _read_head(r)
    arrays = [r.array(dtype, name) for name, dtype in _STATE_ARRAYS]
    return StateBatchView(stamp, frame_id, driver_id, seq, *arrays)


def decode_command_batch(data) -> CommandBatchView:
    """The fields of a serialized ``lumina_nodes/msg/JewelCommandBatch``, as :func:`decode_state_batch`."""
    r = _CdrReader(data)
    stamp, frame_id, driver_id, seq = _read_head(r)
    source = (r.i32("source_stamp.sec"), r.u32("source_stamp.nanosec"))
    ids = r.array(np.uint32, "ids")
    offset = r.array(np.float64, "frequency_offset")
    intensity = r.array(np.float32, "intensity")
    return CommandBatchView(stamp, frame_id, driver_id, seq, source, ids, offset, intensity)


_STATE_ARRAYS = (
    ("ids", np.uint32),
    ("phase", np.float64),
    ("frequency", np.float64),
    ("frequency_offset", np.float64),
    ("sample_age", np.float64),
    ("intensity", np.float32),
    ("status", np.uint8),
)
