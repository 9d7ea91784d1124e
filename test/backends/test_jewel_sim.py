"""The `sim` jewel backend: snapshots, simulated link, command validation, drills, an accelerated night."""

import numpy as np
import pytest

from lumina_nodes.backends.jewel import Drill, DrillTarget, JewelBackend, make_jewel_backend
from lumina_nodes.backends.jewel.sim import SimJewelBackend
from lumina_nodes.constants import DisruptionKind, JewelStatus
from lumina_nodes.phase import wrap_phase


def run_sim(b, t0, t1, rate=50.0):
    snaps = []
    for t in np.arange(t0, t1, 1.0 / rate):
        snaps.append(b.poll(float(t)))
    return snaps


def test_sim_backend_snapshot_shapes_and_link():
    b = make_jewel_backend(
        "sim", first_id=500, count=50, seed=2, latency=0.02, latency_jitter=0.01, dropout_rate=0.05, dropout_mean=0.5
    )
    assert isinstance(b, JewelBackend) and isinstance(b, DrillTarget)
    b.start()
    snaps = run_sim(b, 100.0, 120.0)
    s = snaps[-1]
    # each snapshot is stamped with the time it was polled at
    assert [x.stamp for x in snaps] == pytest.approx(list(np.arange(100.0, 120.0, 1.0 / 50)))
    assert len(s) == 50
    assert s.ids.dtype == np.uint32 and list(s.ids) == list(range(500, 550))
    assert s.phase.dtype == np.float64 and s.intensity.dtype == np.float32 and s.status.dtype == np.uint8
    ages = np.concatenate([x.sample_age[(x.status & JewelStatus.STALE) == 0] for x in snaps])
    assert ages.min() >= 0.02 - 1e-9 and ages.max() <= 0.03 + 1e-9  # latency + jitter
    stale = np.concatenate([(x.status & JewelStatus.STALE) != 0 for x in snaps])
    assert 0.005 < stale.mean() < 0.1  # dropouts happen, but rarely
    # reported phase predicted forward by its age matches the model's phase now
    pred = s.phase + 2 * np.pi * s.frequency * s.sample_age
    ok = (s.status & JewelStatus.STALE) == 0
    assert np.max(np.abs(wrap_phase(pred - b.model.phase)[ok])) < 1e-9
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
    ok, msg, n = b.inject(
        Drill.parse("overlapping_frequencies", fraction=0.5, groups=2, separation=0.05, seed=9), now=1.0
    )
    assert ok and n == 100, msg
    s = run_sim(b, 1.0, 1.1)[-1]
    nat = s.frequency - s.frequency_offset
    g = b.model.drill_group
    assert abs(nat[g == 1].mean() - nat[g == 0].mean() - 0.05) < 0.005
    ok, msg, n = b.inject(Drill.parse(1, fraction=0.1, seed=1), now=1.1)
    assert ok and n == 20
    ok, msg, n = b.inject(Drill.parse(2, report_loss=0.3, report_corruption=0.2, duration=2.0), now=1.1)
    assert ok and n == 200
    snaps = run_sim(b, 1.1, 3.0)
    st = np.array([x.status for x in snaps])
    fault = (st & JewelStatus.FAULT) != 0
    stale = (st & JewelStatus.STALE) != 0
    assert 0.1 < fault.mean() < 0.2 and 0.35 < stale.mean() < 0.5  # corrupted -> FAULT|STALE, lost -> STALE
    assert np.all(stale[fault])
    snaps = run_sim(b, 3.2, 4.0)  # duration over: link healthy again
    assert all(np.all(x.status & (JewelStatus.FAULT | JewelStatus.STALE) == 0) for x in snaps)
    ok, msg, _ = b.inject(Drill.parse("clear"), now=4.0)
    assert ok and np.all(b.model.drill_group == -1)
    # a drill the model cannot play is refused, counted, and changes nothing
    ok, msg, n = b.inject(Drill.parse(0, fraction=0.5, groups=10, separation=1.0), now=4.0)  # bands below 0.1 Hz
    assert not ok and n == 0 and "rejected" in msg and "lowest band" in msg and np.all(b.model.drill_group == -1)
    assert b.diagnostics()[2][3]["inject_rejected"] == "1"
    names = [d[1] for d in b.diagnostics()]
    assert names == ["jewel sim: link", "jewel sim: commands", "jewel sim: drills"]


def test_sim_backend_accelerated_night_and_low_battery():
    b = SimJewelBackend(first_id=1, count=100, seed=4, dropout_rate=0.0, drain_lo=10.0, drain_hi=12.0)
    t = 0.0
    for _ in range(8 * 60):  # 8 h polled once a minute: sim time far faster than real time
        t += 60.0
        s = b.poll(t)
    assert b.model.t == pytest.approx(8 * 3600.0)
    assert np.mean((s.status & JewelStatus.LOW_BATTERY) != 0) > 0.5
    assert np.all(np.isfinite(s.phase))
    assert b.poll(t - 10.0).stamp == t  # clock going backwards: ignored and counted
    assert b.diagnostics()[0][3]["clock_backwards"] == "1"


@pytest.mark.parametrize(
    "kind, fields, problem",
    [
        (9, {}, "unknown disruption kind 9"),
        ("earthquake", {}, "unknown disruption kind 'earthquake'"),
        (0, {"fraction": 2.0}, "fraction must be in [0.0, 1.0], got 2.0"),
        (1, {"fraction": float("nan")}, "fraction must be in [0.0, 1.0], got nan"),
        (2, {"report_loss": -0.1}, "report_loss must be in [0.0, 1.0]"),
        (2, {"report_corruption": 1.5}, "report_corruption must be in [0.0, 1.0]"),
        (0, {"duration": -1.0}, "duration must be in [0.0, 86400.0], got -1.0"),
        (0, {"groups": 4294967295, "separation": 0.1}, "groups must be in [2, 10], got 4294967295"),
        (0, {"groups": 2, "separation": 1e6}, "separation must be in [0.001, 2.0], got 1000000.0"),
        (0, {"groups": 2.5, "separation": 0.1}, "groups must be a whole number in [2, 10]"),
        (1, {"seed": -1}, "seed must be in [0, 4294967295]"),
    ],
)
def test_drill_requests_out_of_range_are_refused_with_the_reason(kind, fields, problem):
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        Drill.parse(kind, **fields)


def test_drill_parse_takes_names_and_numbers():
    assert Drill.parse("Overlapping").kind == DisruptionKind.OVERLAPPING_FREQUENCIES
    assert Drill.parse(3).kind == DisruptionKind.CLEAR
    assert Drill.field_names() == (
        "fraction",
        "groups",
        "separation",
        "report_loss",
        "report_corruption",
        "duration",
        "seed",
    )
