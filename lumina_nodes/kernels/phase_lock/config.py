"""Configuration of the phase-locking kernel: :class:`SyncConfig`."""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class SyncConfig:
    """Synchronizer parameters (SI units: s, Hz, rad). :meth:`validate` lists what is wrong, if anything.

    Attributes
    ----------
    rate_hz : float
        Tick rate of :meth:`PhaseLockKernel.step` (Hz); used for the first tick and for the filter constant.
    mode : {'controller', 'kuramoto'}
        Per-jewel type-2 controller, or the reference plain mean-field Kuramoto.
    kuramoto_coupling : float
        Kuramoto coupling K (rad/s), used in ``'kuramoto'`` mode. 5 Kc for f ~ N(1, 0.05) Hz is 2.507 rad/s.
    kp : float
        Proportional gain (1/s): Hz of offset per cycle of phase error (= rad/s per rad). The default 4.0 equals
        ``2 * max_slew_hz_per_s / max_offset_hz`` (fastest gain whose saturated approach never needs more
        deceleration than the slew limit allows).
    ki : float
        Integral gain (1/s^2): Hz of offset per second per cycle of phase error.
    integral_zone_cycles : float
        The integrator sees the error clipped to +- this (cycles), so the large acquisition errors do not wind it up.
    integral_limit_hz : float
        Clamp of the integral term (Hz).
    integral_every_ticks : int
        The integrator (and the population mean frequency) is updated every this many ticks with the accumulated
        dt (amortised cost; the integral loop is far slower than the tick rate).
    frequency_filter_s : float
        Time constant (s) of the per-sample filter of ``frequency - frequency_offset`` (natural-frequency estimate).
    max_offset_hz : float
        Comfort limit: the command never exceeds +- this (Hz).
    max_slew_hz_per_s : float
        The command never changes faster than this (Hz/s).
    silence_timeout_s : float
        A jewel with no accepted sample for longer than this is silent: excluded from r, psi, clusters and driven
        to 0 offset; its next sample re-captures it (fresh filter, integrator reset).
    future_tolerance_s : float
        Samples stamped later than ``now + future_tolerance_s`` are rejected.
    max_frequency_hz : float
        Reported frequencies above this (Hz) are absurd and rejected (as are frequencies <= 0).
    lock_threshold_rad : float
        A jewel counts as locked when its wrapped error to its target is below this (rad).
    cluster_gap_hz : float
        Detection threshold: two groups of natural frequencies are separate clusters when an (almost) empty gap at
        least this wide (Hz) lies between them.
    cluster_min_fraction : float
        A cluster must hold at least this fraction of the active jewels; smaller groups join the nearest cluster.
    cluster_min_size : int
        ... and at least this many jewels.
    cluster_gap_spacing_factor : float
        A gap must also be this many times the typical neighbour spacing (interquartile range / active count), so
        sparse populations (tens of jewels) are not split at chance gaps.
    cluster_noise_fraction : float
        A histogram bin holding at most this fraction of the active jewels counts as empty (gap).
    cluster_valley_fraction : float
        A histogram bin (width cluster_gap_hz / 4) holding at most this fraction of the fullest bin also counts as
        empty, so two dense groups separate at their valley, not only at a completely empty gap.
    cluster_every_ticks : int
        Cluster detection runs every this many ticks (amortised cost); per-cluster figures are reported every tick.
    cluster_sample_size : int
        Detection histograms an evenly strided sample of at most about this many jewels (a 5 % cluster still has
        ~800 members in it); per-jewel labels are computed over all jewels only when there are >= 2 clusters.
    cluster_confirm : int
        A new cluster structure must be seen on this many consecutive detections before it is acted on.
    cluster_span_hz : float
        The detection histogram covers the population mean +- this (Hz); natural frequencies outside are clipped in.
    merge_margin : float
        Clusters are merged onto one rhythm when every member's detuning from it is within
        ``merge_margin * max_offset_hz`` (the rest of the comfort range is kept for phase correction).
    channel_spacing_hz : float
        Channel grid (Hz) for clusters that cannot merge: cluster j goes to a distinct grid frequency.
    coupling_scale : float
        Gain multiplier (Bio-Dream hook): scales kp and ki (controller) or K (kuramoto). See
        :meth:`PhaseLockKernel.set_coupling_scale` for per-jewel scales.
    chunk : int
        Block size (slots) of the cache-blocked hot loop.
    exact_sums : bool
        False (default): the per-block sums of cos/sin are one float32 BLAS matrix-vector product (measured error
        <= 1e-6 of the block size near lock, i.e. <= 1e-6 in r), accumulated in float64 across blocks.
        True: float64-accumulating reductions inside blocks too (about 0.6 ns/jewel slower).
    """

    rate_hz: float = 50.0
    mode: str = "controller"
    kuramoto_coupling: float = 2.507
    kp: float = 4.0
    ki: float = 2.0
    integral_zone_cycles: float = 0.01
    integral_limit_hz: float = 0.1
    integral_every_ticks: int = 4
    frequency_filter_s: float = 0.2
    max_offset_hz: float = 0.25
    max_slew_hz_per_s: float = 0.5
    silence_timeout_s: float = 0.5
    future_tolerance_s: float = 0.05
    max_frequency_hz: float = 20.0
    lock_threshold_rad: float = 0.1
    cluster_gap_hz: float = 0.005
    cluster_min_fraction: float = 0.05
    cluster_min_size: int = 5
    cluster_gap_spacing_factor: float = 25.0
    cluster_noise_fraction: float = 1e-5
    cluster_valley_fraction: float = 0.02
    cluster_every_ticks: int = 10
    cluster_sample_size: int = 16384
    cluster_confirm: int = 2
    cluster_span_hz: float = 2.0
    merge_margin: float = 0.8
    channel_spacing_hz: float = 0.05
    coupling_scale: float = 1.0
    chunk: int = 65536
    exact_sums: bool = False

    def validate(self) -> list[str]:
        """Return human-readable errors (empty list when the configuration is usable)."""
        errors = []

        def num(name, lo=None, hi=None, lo_open=True, integer=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                errors.append(f"{name} must be a number, got {v!r}")
                return
            if integer and int(v) != v:
                errors.append(f"{name} must be an integer, got {v!r}")
                return
            if not math.isfinite(float(v)):
                errors.append(f"{name} must be finite, got {v!r}")
                return
            if lo is not None and (v <= lo if lo_open else v < lo):
                errors.append(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
            if hi is not None and v > hi:
                errors.append(f"{name} must be <= {hi}, got {v!r}")

        num("rate_hz", 0, 10000)
        if self.mode not in ("controller", "kuramoto"):
            errors.append(f"mode must be 'controller' or 'kuramoto', got {self.mode!r}")
        num("kuramoto_coupling", 0, lo_open=False)
        num("kp", 0, lo_open=False)
        num("ki", 0, lo_open=False)
        num("integral_zone_cycles", 0, 0.5)
        num("integral_limit_hz", 0, lo_open=False)
        num("integral_every_ticks", 0, 1000, integer=True)
        num("frequency_filter_s", 0)
        num("max_offset_hz", 0, 10)
        num("max_slew_hz_per_s", 0)
        num("silence_timeout_s", 0)
        num("future_tolerance_s", 0, lo_open=False)
        num("max_frequency_hz", 0, 1000)
        num("lock_threshold_rad", 0, math.pi)
        num("cluster_gap_hz", 0)
        num("cluster_min_fraction", 0, 0.5)
        num("cluster_min_size", 0, 1e9, lo_open=False, integer=True)
        num("cluster_gap_spacing_factor", 0, lo_open=False)
        num("cluster_noise_fraction", 0, 0.1, lo_open=False)
        num("cluster_valley_fraction", 0, 0.5, lo_open=False)
        num("cluster_every_ticks", 0, 10000, integer=True)
        num("cluster_sample_size", 100, 1e9, integer=True)
        num("cluster_confirm", 0, 100, integer=True)
        num("cluster_span_hz", 0, 100)
        num("merge_margin", 0, 1)
        num("channel_spacing_hz", 0)
        num("coupling_scale", 0, 100, lo_open=False)
        num("chunk", 255, 1 << 24, integer=True)
        if not isinstance(self.exact_sums, (bool, np.bool_)):
            errors.append(f"exact_sums must be a bool, got {self.exact_sums!r}")
        if not errors and self.cluster_span_hz / (self.cluster_gap_hz / 4.0) > 2_000_000:
            errors.append("cluster_span_hz / cluster_gap_hz too large (histogram would exceed 8e6 bins)")
        return errors
