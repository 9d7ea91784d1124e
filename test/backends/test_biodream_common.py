"""What every Bio-Dream backend shares: the factory, the parameter checks, the sample grid, stage annotations."""

import inspect

import numpy as np
import pytest

from lumina_nodes.backends.biodream import (
    BACKENDS,
    BioDreamBackend,
    EegChunk,
    GroundTruth,
    backend_class,
    make_biodream_backend,
)
from lumina_nodes.backends.biodream.clock import SampleClock
from lumina_nodes.backends.biodream.params import channel_groups, existing_file
from lumina_nodes.backends.biodream.stages import Hypnogram, annotation_stage
from lumina_nodes.constants import SleepStage

U = SleepStage.UNKNOWN


def test_factory_table_names_each_backend_class():
    assert list(BACKENDS) == ["sim", "brainflow", "edf"]
    for name in BACKENDS:
        cls = backend_class(name)
        assert issubclass(cls, BioDreamBackend) and cls.name == name
        assert not inspect.isabstract(cls)
    assert issubclass(backend_class("sim"), GroundTruth) and issubclass(backend_class("edf"), GroundTruth)
    assert not issubclass(backend_class("brainflow"), GroundTruth)
    assert backend_class(" SIM ") is backend_class("sim")


def test_factory_refuses_unknown_names_and_parameters():
    with pytest.raises(ValueError, match=r"unknown Bio-Dream backend 'serial'; choose one of sim, brainflow, edf"):
        make_biodream_backend("serial")
    with pytest.raises(
        ValueError, match=r"^colour, speed: not a parameter of the sim Bio-Dream backend \(its parameters: "
    ):
        make_biodream_backend("sim", speed=2.0, colour="red")


def test_chunk_times_follow_rate_and_speed():
    c = EegChunk(10.0, 100.0, np.zeros((2, 1, 50)), speed=10.0)
    assert c.n == 50 and c.end_time == pytest.approx(10.05)
    assert c.time_of(np.array([0, 10])) == pytest.approx([10.0, 10.01])
    live = EegChunk(3.0, 250.0, np.zeros((1, 1, 250)))
    assert live.speed == 1.0 and live.skipped == 0 and live.end_time == pytest.approx(4.0)


def test_channel_groups_take_lists_comma_strings_and_single_channels():
    assert channel_groups("labels", [["A", "B"], "C, D"], str) == [["A", "B"], ["C", "D"]]
    assert channel_groups("eeg_channels", [0, 3], int) == [[0], [3]]
    assert channel_groups("eeg_channels", ["0,1", (2, 3)], int) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match=r"^labels must be a non-empty list"):
        channel_groups("labels", "A", str)
    with pytest.raises(ValueError, match=r"^labels must be a non-empty list"):
        channel_groups("labels", [], str)
    with pytest.raises(ValueError, match=r"^labels: every participant needs the same number of channels, 1..4; "):
        channel_groups("labels", [["A"], ["B", "C"]], str)
    with pytest.raises(ValueError, match=r"1..4; got \[5\]"):
        channel_groups("labels", [["A", "B", "C", "D", "E"]], str)
    with pytest.raises(ValueError, match=r"^eeg_channels: channels worn by more than one participant or twice: 1$"):
        channel_groups("eeg_channels", [[0, 1], [1, 2]], int)
    with pytest.raises(ValueError, match=r"^eeg_channels\[1\]: invalid literal"):
        channel_groups("eeg_channels", [[0], ["x"]], int)


def test_existing_file_names_the_parameter(tmp_path):
    f = tmp_path / "a.edf"
    f.write_bytes(b"x")
    assert existing_file("file", str(f)) == str(f)
    with pytest.raises(ValueError, match=r"^file: no such file '.*missing.edf'"):
        existing_file("file", tmp_path / "missing.edf")
    with pytest.raises(ValueError, match=r"^hypnogram: '.*' is not a regular file"):
        existing_file("hypnogram", tmp_path)
    with pytest.raises(ValueError, match=r"^file must be a file path, got ''"):
        existing_file("file", "")


def test_sample_clock_counts_due_samples_exactly_and_caps_clock_jumps():
    c = SampleClock(rate=256.0, max_chunk=10.0)
    assert c.take(1000.0) == (0, 0) and c.anchor == 1000.0
    # 0.1 s is 25.6 samples: 25 are due; at a whole number of periods the sample *at* now is not yet due
    assert c.take(1000.1) == (0, 25)
    assert c.take(1000.0 + 100 / 256) == (0, 75)
    assert c.next == 100 and c.time_of(100) == pytest.approx(1000.0 + 100 / 256)
    # rounding of a whole number of periods never holds a due sample back: ((0.2 + 0.5) - 0.2) * 10 is
    # 4.999999999999999 in floats, and 5 samples are due
    tenth = SampleClock(rate=10.0, max_chunk=10.0)
    tenth.take(0.2)
    assert tenth.take(0.2 + 0.5) == (0, 5)
    # clock going backwards or not finite: nothing due, counted
    assert c.take(1000.2) is None and c.clock_backwards == 1
    assert c.take(float("nan")) is None and c.bad_clock == 1
    # a jump of 100 s with a 10 s cap: the older 90 s are skipped
    skip, n = c.take(1000.0 + 100 / 256 + 100.0)
    assert (skip, n) == (90 * 256, 10 * 256) and c.skipped == 90 * 256 and c.skips == 1
    # a stream's end bounds skip and n
    assert c.take(1000.0 + 100 / 256 + 200.0, remaining=5) == (5, 0)


def test_stage_annotations_map_rk_and_aasm_names():
    assert annotation_stage("Sleep stage W") == SleepStage.W
    assert annotation_stage(b"Sleep stage 1") == SleepStage.N1
    assert annotation_stage("  sleep  STAGE 2 ") == SleepStage.N2
    assert annotation_stage("Sleep stage 3") == annotation_stage("Sleep stage 4") == SleepStage.N3
    assert annotation_stage("Sleep stage N3") == SleepStage.N3
    assert annotation_stage("Sleep stage R") == SleepStage.REM
    assert annotation_stage("Sleep stage ?") == annotation_stage("Movement time") == U
    assert annotation_stage("Lights off") is None


def test_hypnogram_intervals_unknown_durations_and_gaps():
    h = Hypnogram(
        onsets=[60.0, 0.0, 30.0, 45.0, 120.0, 150.0],
        durations=[30.0, 30.0, 15.0, 0.0, -1.0, 30.0],
        texts=["Sleep stage R", "Sleep stage W", "Sleep stage 4", "Lights off", "Sleep stage 2", "Movement time"],
        end=200.0,
    )
    assert len(h) == 5  # "Lights off" scores nothing
    t = np.array([-1.0, 0.0, 29.9, 30.0, 44.9, 45.0, 59.9, 60.0, 89.9, 90.0, 119.9, 120.0, 149.9, 150.0, 181.0])
    expect = [U, 0, 0, 3, 3, U, U, 4, 4, U, U, 2, 2, U, U]
    assert h.stage_at(t).tolist() == expect
    assert h.stage_at(t).dtype == np.uint8 and h.stage_at(35.0) == SleepStage.N3
    # a duration of -1 lasts until the next stage annotation, the last one to the end of the recording
    last = Hypnogram([0.0, 30.0], [-1.0, -1.0], ["Sleep stage W", "Sleep stage 1"], end=50.0)
    assert last.stage_at([29.9, 30.0, 49.9, 50.0]).tolist() == [0, 1, 1, U]
    assert Hypnogram([], [], [], end=10.0).stage_at([0.0, 5.0]).tolist() == [U, U]
