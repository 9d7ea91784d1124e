"""The `brainflow` Bio-Dream backend on BrainFlow's own offline boards: the synthetic board streamed on a clock
offset from the board's, the playback-file board replaying a file written with DataFilter.write_file (its
values, lost samples, a stalled board), a board that will not open, device errors while reading, bad
parameters. Every board here is local (no STREAMING_BOARD, no network)."""

import time

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim
from brainflow.data_filter import DataFilter

from lumina_nodes.backends.biodream import make_biodream_backend
from lumina_nodes.constants import DiagnosticLevel

BoardShim.disable_board_logger()

SYNTHETIC = BoardIds.SYNTHETIC_BOARD.value
PLAYBACK = BoardIds.PLAYBACK_FILE_BOARD.value
FS = 250.0  # the synthetic board's rate
NODE_CLOCK = 7_000.0  # the node clock's reading at this host's monotonic 0: far from the board's unix stamps


def node_now() -> float:
    return NODE_CLOCK + time.monotonic()


def stream(backend, seconds, period=0.05, until=None):
    """Read every ``period`` s for ``seconds`` (or until ``until(chunks)``); the chunks and the node times read at."""
    chunks, stamps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until(chunks)):
        time.sleep(period)
        stamps.append(node_now())
        chunks.append(backend.read(stamps[-1]))
    return chunks, stamps


def joined(chunks):
    """Data of the chunks with samples, checked contiguous on one grid: (start time, (P, C, n))."""
    full = [c for c in chunks if c.n]
    for a, b in zip(full, full[1:], strict=False):
        assert b.skipped == 0 and b.start_time == pytest.approx(a.end_time, abs=1e-9)
    return full[0].start_time, np.concatenate([c.data for c in full], axis=2)


def write_board_file(path, sample_index):
    """A file for the playback board with the synthetic board's layout: one sample per ``sample_index`` entry,
    EEG row r holding 1000 * r + index (so any channel or sample mix-up shows), stamped at 250 Hz from the
    index (gaps in ``sample_index`` are gaps in time). Returns the file read back (write_file rounds)."""
    idx = np.asarray(sample_index, dtype=np.float64)
    data = np.zeros((BoardShim.get_num_rows(SYNTHETIC), len(idx)))
    data[BoardShim.get_package_num_channel(SYNTHETIC)] = idx % 256
    for r in BoardShim.get_eeg_channels(SYNTHETIC):
        data[r] = 1000.0 * r + idx + 0.25
    data[BoardShim.get_timestamp_channel(SYNTHETIC)] = 1.7e9 + idx / FS
    DataFilter.write_file(data, str(path), "w")
    return DataFilter.read_file(str(path))


def test_synthetic_board_streams_on_the_node_clock():
    b = make_biodream_backend("brainflow", board_id=SYNTHETIC, eeg_channels=[[0, 1], "2,3"])
    assert (b.participants, b.channels, b.sample_rate_hz) == (2, 2, FS)
    b.start()
    try:
        begin = node_now()
        chunks, stamps = stream(b, 1.5)
        level, name, _, values = b.diagnostics()[0]
    finally:
        b.close()
    start, data = joined(chunks)
    full = [c for c in chunks if c.n]
    assert data.shape[:2] == (2, 2) and all(c.sample_rate_hz == FS and c.speed == 1.0 for c in chunks)
    assert 0.85 * 1.5 * FS < data.shape[2] < 1.15 * (1.5 + 0.3) * FS  # the board's real rate
    assert np.isfinite(data).all() and 1.0 < np.std(data) < 1000.0  # microvolts
    # the channels are four different signals, not one copied
    assert min(np.std(data[0, 0] - data[p, c]) for p, c in ((0, 1), (1, 0), (1, 1))) > 1.0
    # timestamps on the node clock: monotone, and each chunk ends just before the read that got it (within the
    # board's timestamp jitter of a few ms)
    assert np.all(np.diff([c.start_time for c in full]) > 0)
    assert begin - 0.2 < start < begin + 0.3
    for c, now in zip(chunks, stamps, strict=True):
        if c.n:
            assert now - 0.5 < c.end_time <= now + 0.02
    assert level == DiagnosticLevel.OK and name == "biodream brainflow: board" and values["board"] == "Synthetic"
    assert values["eeg_channels"] == "Fz,C3; Cz,C4" and int(values["samples"]) == data.shape[2]
    assert values["lost_samples"] == values["late_samples"] == values["read_errors"] == "0"
    assert abs(float(values["grid_drift_s"])) < 0.02


def test_playback_board_returns_exactly_the_file(tmp_path):
    path = tmp_path / "night.csv"
    recorded = write_board_file(path, np.arange(200))
    b = make_biodream_backend(
        "brainflow",
        board_id=PLAYBACK,
        master_board=SYNTHETIC,
        file=str(path),
        eeg_channels=[[4, 0], [9, 15]],
        stall_timeout=0.3,
    )
    assert (b.participants, b.channels) == (2, 2)
    b.start()
    try:
        chunks, _ = stream(b, 3.0, until=lambda cs: sum(np.isfinite(c.data[0, 0]).sum() for c in cs) >= 200)
        assert sum(c.n for c in chunks) >= 200, "the playback board did not deliver the file"
        more, _ = stream(b, 0.8)  # the file has ended: the board is silent and the grid fills with NaN
        silent = b.diagnostics()[0]
    finally:
        b.close()
    _, data = joined(chunks + more)
    eeg = BoardShim.get_eeg_channels(SYNTHETIC)
    rows = [[eeg[4], eeg[0]], [eeg[9], eeg[15]]]
    assert np.array_equal(data[:, :, :200], recorded[rows])  # values and channel choice, as the file holds them
    assert data.shape[2] > 200 + 0.3 * FS and np.isnan(data[:, :, 200:]).all()
    assert silent[0] == DiagnosticLevel.ERROR and silent[2].startswith("no data from the board for")
    assert int(silent[3]["stalled_samples"]) == data.shape[2] - 200


def test_lost_samples_become_a_nan_gap_of_their_length(tmp_path):
    path = tmp_path / "gap.csv"
    index = np.r_[0:100, 150:250]  # 50 samples (0.2 s) missing
    recorded = write_board_file(path, index)
    b = make_biodream_backend(
        "brainflow",
        board_id=PLAYBACK,
        master_board=SYNTHETIC,
        file=str(path),
        board_config=["old_timestamps"],  # replay the file's own stamps, so the gap is a gap in time
        eeg_channels=[[0]],
        gap_tolerance=0.05,
        stall_timeout=2.0,
    )
    b.start()
    try:
        chunks, _ = stream(b, 3.0, until=lambda cs: sum(np.isfinite(c.data).sum() for c in cs) >= 200)
    finally:
        b.close()
    _, data = joined(chunks)
    row = BoardShim.get_eeg_channels(SYNTHETIC)[0]
    x = data[0, 0, :250]
    assert np.array_equal(x[:100], recorded[row, :100])
    assert np.isnan(x[100:150]).all()
    assert np.array_equal(x[150:], recorded[row, 100:])
    values = b.diagnostics()[0][3]
    assert values["lost_samples"] == "50" and values["samples"] == "200"


def test_board_that_will_not_open_raises_at_start(tmp_path):
    port = str(tmp_path / "ttyNOPE")
    b = make_biodream_backend("brainflow", board_id=BoardIds.CYTON_BOARD.value, serial_port=port, eeg_channels=[0])
    with pytest.raises(RuntimeError, match=r"BrainFlow board 0 \(CYTON_BOARD, serial_port='.*ttyNOPE'\) would not "):
        b.start()
    assert b.board is None and b.diagnostics()[0][:3] == (
        DiagnosticLevel.ERROR,
        "biodream brainflow: board",
        "board not open",
    )
    assert b.read(node_now()).n == 0  # reading anyway never raises


def test_device_errors_while_reading_are_counted_never_raised():
    b = make_biodream_backend("brainflow", board_id=SYNTHETIC, eeg_channels=[[0]], stall_timeout=0.2)
    b.start()
    try:
        stream(b, 0.3)
        b.diagnostics()
        b.board.release_session()  # the device goes away under the backend
        chunks, _ = stream(b, 0.6)
        level, _, message, values = b.diagnostics()[0]
    finally:
        b.close()
    assert level == DiagnosticLevel.ERROR and "read errors since the last report" in message
    assert int(values["read_errors"]) == len(chunks) and "BOARD_NOT_CREATED_ERROR" in values["last_error"]
    _, data = joined(chunks)
    assert data.shape[2] > 0.2 * FS and np.isnan(data).all()  # time went on without data: NaN


@pytest.mark.parametrize(
    "params, match",
    [
        ({"board_id": 999}, r"^board_id: BrainFlow 5.23.0 knows no board 999"),
        ({"board_id": -100}, r"^board_id: -100 \(NO_BOARD\) is not a board"),
        ({"board_id": BoardIds.CALLIBRI_EMG_BOARD.value}, r"^board_id: board 10 \(.*\) has no EEG channels"),
        ({"board_id": PLAYBACK, "master_board": PLAYBACK, "file": "x"}, r"^master_board: board_id -3 .* got -3"),
        ({"board_id": 2000}, r"^board_id must be in \[-100, 1000\]"),
        ({"eeg_channels": [[16]]}, r"^eeg_channels\[0\]: channel 16 is not an index of the board's 16 EEG channels "),
        ({"eeg_channels": [[0, 1], [2]]}, r"^eeg_channels: every participant needs the same number of channels"),
        ({"eeg_channels": [[0, 1, 2, 3, 4]]}, r"1..4; got \[5\]"),
        ({"eeg_channels": [[0], [0]]}, r"^eeg_channels: channels worn by more than one participant or twice: 0"),
        ({"eeg_channels": [[True]]}, r"^eeg_channels\[0\]: channel True is not an index"),
        ({"board_id": PLAYBACK, "file": "x.csv"}, r"^master_board: board_id -3 \(PLAYBACK_FILE_BOARD\) carries"),
        ({"board_id": PLAYBACK, "master_board": SYNTHETIC, "file": "/nonexistent.csv"}, r"^file: no such file"),
        ({"file": "x.csv"}, r"^file: only the playback board"),
        ({"gap_tolerance": 0.0}, r"^gap_tolerance must be in \[0.001, 10\] s"),
        ({"stall_timeout": 1e9}, r"^stall_timeout must be in \[0.1, 600\] s"),
        ({"buffer_seconds": 0.5}, r"^buffer_seconds must be in"),
        ({"serial_port": 5}, r"^serial_port must be a string"),
        ({"board_config": [1]}, r"^board_config must be a list of strings"),
    ],
)
def test_bad_parameters_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        make_biodream_backend("brainflow", **params)
