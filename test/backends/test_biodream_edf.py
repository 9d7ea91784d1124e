"""The `edf` Bio-Dream backend on EDF+ files written here with pyEDFlib: known sine signals replayed at 10x on a
simulated clock (values, units, timing, end of recording), stage annotations as ground truth (in the recording
or in a separate hypnogram file), one recording per participant, clock jumps, and every kind of bad file."""

import datetime

import numpy as np
import pyedflib
import pytest

from lumina_nodes.backends.biodream import GroundTruth, make_biodream_backend
from lumina_nodes.constants import DiagnosticLevel, SleepStage

FS = 100.0
QUANTUM = 400.0 / 65535  # uV: one digital step of a +-200 uV signal

W, N1, N2, N3, REM, U = (SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM, 255)

#: (onset s, duration s, text) of the test recording: R&K names, stage 4, unknown duration, unscored parts.
ANNOTATIONS = [
    (0.0, 30.0, "Sleep stage W"),
    (30.0, 30.0, "Sleep stage 1"),
    (60.0, 30.0, "Sleep stage 2"),
    (90.0, 30.0, "Sleep stage 4"),
    (120.0, 30.0, "Sleep stage ?"),
    (150.0, 10.0, "Lights on"),
    (150.0, 30.0, "Movement time"),
    (180.0, -1.0, "Sleep stage R"),
]


def signal(kind, t):
    """The test signals, microvolts: sines of 5, 10, 2 (written in mV), 11 and 25 Hz."""
    return {
        "fpz": 50.0 * np.sin(2 * np.pi * 5.0 * t),
        "pz": 30.0 * np.sin(2 * np.pi * 10.0 * t + 0.5),
        "c4": 80.0 * np.sin(2 * np.pi * 2.0 * t),
        "o1": 40.0 * np.sin(2 * np.pi * 11.0 * t + 1.0),
        "emg": 20.0 * np.sin(2 * np.pi * 25.0 * t),
    }[kind]


def write_edf(path, seconds=200.0, annotations=ANNOTATIONS, emg_rate=50.0):
    """An EDF+ recording: 'EEG Fpz-Cz', 'EEG Pz-Oz' in uV, 'EEG C4-M1' in mV, 'EEG O1-M2' in uV at 100 Hz,
    'EMG chin' at ``emg_rate``, with ``annotations``."""
    t = np.arange(round(seconds * FS)) / FS
    te = np.arange(round(seconds * emg_rate)) / emg_rate
    uv = {"dimension": "uV", "sample_frequency": FS, "physical_max": 200.0, "physical_min": -200.0}
    uv.update({"digital_max": 32767, "digital_min": -32768, "transducer": "AgAgCl", "prefilter": "HP:0.1Hz"})
    headers = [
        {**uv, "label": "EEG Fpz-Cz"},
        {**uv, "label": "EEG Pz-Oz"},
        {**uv, "label": "EEG C4-M1", "dimension": "mV", "physical_max": 0.2, "physical_min": -0.2},
        {**uv, "label": "EEG O1-M2"},
        {**uv, "label": "EMG chin", "sample_frequency": emg_rate},
    ]
    with pyedflib.EdfWriter(str(path), len(headers), file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders(headers)
        w.setStartdatetime(datetime.datetime(2024, 1, 2, 23, 0, 0))
        w.writeSamples(
            [signal("fpz", t), signal("pz", t), signal("c4", t) / 1000.0, signal("o1", t), signal("emg", te)]
        )
        for onset, duration, text in annotations:
            w.writeAnnotation(onset, duration, text)
    return path


def write_hypnogram(path, annotations):
    """An EDF+ file of annotations only (as Sleep-EDF ships its scoring)."""
    with pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        for onset, duration, text in annotations:
            w.writeAnnotation(onset, duration, text)
    return path


@pytest.fixture
def recording(tmp_path):
    return str(write_edf(tmp_path / "night.edf"))


def test_replay_at_10x_returns_the_recorded_signals_in_microvolts_on_time(recording):
    b = make_biodream_backend(
        "edf", file=recording, labels=[["EEG Fpz-Cz", "EEG Pz-Oz"], " eeg c4-m1 , EEG O1-M2"], speed=10
    )
    assert (b.participants, b.channels, b.sample_rate_hz, b.speed) == (2, 2, FS, 10.0)
    assert isinstance(b, GroundTruth)
    rng = np.random.default_rng(1)
    t0 = 3000.0
    steps = t0 + np.concatenate(([0.0], np.sort(rng.uniform(0.0, 19.9, 80)), [19.9, 20.0, 20.5, 21.0]))
    chunks = [b.read(float(t)) for t in steps]
    assert chunks[0].n == 0 and chunks[0].start_time == t0  # the first read anchors the recording's start
    # 10x: every read returns floor((now - t0) * 10 * 100) minus what came before, until the recording ends
    due = np.minimum(np.floor((steps - t0) * 1000.0 + 1e-6), 20000).astype(int)
    assert np.cumsum([c.n for c in chunks]).tolist() == due.tolist()
    full = [c for c in chunks if c.n]
    for a, c in zip(full, full[1:], strict=False):
        assert c.start_time == pytest.approx(a.end_time, abs=1e-9) and c.skipped == 0
        assert c.sample_rate_hz == FS and c.speed == 10.0
    assert full[0].start_time == t0 and full[-1].end_time == pytest.approx(t0 + 20.0)
    data = np.concatenate([c.data for c in full], axis=2)
    t = np.arange(20000) / FS
    assert data.shape == (2, 2, 20000)
    assert np.abs(data[0, 0] - signal("fpz", t)).max() <= QUANTUM
    assert np.abs(data[0, 1] - signal("pz", t)).max() <= QUANTUM
    assert np.abs(data[1, 0] - signal("c4", t)).max() <= 0.4 / 65535 * 1000.0  # mV in the file, uV out
    assert np.abs(data[1, 1] - signal("o1", t)).max() <= QUANTUM
    # the end of the recording: no more samples, a WARN that says so
    assert chunks[-3].end_time == pytest.approx(t0 + 20.0)  # the read at t0 + 20 s brought the last sample
    assert all(c.n == 0 for c in chunks[-2:]) and chunks[-1].start_time == pytest.approx(t0 + 20.0)
    level, name, message, values = b.diagnostics()[0]
    assert (level, name) == (DiagnosticLevel.WARN, "biodream edf: recording") and message.startswith("end of recording")
    assert values["ended"] == "True" and values["position_s"] == "200.000" and values["speed"] == "10"


def test_stage_annotations_are_the_ground_truth_on_the_replay_clock(recording):
    b = make_biodream_backend("edf", file=recording, labels=["EEG Fpz-Cz", "EEG Pz-Oz"], speed=10)
    assert b.stage_at(0.0).tolist() == [U, U]  # before the replay starts
    b.read(50.0)
    recorded = np.array([0.0, 29.9, 30.0, 59.9, 60.0, 89.9, 90.0, 119.9, 120.0, 149.9, 150.0, 179.9, 180.0, 199.9])
    expect = [W, W, N1, N1, N2, N2, N3, N3, U, U, U, U, REM, REM]  # stage 4 is N3; "?" and movement UNKNOWN
    got = [b.stage_at(50.0 + r / 10.0).tolist() for r in recorded]
    assert got == [[s, s] for s in expect]
    assert b.stage_at(50.0 + 20.01).tolist() == [U, U]  # after the recording
    assert b.stage_at(49.9).tolist() == [U, U]
    assert b.diagnostics()[0][3]["stage_annotations"] == "7,7"


def test_one_recording_per_participant_with_separate_hypnograms(tmp_path):
    short = str(write_edf(tmp_path / "short.edf", seconds=60.0, annotations=[]))
    long = str(write_edf(tmp_path / "long.edf", seconds=90.0, annotations=[]))
    hyp_a = str(
        write_hypnogram(tmp_path / "a-Hypnogram.edf", [(0.0, 30.0, "Sleep stage W"), (30, 30, "Sleep stage 3")])
    )
    hyp_b = str(write_hypnogram(tmp_path / "b-Hypnogram.edf", [(0.0, 90.0, "Sleep stage R")]))
    b = make_biodream_backend(
        "edf", file=[short, long], labels=[["EEG Pz-Oz"], ["EEG Pz-Oz"]], hypnogram=[hyp_a, hyp_b]
    )
    b.read(0.0)
    chunk = b.read(100.0)
    assert chunk.n == 9000
    t = np.arange(9000) / FS
    assert np.abs(chunk.data[1, 0] - signal("pz", t)).max() <= QUANTUM
    assert np.abs(chunk.data[0, 0, :6000] - signal("pz", t[:6000])).max() <= QUANTUM
    assert np.isnan(chunk.data[0, 0, 6000:]).all()  # the shorter recording has ended: NaN
    assert b.stage_at(10.0).tolist() == [W, REM] and b.stage_at(45.0).tolist() == [N3, REM]
    assert b.stage_at(75.0).tolist() == [U, REM]
    # pyEDFlib opens a file once per process: a second backend on it is refused until the first closes
    with pytest.raises(ValueError, match=r"^file: '.*short.edf' is open in another backend of this process"):
        make_biodream_backend("edf", file=short, labels=["EEG Pz-Oz"])
    b.close()
    # without a hypnogram the recordings' own (here: none) are used
    plain = make_biodream_backend("edf", file=[short, long], labels=["EEG Pz-Oz", "EEG Pz-Oz"])
    plain.read(0.0)
    assert plain.stage_at(10.0).tolist() == [U, U]


def test_clock_jump_skips_recorded_time(recording):
    b = make_biodream_backend("edf", file=recording, labels=["EEG Fpz-Cz"], speed=1.0, max_chunk=5.0)
    b.read(0.0)
    b.read(1.0)
    jumped = b.read(51.0)  # 50 s due, 5 s allowed
    assert jumped.skipped == 4500 and jumped.n == 500 and jumped.start_time == pytest.approx(46.0)
    t = np.arange(4600, 5100) / FS
    assert np.abs(jumped.data[0, 0] - signal("fpz", t)).max() <= QUANTUM  # the recording moved on
    assert b.stage_at(50.0).tolist() == [N1]  # recorded 50 s: the ground truth is not shifted by the skip
    values = b.diagnostics()[0][3]
    assert values["skips"] == "1" and values["skipped_recorded_s"] == "45.000"


def test_read_after_close_is_counted_not_raised(recording):
    b = make_biodream_backend("edf", file=recording, labels=["EEG Fpz-Cz"])
    b.read(0.0)
    b.close()
    chunk = b.read(1.0)
    assert chunk.n == 100 and np.isnan(chunk.data).all()
    level, _, message, values = b.diagnostics()[0]
    assert level == DiagnosticLevel.ERROR and "read after close()" in message and values["read_errors"] == "1"
    b.close()


def test_missing_and_corrupt_files(tmp_path, recording):
    with pytest.raises(ValueError, match=r"^file: no such file '.*nowhere.edf'"):
        make_biodream_backend("edf", file=str(tmp_path / "nowhere.edf"))
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(b"this is not an EDF file " * 40)
    with pytest.raises(ValueError, match=r"^file: '.*garbage.edf' is not a readable EDF/EDF\+/BDF file \(.*format"):
        make_biodream_backend("edf", file=str(garbage))
    whole = open(recording, "rb").read()
    truncated = tmp_path / "truncated.edf"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"^file: '.*truncated.edf' is not a readable EDF/EDF\+/BDF file"):
        make_biodream_backend("edf", file=str(truncated))
    gappy = tmp_path / "gappy.edf"
    gappy.write_bytes(whole[:192] + b"EDF+D" + whole[197:])
    with pytest.raises(
        ValueError, match=r"^file: '.*gappy.edf' is a discontinuous recording \(EDF\+D\), not supported"
    ):
        make_biodream_backend("edf", file=str(gappy))
    with pytest.raises(ValueError, match=r"^hypnogram: no such file"):
        make_biodream_backend("edf", file=recording, labels=["EEG Fpz-Cz"], hypnogram=str(tmp_path / "h.edf"))


def test_bad_labels_rates_and_units(tmp_path, recording):
    with pytest.raises(ValueError) as info:
        make_biodream_backend("edf", file=recording, labels=[["EEG Fpz-Cz"], ["EEG O2-M1"]])
    assert str(info.value) == (
        f"labels: 'EEG O2-M1' is not a signal of {recording!r}; its signals are: 'EEG Fpz-Cz', 'EEG Pz-Oz', "
        "'EEG C4-M1', 'EEG O1-M2', 'EMG chin'"
    )
    with pytest.raises(
        ValueError, match=r"^labels: the chosen signals have different sample rates \(.*EEG Fpz-Cz: 100 Hz"
    ):
        make_biodream_backend("edf", file=recording, labels=["EEG Fpz-Cz,EMG chin"])
    volts = tmp_path / "volts.edf"
    t = np.arange(1000) / FS
    header = {"label": "EEG X", "dimension": "degC", "sample_frequency": FS, "physical_max": 1.0}
    header.update({"physical_min": -1.0, "digital_max": 32767, "digital_min": -32768})
    with pyedflib.EdfWriter(str(volts), 1, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders([header])
        w.writeSamples([np.sin(t)])
    with pytest.raises(ValueError, match=r"^labels: 'EEG X' of '.*' is in 'degC'; EEG must be in one of uV, mV, V, nV"):
        make_biodream_backend("edf", file=str(volts), labels=["EEG X"])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"speed": 0.0}, r"^speed must be in \(0, 10000\], got 0.0"),
        ({"speed": float("inf")}, r"^speed must be finite"),
        ({"max_chunk": -1.0}, r"^max_chunk must be in"),
        ({"labels": []}, r"^labels must be a non-empty list"),
        ({"labels": [[" "]]}, r"^labels\[0\]: empty signal label"),
        ({"labels": ["EEG Fpz-Cz", "EEG Fpz-Cz"]}, r"^labels: channels worn by more than one participant"),
        ({"labels": ["A", "B", "C"], "file": ["x.edf", "y.edf"]}, r"^file: give one file for everyone or one per"),
        ({"file": ""}, r"^file must be a file path"),
    ],
)
def test_bad_parameters_name_the_parameter(params, match, recording):
    with pytest.raises(ValueError, match=match):
        make_biodream_backend("edf", **{"file": recording, **params})
