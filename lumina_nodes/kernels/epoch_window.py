"""Sliding scoring epochs over streamed multichannel samples (plain numpy, no rclpy).

The Bio-Dream sensor receives EEG in chunks of any length (a few samples to minutes, as its clock says) and
scores an epoch of ``epoch_s`` seconds every ``hop_s`` seconds: AASM epochs are 30 s, a 1 s hop gives a fresh
stage every second over the last 30 s. :class:`EpochWindow` keeps the newest ``epoch_samples`` of every channel
in one circular buffer (a chunk costs a copy of its own samples only) and hands out the epochs that a chunk
completes, oldest first, each as a contiguous copy.
"""

import math

import numpy as np


class EpochWindow:
    """The last ``epoch_s`` of samples of ``participants`` x ``channels``, cut into epochs every ``hop_s``.

    Parameters
    ----------
    participants, channels : int
        Shape of the stream (both >= 1).
    sample_rate_hz : float
        Samples per second of every channel.
    epoch_s : float
        Length of a scored epoch, s (at least 1 sample).
    hop_s : float
        Time between the ends of consecutive epochs, s of recorded time (at least 1 sample, at most
        ``epoch_s``).
    speed : float
        Recorded seconds per second of the chunks' timeline (a recording replayed at ``speed`` x; 1 live).

    Notes
    -----
    The first epoch ends once ``epoch_s`` of samples have arrived; from then on one ends every
    ``hop_samples``. Times are those of the chunks' own timeline (``start_time`` of the first sample); a gap is
    whatever the chunks contain (a backend fills lost samples with NaN, so an epoch spanning a gap holds them and
    its scorer marks it unusable).
    """

    def __init__(
        self, participants: int, channels: int, sample_rate_hz: float, epoch_s: float, hop_s: float, speed: float = 1.0
    ):
        if int(participants) < 1 or int(channels) < 1:
            raise ValueError(f"need at least one participant and one channel, got {participants} x {channels}")
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise ValueError(f"sample rate must be > 0 Hz, got {sample_rate_hz!r}")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.sample_rate_hz, self.speed = float(sample_rate_hz), float(speed)
        self.epoch_samples = round(epoch_s * self.sample_rate_hz)
        self.hop_samples = round(hop_s * self.sample_rate_hz)
        if self.epoch_samples < 1 or not 1 <= self.hop_samples <= self.epoch_samples:
            raise ValueError(
                f"epoch {epoch_s!r} s and hop {hop_s!r} s at {sample_rate_hz:g} Hz: need 1 <= hop samples "
                f"<= epoch samples, got {self.hop_samples} and {self.epoch_samples}"
            )
        self._ring = np.full((int(participants), int(channels), self.epoch_samples), np.nan)
        self.restart()

    def restart(self) -> None:
        """Forget every sample: the next chunk starts a new timeline (after a gap the stream skipped)."""
        self._ring.fill(np.nan)
        self._received = 0  # samples received since the (re)start; sample k sits at ring index k % epoch_samples
        self._next_end = self.epoch_samples  # sample count at which the next epoch ends
        self._start_time = None  # time of sample 0

    @property
    def shape(self) -> tuple[int, int]:
        return self._ring.shape[:2]

    @property
    def next_end_time(self) -> float | None:
        """End time of the next epoch on the chunks' timeline, s (the time just after its last sample): the
        chunk that reaches it completes that epoch. None before the first chunk (no timeline yet)."""
        if self._start_time is None:
            return None
        return self._start_time + self._next_end / (self.sample_rate_hz * self.speed)

    def push(self, start_time: float, data: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """Append a chunk; return the epochs it completes as (end time s, epoch (P, C, epoch_samples) copy).

        ``data`` is (participants, channels, n); ``start_time`` the time of its first sample, s. The first
        chunk sets the timeline; later chunks are taken as contiguous (the backend's contract).
        """
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 3 or data.shape[:2] != self.shape:
            raise ValueError(f"chunk of shape {data.shape}, expected ({self.shape[0]}, {self.shape[1]}, n)")
        if self._start_time is None:
            self._start_time = float(start_time)
        epochs = []
        offset = 0
        n = data.shape[2]
        while offset < n:
            # feed up to the next epoch end, so every completed epoch is cut at exactly its own end
            take = min(n - offset, self._next_end - self._received)
            self._append(data[:, :, offset : offset + take])
            offset += take
            if self._received == self._next_end:
                end_time = self._start_time + self._received / (self.sample_rate_hz * self.speed)
                oldest = self._received % self.epoch_samples
                epochs.append(
                    (end_time, np.concatenate([self._ring[:, :, oldest:], self._ring[:, :, :oldest]], axis=2))
                )
                self._next_end += self.hop_samples
        return epochs

    def _append(self, block: np.ndarray) -> None:
        k = block.shape[2]
        if k >= self.epoch_samples:  # only the newest epoch_samples can matter
            block = block[:, :, -self.epoch_samples :]
            self._received += k - self.epoch_samples
            k = self.epoch_samples
        start = self._received % self.epoch_samples
        first = min(k, self.epoch_samples - start)
        self._ring[:, :, start : start + first] = block[:, :, :first]
        self._ring[:, :, : k - first] = block[:, :, first:]
        self._received += k
