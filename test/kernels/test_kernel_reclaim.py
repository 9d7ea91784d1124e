"""Slot reclamation and driver removal in the phase-locking kernel (issue 15, item 2): a flood of ids that then
falls silent is freed after reclaim_after_s (jewels_total and capacity back down), the drivers still reporting
keep their cached mapping and the fast path, a dropped driver's slots are freed. Plain numpy, no ROS."""

import numpy as np

from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig

N = 100
IDS = np.arange(1, N + 1, dtype=np.uint32)
FLOOD = np.arange(1_000_000, 1_200_000, dtype=np.uint32)
CFG = dict(silence_timeout_s=0.5, reclaim_after_s=2.0)


def _report(k, key, ids, t):
    n = ids.shape[0]
    return k.ingest(key, ids, np.zeros(n), np.full(n, 1.0), np.zeros(n), t, t)


def _fast_ingest(k, key, ids, t):
    """Ingest one batch and say whether it took the block fast path (the per-element path bumps _gen_writes)."""
    writes = k._gen_writes
    rep = _report(k, key, ids, t)
    assert rep.accepted == ids.shape[0]
    return k._gen_writes == writes


def test_a_silent_flood_is_reclaimed_and_the_real_driver_keeps_its_fast_path():
    k = PhaseLockKernel(256, SyncConfig(**CFG))
    assert _report(k, 9, FLOOD, 10.0).accepted == FLOOD.shape[0]  # the spoof: 200,000 new ids, once
    t = 10.0
    _report(k, 1, IDS, t)
    assert k.jewels_total == N + FLOOD.shape[0] and k.capacity >= N + FLOOD.shape[0]
    while t < 12.5:  # the real driver reports every 20 ms; the flood's ids are silent past reclaim_after_s
        t += 0.02
        _report(k, 1, IDS, t)
        k.step(t)
    kept = k.reclaim(t)
    assert kept is not None and kept.shape[0] == N
    assert k.jewels_total == N
    assert k.capacity == 256  # shrunk back to the initial capacity
    assert np.all(k.lookup(FLOOD[:1000]) == -1)
    slots = k.register(1, IDS)
    np.testing.assert_array_equal(slots, np.arange(N))  # renumbered, still one contiguous run
    assert k.register(1, IDS) is slots  # the cached mapping survived
    assert _fast_ingest(k, 1, IDS, t + 0.02)
    res = k.step(t + 0.02)
    assert res.jewels_total == N and res.jewels_active == N
    np.testing.assert_array_equal(k.commands_for(1, slots), k._cmd[:N])
    assert k.reclaim(t + 0.02) is None  # nothing more to free: no work


def test_reclaim_keeps_recent_and_stale_reported_jewels():
    k = PhaseLockKernel(64, SyncConfig(**CFG))
    _report(k, 1, IDS, 10.0)
    t = 10.0
    stale = np.zeros(N, np.bool_)
    while t < 13.0:  # every element STALE: no accepted sample, but the driver still lists its jewels
        t += 0.02
        k.ingest(1, IDS, np.zeros(N), np.full(N, 1.0), np.zeros(N), t, t, mask=stale)
    assert k.reclaim(t) is None and k.jewels_total == N


def test_a_dropped_driver_is_forgotten_and_its_slots_freed():
    k = PhaseLockKernel(64, SyncConfig(**CFG))
    other = np.arange(500, 600, dtype=np.uint32)
    _report(k, 1, other, 10.0)  # the driver to drop owns the first slots
    _report(k, 2, IDS, 10.0)
    k.step(10.0)
    assert k.drop_driver(1) == N
    assert k.drop_driver(1) == 0
    kept = k.reclaim(10.02)
    assert kept is not None and k.jewels_total == N
    assert _fast_ingest(k, 2, IDS, 10.04)
    res = k.step(10.04)
    assert res.drivers.driver_key.tolist() == [2] and res.drivers.total.tolist() == [N]
    # the freed ids are anyone's now
    assert _report(k, 3, other, 10.06).rejected["id_conflict"] == 0


def test_remap_slots_follows_the_compaction():
    k = PhaseLockKernel(64, SyncConfig(**CFG))
    _report(k, 1, FLOOD[:50], 10.0)
    _report(k, 2, IDS, 12.5)
    old = k.register(2, IDS).copy()
    k.reclaim(12.5)
    np.testing.assert_array_equal(k.remap_slots(old), np.arange(N))
    assert k.remap_slots(np.array([0, -1]))[1] == -1


def test_reclaim_never_frees_a_jewel_that_is_not_yet_silent():
    k = PhaseLockKernel(64, SyncConfig(silence_timeout_s=5.0, reclaim_after_s=1.0))
    _report(k, 1, FLOOD[:50], 10.0)
    _report(k, 2, IDS, 13.0)
    assert k.reclaim(13.0) is None  # 3 s silent < silence_timeout_s: still a jewel of the field
    assert k.reclaim(15.5).shape[0] == N


def test_another_drivers_ids_are_refused_while_it_reports():
    k = PhaseLockKernel(64, SyncConfig(**CFG))
    _report(k, 1, IDS, 10.0)
    rep = _report(k, 2, np.concatenate([IDS[:10], np.arange(900, 905, dtype=np.uint32)]), 10.1)
    assert rep.rejected["id_conflict"] == 10 and rep.accepted == 5
    assert k.step(10.1).drivers.total.tolist() == [N, 5]
