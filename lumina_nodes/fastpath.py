"""Move numpy arrays in and out of the array fields of ROS 2 messages without per-element Python work.

The generated setter of a ``float64[]`` (or ``uint32[]``, ...) field checks a numpy array or list element by
element (~90 ns per element). An ``array.array`` with the field's type code is taken as it is, and filling one
from a numpy buffer is a single copy. Reading back, ``numpy.frombuffer`` over the field's buffer is zero-copy.
See ``bench/msg_fastpath.py`` for the measured difference.

Example::

    msg.phase = to_field(phase, np.float64)        # numpy -> message, one memcpy
    phase = from_field(msg.phase, np.float64)      # message -> numpy view, no copy
"""

import array
import struct

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
        self._align(min(data.itemsize, 8))  # also for no element (as Fast CDR does)
        if data.shape[0]:
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
