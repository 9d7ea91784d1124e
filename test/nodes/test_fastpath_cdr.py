"""The batch encoders of lumina_nodes.fastpath write what the generated type support writes: the same length, and
bytes that deserialize to the same message (padding bytes aside), for empty, odd and large batches."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from lumina_nodes.fastpath import encode_command_batch, encode_state_batch, to_field
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
        assert len(data) == len(serialize_message(msg)), name
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
            assert len(data) == len(serialize_message(msg)), name
            assert deserialize_message(data, JewelCommandBatch) == msg, name
