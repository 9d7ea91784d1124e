"""The interface every Bio-Dream backend implements, and its data types (no rclpy).

The Bio-Dream sensor node wraps one backend and calls, from its own thread:

* ``start()`` once (a device that will not open raises ValueError or RuntimeError here), ``close()`` at shutdown;
* ``read(now) -> EegChunk`` at its own rate (``now``: the node clock, seconds, sim time allowed): every sample
  due by ``now`` that was not returned before, as one block of (participants, channels, n) microvolts;
* ``diagnostics() -> [(level, name, message, {key: value})]`` for /diagnostics (``DiagnosticLevel`` levels).

Chunks follow each other on one sample grid: chunk k+1 starts where chunk k ended (``next.start_time ==
prev.end_time``), except after a skip (``next.skipped > 0``, see :class:`EegChunk`). Lost or invalid samples
inside the grid are NaN, so a gap is never hidden by closing it up.

Optional capabilities are separate interfaces a backend may also implement, so the base stays small: a backend
that knows the true sleep stage (the simulator's hypnogram, a recording's stage annotations) is a
:class:`GroundTruth` too; the node checks ``isinstance``.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

#: One /diagnostics status of a backend: (DiagnosticLevel, name, message, {key: value}).
Diagnostic = tuple[int, str, str, dict[str, str]]


@dataclasses.dataclass
class EegChunk:
    """A block of EEG samples of every participant and channel, on the backend's sample grid.

    Attributes
    ----------
    start_time : float
        Time of the first sample on the caller's ``now`` timeline, s (for n == 0: the time the next sample
        will have).
    sample_rate_hz : float
        Samples per second of *recorded* time, Hz: the rate the signal's content is analysed at.
    data : numpy.ndarray
        float64 (participants, channels, n), microvolts; NaN where samples were lost or invalid.
    speed : float
        Recorded seconds per second of the ``now`` timeline (1 for live devices and the simulator; a replayed
        recording at ``speed`` x). Sample k is at ``start_time + k / (sample_rate_hz * speed)`` on the ``now``
        timeline. Added to the interface for accelerated replay; default 1.
    skipped : int
        Samples left out of the grid just before this chunk, because more than the backend's ``max_chunk``
        was due at once (a clock jump): ``start_time`` is then ``skipped`` samples after the previous chunk's
        ``end_time``. A consumer that needs contiguous data restarts its windows when ``skipped > 0``. 0
        normally. Added to the interface; default 0.
    """

    start_time: float
    sample_rate_hz: float
    data: np.ndarray
    speed: float = 1.0
    skipped: int = 0

    @property
    def n(self) -> int:
        """Samples per channel."""
        return int(self.data.shape[2])

    @property
    def end_time(self) -> float:
        """Time just after the last sample on the ``now`` timeline, s: the next chunk's ``start_time``."""
        return self.time_of(self.n)

    def time_of(self, k) -> float | np.ndarray:
        """Time of sample ``k`` (int or array of ints) on the ``now`` timeline, s."""
        return self.start_time + np.asarray(k) / (self.sample_rate_hz * self.speed)


class BioDreamBackend(abc.ABC):
    """Interface of a Bio-Dream backend. ``read`` never raises on device trouble; it counts and reports it.

    Attributes
    ----------
    name : str
        The backend's name, as the node's ``backend`` parameter spells it.
    participants : int
        Participants served (>= 1); the node maps participant index -> participant id and jewel.
    channels : int
        EEG channels per participant, 1..4.
    sample_rate_hz : float
        Samples per second of recorded time, Hz (as :attr:`EegChunk.sample_rate_hz`).
    speed : float
        Recorded seconds per ``now`` second (as :attr:`EegChunk.speed`); 1 except for replay.
    """

    name = "abstract"
    participants: int
    channels: int
    sample_rate_hz: float
    speed: float = 1.0

    @abc.abstractmethod
    def start(self) -> None:
        """Open the device (or the simulation, or the file); ValueError/RuntimeError when it cannot."""

    @abc.abstractmethod
    def read(self, now: float) -> EegChunk:
        """Every sample due by ``now`` (s, node clock) not returned yet; n may be 0."""

    def diagnostics(self) -> list[Diagnostic]:
        return []

    def close(self) -> None:  # noqa: B027 (optional: a backend without a device has nothing to release)
        """Release the device; called once at shutdown (safe to call again)."""

    def empty_chunk(self, start_time: float, skipped: int = 0) -> EegChunk:
        """A chunk of no samples at ``start_time``."""
        return self.chunk(start_time, np.zeros((self.participants, self.channels, 0)), skipped)

    def chunk(self, start_time: float, data: np.ndarray, skipped: int = 0) -> EegChunk:
        """An :class:`EegChunk` of this backend's rate and speed."""
        return EegChunk(float(start_time), float(self.sample_rate_hz), data, float(self.speed), int(skipped))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


class GroundTruth(abc.ABC):
    """Capability of a backend that knows the true sleep stage of its participants."""

    @abc.abstractmethod
    def stage_at(self, t: float) -> np.ndarray:
        """True stage of every participant at ``t`` (s, the ``now`` timeline): (participants,) uint8
        :class:`lumina_nodes.constants.SleepStage` codes, UNKNOWN where not known (not annotated, not
        simulated, before the stream started)."""
