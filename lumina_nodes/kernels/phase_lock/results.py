"""What the phase-locking kernel returns: the ingest report with its rejection reasons, and the figures of a tick.

Phases are radians, frequencies Hz, times seconds (the kernel clock).
"""

import dataclasses
from typing import NamedTuple

import numpy as np

#: Rejection reasons of single elements, in the order they are tested (an element is counted once, under its
#: first reason).
REJECT_REASONS = (
    "reserved_id",  # the id is JEWEL_NONE (0xFFFFFFFF, "the participant wears no jewel"), never a jewel
    "duplicate_id",  # the id occurs more than once in the batch (all its occurrences are rejected)
    "id_conflict",  # the id is owned by another driver that reported it within silence_timeout_s
    "non_finite",  # phase, frequency or frequency_offset is NaN or infinite
    "bad_frequency",  # frequency <= 0 or > max_frequency_hz
    "bad_offset",  # |frequency_offset| > max_frequency_hz
    # the natural-frequency estimate frequency - frequency_offset <= 0 or > max_frequency_hz: the jewel's own
    # rhythm (what it pulses at with no correction) obeys the same contract as a reported frequency
    "bad_natural_frequency",
    "bad_phase",  # |phase| > 2**36 rad (~1.1e10 cycles): beyond it float64 holds the phase to worse than 1.5e-5 rad
    "bad_sample_time",  # sample_time is NaN or infinite
    "future_sample",  # sample_time > now + future_tolerance_s (+ the clock skew under use_sim_time)
    "expired_sample",  # sample_time < now - silence_timeout_s (- the clock skew under use_sim_time)
    "out_of_order",  # sample_time older than the last accepted sample of that jewel
)
#: Whole-message rejection reasons (every element of the message is counted under it).
MESSAGE_REASONS = ("length_mismatch", "bad_ids", "bad_array")

_ZERO_COUNTS = dict.fromkeys(REJECT_REASONS + MESSAGE_REASONS, 0)


@dataclasses.dataclass
class IngestReport:
    """Outcome of one :meth:`PhaseLockKernel.ingest` call.

    Attributes
    ----------
    received : int
        Elements in the message.
    accepted : int
        Elements stored (rejected elements are never used).
    rejected : dict[str, int]
        Count per reason in :data:`REJECT_REASONS` and :data:`MESSAGE_REASONS` (zeros included).
    message_error : str or None
        Why the whole message was rejected, if it was.
    """

    received: int = 0
    accepted: int = 0
    rejected: dict = dataclasses.field(default_factory=_ZERO_COUNTS.copy)
    message_error: str | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class ClusterRecord(NamedTuple):
    size: int  # active jewels in the cluster
    center_frequency: float  # mean natural-frequency estimate (Hz)
    frequency_spread: float  # standard deviation of the natural-frequency estimates (Hz)
    order_parameter: float  # |mean exp(i theta)| over the cluster
    mean_phase: float  # rad, in [-pi, pi)
    target_frequency: float  # Hz, the rhythm the cluster is driven to
    resolution: str  # 'none' | 'merging' | 'separate_channel'
    lock_fraction: float  # members within lock_threshold_rad of their target


@dataclasses.dataclass
class ClusterTable:
    """Per-cluster figures as arrays of shape (k,), sorted by centre frequency; iterate for :class:`ClusterRecord`."""

    size: np.ndarray
    center_frequency: np.ndarray
    frequency_spread: np.ndarray
    order_parameter: np.ndarray
    mean_phase: np.ndarray
    target_frequency: np.ndarray
    resolution: str
    lock_fraction: np.ndarray

    def __len__(self) -> int:
        return int(self.size.shape[0])

    def __getitem__(self, j) -> ClusterRecord:
        return ClusterRecord(
            int(self.size[j]),
            float(self.center_frequency[j]),
            float(self.frequency_spread[j]),
            float(self.order_parameter[j]),
            float(self.mean_phase[j]),
            float(self.target_frequency[j]),
            self.resolution,
            float(self.lock_fraction[j]),
        )

    def __iter__(self):
        return (self[j] for j in range(len(self)))


@dataclasses.dataclass
class DriverTable:
    """Per-driver figures, arrays of shape (n_drivers,) in registration order.

    ``order_parameter`` is measured in each jewel's own target frame (equal to the plain r of that driver's
    jewels when the city has one rhythm); ``lock_fraction`` = locked / active (0 when none active).
    Arrays are shared with the kernel's bookkeeping until the next tick: copy to keep them.
    """

    driver_key: np.ndarray
    order_parameter: np.ndarray
    lock_fraction: np.ndarray
    active: np.ndarray
    total: np.ndarray


@dataclasses.dataclass
class TickResult:
    """Figures of one tick. Phases in rad, frequencies in Hz.

    ``lock_fraction`` and ``rms_phase_error`` are measured against each active jewel's target (its cluster's
    channel when clusters run on separate channels; psi in 'kuramoto' mode), on the kernel's filtered per-jewel
    phase estimates theta_hat (not the raw noisy reports), and ``rms_phase_error`` includes the estimates' own
    error variance, so both estimate the true state; ``order_parameter``/``mean_phase`` are the plain Kuramoto
    ``r exp(i psi) = mean exp(i theta_hat)`` over active jewels. With no active jewel (``jewels_active == 0``) they
    are 0, and ``collective_frequency`` is 0 until a first estimate exists: every figure is finite, always.
    """

    time: float
    order_parameter: float
    mean_phase: float
    collective_frequency: float
    reference_frequency: float
    lock_fraction: float
    rms_phase_error: float
    jewels_total: int
    jewels_active: int
    jewels_silent: int
    clusters: ClusterTable
    drivers: DriverTable
    mode: str
