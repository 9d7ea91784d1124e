"""Sliding scoring epochs over a stream (lumina_nodes/kernels/epoch_window.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumina_nodes.kernels.epoch_window import EpochWindow

FS = 10.0  # samples per second: small, so the test sees every index


def stream(seconds, participants=2, channels=3):
    """A stream whose every sample says where it is: value = participant * 1e6 + channel * 1e4 + index."""
    index = np.arange(int(seconds * FS))
    return (
        np.arange(participants)[:, None, None] * 1e6 + np.arange(channels)[None, :, None] * 1e4 + index[None, None, :]
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 97), min_size=1, max_size=12))
def test_epochs_are_the_last_epoch_s_at_every_hop_whatever_the_chunking(cuts):
    data = stream(40.0)
    bounds = sorted({0, data.shape[2], *[min(c * 4, data.shape[2]) for c in cuts]})
    window = EpochWindow(2, 3, FS, epoch_s=30.0, hop_s=1.0)
    epochs = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        epochs += window.push(100.0 + a / FS, data[:, :, a:b])
    # first epoch at 30 s, then one per second up to 40 s
    assert [t for t, _ in epochs] == pytest.approx([100.0 + s for s in range(30, 41)])
    for k, (_, epoch) in enumerate(epochs):
        end = 300 + 10 * k
        assert np.array_equal(epoch, data[:, :, end - 300 : end])


def test_an_epoch_is_a_copy_and_bad_shapes_are_refused():
    window = EpochWindow(1, 1, FS, epoch_s=2.0, hop_s=2.0)
    ((t, epoch),) = window.push(0.0, np.ones((1, 1, 20)))
    epoch[...] = 5.0
    ((_, again),) = window.push(2.0, np.ones((1, 1, 20)))
    assert t == 2.0 and np.all(again == 1.0)
    with pytest.raises(ValueError, match=r"expected \(1, 1, n\)"):
        window.push(4.0, np.ones((2, 1, 5)))
    with pytest.raises(ValueError, match="hop samples"):
        EpochWindow(1, 1, FS, epoch_s=1.0, hop_s=2.0)
    with pytest.raises(ValueError, match="sample rate"):
        EpochWindow(1, 1, float("nan"), epoch_s=1.0, hop_s=1.0)


def test_replay_speed_and_restart():
    window = EpochWindow(1, 1, FS, epoch_s=2.0, hop_s=1.0, speed=4.0)
    ends = [t for t, _ in window.push(10.0, np.ones((1, 1, 40)))]
    assert ends == pytest.approx([10.5, 10.75, 11.0])  # 2, 3, 4 s of recording at 4x
    window.restart()
    assert window.push(50.0, np.ones((1, 1, 19))) == []  # a fresh timeline: a whole epoch again first
    ((t, epoch),) = window.push(50.0 + 19 / 40, np.full((1, 1, 1), 2.0))
    assert t == pytest.approx(50.5) and epoch[0, 0, -1] == 2.0 and not np.isnan(epoch).any()
