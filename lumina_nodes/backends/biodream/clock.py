"""The sample grid of a Bio-Dream stream on the caller's ``now`` timeline (no rclpy).

A backend hands out samples on one grid: sample ``i`` is at ``anchor + i / rate`` where ``rate`` is samples per
``now`` second (the recorded rate times the replay speed). :class:`SampleClock` keeps that grid, says which
samples a ``now`` makes due, and applies the one rule every backend shares for clock jumps: one read returns at
most ``max_chunk`` seconds of samples; when more was due, the older ones are skipped (counted, and reported in
the chunk's ``skipped``), so a sleeping laptop or a sim clock jump never makes a read allocate hours of samples.
"""

from __future__ import annotations

import math

#: Samples of slack when turning ``now`` into a sample count, so that float rounding of ``(now - anchor) *
#: rate`` (a whole number of sample periods computed as 99.99999999) never holds back a due sample.
_EPSILON_SAMPLES = 1e-6


class SampleClock:
    """Grid index bookkeeping of one stream.

    Parameters
    ----------
    rate : float
        Samples per second of the ``now`` timeline, Hz (> 0).
    max_chunk : float
        Most seconds (of the ``now`` timeline) one read may return, s (> 0).

    Attributes
    ----------
    anchor : float or None
        ``now`` time of sample 0, s; None until anchored.
    next : int
        Grid index of the next sample to hand out (every index below it was returned or skipped).
    skipped, skips : int
        Samples skipped in all, and the reads that skipped.
    clock_backwards, bad_clock : int
        Reads whose ``now`` was earlier than a previous one (nothing is due then), or not finite.
    """

    def __init__(self, rate: float, max_chunk: float):
        self.rate = float(rate)
        self.cap = max(1, math.floor(float(max_chunk) * self.rate))
        self.anchor: float | None = None
        self.next = 0
        self.skipped = 0
        self.skips = 0
        self.clock_backwards = 0
        self.bad_clock = 0
        self.last_now: float | None = None

    def time_of(self, index: int) -> float:
        """``now`` time of grid index ``index``, s (the anchor must be set)."""
        return self.anchor + index / self.rate

    def due(self, t: float) -> int:
        """Samples of the grid due by ``t`` (the anchor must be set): ``floor((t - anchor) * rate)``, the
        indices whose time is before ``t`` (the sample exactly at ``t`` is due just after it)."""
        return math.floor((t - self.anchor) * self.rate + _EPSILON_SAMPLES)

    def check(self, now) -> float | None:
        """``now`` as a float when it is usable (finite, not earlier than before), else None (counted)."""
        try:
            now = float(now)
        except (TypeError, ValueError):
            now = math.nan
        if not math.isfinite(now):
            self.bad_clock += 1
            return None
        if self.last_now is not None and now < self.last_now:
            self.clock_backwards += 1
            return None
        self.last_now = now
        return now

    def limit(self, pending: int) -> tuple[int, int]:
        """(skip, n) for ``pending`` due samples: at most ``cap`` are handed out, the older rest skipped."""
        pending = max(int(pending), 0)
        skip = max(pending - self.cap, 0)
        return skip, pending - skip

    def advance(self, skip: int, n: int) -> None:
        """Mark ``skip`` samples skipped and then ``n`` handed out."""
        if skip:
            self.skipped += skip
            self.skips += 1
        self.next += skip + n

    def take(self, now, remaining: int | None = None) -> tuple[int, int] | None:
        """Samples due at ``now`` on a stream that produces one every ``1 / rate`` s from its anchor.

        The first usable ``now`` anchors sample 0 at ``now``; every later one makes ``due(now)`` samples due
        in all (so a read never returns the sample at ``now`` itself, nor any later one). ``remaining``
        bounds the samples the stream still has (a recording's end). Returns (skip, n) and advances past them,
        or None for an unusable ``now`` (counted).
        """
        now = self.check(now)
        if now is None:
            return None
        if self.anchor is None:
            self.anchor = now
            return 0, 0
        skip, n = self.limit(self.due(now) - self.next)
        if remaining is not None:
            skip = min(skip, remaining)
            n = min(n, remaining - skip)
        self.advance(skip, n)
        return skip, n
