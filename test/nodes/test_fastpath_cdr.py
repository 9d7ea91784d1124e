"""The batch encoders of lumina_nodes.fastpath write what the generated type support writes (bytes that deserialize
to the same message), and the decoders read what it writes, for empty, odd, large and mixed batches.

rmw_fastrtps's serialized length is its size estimate, which pads empty sequences the serializer does not pad: its
bytes can end with a few unused ones, so an encoder's output may be that much shorter."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from lumina_nodes.fastpath import (
    decode_command_batch,
    decode_state_batch,
    encode_command_batch,
    encode_state_batch,
    to_field,
)
from lumina_nodes.msg import JewelCommandBatch, JewelStateBatch

SIZES = (0, 1, 2, 3, 7, 12_500)
NAMES = ("", "a", "abc", "plaza_12", "plaza_é")


def state_arrays(n, rng):
    return {
        "ids": np.arange(n, dtype=np.uint32) + 5,
        "phase": rng.uniform(-np.pi, np.pi, n),
        "frequency": rng.normal(1.0, 0.05, n),
        "frequency_offset": rng.uniform(-0.25, 0.25, n),
        "sample_age": rng.exponential(0.02, n),
        "intensity": rng.random(n).astype(np.float32),
        "status": rng.integers(0, 8, n).astype(np.uint8),
    }


@pytest.mark.parametrize("n", SIZES)
def test_state_batch_encoding_is_the_type_support_s(n):
    rng = np.random.default_rng(n)
    for name in NAMES:
        arrays = state_arrays(n, rng)
        msg = JewelStateBatch(driver_id=name, seq=4_000_000_000)
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_796_160_837, 999_999_999
        msg.header.frame_id = name[:2]
        for field, values in arrays.items():
            setattr(msg, field, to_field(values, values.dtype))
        data = encode_state_batch((1_796_160_837, 999_999_999), name, 4_000_000_000, frame_id=name[:2], **arrays)
        assert isinstance(data, bytes)
        assert len(data) <= len(serialize_message(msg)), name
        assert deserialize_message(data, JewelStateBatch) == msg, name


def test_state_batch_encoding_converts_to_the_field_types():
    rng = np.random.default_rng(1)
    arrays = state_arrays(5, rng)
    wide = {
        k: v.astype(np.float64) if k == "intensity" else v.astype(np.int64) if k == "ids" else v
        for k, v in arrays.items()
    }
    back = deserialize_message(encode_state_batch((1, 2), "p", 3, **wide), JewelStateBatch)
    assert np.array_equal(np.frombuffer(back.ids, np.uint32), arrays["ids"])
    assert np.array_equal(np.frombuffer(back.intensity, np.float32), arrays["intensity"])
    with pytest.raises(ValueError):
        encode_state_batch((1, 2), "p", 3, **{**arrays, "phase": np.zeros((5, 1))})


@pytest.mark.parametrize("n", SIZES)
def test_command_batch_encoding_is_the_type_support_s(n):
    rng = np.random.default_rng(n)
    ids = np.arange(n, dtype=np.uint32) * 3
    offset = rng.uniform(-0.25, 0.25, n)
    for name in NAMES:
        for intensity in (np.zeros(0, np.float32), rng.random(n).astype(np.float32)):
            msg = JewelCommandBatch(driver_id=name, seq=9, ids=to_field(ids, np.uint32))
            msg.header.stamp.sec, msg.header.stamp.nanosec = 5, 6
            msg.source_stamp.sec, msg.source_stamp.nanosec = 1_796_160_837, 123
            msg.frequency_offset = to_field(offset, np.float64)
            msg.intensity = to_field(intensity, np.float32)
            data = encode_command_batch((5, 6), name, 9, (1_796_160_837, 123), ids, offset, intensity)
            assert len(data) <= len(serialize_message(msg)), name
            assert deserialize_message(data, JewelCommandBatch) == msg, name


def state_message(n, name, rng):
    arrays = state_arrays(n, rng)
    msg = JewelStateBatch(driver_id=name, seq=4_000_000_001)
    msg.header.stamp.sec, msg.header.stamp.nanosec = -7, 999_999_999
    msg.header.frame_id = name[1:]
    for field, values in arrays.items():
        setattr(msg, field, to_field(values, values.dtype))
    return msg, arrays


@pytest.mark.parametrize("n", SIZES)
def test_state_batch_decoding_reads_what_the_type_support_wrote(n):
    rng = np.random.default_rng(n + 100)
    for name in NAMES:
        msg, arrays = state_message(n, name, rng)
        view = decode_state_batch(serialize_message(msg))
        assert (view.stamp, view.frame_id, view.driver_id, view.seq) == (
            (-7, 999_999_999),
            name[1:],
            name,
            4_000_000_001,
        )
        for field, values in arrays.items():
            got = getattr(view, field)
            assert got.dtype == values.dtype and np.array_equal(got, values), (name, field)
            assert got.flags.aligned, (name, field)


@pytest.mark.parametrize("n", SIZES)
def test_command_batch_decoding_reads_what_the_type_support_wrote(n):
    rng = np.random.default_rng(n + 200)
    ids, offset = np.arange(n, dtype=np.uint32) * 7, rng.uniform(-0.25, 0.25, n)
    for name in NAMES:
        for intensity in (np.zeros(0, np.float32), rng.random(n).astype(np.float32)):
            msg = JewelCommandBatch(driver_id=name, seq=11, ids=to_field(ids, np.uint32))
            msg.header.stamp.sec, msg.header.stamp.nanosec = 5, 6
            msg.source_stamp.sec, msg.source_stamp.nanosec = 1_796_160_837, 123
            msg.frequency_offset, msg.intensity = to_field(offset, np.float64), to_field(intensity, np.float32)
            view = decode_command_batch(serialize_message(msg))
            assert (view.stamp, view.driver_id, view.seq, view.source_stamp) == ((5, 6), name, 11, (1_796_160_837, 123))
            assert np.array_equal(view.ids, ids) and np.array_equal(view.frequency_offset, offset)
            assert np.array_equal(view.intensity, intensity)


def test_bytes_that_are_not_a_batch_raise_value_error_naming_the_place():
    msg, _ = state_message(3, "plaza_1", np.random.default_rng(3))
    data = serialize_message(msg)
    for cut in range(len(data)):  # every truncation
        with pytest.raises(ValueError):
            decode_state_batch(data[:cut])
    with pytest.raises(ValueError, match="encapsulation"):
        decode_state_batch(b"\x00\x00\x00\x00" + data[4:])  # big-endian CDR
    huge = bytearray(data)
    huge[-4 - 3 : -3] = (2**31).to_bytes(4, "little")  # the status count, far past the end
    with pytest.raises(ValueError, match=r"status at byte \d+ runs past the end"):
        decode_state_batch(bytes(huge))
    command = serialize_message(JewelCommandBatch(ids=to_field(np.arange(4), np.uint32)))
    for cut in range(len(command) - 12):  # every truncation that cuts into a field (the last 12 bytes: 0 counts)
        with pytest.raises(ValueError):
            decode_command_batch(command[:cut])
    no_nul = bytearray(serialize_message(state_message(3, "p", np.random.default_rng(4))[0]))
    no_nul[4 + 8 + 4] = ord("x")  # header.frame_id "" is one NUL byte, after the stamp and its length
    with pytest.raises(ValueError, match="frame_id is not NUL-terminated"):
        decode_state_batch(bytes(no_nul))


def test_batches_with_some_arrays_empty_are_written_and_read_as_the_type_support_does():
    # an empty sequence has no alignment padding before the next count (a mis-sized batch, rejected downstream as
    # a length mismatch, must still be read as sent)
    rng = np.random.default_rng(9)
    full = state_arrays(3, rng)
    for empty in (("phase",), ("ids", "frequency"), ("sample_age", "intensity"), ("status",)):
        arrays = {k: (v[:0] if k in empty else v) for k, v in full.items()}
        msg = JewelStateBatch(driver_id="plaza_1", seq=2)
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1, 2
        for field, values in arrays.items():
            setattr(msg, field, to_field(values, values.dtype))
        data = encode_state_batch((1, 2), "plaza_1", 2, **arrays)
        assert deserialize_message(data, JewelStateBatch) == msg, empty
        view = decode_state_batch(serialize_message(msg))
        for field, values in arrays.items():
            assert np.array_equal(getattr(view, field), values), (empty, field)
