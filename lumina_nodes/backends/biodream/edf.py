"""`edf` Bio-Dream backend: EDF/EDF+ (and BDF/BDF+) recordings replayed through pyEDFlib (no rclpy).

* One recording for everyone, or one per participant: ``file`` is one path, or a list with one path per
  participant (participants may share a file). ``labels`` chooses, per participant, the signals they wear by
  their EDF label (``[["EEG Fpz-Cz", "EEG Pz-Oz"]]``, or ``["EEG Fpz-Cz,EEG Pz-Oz"]`` as a ROS string array);
  exact labels first, else ignoring case and surrounding blanks. Every chosen signal must have the same sample
  rate (there is no resampling); values are converted to microvolts from the signal's physical dimension
  (uV, mV, V, nV).
* Replay: the first read anchors the recordings' start at ``now``; from then on ``speed`` recorded seconds
  pass per second of ``now`` (1: as recorded; 10: ten times faster), every recording from its own start.
  Chunks carry the recorded rate and the speed (:class:`EegChunk`). Recordings shorter than the longest one
  read NaN after their end; after the longest one ends, reads return no samples and diagnostics say "end of
  recording" (WARN). Clock jumps beyond ``max_chunk`` skip recorded time, as every backend does.
* Ground truth (:class:`GroundTruth`): the EDF+ sleep-stage annotations of each participant's recording (see
  :mod:`.stages`), or of ``hypnogram``, a separate EDF+ annotation file per recording (Sleep-EDF ships its
  scoring as "*-Hypnogram.edf"). UNKNOWN where nothing is scored and before the replay starts.
* Every file problem is a ValueError at construction naming the parameter: a missing file, a file that is not
  EDF, a discontinuous (EDF+D) recording, a label that is not in the file (listing the labels it has), signals
  of different sample rates, an unknown physical dimension.
"""

from __future__ import annotations

import math

import numpy as np
import pyedflib

from ...constants import DiagnosticLevel, SleepStage
from ...settings import Setting
from .base import BioDreamBackend, Diagnostic, EegChunk, GroundTruth
from .clock import SampleClock
from .params import MAX_CHUNK, channel_groups, checked, existing_file, no_channel_twice
from .stages import Hypnogram

#: Physical dimension (lower case) -> factor to microvolts.
UNITS_TO_MICROVOLT = {"uv": 1.0, "\u00b5v": 1.0, "\u03bcv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: Errors pyEDFlib raises on a file it cannot read.
_FILE_ERRORS = (OSError, ValueError, RuntimeError)


class EdfBioDreamBackend(BioDreamBackend, GroundTruth):
    """Participants replayed from EDF/EDF+ recordings.

    Parameters
    ----------
    file : str or list of str
        The recording, or one recording per participant (the list as long as ``labels``); must exist.
    labels : list
        Per participant, the EDF labels of the signals they wear: lists of str, or comma-separated strings, or
        single labels. Same count (1..4) for everyone, no signal of a file twice. ``participants`` is the
        number of entries.
    speed : float
        Recorded seconds per second of ``now``, (0, 10000] (1: as recorded).
    hypnogram : str or list of str
        EDF+ file(s) whose stage annotations are the ground truth, one for everyone or one per participant;
        empty: the recordings' own annotations.
    max_chunk : float
        Most seconds of ``now`` one read returns, (0, 86400] s.
    """

    name = "edf"

    SETTINGS = {
        "speed": Setting(
            "Replay speed: recorded seconds per second of the node clock.", "", 0.0, 10000.0, low_open=True
        ),
        "max_chunk": MAX_CHUNK,
    }

    def __init__(self, file="", labels=(("EEG Fpz-Cz",),), speed: float = 1.0, hypnogram="", max_chunk: float = 600.0):
        v = checked(self.SETTINGS, speed=speed, max_chunk=max_chunk)
        self.speed = v["speed"]
        self.groups = channel_groups("labels", labels, _label, unique=False)
        self.participants, self.channels = len(self.groups), len(self.groups[0])
        self.files = [existing_file("file", f) for f in self._per_participant("file", file)]
        no_channel_twice("labels", [(f, x) for f, g in zip(self.files, self.groups, strict=True) for x in g])
        hypnograms = self._per_participant("hypnogram", hypnogram)
        self._readers: dict[str, pyedflib.EdfReader] = {}
        try:
            self._sources, self.lengths, rates = self._choose_signals()
            distinct = sorted(set(rates.values()))
            if len(distinct) != 1:
                shown = ", ".join(f"{k}: {r:g} Hz" for k, r in rates.items())
                raise ValueError(
                    f"labels: the chosen signals have different sample rates ({shown}); choose signals that "
                    f"share one rate (the edf backend does not resample)"
                )
            self.sample_rate_hz = distinct[0]
            self._hypnograms = self._read_hypnograms(hypnograms)
        except BaseException:
            self.close()
            raise
        self.total = int(self.lengths.max())
        self.clock = SampleClock(self.sample_rate_hz * self.speed, v["max_chunk"])
        self.counters = {"reads": 0, "read_errors": 0}
        self.last_error = ""
        self._seen_errors = 0
        self.started = False

    # ----------------------------------------------------------------------------------------- opening
    def _per_participant(self, name: str, value) -> list:
        """``value`` (one path, or a list of one per participant) as one entry per participant."""
        items = [value] if isinstance(value, str) or not isinstance(value, (list, tuple)) else list(value)
        if len(items) == 1:
            items *= self.participants
        if len(items) != self.participants:
            raise ValueError(
                f"{name}: give one file for everyone or one per participant ({self.participants}), got {len(items)}"
            )
        return items

    def _reader(self, name: str, path: str) -> pyedflib.EdfReader:
        if path in self._readers:
            return self._readers[path]
        with open(path, "rb") as handle:
            header = handle.read(256)
        if header[192:197] in (b"EDF+D", b"BDF+D"):
            raise ValueError(
                f"{name}: {path!r} is a discontinuous recording ({header[192:197].decode()}), not supported"
            )
        try:
            reader = pyedflib.EdfReader(path)
        except _FILE_ERRORS as exc:
            if "already been opened" in str(exc):
                raise ValueError(
                    f"{name}: {path!r} is open in another backend of this process (pyEDFlib opens a file once)"
                ) from None
            raise ValueError(f"{name}: {path!r} is not a readable EDF/EDF+/BDF file ({exc})") from None
        self._readers[path] = reader
        return reader

    def _choose_signals(self):
        """Per (participant, channel), in that order: (reader, signal index, factor to uV, samples); the
        recorded samples per participant (P,); the sample rate of each chosen signal by 'file: label'."""
        sources, lengths, rates = [], [], {}
        for path, group in zip(self.files, self.groups, strict=True):
            reader = self._reader("file", path)
            labels = [str(x).strip() for x in reader.getSignalLabels()]
            counts = reader.getNSamples()
            n = []
            for label in group:
                index = _find_label(labels, label)
                if index is None:
                    raise ValueError(
                        f"labels: {label!r} is not a signal of {path!r}; its signals are: "
                        + (", ".join(repr(x) for x in labels) or "none")
                    )
                unit = str(reader.getPhysicalDimension(index)).strip()
                factor = UNITS_TO_MICROVOLT.get(unit.lower())
                if factor is None:
                    raise ValueError(
                        f"labels: {label!r} of {path!r} is in {unit!r}; EEG must be in one of "
                        + ", ".join(("uV", "mV", "V", "nV"))
                    )
                rates[f"{path}: {labels[index]}"] = float(reader.getSampleFrequency(index))
                sources.append((reader, index, factor, int(counts[index])))
                n.append(int(counts[index]))
            lengths.append(min(n))
        return sources, np.array(lengths, dtype=np.int64), rates

    def _read_hypnograms(self, hypnograms: list) -> list[Hypnogram]:
        """Per participant, the stage annotations of its hypnogram file (or of its recording)."""
        by_file: dict[tuple[str, str], Hypnogram] = {}
        out = []
        for path, given, length in zip(self.files, hypnograms, self.lengths, strict=True):
            source = existing_file("hypnogram", given) if given else path
            key = (path, source)
            if key not in by_file:
                reader = self._reader("hypnogram" if given else "file", source)
                try:
                    onsets, durations, texts = reader.readAnnotations()
                except _FILE_ERRORS as exc:
                    raise ValueError(f"hypnogram: annotations of {source!r} unreadable ({exc})") from None
                by_file[key] = Hypnogram(onsets, durations, texts, end=length / self.sample_rate_hz)
            out.append(by_file[key])
        return out

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        readers, self._readers = self._readers, {}
        for reader in readers.values():
            reader.close()

    # ----------------------------------------------------------------------------------------- read
    @property
    def ended(self) -> bool:
        """Every recording has been replayed to its end."""
        return self.clock.next >= self.total

    def read(self, now: float) -> EegChunk:
        if not self.started:
            self.start()
        self.counters["reads"] += 1
        clock = self.clock
        taken = clock.take(now, remaining=max(self.total - clock.next, 0))
        if taken is None or clock.anchor is None:
            return self.empty_chunk(clock.time_of(clock.next) if clock.anchor is not None else math.nan)
        skip, n = taken
        first = clock.next - n
        data = np.full((len(self._sources), n), np.nan)
        if n and not self._readers:
            self.counters["read_errors"] += 1
            self.last_error = "read after close()"
        elif n:
            for row, (reader, index, factor, length) in enumerate(self._sources):
                count = min(n, length - first)
                if count <= 0:
                    continue
                try:
                    data[row, :count] = reader.readSignal(index, first, count) * factor
                except _FILE_ERRORS as exc:
                    self.counters["read_errors"] += 1
                    self.last_error = f"signal {index}: {exc}"
        return self.chunk(clock.time_of(first), data.reshape(self.participants, self.channels, n), skip)

    def stage_at(self, t: float) -> np.ndarray:
        anchor = self.clock.anchor
        if anchor is None or not math.isfinite(t) or t < anchor:
            return np.full(self.participants, SleepStage.UNKNOWN, np.uint8)
        recorded = (t - anchor) * self.speed
        return np.array([h.stage_at(recorded) for h in self._hypnograms], dtype=np.uint8)

    # ----------------------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> list[Diagnostic]:
        c, clock = self.counters, self.clock
        new = c["read_errors"] - self._seen_errors
        self._seen_errors = c["read_errors"]
        position = min(clock.next, self.total) / self.sample_rate_hz
        duration = self.total / self.sample_rate_hz
        if new:
            level, message = DiagnosticLevel.ERROR, f"{new} read errors since the last report: {self.last_error}"
        elif self.ended:
            level, message = DiagnosticLevel.WARN, f"end of recording ({duration:.1f} s replayed)"
        else:
            level, message = DiagnosticLevel.OK, f"replaying at {self.speed:g}x: {position:.1f} of {duration:.1f} s"
        return [
            (
                level,
                "biodream edf: recording",
                message,
                {
                    "files": "; ".join(dict.fromkeys(self.files)),
                    "labels": "; ".join(",".join(g) for g in self.groups),
                    "sample_rate_hz": f"{self.sample_rate_hz:g}",
                    "speed": f"{self.speed:g}",
                    "position_s": f"{position:.3f}",
                    "duration_s": f"{duration:.3f}",
                    "ended": str(self.ended),
                    "stage_annotations": ",".join(str(len(h)) for h in self._hypnograms),
                    **{k: str(v) for k, v in c.items()},
                    "last_error": self.last_error,
                    "skipped_recorded_s": f"{clock.skipped / self.sample_rate_hz:.3f}",
                    "skips": str(clock.skips),
                    "clock_backwards": str(clock.clock_backwards),
                    "bad_clock": str(clock.bad_clock),
                },
            )
        ]


def _label(x) -> str:
    label = str(x).strip()
    if not label:
        raise ValueError("empty signal label")
    return label


def _find_label(labels: list[str], wanted: str) -> int | None:
    """Index of ``wanted`` among ``labels``: the exact label, else the only one equal ignoring case."""
    if wanted in labels:
        return labels.index(wanted)
    folded = [k for k, x in enumerate(labels) if x.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None
