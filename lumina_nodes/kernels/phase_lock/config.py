"""Configuration of the phase-locking kernel: :class:`SyncConfig`, every field described by a
:class:`~lumina_nodes.settings.Setting` (meaning, unit, valid range) in its field metadata. :meth:`SyncConfig.validate`
checks against them, the synchronizer node declares its ROS parameters from them, and the class docstring lists
them.
"""

import dataclasses
import math

from ...settings import Setting, SettingsConfig, attributes_doc, setting

__all__ = ["Setting", "SyncConfig"]


@dataclasses.dataclass
class SyncConfig(SettingsConfig):
    """Synchronizer parameters (SI units: s, Hz, rad). :meth:`validate` lists what is wrong, if anything."""

    rate_hz: float = setting(
        50.0,
        "Tick rate of PhaseLockKernel.step and of the synchronizer loop: the dt of the first tick; a longer gap "
        "between ticks counts as at most 10 periods.",
        "Hz",
        1.0,
        1000.0,
        read_only=True,
    )
    mode: str = setting(
        "controller",
        "Control law: 'controller' (per-jewel type-2 controller) or 'kuramoto' (the reference plain mean-field "
        "Kuramoto).",
        choices=("controller", "kuramoto"),
    )
    kuramoto_coupling: float = setting(
        2.507, "Kuramoto coupling K, used in 'kuramoto' mode; 5 Kc for f ~ N(1, 0.05) Hz is 2.507.", "rad/s", 0.0, 100.0
    )
    kp: float = setting(
        8.0,
        "Gain of the smooth approach near the target: the commanded phase rate (Hz of offset beyond the "
        "feed-forward) is min(kp * |d|, sqrt(2 * approach_decel_fraction * max_slew_hz_per_s * |d|)) towards the "
        "target, d the signed distance (cycles) the chosen way round: linear near the target, the minimum-time "
        "braking curve of the slew limit farther out (then clamped to max_offset_hz).",
        "1/s",
        0.0,
        100.0,
    )
    approach_decel_fraction: float = setting(
        0.9,
        "The braking curve of the approach plans this fraction of max_slew_hz_per_s as deceleration (the rest is "
        "margin for report latency and the tick).",
        "",
        0.0,
        1.0,
        low_open=True,
    )
    long_way_lookahead_s: float = setting(
        0.85,
        "A jewel goes the long way round to its target when its error predicted this far ahead from its "
        "detuning and current phase rate, e - lookahead * (2 * detuning + offset), lies beyond half a cycle "
        "(its detuning helps that way); 0 = always the short way.",
        "s",
        0.0,
        10.0,
    )
    estimate_gain: float = setting(
        0.05,
        "Per-tick gain of the per-jewel phase estimate (predicted at the reported frequency, corrected by this "
        "fraction of the innovation); the estimate's error variance is ~ estimate_gain / 2 x the innovation "
        "variance. Control, r, psi, lock_fraction and rms_phase_error use the estimate.",
        "",
        0.0,
        1.0,
        low_open=True,
    )
    estimate_gate_cycles: float = setting(
        0.04,
        "An innovation larger than this (a phase jump, a re-capture) replaces the estimate by the report.",
        "cycles",
        0.0,
        0.5,
        low_open=True,
    )
    ki: float = setting(2.0, "Integral gain: Hz of offset per second per cycle of phase error.", "1/s^2", 0.0, 100.0)
    integral_zone_cycles: float = setting(
        0.01,
        "The integrator sees the phase error clipped to +- this, so large acquisition errors do not wind it up.",
        "cycles",
        0.0,
        0.5,
        low_open=True,
    )
    integral_limit_hz: float = setting(0.1, "Clamp of the integral term.", "Hz", 0.0, 10.0)
    integral_every_ticks: int = setting(
        4,
        "The integrator (and the population mean frequency) is updated every this many ticks with the accumulated "
        "dt (amortised cost; the integral loop is far slower than the tick rate).",
        "",
        1,
        1000,
        integer=True,
    )
    frequency_filter_s: float = setting(
        0.2,
        "Time constant of the filter of frequency - frequency_offset (the natural-frequency estimate).",
        "s",
        0.0,
        60.0,
        low_open=True,
    )
    max_offset_hz: float = setting(
        0.25, "Comfort limit: the commanded offset never exceeds +- this.", "Hz", 0.0, 10.0, low_open=True
    )
    max_slew_hz_per_s: float = setting(
        0.5, "The commanded offset never changes faster than this.", "Hz/s", 0.0, 10000.0, low_open=True
    )
    silence_timeout_s: float = setting(
        0.5,
        "A jewel with no accepted sample for longer than this is silent: excluded from r, psi and clusters and "
        "driven to 0 offset; its next sample re-captures it (fresh frequency estimate, integrator reset).",
        "s",
        0.01,
        60.0,
    )
    reclaim_after_s: float = setting(
        30.0,
        "The slot of a jewel with no accepted sample for longer than this, and not in its driver's batch of that "
        "time, is freed (PhaseLockKernel.reclaim: storage and tick cost follow the jewels really reporting); its "
        "id can then be reported by any driver. A value below silence_timeout_s counts as silence_timeout_s.",
        "s",
        0.1,
        3600.0,
    )
    future_tolerance_s: float = setting(0.05, "Samples stamped later than now + this are rejected.", "s", 0.0, 10.0)
    max_frequency_hz: float = setting(
        20.0,
        "Reported frequencies above this are absurd and rejected (as are frequencies <= 0).",
        "Hz",
        0.0,
        1000.0,
        low_open=True,
    )
    lock_threshold_rad: float = setting(
        0.1,
        "A jewel counts as locked when its wrapped error to its target is below this.",
        "rad",
        0.0,
        math.pi,
        low_open=True,
    )
    cluster_gap_hz: float = setting(
        0.005,
        "Resolution of cluster detection: groups whose mean natural frequencies are closer than this are one "
        "cluster, and a cluster's spread counts as at least a quarter of this (the variance floor of the fit).",
        "Hz",
        0.0,
        10.0,
        low_open=True,
    )
    cluster_min_fraction: float = setting(
        0.05,
        "A cluster must hold at least this fraction of the active jewels; smaller groups join the nearest cluster.",
        "",
        0.0,
        0.5,
        low_open=True,
    )
    cluster_min_size: int = setting(
        5, "A cluster must also hold at least this many jewels.", "", 0, 1_000_000_000, integer=True
    )
    cluster_penalty: float = setting(
        2.0,
        "Detection fits Gaussian clusters to the natural-frequency estimates (kernels/phase_lock/clusters.py); a "
        "split is kept only when it raises the classification log-likelihood by more than this many times BIC's "
        "price of one more cluster, (3/2) ln n nats for n sampled jewels (1 = plain BIC).",
        "",
        0.0,
        100.0,
        low_open=True,
    )
    cluster_every_ticks: int = setting(
        10,
        "Cluster detection runs every this many ticks (amortised cost); per-cluster figures are reported every tick.",
        "",
        1,
        10_000,
        integer=True,
    )
    cluster_sample_size: int = setting(
        16384,
        "Detection fits an evenly strided sample of at most about this many jewels (a 5 % cluster still has "
        "~800 members in it); per-jewel labels are computed over all jewels only when there are >= 2 clusters.",
        "",
        101,
        1_000_000_000,
        integer=True,
    )
    cluster_confirm: int = setting(
        2,
        "A new cluster structure must be seen on this many consecutive detections before it is acted on.",
        "",
        1,
        100,
        integer=True,
    )
    cluster_span_hz: float = setting(
        2.0,
        "Detection sees the population mean +- this; natural frequencies outside are clipped in.",
        "Hz",
        0.0,
        100.0,
        low_open=True,
    )
    merge_margin: float = setting(
        0.8,
        "Clusters are merged onto one rhythm when every member's detuning from it is within "
        "merge_margin * max_offset_hz (the rest of the comfort range is kept for phase correction).",
        "",
        0.0,
        1.0,
        low_open=True,
    )
    channel_spacing_hz: float = setting(
        0.05,
        "Channel grid for clusters that cannot merge: each such cluster goes to a distinct multiple of this.",
        "Hz",
        0.001,
        10.0,
    )
    coupling_scale: float = setting(
        1.0,
        "Gain multiplier (the Bio-Dream hook): scales kp and ki (controller) or K (kuramoto); "
        "PhaseLockKernel.set_coupling_scale also takes one scale per jewel.",
        "",
        0.0,
        10.0,
    )
    chunk: int = setting(
        65536, "Block size (slots) of the cache-blocked hot loop.", "", 256, 1 << 24, integer=True, read_only=True
    )
    exact_sums: bool = setting(
        False,
        "False: the per-block sums of cos/sin are one float32 BLAS matrix-vector product (measured error <= 1e-6 "
        "of the block size near lock, i.e. <= 1e-6 in r), accumulated in float64 across blocks. True: "
        "float64-accumulating reductions inside blocks too (about 0.6 ns/jewel slower).",
    )

    def cross_field_problems(self) -> list[str]:
        return []


SyncConfig.__doc__ += attributes_doc(SyncConfig, " Read-only in the synchronizer node.")
