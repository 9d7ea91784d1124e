"""Sleeper + jewel oscillator model: cycle statistics, stage drift, slew/clamp, exact integration,
determinism, drills."""

import math

import numpy as np
import pytest

from lumina_nodes.models.sleeper import N1, N2, N3, REM, SleeperModel, SleeperParams, W
from lumina_nodes.phase import wrap_phase


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
