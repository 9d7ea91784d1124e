"""`brainflow` Bio-Dream backend: EEG boards through BrainFlow's BoardShim (no rclpy).

* Any board BrainFlow knows, by ``board_id`` (``brainflow.board_shim.BoardIds``: -1 the synthetic board, -3 the
  playback-file board replaying a file written with ``DataFilter.write_file``, 0 OpenBCI Cyton, ...), opened
  with the connection parameters it needs (``serial_port``, ``mac_address``, ``ip_address``, ...), then sent
  the ``board_config`` commands (``BoardShim.config_board``: a board's own settings strings; the playback board
  takes ``"old_timestamps"`` to replay the file's own timing, ``"loopback_true"`` to loop). Playback and
  streaming boards take their channel layout from ``master_board``.
* Each participant wears a group of the board's EEG channels: ``eeg_channels`` holds, per participant, indices
  into the board's EEG channel list (``BoardShim.get_eeg_channels``; for the synthetic board 0 is Fz, 1 C3 ...).
  Values are passed on as BrainFlow reports them: microvolts for EEG.
* ``start()`` opens the session and starts streaming; a board that will not open raises RuntimeError there
  (the node's startup error). Later errors while reading are counted and reported at ERROR level in
  ``diagnostics()``; ``read`` then returns what it has. No reconnection is attempted.
* Timing. BrainFlow stamps every sample with host unix time (its timestamp row). The first read with data maps
  that onto the ``now`` timeline by one constant offset (its newest sample is at ``now``) and anchors the grid
  at its oldest sample; samples then fill the grid one after the other at the board's nominal rate, and the
  timestamps say where samples are missing: a sample stamped more than ``gap_tolerance`` later than one period
  after its predecessor (lost samples, a ring buffer that overflowed) opens a NaN gap of the missing length;
  samples stamped more than ``gap_tolerance`` before the end of what the grid already covers are dropped as
  late. When no data comes, the grid is filled with NaN up to ``now - stall_timeout`` (a dead board yields NaN,
  not silence); samples of that span arriving later are dropped as late. Everything is counted. Gaps are found
  from sample to sample, so a board slightly off its nominal rate (the synthetic board runs at about 249.94 Hz)
  never opens one; the grid then drifts from the timestamps by that rate error (diagnostics:
  ``grid_drift_s``). The grid follows the board's real time, so ``now`` must advance at the wall clock's pace
  (a real board cannot follow a sim clock running faster).
* Clock jumps: one read returns at most ``max_chunk`` seconds, the older samples are skipped (the chunk's
  ``skipped``), as every backend does.
"""

from __future__ import annotations

import math

import numpy as np
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError, BrainFlowInputParams

from ...constants import DiagnosticLevel
from ...settings import Setting
from .base import BioDreamBackend, Diagnostic, EegChunk
from .clock import SampleClock
from .params import MAX_CHUNK, channel_groups, checked, existing_file

#: Boards that carry no layout of their own: they stream the layout of their ``master_board``.
_RELAYS = (BoardIds.PLAYBACK_FILE_BOARD.value, BoardIds.STREAMING_BOARD.value)

#: Errors a BrainFlow call may raise on device trouble (BrainFlowError; OSError/ValueError from its ctypes layer).
_DEVICE_ERRORS = (BrainFlowError, OSError, ValueError)


class BrainFlowBioDreamBackend(BioDreamBackend):
    """Participants wearing the EEG channels of one BrainFlow board.

    Parameters
    ----------
    board_id : int
        BrainFlow board id, -100..1000 (one BrainFlow knows; -100, NO_BOARD, is refused).
    eeg_channels : list
        Per participant, the indices of its channels into the board's EEG channels: lists of ints, or
        comma-separated strings (``["0,1", "2,3"]``), or single ints. Same count (1..4) for everyone, no
        channel twice. ``participants`` is the number of entries.
    serial_port, mac_address, ip_address, serial_number, other_info : str
        BrainFlow connection parameters of the board, empty when not needed.
    ip_port : int
        BrainFlow ``ip_port``, 0..65535 (0: not needed).
    timeout : int
        BrainFlow ``timeout``, 0..600 s (0: the board's default).
    board_config : list of str
        Commands sent with ``config_board`` once the session is prepared, in order (empty: none).
    file : str
        The file a playback board (board_id -3) replays, as ``DataFilter.write_file`` wrote it; must exist.
    master_board : int
        For the playback and streaming boards, the board whose data they carry (its layout and rate).
    buffer_seconds : float
        Seconds of samples the board's ring buffer holds between two reads, [1, 3600] s.
    gap_tolerance : float
        Timestamp mismatch tolerated before samples count as lost (a NaN gap) or late (dropped), [0.001, 10] s.
    stall_timeout : float
        Seconds without data after which the grid is filled with NaN up to ``now - stall_timeout``, [0.1, 600] s.
    max_chunk : float
        Most seconds one read returns, (0, 86400] s.
    """

    name = "brainflow"

    SETTINGS = {
        "board_id": Setting("BrainFlow board id (BoardIds).", "", -100, 1000, integer=True),
        "master_board": Setting("Board a playback or streaming board carries.", "", -100, 1000, integer=True),
        "ip_port": Setting("BrainFlow ip_port of the board (0: not needed).", "", 0, 65535, integer=True),
        "timeout": Setting("BrainFlow timeout of the board (0: its default).", "s", 0, 600, integer=True),
        "buffer_seconds": Setting("Samples the board's ring buffer holds between reads.", "s", 1.0, 3600.0),
        "gap_tolerance": Setting("Timestamp mismatch before samples are lost or late.", "s", 0.001, 10.0),
        "stall_timeout": Setting("Time without data before the grid is filled with NaN.", "s", 0.1, 600.0),
        "max_chunk": MAX_CHUNK,
    }

    def __init__(
        self,
        board_id: int = BoardIds.SYNTHETIC_BOARD.value,
        eeg_channels=((0,),),
        serial_port: str = "",
        mac_address: str = "",
        ip_address: str = "",
        ip_port: int = 0,
        serial_number: str = "",
        other_info: str = "",
        timeout: int = 0,
        board_config=(),
        file: str = "",
        master_board: int = BoardIds.NO_BOARD.value,
        buffer_seconds: float = 60.0,
        gap_tolerance: float = 0.25,
        stall_timeout: float = 1.0,
        max_chunk: float = 600.0,
    ):
        v = checked(
            self.SETTINGS,
            board_id=board_id,
            master_board=master_board,
            ip_port=ip_port,
            timeout=timeout,
            buffer_seconds=buffer_seconds,
            gap_tolerance=gap_tolerance,
            stall_timeout=stall_timeout,
            max_chunk=max_chunk,
        )
        self.board_id = v["board_id"]
        self.params = BrainFlowInputParams()
        for key, text in (
            ("serial_port", serial_port),
            ("mac_address", mac_address),
            ("ip_address", ip_address),
            ("serial_number", serial_number),
            ("other_info", other_info),
        ):
            if not isinstance(text, str):
                raise ValueError(f"{key} must be a string, got {text!r}")
            setattr(self.params, key, text)
        self.params.ip_port, self.params.timeout = v["ip_port"], v["timeout"]
        commands = [board_config] if isinstance(board_config, str) else board_config
        if not isinstance(commands, (list, tuple)) or not all(isinstance(c, str) for c in commands):
            raise ValueError(f"board_config must be a list of strings, got {board_config!r}")
        self.board_config = [c for c in commands if c]
        layout = self.board_id
        if self.board_id in _RELAYS:
            layout = v["master_board"]
            if layout in (*_RELAYS, BoardIds.NO_BOARD.value):
                raise ValueError(
                    f"master_board: board_id {self.board_id} ({_board_name(self.board_id)}) carries another "
                    f"board's data; give that board's id (e.g. {BoardIds.SYNTHETIC_BOARD.value}), got {layout}"
                )
            self.params.master_board = layout
        if self.board_id == BoardIds.PLAYBACK_FILE_BOARD.value:
            self.params.file = existing_file("file", file)
        elif file:
            raise ValueError(f"file: only the playback board (board_id {BoardIds.PLAYBACK_FILE_BOARD.value}) reads one")
        descr, rows = _eeg_layout(layout, "master_board" if layout != self.board_id else "board_id")
        names = str(descr.get("eeg_names", "")).split(",")
        self.eeg_names = names if len(names) == len(rows) else [f"EEG{k}" for k in range(len(rows))]
        self.board_name = str(descr.get("name", _board_name(layout)))

        def eeg_index(x) -> int:
            try:
                k = int(x)
                ok = not isinstance(x, bool) and k == float(x) and 0 <= k < len(rows)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"channel {x!r} is not an index of the board's {len(rows)} EEG channels "
                    f"(0..{len(rows) - 1}: {', '.join(self.eeg_names)})"
                )
            return k

        self.groups = channel_groups("eeg_channels", eeg_channels, eeg_index)
        self.participants, self.channels = len(self.groups), len(self.groups[0])
        self._rows = np.array([rows[k] for g in self.groups for k in g], dtype=np.intp)
        self._ts_row = int(descr["timestamp_channel"])
        self.sample_rate_hz = float(descr["sampling_rate"])
        self.buffer_size = max(1, round(v["buffer_seconds"] * self.sample_rate_hz))
        self.gap_tolerance, self.stall_timeout = v["gap_tolerance"], v["stall_timeout"]
        self.clock = SampleClock(self.sample_rate_hz, v["max_chunk"])
        self.board: BoardShim | None = None
        self._num_rows = int(descr["num_rows"])
        self.offset: float | None = None  # now - board timestamp
        self.covered = math.nan  # `now` time of the last grid slot filled (by a sample or a stall's NaN)
        self.first_read: float | None = None
        self.last_data: float | None = None  # now of the last read that brought samples
        self.counters = dict.fromkeys(
            ("reads", "samples", "lost_samples", "stalled_samples", "late_samples", "read_errors", "close_errors"), 0
        )
        self.last_error = ""
        self._seen = dict(self.counters)
        BoardShim.disable_board_logger()

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self.board is not None:
            return
        board = BoardShim(self.board_id, self.params)
        try:
            board.prepare_session()
            for command in self.board_config:
                board.config_board(command)
            board.start_stream(self.buffer_size)
        except BrainFlowError as exc:
            if board.is_prepared():
                board.release_session()
            where = ", ".join(
                f"{k}={getattr(self.params, k)!r}"
                for k in ("serial_port", "mac_address", "ip_address", "serial_number", "file")
                if getattr(self.params, k)
            )
            raise RuntimeError(
                f"BrainFlow board {self.board_id} ({_board_name(self.board_id)}"
                f"{', ' + where if where else ''}) would not open: {exc}"
            ) from None
        self.board = board

    def close(self) -> None:
        board, self.board = self.board, None
        if board is None:
            return
        for step in (board.stop_stream, board.release_session):
            try:
                step()
            except _DEVICE_ERRORS as exc:
                self.counters["close_errors"] += 1
                self.last_error = f"{step.__name__}: {exc}"

    # ----------------------------------------------------------------------------------------- read
    def read(self, now: float) -> EegChunk:
        clock = self.clock
        now = clock.check(now)
        if now is None:
            return self.empty_chunk(clock.time_of(clock.next) if clock.anchor is not None else math.nan)
        self.counters["reads"] += 1
        if self.first_read is None:
            self.first_read = now
        block = self._fetch()
        m = block.shape[1]
        values = block[self._rows].reshape(self.participants, self.channels, m)
        positions = np.zeros(0, np.int64)
        if m:
            self.last_data = now
            stamps = block[self._ts_row]
            if self.offset is None:
                self.offset = now - float(np.nanmax(stamps)) if np.isfinite(stamps).any() else 0.0
            if clock.anchor is None:
                self._anchor(float(stamps[0]) + self.offset if math.isfinite(stamps[0]) else now)
            keep, positions = self._place(stamps + self.offset)
            values = values[:, :, keep]
            self.counters["samples"] += len(positions)
        elif clock.anchor is None and now - self.first_read > self.stall_timeout:
            self._anchor(self.first_read)  # no data ever: the grid starts at the first read, all NaN
        if clock.anchor is None:
            return self.empty_chunk(now)
        end = int(positions[-1]) + 1 if len(positions) else 0  # grid slots used, from clock.next
        stalled = math.floor((now - self.stall_timeout - self.covered) * self.sample_rate_hz + 1e-6)
        if stalled > 0:
            self.counters["stalled_samples"] += stalled
            self.covered += stalled / self.sample_rate_hz
            end += stalled
        skip, n = clock.limit(end)
        data = np.full((self.participants, self.channels, n), np.nan)
        shown = positions >= skip
        data[:, :, positions[shown] - skip] = values[:, :, shown]
        clock.advance(skip, n)
        return self.chunk(clock.time_of(clock.next - n), data, skip)

    def _anchor(self, t: float) -> None:
        """Grid index 0 at ``t`` (s, ``now`` timeline)."""
        self.clock.anchor = t
        self.covered = t - 1.0 / self.sample_rate_hz

    def _fetch(self) -> np.ndarray:
        """Every row of whatever the board buffered since the last read: (rows, m); m = 0 on errors (counted)."""
        if self.board is not None:
            try:
                return np.asarray(self.board.get_board_data(), dtype=np.float64)
            except _DEVICE_ERRORS as exc:
                self.counters["read_errors"] += 1
                self.last_error = f"get_board_data: {exc}"
        else:
            self.counters["read_errors"] += 1
            self.last_error = "read before start() (or after close())"
        return np.zeros((self._num_rows, 0))

    def _place(self, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid slots, counted from ``clock.next``, of a block of samples stamped ``mapped`` (s, ``now``
        timeline): (indices of the samples kept, their slots, strictly increasing); advances ``covered`` to the
        last one. Vectorised."""
        fs, tol = self.sample_rate_hz, self.gap_tolerance * self.sample_rate_hz
        period = 1.0 / fs
        bad = ~np.isfinite(mapped)
        if bad.any():  # an unstamped sample is taken as one period after its predecessor
            mapped = mapped.copy()
            mapped[bad] = self.covered + (np.flatnonzero(bad) + 1) * period
        late = (mapped - self.covered) * fs - 1.0 < -tol
        first = len(late) if late.all() else int(np.argmin(late))  # leading late samples are dropped
        self.counters["late_samples"] += first
        keep = np.arange(first, len(mapped))
        if not len(keep):
            return keep, keep
        kept = mapped[first:]
        step = np.diff(kept, prepend=self.covered) * fs - 1.0  # extra sample periods before each sample
        extra = np.where(step > tol, np.rint(step), 0.0).astype(np.int64)
        self.counters["lost_samples"] += int(extra.sum())
        self.covered = float(kept[-1])
        return keep, np.arange(len(keep)) + np.cumsum(extra)

    # ----------------------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> list[Diagnostic]:
        c, clock = self.counters, self.clock
        new = {k: c[k] - self._seen[k] for k in c}
        self._seen = dict(c)
        now = clock.last_now
        heard = self.last_data if self.last_data is not None else self.first_read
        silence = now - heard if now is not None and heard is not None else 0.0
        # grid time of the last slot filled minus its timestamp: the board's rate error, accumulated
        drift = "" if clock.anchor is None else f"{clock.time_of(clock.next - 1) - self.covered:.6f}"
        if self.board is None:
            level, message = DiagnosticLevel.ERROR, "board not open"
        elif new["read_errors"]:
            level, message = DiagnosticLevel.ERROR, f"{new['read_errors']} read errors since the last report"
        elif silence > self.stall_timeout:
            level, message = DiagnosticLevel.ERROR, f"no data from the board for {silence:.1f} s"
        elif new["lost_samples"] or new["late_samples"] or new["stalled_samples"]:
            level = DiagnosticLevel.WARN
            message = (
                f"since the last report: {new['lost_samples'] + new['stalled_samples']} samples lost, "
                f"{new['late_samples']} late samples dropped"
            )
        else:
            level, message = DiagnosticLevel.OK, f"streaming from {self.board_name}"
        return [
            (
                level,
                "biodream brainflow: board",
                message,
                {
                    "board_id": str(self.board_id),
                    "board": self.board_name,
                    "serial_port": self.params.serial_port,
                    "sample_rate_hz": f"{self.sample_rate_hz:g}",
                    "participants": str(self.participants),
                    "eeg_channels": "; ".join(",".join(self.eeg_names[k] for k in g) for g in self.groups),
                    **{k: str(v) for k, v in c.items()},
                    "last_error": self.last_error,
                    "skipped_s": f"{clock.skipped / self.sample_rate_hz:.3f}",
                    "skips": str(clock.skips),
                    "clock_backwards": str(clock.clock_backwards),
                    "bad_clock": str(clock.bad_clock),
                    "timestamp_offset_s": "" if self.offset is None else f"{self.offset:.6f}",
                    "grid_drift_s": drift,
                },
            )
        ]


def _eeg_layout(board_id: int, which: str) -> tuple[dict, list[int]]:
    """BrainFlow's description of the board ``board_id`` and its EEG rows; ValueError naming ``which``."""
    if board_id == BoardIds.NO_BOARD.value:
        raise ValueError(f"{which}: {board_id} (NO_BOARD) is not a board")
    try:
        descr = BoardShim.get_board_descr(board_id)
    except BrainFlowError as exc:
        raise ValueError(f"{which}: BrainFlow {BoardShim.get_version()} knows no board {board_id} ({exc})") from None
    if not descr.get("eeg_channels"):
        raise ValueError(f"{which}: board {board_id} ({descr.get('name', '?')}) has no EEG channels")
    return descr, list(descr["eeg_channels"])


def _board_name(board_id: int) -> str:
    try:
        return BoardIds(board_id).name
    except ValueError:
        return "unknown board"
