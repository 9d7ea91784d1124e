"""The phase-locking kernel's inputs (issue 13, findings 5 and 6): what ingest, register and lookup refuse, and
the mask of new samples that keeps a batch with stale elements on the fast path. Plain numpy, no ROS."""

import math

import numpy as np
import pytest

from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.phase import TWO_PI, wrap_cycles

N = 64
IDS = np.arange(100, 100 + N, dtype=np.uint32)


def _kernel(cfg=None):
    """A kernel with N jewels at 1 Hz, registered and reported once at t = 10 s (one contiguous block)."""
    k = PhaseLockKernel(4, cfg or SyncConfig())
    rep = k.ingest(1, IDS, np.linspace(-3, 3, N), np.full(N, 1.0), np.zeros(N), 10.0, 10.0)
    assert rep.accepted == N and rep.rejected_total == 0
    return k


def _batch(t=10.02):
    return np.linspace(-3, 3, N) + 0.1, np.full(N, 1.0), np.zeros(N), np.full(N, t)


def _ingest(k, path, ph, fr, of, st, now=10.02, mask=None):
    """Ingest on the fast path (the cached ids) or the general one (the same batch in reversed order)."""
    extra = {} if mask is None else {"mask": mask if path == "fast" else mask[::-1].copy()}
    if path == "fast":
        return k.ingest(1, IDS, ph, fr, of, st, now, **extra)
    rev = slice(None, None, -1)
    return k.ingest(1, IDS[rev].copy(), ph[rev].copy(), fr[rev].copy(), of[rev].copy(), st[rev].copy(), now, **extra)


# ------------------------------------------------------------------------------------- finding 5: validation
@pytest.mark.parametrize("path", ["fast", "general"])
def test_negative_natural_frequency_is_rejected(path):
    k = _kernel()
    ph, fr, of, st = _batch()
    fr[:8], of[:8] = 0.5, 10.0  # |offset| <= max_frequency_hz and frequency > 0, but natural = -9.5 Hz
    of[8] = 1.0  # natural exactly 0: not a rhythm either
    rep = _ingest(k, path, ph, fr, of, st)
    assert rep.rejected["bad_natural_frequency"] == 9
    assert rep.accepted == N - 9
    for i in range(60):
        res = k.step(10.02 + 0.02 * i)
    assert 0.99 < res.collective_frequency < 1.01  # had -9.5 Hz been used, the mean would be far below 0


@pytest.mark.parametrize("path", ["fast", "general"])
def test_nan_and_infinite_sample_times_have_their_own_reason(path):
    k = _kernel()
    ph, fr, of, st = _batch()
    st[0], st[1], st[2] = math.nan, math.inf, -math.inf
    st[3] = 10.02 + 3600.0  # a finite time an hour ahead is still a future sample
    rep = _ingest(k, path, ph, fr, of, st)
    assert rep.rejected["bad_sample_time"] == 3
    assert rep.rejected["future_sample"] == 1
    assert rep.accepted == N - 4
    scalar = k.ingest(1, IDS, ph, fr, of, math.nan, 10.04)
    assert scalar.rejected["bad_sample_time"] == N and scalar.rejected["future_sample"] == 0


def test_lookup_refuses_ids_outside_uint32():
    k = _kernel()
    assert k.lookup(np.array([100, 5], np.int64)).tolist() == [0, -1]
    with pytest.raises(ValueError, match="uint32"):
        k.lookup(np.array([2**32 + 100], np.int64))  # once wrapped onto id 100, slot 0
    with pytest.raises(ValueError, match="uint32"):
        k.lookup(np.array([-1], np.int64))
    with pytest.raises(ValueError, match="uint32"):
        k.lookup([2**64])
    with pytest.raises(ValueError, match="uint32"):
        k.lookup(np.array([1.5]))


@pytest.mark.parametrize("key", [2**63, -(2**63) - 1, "plaza", 1.5, True, None, (1,)])
def test_bad_driver_keys_are_refused_at_register_and_ingest_never_in_step(key):
    k = _kernel()
    ph, fr, of, st = _batch()
    with pytest.raises(ValueError, match="driver_key"):
        k.ingest(key, IDS + N, ph, fr, of, st, 10.02)
    with pytest.raises(ValueError, match="driver_key"):
        k.register(key, IDS + N)
    res = k.step(10.04)
    assert res.drivers.driver_key.tolist() == [1]
    assert np.isfinite(res.order_parameter)


def test_numpy_and_python_integer_keys_are_the_same_driver():
    k = _kernel()
    ph, fr, of, st = _batch()
    rep = k.ingest(np.int64(1), IDS, ph, fr, of, st, 10.02)
    assert rep.accepted == N and rep.rejected["id_conflict"] == 0
    k.ingest(2**63 - 1, IDS + N, ph, fr, of, st, 10.02)  # the largest int64 key is a key
    assert k.step(10.04).drivers.driver_key.tolist() == [1, 2**63 - 1]


@pytest.mark.parametrize("path", ["fast", "general"])
def test_an_unwrapped_phase_counter_is_taken_and_wrapped(path):
    k = _kernel()
    ph, fr, of, st = _batch()
    turns = np.arange(N) * 1000.0 + 33.0  # 33 .. 63,033 whole cycles: an unwrapped counter past 32 cycles
    rep = _ingest(k, path, ph + TWO_PI * turns, fr, of, st)
    assert rep.accepted == N and rep.rejected["bad_phase"] == 0
    slots = k.register(1, IDS)
    np.testing.assert_allclose(k._th[slots], wrap_cycles(ph / TWO_PI), atol=2e-6)
    far = ph.copy()
    far[:2] = 2.0**36 + 1e6, -1e12  # beyond 2**36 rad the fraction of a cycle is lost
    rep = _ingest(k, path, far, fr, of, st + 0.02, now=10.04)
    assert rep.rejected["bad_phase"] == 2 and rep.accepted == N - 2
    res = k.step(10.06)
    assert np.isfinite(res.order_parameter) and res.jewels_active == N


# ------------------------------------------------------------------------------------- finding 6: the mask
def _stale_mask(n=N, stale=(3, 17, 40)):
    m = np.ones(n, np.bool_)
    m[list(stale)] = False
    return m


def test_a_mask_keeps_the_batch_cached_and_on_the_fast_path():
    k = _kernel()
    slots = k.register(1, IDS)
    ph, fr, of, st = _batch()
    mask = _stale_mask()
    ph[~mask], fr[~mask], st[~mask] = np.nan, -1.0, 0.0  # whatever a stale element carries is never looked at
    before = k.slot_state(slots)
    writes = k._gen_writes
    rep = k.ingest(1, IDS, ph, fr, of, st, 10.02, mask=mask)
    assert rep.received == N - 3 and rep.accepted == N - 3 and rep.rejected_total == 0
    assert k._gen_writes == writes  # the general (per-element) ingest was not used
    assert k.register(1, IDS) is slots  # the cached mapping of the whole batch is still the one
    after = k.slot_state(slots)
    np.testing.assert_array_equal(after["t_s"][~mask], before["t_s"][~mask])  # masked-out: untouched
    assert np.all(after["t_s"][mask] == 10.02)
    np.testing.assert_allclose(k._th[slots][mask], ph[mask] / TWO_PI, atol=1e-6)


def test_masked_ingest_equals_ingesting_the_subset():
    a, b = _kernel(), _kernel()
    ph, fr, of, st = _batch()
    fr[5] = 25.0  # one bad fresh element: counted the same way on both paths
    mask = _stale_mask()
    ra = a.ingest(1, IDS, ph, fr, of, st, 10.02, mask=mask)
    rb = b.ingest(1, IDS[mask], ph[mask], fr[mask], of[mask], st[mask], 10.02)
    assert ra == rb and ra.rejected["bad_frequency"] == 1
    ta, tb = a.step(10.04), b.step(10.04)
    assert ta.order_parameter == pytest.approx(tb.order_parameter, abs=1e-6)
    sa, sb = a.slot_state(a.register(1, IDS)), b.slot_state(b.register(1, IDS))
    for key in ("t_s", "nat", "cmd", "active"):
        np.testing.assert_allclose(sa[key], sb[key], atol=1e-6)


def test_an_all_stale_batch_registers_and_stores_nothing():
    k = _kernel()
    slots = k.register(1, IDS)
    before = k.slot_state(slots)
    ph, fr, of, st = _batch()
    rep = k.ingest(1, IDS, ph, fr, of, st, 10.02, mask=np.zeros(N, np.bool_))
    assert rep.received == 0 and rep.accepted == 0 and rep.rejected_total == 0
    np.testing.assert_array_equal(k.slot_state(slots)["t_s"], before["t_s"])
    bad = k.ingest(1, IDS, ph, fr, of, st, 10.02, mask=np.ones(N - 1, np.bool_))
    assert bad.message_error and "mask" in bad.message_error
