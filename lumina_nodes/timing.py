"""Timing statistics of a periodic loop: latency percentiles, period jitter, deadline misses. No rclpy.

All times are seconds. A tick counts as a deadline miss when it starts more than 1.5 periods after the
previous tick started: the loop missed a slot of its schedule.
"""

import numpy as np


class LoopStats:
    """Sliding-window statistics over the last ``window`` ticks.

    Parameters
    ----------
    rate_hz : configured loop rate, Hz.
    window : number of recent ticks the percentiles and jitter are taken over.
    """

    def __init__(self, rate_hz, window=3000):
        self.rate_hz = float(rate_hz)
        self._period = 1.0 / self.rate_hz
        self._latency = np.full(window, np.nan)
        self._compute = np.full(window, np.nan)
        self._interval = np.full(window, np.nan)
        self._index = 0
        self._last_start = None
        self.ticks = 0
        self.deadline_misses = 0

    def record(self, start, compute, latency=float("nan")):
        """Record one tick: its start (monotonic s), compute time (s) and input-to-output latency (s)."""
        k = self._index % self._latency.size
        if self._last_start is not None:
            interval = start - self._last_start
            self._interval[k] = interval
            if interval > 1.5 * self._period:
                self.deadline_misses += 1
        self._last_start = start
        self._latency[k] = latency
        self._compute[k] = compute
        self._index += 1
        self.ticks += 1

    def summary(self):
        """Dict of rate_hz, ticks, deadline_misses, latency_p50/p99/max, jitter, compute_p50/max (s); a figure with
        nothing measured yet is 0, not NaN (it is published: a consumer must never see NaN)."""

        def pct(values, q):
            finite = values[np.isfinite(values)]
            return float(np.percentile(finite, q)) if finite.size else 0.0

        def peak(values):
            finite = values[np.isfinite(values)]
            return float(finite.max()) if finite.size else 0.0

        intervals = self._interval[np.isfinite(self._interval)]
        return {
            "rate_hz": self.rate_hz,
            "ticks": self.ticks,
            "deadline_misses": self.deadline_misses,
            "latency_p50": pct(self._latency, 50),
            "latency_p99": pct(self._latency, 99),
            "latency_max": peak(self._latency),
            "jitter": float(intervals.std()) if intervals.size > 1 else 0.0,
            "compute_p50": pct(self._compute, 50),
            "compute_max": peak(self._compute),
        }
