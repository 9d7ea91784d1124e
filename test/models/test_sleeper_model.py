"""Sleeper + jewel oscillator model: cycle statistics, stage drift, slew/clamp, exact integration,
determinism, drills."""

import math

import numpy as np
import pytest

from lumina_nodes.models.sleeper import N1, N2, N3, REM, SleeperModel, SleeperParams, W, wrap_phase


def run_night(k=120, seed=3, hours=8.0, sample=30.0, **kw):
    m = SleeperModel(k, seed=seed, params=SleeperParams(**kw))
    n = int(hours * 3600 / sample)
    stages = np.empty((n, k), dtype=np.int8)
    nat = np.empty((n, k))
    for i in range(n):
        m.advance(sample)
        stages[i] = m.stage
        nat[i] = m.natural
    return m, stages, nat


@pytest.fixture(scope="module")
def night():
    return run_night()


def test_wrap_phase_range():
    x = np.array([-math.pi, math.pi, 3 * math.pi, -1e-20, 1e9, -7.0])
    y = wrap_phase(x)
    assert np.all(y >= -math.pi) and np.all(y < math.pi)
    assert np.allclose(np.cos(y), np.cos(x)) and np.allclose(np.sin(y), np.sin(x), atol=1e-6)


def test_stage_cycle_is_about_90_minutes(night):
    m, stages, _ = night
    sample = 30.0
    # times of entry into N3 (from N2) per jewel; the spacing is one ultradian cycle
    entries = (stages[1:] == N3) & (stages[:-1] == N2)
    periods = []
    for j in range(stages.shape[1]):
        t = np.flatnonzero(entries[:, j]) * sample
        periods.extend(np.diff(t))
    periods = np.array(periods) / 60.0
    assert len(periods) > 300  # ~4-5 cycles per wearer in 8 h
    assert 85.0 < periods.mean() < 95.0, periods.mean()
    assert 3.0 < periods.std() < 15.0  # individual variation, but not chaos
    assert set(np.unique(stages)) == {W, N1, N2, N3, REM}
    # transitions follow the cycle W -> N1 -> N2 -> N3 -> N2 -> REM -> W
    allowed = {(W, N1), (N1, N2), (N2, N3), (N3, N2), (N2, REM), (REM, W)}
    a, b = stages[:-1].ravel(), stages[1:].ravel()
    ch = a != b
    assert {(int(x), int(y)) for x, y in zip(a[ch], b[ch], strict=True)} <= allowed


def test_stage_time_shares(night):
    _, stages, _ = night
    share = np.bincount(stages.ravel(), minlength=5) / stages.size
    assert 0.25 < share[N2] < 0.45 and 0.15 < share[N3] < 0.35 and 0.2 < share[REM] < 0.4
    assert share[W] < 0.08


def test_natural_frequency_drifts_with_stage(night):
    m, stages, nat = night
    rel = nat - m.base[None, :]
    mean = [rel[stages == s].mean() for s in range(5)]
    # shifts (0.06, 0.03, 0, -0.05, 0.04) Hz, smoothed by tau_natural = 30 s
    assert mean[N3] < -0.03
    assert mean[N3] < mean[N2] < mean[N1]
    assert mean[REM] > 0.02 and mean[W] > 0.0
    assert abs(mean[N2]) < 0.02
    # population around 1 Hz with sd ~0.05 Hz between wearers
    assert abs(m.base.mean() - 1.0) < 0.02 and 0.03 < m.base.std() < 0.07


def test_determinism_by_seed():
    a, b, c = (SleeperModel(50, seed=s) for s in (11, 11, 12))
    for m in (a, b, c):
        m.set_offset_target(slice(0, 10), 0.1)
        for dt in (0.02, 0.5, 13.0, 600.0):
            m.advance(dt)
        m.inject_overlapping(0.5, 3, 0.05, seed=4)
        m.advance(2.0)
    for name in ("phase", "natural", "offset", "cycle_pos", "battery"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.phase, c.phase)


def test_offset_clamp_and_slew_and_no_phase_jumps():
    p = SleeperParams(phase_diffusion=0.002, comfort_limit=0.25, max_slew=0.5)
    m = SleeperModel(40, seed=1, params=p)
    m.set_offset_target(slice(0, 20), 5.0)  # beyond the comfort limit: clamped
    m.set_offset_target(slice(20, 40), -0.1)
    assert np.all(np.abs(m.offset_target) <= 0.25)
    dt = 0.02
    prev_off, prev_ph, prev_f = m.offset.copy(), m.phase.copy(), m.frequency.copy()
    for _ in range(100):
        m.advance(dt)
        assert np.all(np.abs(m.offset) <= 0.25 + 1e-12)
        assert np.all(np.abs(m.offset - prev_off) <= 0.5 * dt + 1e-12)  # bounded slew
        dph = wrap_phase(m.phase - prev_ph - 2 * math.pi * 0.5 * (prev_f + m.frequency) * dt)
        assert np.max(np.abs(dph)) < 0.05  # phase only moves by its frequency (plus tiny noise)
        prev_off, prev_ph, prev_f = m.offset.copy(), m.phase.copy(), m.frequency.copy()
    assert np.allclose(m.offset[:20], 0.25) and np.allclose(m.offset[20:], -0.1)


def test_large_dt_is_exact():
    p = SleeperParams(phase_diffusion=0.0, start_pos_lo=0.2, start_pos_hi=0.22)  # inside N2, no boundary
    a, b = SleeperModel(30, seed=5, params=p), SleeperModel(30, seed=5, params=p)
    for m in (a, b):
        m.set_offset_target(slice(None), np.linspace(-0.3, 0.3, 30))
        m.natural = m.natural + 0.02  # off its target: exercises the exponential relaxation
    a.advance(10.0)  # one call, 10 sub-steps
    for _ in range(1000):
        b.advance(0.01)
    assert abs(a.t - b.t) < 1e-9
    assert np.allclose(a.offset, b.offset, atol=1e-12)
    assert np.allclose(a.natural, b.natural, atol=1e-12)
    assert np.max(np.abs(wrap_phase(a.phase - b.phase))) < 1e-8
    # and against the closed form for one jewel: phase advance = 2 pi * integral of natural + offset
    c = SleeperModel(
        1, seed=9, params=SleeperParams(phase_diffusion=0.0, tau_natural=1e12, start_pos_lo=0.2, start_pos_hi=0.2)
    )
    ph0, f0 = c.phase[0], c.natural[0]
    c.set_offset_target([0], 0.2)  # ramp for 0.4 s, then constant: integral = 0.04 + 0.2 * 9.6
    c.advance(10.0)
    expect = ph0 + 2 * math.pi * (f0 * 10.0 + 0.04 + 0.2 * 9.6)
    assert abs(wrap_phase(np.array([c.phase[0] - expect]))[0]) < 1e-6


def test_negative_or_nan_dt_rejected():
    m = SleeperModel(3)
    for dt in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            m.advance(dt)


def test_overlapping_drill_moves_frequencies_into_groups():
    k = 400
    m = SleeperModel(k, seed=2)
    m.advance(60.0)
    before = m.natural.copy()
    mean = m.natural.mean()
    idx = m.inject_overlapping(fraction=0.5, groups=3, separation=0.04, seed=8)
    assert len(idx) == 200 and len(np.unique(idx)) == 200
    centres = mean + np.array([-0.04, 0.0, 0.04])
    grp = m.drill_group[idx]
    assert set(np.unique(grp)) == {0, 1, 2}
    assert np.all(np.bincount(grp) >= 60)
    dev = m.natural[idx] - centres[grp]
    assert np.abs(dev).max() < 4 * 0.15 * 0.04 and abs(dev.std() - 0.006) < 0.002
    untouched = np.setdiff1d(np.arange(k), idx)
    assert np.array_equal(m.natural[untouched], before[untouched])
    assert np.all(m.drill_group[untouched] == -1)
    # bands persist while the drill is active (stage drift is slow compared to this)
    m.advance(5.0)
    assert np.abs(m.natural[idx] - centres[grp]).mean() < 0.02
    # same seed, same drill
    m2 = SleeperModel(k, seed=2)
    m2.advance(60.0)
    assert np.array_equal(m2.inject_overlapping(0.5, 3, 0.04, seed=8), idx)
    assert np.array_equal(m2.drill_group, m.drill_group)


def test_drill_duration_and_clear():
    m = SleeperModel(100, seed=4, params=SleeperParams(start_pos_lo=0.2, start_pos_hi=0.21))
    target0 = m.natural.copy()
    m.inject_overlapping(1.0, 2, 0.1, seed=1, duration=3.0)
    m.advance(2.0)
    assert np.all(m.drill_group >= 0)
    m.advance(2.0)
    assert np.all(m.drill_group == -1) and np.all(m.drill_delta == 0)
    m.advance(300.0)  # natural frequencies relax back to the wearers' own rhythm
    assert np.abs(m.natural - target0).max() < 0.01


def test_phase_scramble_and_validation():
    m = SleeperModel(100, seed=4)
    ph = m.phase.copy()
    idx = m.inject_phase_scramble(0.3, seed=5)
    assert len(idx) == 30
    assert np.all(m.phase[idx] != ph[idx])
    assert np.array_equal(np.delete(m.phase, idx), np.delete(ph, idx))
    for bad in (
        dict(fraction=1.5, groups=2, separation=0.1),
        dict(fraction=0.5, groups=1, separation=0.1),
        dict(fraction=0.5, groups=2, separation=float("nan")),
    ):
        with pytest.raises(ValueError):
            m.inject_overlapping(**bad)


# ------------------------------------------------------------------------------------------------ sim backend
from lumina_nodes.backends.jewel import (  # noqa: E402
    STATUS_FAULT,
    STATUS_LOW_BATTERY,
    STATUS_STALE,
    JewelBackend,
    SimJewelBackend,
    make_jewel_backend,
)


def run_sim(b, t0, t1, rate=50.0):
    snaps = []
    for t in np.arange(t0, t1, 1.0 / rate):
        snaps.append(b.poll(float(t)))
    return snaps


def test_sim_backend_snapshot_shapes_and_link():
    b = make_jewel_backend(
        "sim", first_id=500, count=50, seed=2, latency=0.02, latency_jitter=0.01, dropout_rate=0.05, dropout_mean=0.5
    )
    assert isinstance(b, JewelBackend)
    b.start()
    snaps = run_sim(b, 100.0, 120.0)
    s = snaps[-1]
    assert s.stamp == pytest.approx(snaps[-1].stamp) and len(s) == 50
    assert s.ids.dtype == np.uint32 and list(s.ids) == list(range(500, 550))
    assert s.phase.dtype == np.float64 and s.intensity.dtype == np.float32 and s.status.dtype == np.uint8
    ages = np.concatenate([x.sample_age[(x.status & STATUS_STALE) == 0] for x in snaps])
    assert ages.min() >= 0.02 - 1e-9 and ages.max() <= 0.03 + 1e-9  # latency + jitter
    stale = np.concatenate([(x.status & STATUS_STALE) != 0 for x in snaps])
    assert 0.005 < stale.mean() < 0.1  # dropouts happen, but rarely
    # reported phase predicted forward by its age matches the model's phase now
    pred = s.phase + 2 * np.pi * s.frequency * s.sample_age
    ok = (s.status & STATUS_STALE) == 0
    assert np.max(np.abs(np.angle(np.exp(1j * (pred - b.model.phase)))[ok])) < 1e-9
    assert all(np.isfinite(x.sample_age).all() and np.isfinite(x.phase).all() for x in snaps)


def test_sim_backend_command_validation_counts_every_element():
    b = SimJewelBackend(first_id=10, count=5, seed=0)
    r = b.apply_command(
        [10, 11, 11, 99, 12, 13, 14, 10.5],
        [0.1, 0.1, 0.1, 0.0, np.inf, 0.26, 0.0, 0.0],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -0.1, 0.5],
        0.0,
    )
    assert r.accepted == 1
    assert r.rejected == {
        "length_mismatch": 0,
        "unknown_id": 2,
        "duplicate_id": 2,
        "non_finite": 1,
        "offset_limit": 1,
        "intensity_range": 1,
        "link_down": 0,
    }
    assert r.accepted + r.rejected_total == 8
    r = b.apply_command([10, 11], [0.1], [0.5, 0.5], 0.0)
    assert r.accepted == 0 and r.rejected["length_mismatch"] == 2 and "length mismatch" in r.message
    r = b.apply_command([], [], [], 0.0)
    assert r.accepted == 0 and r.ok
    r = b.apply_command(["a"], [0.1], [0.5], 0.0)
    assert r.rejected["unknown_id"] == 1
    lvl, name, msg, vals = b.diagnostics()[1]
    assert lvl == 1 and vals["rejected_duplicate_id"] == "2" and vals["accepted"] == "1"


def test_sim_backend_commands_slew_offsets():
    b = SimJewelBackend(first_id=1, count=4, seed=1, dropout_rate=0.0)
    run_sim(b, 0.0, 1.0)
    assert b.apply_command([1, 2, 3, 4], [0.25, -0.25, 0.1, 0.0], [1, 1, 1, 1], 1.0).accepted == 4
    snaps = run_sim(b, 1.0, 3.0)
    offs = np.array([s.frequency_offset for s in snaps])
    assert np.all(np.abs(np.diff(offs, axis=0)) <= 0.5 / 50 + 1e-9)
    assert np.allclose(offs[-1], [0.25, -0.25, 0.1, 0.0])
    assert np.allclose(snaps[-1].intensity, 1.0)


def test_sim_backend_drills():
    b = SimJewelBackend(first_id=1, count=200, seed=3, dropout_rate=0.0)
    run_sim(b, 0.0, 1.0)
    ok, msg, n = b.inject("overlapping_frequencies", fraction=0.5, groups=2, separation=0.05, seed=9, now=1.0)
    assert ok and n == 100, msg
    s = run_sim(b, 1.0, 1.1)[-1]
    nat = s.frequency - s.frequency_offset
    g = b.model.drill_group
    assert abs(nat[g == 1].mean() - nat[g == 0].mean() - 0.05) < 0.005
    ok, msg, n = b.inject(1, fraction=0.1, seed=1, now=1.1)
    assert ok and n == 20
    ok, msg, n = b.inject(2, report_loss=0.3, report_corruption=0.2, duration=2.0, now=1.1)
    assert ok and n == 200
    snaps = run_sim(b, 1.1, 3.0)
    st = np.array([x.status for x in snaps])
    fault = (st & STATUS_FAULT) != 0
    stale = (st & STATUS_STALE) != 0
    assert 0.1 < fault.mean() < 0.2 and 0.35 < stale.mean() < 0.5  # corrupted -> FAULT|STALE, lost -> STALE
    assert np.all(stale[fault])
    snaps = run_sim(b, 3.2, 4.0)  # duration over: link healthy again
    assert all(np.all(x.status & (STATUS_FAULT | STATUS_STALE) == 0) for x in snaps)
    ok, msg, _ = b.inject("clear", now=4.0)
    assert ok and np.all(b.model.drill_group == -1)
    for bad in (
        dict(kind=9),
        dict(kind="earthquake"),
        dict(kind=0, fraction=2.0),
        dict(kind=0, fraction=0.5, groups=1),
        dict(kind=2, report_loss=-0.1),
        dict(kind=0, duration=-1),
    ):
        ok, msg, n = b.inject(**bad)
        assert not ok and n == 0 and "rejected" in msg
    names = [d[1] for d in b.diagnostics()]
    assert names == ["jewel sim: link", "jewel sim: commands", "jewel sim: drills"]


def test_sim_backend_accelerated_night_and_low_battery():
    b = SimJewelBackend(first_id=1, count=100, seed=4, dropout_rate=0.0, drain_lo=10.0, drain_hi=12.0)
    t = 0.0
    for _ in range(8 * 60):  # 8 h polled once a minute: sim time far faster than real time
        t += 60.0
        s = b.poll(t)
    assert b.model.t == pytest.approx(8 * 3600.0)
    assert np.mean((s.status & STATUS_LOW_BATTERY) != 0) > 0.5
    assert np.all(np.isfinite(s.phase))
    assert b.poll(t - 10.0).stamp == t  # clock going backwards: ignored and counted
    assert b.diagnostics()[0][3]["clock_backwards"] == "1"
