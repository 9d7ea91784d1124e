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
