"""The `sim` Bio-Dream backend: the real SleepEegSimulator on the caller's clock, pieces equal the whole, the
ground truth mapped onto that clock, clock jumps, bad parameters."""

import numpy as np
import pytest

from lumina_nodes.backends.biodream import GroundTruth, make_biodream_backend
from lumina_nodes.constants import DiagnosticLevel, SleepStage
from lumina_nodes.models.eeg import SleepEegConfig, SleepEegSimulator

FS = 256.0


def contiguous(chunks):
    """The chunks with samples, checked to follow each other on one grid; their data joined."""
    full = [c for c in chunks if c.n]
    for a, b in zip(full, full[1:], strict=False):
        assert b.skipped == 0 and b.start_time == pytest.approx(a.end_time, abs=1e-9)
    return np.concatenate([c.data for c in full], axis=2)


def test_reads_in_pieces_equal_one_read_and_the_simulator_itself():
    rng = np.random.default_rng(4)
    t0, span = 5000.0, 95.3
    steps = t0 + np.concatenate(([0.0], np.sort(rng.uniform(0, span, 60)), [span]))
    pieces = make_biodream_backend("sim", participants=3, channels=2, seed=11)
    chunks = [pieces.read(float(t)) for t in steps]
    assert chunks[0].n == 0 and chunks[0].start_time == t0  # the first read anchors simulator time 0 at now
    data = contiguous(chunks)
    assert chunks[1].start_time == t0
    assert data.shape == (3, 2, int(span * FS)) and data.dtype == np.float64
    # every read returns floor((now - anchor) * fs) minus what came before
    produced = np.cumsum([c.n for c in chunks])
    assert produced.tolist() == np.floor((steps - t0) * FS).astype(int).tolist()
    whole = make_biodream_backend("sim", participants=3, channels=2, seed=11)
    whole.read(t0)
    one = whole.read(t0 + span)
    assert np.array_equal(one.data, data)
    assert np.array_equal(SleepEegSimulator(3, 2, None, 11).read(data.shape[2]), data)
    assert np.isfinite(data).all() and 1.0 < np.std(data) < 500.0  # microvolts of EEG, not volts or noise-free
    other_seed = make_biodream_backend("sim", participants=3, channels=2, seed=12)
    other_seed.read(t0)
    assert not np.allclose(other_seed.read(t0 + 1.0).data, data[:, :, : int(FS)])


def test_ground_truth_is_the_hypnogram_on_the_callers_clock():
    b = make_biodream_backend("sim", participants=4, channels=1, seed=2)
    assert isinstance(b, GroundTruth)
    t0 = 200.0
    assert b.stage_at(t0).tolist() == [SleepStage.UNKNOWN] * 4  # nothing anchored yet
    b.read(t0)
    b.read(t0 + 10.0)
    sim = SleepEegSimulator(4, 1, None, 2)
    night = np.arange(0.0, 8 * 3600.0, 300.0)
    got = np.array([b.stage_at(t0 + t) for t in night])  # (times, participants)
    assert np.array_equal(got, sim.stage_at(night).T)
    assert got.dtype == np.uint8 and len(np.unique(got)) >= 4  # a night: several stages, not a constant
    assert b.stage_at(t0 - 0.1).tolist() == [SleepStage.UNKNOWN] * 4


def test_clock_jump_skips_beyond_max_chunk_and_the_night_pauses():
    b = make_biodream_backend("sim", participants=2, channels=2, seed=5, max_chunk=10.0)
    hours3, hour = 3 * 3600.0, 3600.0
    b.read(0.0)
    first = b.read(5.0)
    assert b.diagnostics()[0][0] == DiagnosticLevel.OK
    jumped = b.read(5.0 + hours3 + 10.0)  # 3 h + 10 s due, 10 s allowed: 3 h skipped
    assert jumped.skipped == hours3 * 256 and jumped.n == 10 * 256
    assert jumped.start_time == pytest.approx(5.0 + hours3) and jumped.end_time == pytest.approx(15.0 + hours3)
    after = b.read(16.0 + hours3)
    assert after.skipped == 0 and after.start_time == pytest.approx(15.0 + hours3)
    again = b.read(26.0 + hours3 + hour)  # a second jump: 1 h skipped
    assert again.skipped == hour * 256 and again.start_time == pytest.approx(16.0 + hours3 + hour)
    # the simulator was not run over the skipped spans: the samples continue where it was
    direct = SleepEegSimulator(2, 2, None, 5).read(26 * 256)
    assert np.array_equal(np.concatenate([first.data, jumped.data, after.data, again.data], axis=2), direct)
    # ground truth follows the paused night: simulator time 5 s is at 3 h + 5 s now, 16 s at 4 h + 16 s
    sim = SleepEegSimulator(2, 2, None, 5)
    for t, simulated in ((4.0, 4.0), (hours3 + 5.0, 5.0), (hours3 + 15.5, 15.5), (hours3 + hour + 25.0, 25.0)):
        assert np.array_equal(b.stage_at(t), sim.stage_at(simulated))
    assert not np.array_equal(sim.stage_at(hours3 + 5.0), sim.stage_at(5.0))  # so the mapping is what is seen
    for inside_a_skip in (5.0 + hours3 / 2, 16.0 + hours3 + hour / 2):
        assert b.stage_at(inside_a_skip).tolist() == [SleepStage.UNKNOWN] * 2  # nothing was simulated there
        assert np.isnan(b.sim_time(inside_a_skip))
    assert b.sim_time(hours3 + hour + 25.0) == pytest.approx(25.0) and np.isnan(b.sim_time(-1.0))
    level, name, message, values = b.diagnostics()[0]
    assert level == DiagnosticLevel.WARN and name == "biodream sim: stream" and "2 clock problems" in message
    assert values["skips"] == "2" and values["skipped_s"] == "14400.000" and values["simulated_s"] == "26.000"
    assert b.diagnostics()[0][0] == DiagnosticLevel.OK  # reported once


def test_clock_going_backwards_returns_nothing_and_is_counted():
    b = make_biodream_backend("sim", participants=1, channels=1)
    b.read(10.0)
    assert b.read(11.0).n == 256
    back = b.read(10.5)
    assert back.n == 0 and back.start_time == pytest.approx(11.0)
    assert b.read(float("nan")).n == 0
    assert b.read(12.0).n == 256  # resumes where the grid was: nothing lost, nothing repeated
    values = b.diagnostics()[0][3]
    assert values["clock_backwards"] == "1" and values["bad_clock"] == "1" and values["samples"] == "512"


def test_config_as_dataclass_or_dict():
    b = make_biodream_backend("sim", participants=1, channels=1, config={"sample_rate_hz": 128.0})
    assert b.sample_rate_hz == 128.0
    b.read(0.0)
    assert b.read(1.0).data.shape == (1, 1, 128)
    assert make_biodream_backend("sim", config=SleepEegConfig(sample_rate_hz=200.0)).sample_rate_hz == 200.0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"participants": 0}, r"^participants must be in \[1, 1024\], got 0"),
        ({"participants": 2.5}, r"^participants must be an integer"),
        ({"channels": 5}, r"^channels must be in \[1, 4\], got 5"),
        ({"seed": -1}, r"^seed must be in"),
        ({"max_chunk": 0.0}, r"^max_chunk must be in \(0, 86400\] s, got 0.0"),
        ({"config": {"colour": 1}}, r"^config: colour not SleepEegConfig fields"),
        ({"config": {"cycle_minutes": 10.0}}, r"cycle_minutes must be in \[60, 120\] min"),
        ({"config": "fast"}, r"^config must be a SleepEegConfig"),
    ],
)
def test_bad_parameters_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        make_biodream_backend("sim", **params)
