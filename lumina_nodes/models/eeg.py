"""Synthetic sleep EEG of a group of participants, with its ground truth (no rclpy).

:class:`SleepEegSimulator` streams ``participants x channels`` of EEG in microvolts, in time order, as the
Bio-Dream ``sim`` backend, the tests and the staging bench use it. Its ground truth is the hypnogram
(:meth:`~SleepEegSimulator.stage_at`, one AASM stage per 30 s epoch of simulator time) and the artifact timeline
(:meth:`~SleepEegSimulator.artifact_at`).

The night, per participant (individual traits drawn from the seed and the participant index):

* Hypnogram: sleep-onset wake (median ``onset_minutes``), then ultradian cycles of ``cycle_minutes`` on
  average (individual mean, cycle-to-cycle jitter), each N1 (mostly the first), N2, N3, N2, REM and often a
  brief awakening. Deep sleep fills the first cycles and fades; REM grows from about 10 % of the first cycle to
  a third of the late ones (:data:`N3_SHARE`, :data:`REM_SHARE`, scaled by individual propensities). Brief
  arousals (one epoch of wake, then N1) at ``arousals_per_hour``. Wake is eyes closed (relaxed, alpha) or
  eyes open (``eyes_closed_fraction`` of the wake periods are closed).
* Background: 1/f noise (a sum of four Lorentzians, 0.25 to 16 Hz corners) plus narrow-band rhythms, each a
  low-pass complex Gaussian process on a carrier (slow oscillation ~0.8 Hz, delta ~2.2 Hz, theta ~6 Hz, alpha
  at the individual alpha frequency, sigma ~13.5 Hz, beta ~21 Hz, muscle tone ~38 Hz), its RMS set per
  content state by :data:`CONTENT_RMS_UV` (relaxed wake: alpha; N1: theta; N3: slow waves > 75 uV
  peak-to-peak; REM: low amplitude, theta). The table was solved (non-negative least squares over the
  components' band powers) so that channel 0 gets about the band powers of a central derivation in the
  literature (uV^2, 0.5-4 / 4-8 / 8-12 / 12-16 / 16-30 Hz: relaxed wake 48/24/53/11/24, N1 54/30/16/6/14,
  N2 164/39/23/21/13, N3 850/85/38/22/14, REM 55/26/12/5/11). Amplitudes change over the first 2 s of an
  epoch; slow-wave activity declines over the night; each epoch has its own random depth.
* Graphoelements (events drawn with the hypnogram): sleep spindles (11-16 Hz, 0.5-2 s, waxing and waning,
  ``spindles_per_minute`` in N2, a third of it in N3), K-complexes (``k_complexes_per_minute`` in N2, a
  quarter of it in N3), vertex sharp waves in N1, sawtooth-wave trains (2.5-4 Hz) in REM.
* Channels: channel 0 central (C4-M1 like), 1 frontal, 2 parietal, 3 occipital, then repeating; each component
  has its topography (:data:`TOPOGRAPHY`: alpha posterior, slow waves and blinks frontal) and the channels of
  a participant share half of their noise variance (coherent sources).
* Artifacts (the artifact timeline; rates per hour of recording, in any stage; one artifact at a time per
  participant, so at high rates the realised rate is rate / (1 + rate x mean duration)):

  ========================  ===================================================================
  ARTIFACT_BLINK            0.25-0.5 s positive deflection, ``blink_uv`` (x 0.85-1.3) on channel 0
  ARTIFACT_MOVEMENT         2-12 s of broadband muscle noise (80-200 uV RMS) and 0.3-1.5 Hz sway
  ARTIFACT_FLAT             10-120 s of one channel held constant (disconnected electrode)
  ARTIFACT_CLIPPING         1-8 s of every channel at the amplifier rail (saturation)
  ARTIFACT_LINE_NOISE       30-300 s of a ``line_frequency_hz`` sinusoid (``line_noise_uv`` x 0.5-2)
  ========================  ===================================================================

  Every sample is finally clipped to +-``clipping_level_uv`` (the amplifier range).

Determinism and streaming: the random numbers of the signal come from one stream per simulator, laid out in
fixed blocks of samples (``block``, about 10 s); the hypnogram, graphoelements and artifacts from one stream
per participant, extended in fixed steps. A block's random numbers are drawn ahead, spread over the rendering
of the block before it, and a block is rendered in pieces of at least ``piece`` samples (about 0.25 s; filter
states carried across pieces) as reads need them, so a read of a few samples costs a piece at most; and
:meth:`~SleepEegSimulator.read` in pieces returns exactly what one read returns, and the ground truth does not
depend on when or how often it is asked. A participant's night
depends only on the seed and its index, not on how many participants there are (its noise does).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import signal

from ..constants import SleepStage
from ..settings import SettingsConfig, attributes_doc, setting

__all__ = [
    "ARTIFACT_BLINK",
    "ARTIFACT_CLIPPING",
    "ARTIFACT_FLAT",
    "ARTIFACT_LINE_NOISE",
    "ARTIFACT_MOVEMENT",
    "ARTIFACT_NAMES",
    "ARTIFACT_NONE",
    "EPOCH_S",
    "SleepEegConfig",
    "SleepEegSimulator",
]

ARTIFACT_NONE, ARTIFACT_BLINK, ARTIFACT_MOVEMENT, ARTIFACT_FLAT, ARTIFACT_CLIPPING, ARTIFACT_LINE_NOISE = range(6)
#: Names of the ARTIFACT_* codes, indexed by code.
ARTIFACT_NAMES = ("none", "blink", "movement", "flat", "clipping", "line_noise")

#: Resolution of the hypnogram (AASM epoch), s; epoch k covers [k * EPOCH_S, (k + 1) * EPOCH_S).
EPOCH_S = 30.0

W, N1, N2, N3, REM = SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM
#: Content state of an epoch: the stage codes 0..4 (W is relaxed wake with eyes closed) and wake, eyes open.
W_EYES_OPEN = 5
_STAGE_OF_CONTENT = np.array([W, N1, N2, N3, REM, W], dtype=np.uint8)

#: Share of an ultradian cycle spent in N3 and in REM, by cycle (the last entry repeats), before the
#: individual propensities: slow-wave sleep early in the night, REM growing later.
N3_SHARE = (0.40, 0.30, 0.12, 0.04, 0.0)
REM_SHARE = (0.10, 0.18, 0.24, 0.30, 0.33)

#: Background components: name, carrier frequency (Hz; None: the participant's alpha frequency; 0: real 1/f
#: noise), half-bandwidth (low-pass cut-off of the complex envelope, Hz).
COMPONENTS = (
    ("pink", 0.0, 0.0),
    ("slow", 0.8, 0.45),
    ("delta", 2.2, 1.3),
    ("theta", 6.0, 1.5),
    ("alpha", None, 0.8),
    ("sigma", 13.5, 2.0),
    ("beta", 21.0, 6.0),
    ("muscle", 38.0, 10.0),
)
#: RMS (uV) of each component (COMPONENTS order) per content state (rows: W eyes closed, N1, N2, N3, REM,
#: W eyes open), for a participant of gain 1.
CONTENT_RMS_UV = np.array(
    [
        [6.0, 3.1, 5.1, 4.3, 7.2, 2.9, 4.7, 2.5],
        [6.0, 3.5, 5.1, 5.0, 3.6, 2.0, 3.5, 1.3],
        [7.0, 6.4, 9.0, 5.5, 4.2, 3.0, 2.0, 0.3],
        [8.0, 23.6, 18.0, 8.1, 5.4, 4.6, 1.6, 0.3],
        [5.0, 4.1, 4.6, 4.5, 3.0, 2.0, 3.2, 0.3],
        [6.5, 3.0, 5.4, 4.1, 3.5, 2.6, 5.3, 4.5],
    ]
)
_COMPONENT = {name: k for k, (name, _, _) in enumerate(COMPONENTS)}
_SLOW_WAVE_COMPONENTS = [_COMPONENT["slow"], _COMPONENT["delta"]]  # their amplitude declines over the night
SLOW_WAVE_DECLINE = 0.15  # fraction of slow-wave amplitude lost over the first 8 h (homeostatic decline)
RAMP_S = 2.0  # amplitudes move to a new epoch's content over its first RAMP_S seconds
EPOCH_DEPTH_SD = 0.15  # log-normal sd of each component's amplitude from epoch to epoch
CHANNEL_COHERENCE = 0.5  # share of each noise's variance common to a participant's channels

# Graphoelements (physiological events); kinds index _EVENT_TOPOGRAPHY.
_SPINDLE, _K_COMPLEX, _VERTEX, _SAWTOOTH = range(4)
_EVENT_MAX_S = 6.0  # longest graphoelement
VERTEX_PER_MINUTE_N1 = 2.0
SAWTOOTH_PER_MINUTE_REM = 1.5

#: Gain of each component and event kind on the channel positions central, frontal, parietal, occipital.
TOPOGRAPHY = {
    "pink": (1.0, 1.0, 1.0, 1.0),
    "slow": (1.0, 1.15, 0.9, 0.8),
    "delta": (1.0, 1.1, 0.95, 0.9),
    "theta": (1.0, 1.05, 0.95, 0.9),
    "alpha": (0.85, 0.6, 1.1, 1.3),
    "sigma": (1.0, 0.95, 1.0, 0.95),
    "beta": (1.0, 1.0, 1.0, 1.0),
    "muscle": (1.0, 1.3, 0.9, 1.1),
    "spindle": (1.1, 0.9, 1.0, 0.8),
    "k_complex": (1.0, 1.1, 0.85, 0.7),
    "vertex": (1.1, 0.9, 0.9, 0.7),
    "sawtooth": (1.0, 1.1, 0.9, 0.8),
    "blink": (1.0, 1.6, 0.6, 0.3),
}
_EVENT_TOPOGRAPHY = ("spindle", "k_complex", "vertex", "sawtooth")

#: Duration range (s) of each artifact kind, ARTIFACT_* order (none first).
ARTIFACT_DURATION_S = ((0.0, 0.0), (0.25, 0.5), (2.0, 12.0), (10.0, 120.0), (1.0, 8.0), (30.0, 300.0))
_ARTIFACT_CHUNK = 32  # artifact events are drawn this many at a time (fixed, so the draws never depend on queries)
_BLOCK_S = 10.0  # synthesis block (the layout of the random stream), about
_PIECE_S = 0.25  # fewest seconds a read renders at once, about (a multiple of _MAX_STEP samples)
_MAX_STEP = 32  # coarsest decimation of a rhythm's envelope (blocks hold a multiple of it)
_AMPLITUDE_HOLD = 8  # samples per step of the stage amplitudes (divides _MAX_STEP)


@dataclasses.dataclass
class SleepEegConfig(SettingsConfig):
    """Synthetic sleep EEG settings (SI units, microvolts). :meth:`validate` lists what is wrong, if anything."""

    sample_rate_hz: float = setting(256.0, "EEG sample rate.", "Hz", 100.0, 1000.0, read_only=True)
    cycle_minutes: float = setting(90.0, "Mean ultradian (NREM-REM) cycle length.", "min", 60.0, 120.0)
    cycle_sd_minutes: float = setting(
        8.0, "Between-participant standard deviation of the mean cycle length.", "min", 0.0, 20.0
    )
    cycle_jitter_minutes: float = setting(
        6.0, "Cycle-to-cycle standard deviation of one participant's cycle length.", "min", 0.0, 20.0
    )
    onset_minutes: float = setting(
        12.0, "Median sleep-onset latency (log-normal between participants, sd 0.4).", "min", 1.0, 120.0
    )
    stage_variation: float = setting(
        0.25,
        "Between-participant log-normal sd of the N3 and REM propensities (their share of each cycle).",
        "",
        0.0,
        1.0,
    )
    amplitude_variation: float = setting(
        0.15, "Between-participant log-normal sd of the EEG amplitude (and of each rhythm around it).", "", 0.0, 0.5
    )
    eyes_closed_fraction: float = setting(
        0.8, "Share of the wake periods spent relaxed with eyes closed (alpha rhythm).", "", 0.0, 1.0
    )
    arousals_per_hour: float = setting(
        1.0, "Brief arousals (one epoch of wake, then one of N1) per hour of sleep.", "1/h", 0.0, 30.0
    )
    spindles_per_minute: float = setting(
        4.0, "Sleep spindles (11-16 Hz, 0.5-2 s) per minute of N2; N3 has a third of it.", "1/min", 0.0, 15.0
    )
    k_complexes_per_minute: float = setting(
        1.5, "K-complexes per minute of N2; N3 has a quarter of it.", "1/min", 0.0, 10.0
    )
    blinks_per_hour: float = setting(4.0, "Rate of blink artifacts.", "1/h", 0.0, 3600.0)
    movements_per_hour: float = setting(3.0, "Rate of movement artifacts (2-12 s).", "1/h", 0.0, 600.0)
    flat_per_hour: float = setting(
        0.3, "Rate of flat-line artifacts (one electrode disconnected, 10-120 s).", "1/h", 0.0, 60.0
    )
    clipping_per_hour: float = setting(
        0.5, "Rate of clipping artifacts (amplifier saturated at its rail, 1-8 s).", "1/h", 0.0, 600.0
    )
    line_noise_per_hour: float = setting(
        0.3, "Rate of line-noise artifacts (mains pickup, 30-300 s).", "1/h", 0.0, 60.0
    )
    line_frequency_hz: float = setting(50.0, "Mains frequency of the line noise: 50 or 60.", "Hz", 50.0, 60.0)
    line_noise_uv: float = setting(
        40.0, "Typical line-noise amplitude (each episode 0.5-2 times this).", "uV", 1.0, 1000.0
    )
    blink_uv: float = setting(
        500.0, "Typical blink amplitude on channel 0 (each blink 0.85-1.3 times this).", "uV", 10.0, 5000.0
    )
    clipping_level_uv: float = setting(
        1000.0, "Amplifier range: every sample is clipped to +- this.", "uV", 50.0, 100000.0
    )

    def cross_field_problems(self) -> list[str]:
        errors = []
        if self.line_frequency_hz not in (50.0, 60.0):
            errors.append(f"line_frequency_hz must be 50 or 60, got {self.line_frequency_hz!r}")
        busy = sum(rate * sum(ARTIFACT_DURATION_S[k]) / 2 for k, rate in enumerate(self.artifact_rates()) if k) / 3600
        if busy > 0.5:
            errors.append(
                f"artifact rates x mean durations cover {busy:.0%} of the recording (at most 50 %): "
                "lower blinks/movements/flat/clipping/line_noise_per_hour"
            )
        return errors

    def artifact_rates(self) -> tuple:
        """Rates (1/h) indexed by ARTIFACT_* code (ARTIFACT_NONE: 0)."""
        return (
            0.0,
            self.blinks_per_hour,
            self.movements_per_hour,
            self.flat_per_hour,
            self.clipping_per_hour,
            self.line_noise_per_hour,
        )


SleepEegConfig.__doc__ += attributes_doc(SleepEegConfig, " Read-only in the node.")


class _Night:
    """One participant's script: individual traits, hypnogram, graphoelements, artifacts; extended on demand.

    Hypnogram and graphoelements come from one random stream, drawn a whole cycle at a time; artifacts from
    another, drawn _ARTIFACT_CHUNK events at a time: extending never depends on how far a query reached.
    """

    def __init__(self, config: SleepEegConfig, seed: int, index: int):
        self.config = config
        traits = np.random.default_rng([seed, index, 0])
        amp = config.amplitude_variation
        self.gain = math.exp(traits.normal(0.0, amp))
        self.component_gain = self.gain * np.exp(traits.normal(0.0, amp, len(COMPONENTS)))
        self.component_gain[_COMPONENT["alpha"]] *= math.exp(traits.normal(0.0, 2 * amp))  # varies most between people
        self.alpha_hz = float(np.clip(traits.normal(10.0, 0.8), 8.5, 12.0))
        self.spindle_hz = float(np.clip(traits.normal(13.0, 0.7), 11.5, 15.0))
        self.cycle_s = 60.0 * max(60.0, traits.normal(config.cycle_minutes, config.cycle_sd_minutes))
        self.n3_propensity = math.exp(traits.normal(0.0, config.stage_variation))
        self.rem_propensity = math.exp(traits.normal(0.0, config.stage_variation))
        self.onset_s = 60.0 * config.onset_minutes * math.exp(traits.normal(0.0, 0.4))
        self.carrier_phase = traits.uniform(0.0, 2 * math.pi, len(COMPONENTS))
        self._stages_rng = np.random.default_rng([seed, index, 1])
        self._artifact_rng = np.random.default_rng([seed, index, 2])
        self.content = np.zeros(0, np.uint8)  # (epochs,) content state per epoch
        self.depth = np.ones((0, len(COMPONENTS)))  # (epochs, components) amplitude factor per epoch
        self.events = np.zeros((0, 6))  # (n, 6): kind, start s, duration s, amplitude uV, frequency Hz, phase rad
        self.cycles = 0
        # artifacts, sorted and non-overlapping: kind, start s, stop s, amplitude uV, value uV, phase rad, channel
        self.artifacts = np.zeros((0, 7))
        self._artifact_clock = 0.0

    # ------------------------------------------------------------------------------------------ hypnogram
    def cover_epochs(self, n: int) -> None:
        """Extend the hypnogram (and graphoelements) to at least ``n`` epochs."""
        while self.content.size < n:
            self._add_cycle()

    def _add_cycle(self) -> None:
        rng, cfg, k = self._stages_rng, self.config, self.cycles
        parts = []
        if k == 0:
            parts.append(self._wake(max(2, round(self.onset_s / EPOCH_S))))
        length = max(100, round((self.cycle_s + rng.normal(0.0, 60.0 * cfg.cycle_jitter_minutes)) / EPOCH_S))
        n1 = int(rng.integers(4, 15)) if k == 0 else int(rng.integers(1, 5))
        n3 = round(length * N3_SHARE[min(k, len(N3_SHARE) - 1)] * self.n3_propensity * rng.uniform(0.8, 1.2))
        rem = round(length * REM_SHARE[min(k, len(REM_SHARE) - 1)] * self.rem_propensity * rng.uniform(0.8, 1.2))
        wake = int(rng.integers(1, 5)) if rng.random() < min(0.8, 0.3 + 0.1 * k) else 0
        n3 = min(n3, length // 2)
        rem = max(2, min(rem, length // 2))
        n2 = max(8, length - n1 - n3 - rem - wake)
        n2_early = round(n2 * rng.uniform(0.5, 0.75)) if n3 else n2
        sleep = np.concatenate(
            [
                np.full(n1, N1),
                np.full(n2_early, N2),
                np.full(n3, N3),
                np.full(n2 - n2_early, N2),
                np.full(rem, REM),
            ]
        ).astype(np.uint8)
        # brief arousals: one epoch of wake, then one of N1, at random epochs of this cycle's sleep
        arousals = rng.poisson(cfg.arousals_per_hour * sleep.size * EPOCH_S / 3600.0)
        for at in np.sort(rng.integers(1, sleep.size - 1, arousals)):
            sleep[at], sleep[at + 1] = W if rng.random() < cfg.eyes_closed_fraction else W_EYES_OPEN, N1
        parts += [sleep, self._wake(wake)]
        content = np.concatenate(parts)
        start = self.content.size * EPOCH_S
        self._add_events(content, start)
        depth = np.exp(rng.normal(0.0, EPOCH_DEPTH_SD, (content.size, len(COMPONENTS))))
        self.content = np.concatenate([self.content, content])
        self.depth = np.concatenate([self.depth, depth])
        self.cycles += 1

    def _wake(self, n: int) -> np.ndarray:
        closed = self._stages_rng.random() < self.config.eyes_closed_fraction
        return np.full(n, W if closed else W_EYES_OPEN, np.uint8)

    def _add_events(self, content: np.ndarray, start: float) -> None:
        """Graphoelements of the epochs ``content`` starting at ``start`` s (vectorised per kind)."""
        rng, cfg = self._stages_rng, self.config
        per_min = np.zeros((4, 6))  # kind x content state, events per minute
        per_min[_SPINDLE, N2], per_min[_SPINDLE, N3] = cfg.spindles_per_minute, cfg.spindles_per_minute / 3
        per_min[_K_COMPLEX, N2], per_min[_K_COMPLEX, N3] = cfg.k_complexes_per_minute, cfg.k_complexes_per_minute / 4
        per_min[_VERTEX, N1] = VERTEX_PER_MINUTE_N1
        per_min[_SAWTOOTH, REM] = SAWTOOTH_PER_MINUTE_REM
        epoch_start = start + EPOCH_S * np.arange(content.size)
        rows = []
        for kind in range(4):
            counts = rng.poisson(per_min[kind, content] * EPOCH_S / 60.0)
            n = int(counts.sum())
            onset = np.repeat(epoch_start, counts) + rng.uniform(0.0, EPOCH_S, n)
            g = self.gain
            if kind == _SPINDLE:
                duration, amp = rng.uniform(0.5, 2.0, n), g * rng.uniform(15.0, 35.0, n)
                freq = np.clip(self.spindle_hz + rng.normal(0.0, 0.4, n), 11.0, 16.0)
            elif kind == _K_COMPLEX:
                duration, amp, freq = np.full(n, 1.0), g * rng.uniform(60.0, 110.0, n), np.zeros(n)
            elif kind == _VERTEX:
                duration, amp, freq = np.full(n, 0.3), g * rng.uniform(35.0, 60.0, n), np.zeros(n)
            else:
                duration, amp, freq = rng.uniform(2.0, 5.0, n), g * rng.uniform(20.0, 35.0, n), rng.uniform(2.5, 4.0, n)
            rows.append(np.column_stack([np.full(n, kind), onset, duration, amp, freq, rng.uniform(0, 2 * np.pi, n)]))
        events = np.concatenate([self.events, *rows])
        self.events = events[np.argsort(events[:, 1], kind="stable")]

    # ------------------------------------------------------------------------------------------ artifacts
    def cover_artifacts(self, t: float, channels: int) -> None:
        """Draw artifacts until the timeline reaches past ``t`` s."""
        rates = np.array(self.config.artifact_rates()) / 3600.0
        total = rates.sum()
        if total <= 0.0:
            return
        rng = self._artifact_rng
        while self._artifact_clock <= t:
            n = _ARTIFACT_CHUNK
            kind = rng.choice(len(rates), n, p=rates / total)
            gap = rng.exponential(1.0 / total, n)
            lo, hi = np.array(ARTIFACT_DURATION_S).T
            duration = rng.uniform(lo[kind], hi[kind])
            amp = rng.uniform(0.0, 1.0, n)  # scaled per kind when rendered
            value = rng.uniform(-20.0, 20.0, n)  # flat: the constant; clipping: its sign
            phase = rng.uniform(0.0, 2 * np.pi, n)
            channel = rng.integers(0, channels, n)
            start = self._artifact_clock + np.cumsum(gap + np.concatenate([[0.0], duration[:-1]]))
            stop = start + duration
            self._artifact_clock = float(stop[-1])
            self.artifacts = np.concatenate(
                [self.artifacts, np.column_stack([kind, start, stop, amp, value, phase, channel])]
            )

    def artifact_at(self, t: np.ndarray) -> np.ndarray:
        """ARTIFACT_* code at times ``t`` (s), any shape (already covered by :meth:`cover_artifacts`)."""
        a = self.artifacts
        if not a.size:
            return np.zeros(np.shape(t), np.uint8)
        i = np.maximum(np.searchsorted(a[:, 1], t, side="right") - 1, 0)  # the last artifact starting by t
        inside = (a[i, 1] <= t) & (t < a[i, 2])
        return np.where(inside, a[i, 0], ARTIFACT_NONE).astype(np.uint8)

    def first_artifact_between(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """ARTIFACT_* code of the first artifact overlapping [start, stop) (ARTIFACT_NONE if none)."""
        a = self.artifacts
        if not a.size:
            return np.zeros(np.shape(start), np.uint8)
        i = np.searchsorted(a[:, 2], start, side="right")  # the first artifact ending after start
        j = np.minimum(i, len(a) - 1)
        hit = (i < len(a)) & (a[j, 1] < stop)
        return np.where(hit, a[j, 0], ARTIFACT_NONE).astype(np.uint8)


def _decimation(fs: float, bandwidth_hz: float, max_step: int) -> int:
    """The largest power-of-2 step <= ``max_step`` that keeps >= 10 samples per period of ``bandwidth_hz``."""
    step = 1
    while 2 * step <= max_step and fs / (2 * step) >= 10 * bandwidth_hz:
        step *= 2
    return step


def _interpolate(grid: np.ndarray, step: int) -> np.ndarray:
    """Linear interpolation of ``grid`` (..., m + 1) sampled every ``step`` samples: (..., m * step)."""
    frac = np.arange(step) / step
    start, slope = grid[..., :-1, None], (grid[..., 1:] - grid[..., :-1])[..., None]
    return (start + slope * frac).reshape(*grid.shape[:-1], -1)


def _coherent(w: np.ndarray) -> np.ndarray:
    """Unit white noise (..., P, C, n) from raw normals ``w`` (..., P, C + 1, n): channel c is w[0] and w[c + 1]
    mixed, so a participant's channels share CHANNEL_COHERENCE of the variance (elementwise along time)."""
    return math.sqrt(CHANNEL_COHERENCE) * w[..., :1, :] + math.sqrt(1 - CHANNEL_COHERENCE) * w[..., 1:, :]


class _NarrowBand:
    """Unit-variance narrow-band Gaussian noise Re(z e^{i 2 pi f t}), z a 2nd-order low-pass complex process.

    z runs at fs / step (:func:`_decimation` of its cut-off) and is linearly interpolated to fs, so a rhythm
    costs a fraction of full-rate noise. One filter state per (participant, channel), carried from piece to
    piece; pieces start and end on multiples of ``step`` samples.
    """

    def __init__(self, cutoff_hz: float, fs: float, shape: tuple, max_step: int):
        self.step = _decimation(fs, cutoff_hz, max_step)
        rate = fs / self.step
        self.b, self.a = signal.butter(2, min(cutoff_hz / (rate / 2), 0.99))
        impulse = signal.lfilter(self.b, self.a, np.r_[1.0, np.zeros(int(40 * rate / cutoff_hz))])
        self.scale = math.sqrt(2.0 / np.sum(impulse**2))
        self.state = np.zeros((*shape, 2), complex)
        self.last = np.zeros(shape, complex)  # z at the start of the next piece
        participants, channels = shape
        self.shapes = [(2, participants, channels + 1)]  # raw normals per block: these x (block // step)

    def __call__(self, raw: np.ndarray, lo: int, hi: int, phase: np.ndarray) -> np.ndarray:
        """Samples [lo, hi) of the block whose raw normals are ``raw`` (2, P, C + 1, block // step): (P, C, n);
        ``phase``: (P, 1, n) carrier phase, rad."""
        white = _coherent(raw[..., lo // self.step : hi // self.step])
        z, self.state = signal.lfilter(self.b, self.a, (white[0] + 1j * white[1]) / math.sqrt(2), -1, self.state)
        envelope = _interpolate(np.concatenate([self.last[..., None], z], axis=-1), self.step)
        self.last = z[..., -1]
        return self.scale * (envelope.real * np.cos(phase) - envelope.imag * np.sin(phase))


class _Pink:
    """Unit-variance 1/f noise: the mean of four unit-variance Lorentzians (AR(1), corners 0.25..16 Hz), each
    run at the coarsest rate that keeps 10 samples per corner period and interpolated to fs."""

    CORNERS_HZ = (0.25, 1.0, 4.0, 16.0)

    def __init__(self, fs: float, shape: tuple, max_step: int):
        self.steps = [_decimation(fs, corner, max_step) for corner in self.CORNERS_HZ]
        self.a = [
            math.exp(-2 * np.pi * corner * step / fs) for corner, step in zip(self.CORNERS_HZ, self.steps, strict=True)
        ]
        self.state = np.zeros((len(self.a), *shape, 1))
        self.last = np.zeros((len(self.a), *shape))
        participants, channels = shape
        self.shapes = [(participants, channels + 1)] * len(self.a)  # raw normals per block, each x block // step

    def __call__(self, raws: list, lo: int, hi: int) -> np.ndarray:
        """Samples [lo, hi) of the block whose raw normals are ``raws`` (one (P, C + 1, block // step) per
        Lorentzian): (P, C, n)."""
        out = 0.0
        for k, (a, step) in enumerate(zip(self.a, self.steps, strict=True)):
            white = _coherent(raws[k][..., lo // step : hi // step])
            y, self.state[k] = signal.lfilter([math.sqrt(1 - a * a)], [1.0, -a], white, axis=-1, zi=self.state[k])
            out = out + (y if step == 1 else _interpolate(np.concatenate([self.last[k][..., None], y], -1), step))
            self.last[k] = y[..., -1]
        return out / 2.0


class _Block:
    """One synthesis block (``n`` samples from sample ``first``): its random normals and its script.

    The block's normals are one run of the simulator's stream (every Lorentzian's, then every rhythm's, then
    each movement artifact's muscle noise, participants in order), drawn into one buffer, possibly over many
    calls (:meth:`draw`); a block is rendered only once all of them are drawn. The script lists, in the order
    they are applied, the graphoelements and artifacts overlapping the block with their sample spans in it.
    """

    def __init__(self, sim: SleepEegSimulator, first: int, n: int):
        fs, C = sim.sample_rate_hz, sim.channels
        self.first, self.n = first, n
        t0, t1 = first / fs, (first + n - 1) / fs + 1.0 / fs
        coarse = (first + np.arange(0, n, _AMPLITUDE_HOLD)) / fs
        epoch = sim._epoch_index(coarse)  # extends every hypnogram (and its graphoelements) over the block
        self.epoch0 = max(int(epoch[0]) - 1, 0)  # the amplitude tables: epochs epoch0 .. the block's last
        stop = int(epoch[-1]) + 1
        self.content = np.stack([night.content[self.epoch0 : stop] for night in sim._nights])  # (P, e)
        self.depth = np.stack([night.depth[self.epoch0 : stop] for night in sim._nights])  # (P, e, K)
        events, artifacts, noise = [], [], []
        for p, night in enumerate(sim._nights):
            ev = night.events
            lo, hi = np.searchsorted(ev[:, 1], [t0 - _EVENT_MAX_S, t1])
            for row in ev[lo:hi]:
                a, b = _span(row[1], row[1] + row[2], t0, fs, n)
                if a < b:
                    events.append((p, a, b, *row))
            night.cover_artifacts(t1, C)
            art = night.artifacts
            lo = np.searchsorted(art[:, 2], t0, side="right")
            hi = np.searchsorted(art[:, 1], t1)
            for row in art[lo:hi]:
                a, b = _span(row[1], row[2], t0, fs, n)
                if a < b:
                    artifacts.append((p, a, b, *row))
                    if row[0] == ARTIFACT_MOVEMENT:
                        noise.append((C, b - a))
        self.events = np.array(events, dtype=float).reshape(-1, 9)  # p, a, b, kind, onset, duration, amp, f, phase
        self.artifacts = artifacts  # (p, a, b, kind, start, stop, amp, value, phase, channel), applied in order
        shapes = [(*s, n // step) for s, step in zip(sim._pink.shapes, sim._pink.steps, strict=True)]
        shapes += [(*band.shapes[0], n // band.step) for band in sim._bands] + noise
        sizes = [math.prod(s) for s in shapes]
        self.normals = np.empty(sum(sizes))
        ends = np.cumsum(sizes)
        views = [self.normals[e - s : e].reshape(shape) for e, s, shape in zip(ends, sizes, shapes, strict=True)]
        k = len(sim._pink.steps)
        self.pink, self.bands = views[:k], views[k : k + len(sim._bands)]
        muscle = iter(views[k + len(sim._bands) :])  # one per movement artifact, in order
        self.muscle_noise = {i: next(muscle) for i, row in enumerate(artifacts) if row[3] == ARTIFACT_MOVEMENT}
        self.drawn = 0

    def draw(self, rng: np.random.Generator, upto: int) -> int:
        """Draw the block's normals up to ``upto`` of them (in stream order); returns how many were drawn now."""
        upto = min(upto, self.normals.size)
        count = upto - self.drawn
        if count > 0:
            rng.standard_normal(out=self.normals[self.drawn : upto])
            self.drawn = upto
        return max(count, 0)


class SleepEegSimulator:
    """Synthetic sleep EEG of `participants` x `channels`, microvolts, streamed in time order.

    See the module docstring for the content. Vectorised over participants and channels: the Python loops run
    over pieces of samples and events (and, once per block, participants), never over samples.

    Work per read: a read renders only the pieces of samples it needs (at least ``piece`` samples, at most up to
    the end of the current block), and draws the random numbers of the next block in proportion to the samples
    rendered, so that a stream read a few samples at a time costs about the same on every read; the output
    is the same however it is read.

    Parameters
    ----------
    participants : int
        Number of participants, >= 1.
    channels : int
        EEG channels per participant, 1..16 (positions central, frontal, parietal, occipital, repeating).
    config : SleepEegConfig, optional
        Settings; None for the defaults. ValueError when it does not validate.
    seed : int
        Seed (>= 0): the same seed, participants and channels give the same EEG and ground truth.

    Attributes
    ----------
    sample_rate_hz : float
        Sample rate, Hz.
    time : float
        Simulator time (s) of the next sample :meth:`read` returns; starts at 0.
    block, piece : int
        Samples per synthesis block (the layout of the random stream) and the fewest a read renders at once.
    synthesised, normals_drawn : int
        Samples rendered so far (at most ``piece`` beyond what was read, unless a read asked for more), and
        random normals drawn so far.
    """

    def __init__(self, participants: int, channels: int = 2, config: SleepEegConfig | None = None, seed: int = 0):
        if isinstance(participants, bool) or not isinstance(participants, (int, np.integer)) or participants < 1:
            raise ValueError(f"participants must be an integer >= 1, got {participants!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 16:
            raise ValueError(f"channels must be an integer in [1, 16], got {channels!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.config = config if config is not None else SleepEegConfig()
        errors = self.config.validate()
        if errors:
            raise ValueError("invalid SleepEegConfig: " + "; ".join(errors))
        self.participants, self.channels, self.seed = int(participants), int(channels), int(seed)
        self.sample_rate_hz = float(self.config.sample_rate_hz)
        fs, shape = self.sample_rate_hz, (self.participants, self.channels)
        self._nights = [_Night(self.config, self.seed, p) for p in range(self.participants)]
        self._rng = np.random.default_rng([self.seed, 1 << 32])
        self._pink = _Pink(fs, shape, _MAX_STEP)
        self._bands = [_NarrowBand(cut, fs, shape, _MAX_STEP) for _, _, cut in COMPONENTS[1:]]
        carriers = np.array([[f if f is not None else n.alpha_hz for _, f, _ in COMPONENTS] for n in self._nights])
        self._carrier_hz = carriers  # (P, components)
        self._carrier_phase = np.array([n.carrier_phase for n in self._nights])
        self._gain = np.array([n.component_gain for n in self._nights])  # (P, components)
        position = np.arange(self.channels) % 4
        self._topography = {name: np.array(gains)[position] for name, gains in TOPOGRAPHY.items()}
        self._component_topography = np.array([self._topography[name] for name, _, _ in COMPONENTS])  # (K, C)
        self.block = _MAX_STEP * math.ceil(_BLOCK_S * fs / _MAX_STEP)
        self.piece = min(self.block, _MAX_STEP * math.ceil(_PIECE_S * fs / _MAX_STEP))
        self._buffer = np.zeros((self.participants, self.channels, 0))
        self._current: _Block | None = None  # the block being rendered (every normal drawn)
        self._next: _Block | None = None  # the one after it, its normals drawn as the current one renders
        self._position = 0  # samples of the current block rendered
        self.synthesised = 0  # samples rendered so far (buffer end)
        self.normals_drawn = 0
        self._read = 0  # samples returned so far

    @property
    def time(self) -> float:
        return self._read / self.sample_rate_hz

    # ------------------------------------------------------------------------------------------ streaming
    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples.

        Returns
        -------
        numpy.ndarray
            float64 (participants, channels, n), microvolts.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        parts, have = [self._buffer], self._buffer.shape[-1]
        while have < n:
            piece = self._render(n - have)
            parts.append(piece)
            have += piece.shape[-1]
        data = np.concatenate(parts, axis=-1) if len(parts) > 1 else self._buffer
        self._buffer = data[..., n:]
        self._read += int(n)
        return data[..., :n].copy()

    # ------------------------------------------------------------------------------------------ ground truth
    def stage_at(self, t) -> np.ndarray:
        """Ground-truth hypnogram: the SleepStage code at simulator time ``t`` (s; before 0 counts as 0).

        Returns
        -------
        numpy.ndarray
            uint8, shape (participants,) for a scalar ``t``, (participants, *t.shape) for an array.
        """
        return _STAGE_OF_CONTENT[self._content_at(t)]

    def artifact_at(self, t) -> np.ndarray:
        """Ground-truth artifact timeline: the ARTIFACT_* code active at simulator time ``t`` (s).

        Returns
        -------
        numpy.ndarray
            uint8, shape (participants,) for a scalar ``t``, (participants, *t.shape) for an array.
        """
        t = np.asarray(t, dtype=float)
        horizon = float(np.nanmax(t)) if t.size else 0.0
        for night in self._nights:
            night.cover_artifacts(horizon, self.channels)
        return np.stack([night.artifact_at(t) for night in self._nights])

    def artifact_between(self, start, stop) -> np.ndarray:
        """The ARTIFACT_* code of the first artifact overlapping [start, stop) s (ARTIFACT_NONE if none):
        whether an epoch's ground truth holds an artifact.

        Returns
        -------
        numpy.ndarray
            uint8, shape (participants,) for scalars, (participants, *shape) for arrays of one shape.
        """
        start, stop = np.broadcast_arrays(np.asarray(start, dtype=float), np.asarray(stop, dtype=float))
        horizon = float(np.nanmax(stop)) if stop.size else 0.0
        for night in self._nights:
            night.cover_artifacts(horizon, self.channels)
        return np.stack([night.first_artifact_between(start, stop) for night in self._nights])

    def content_at(self, t) -> np.ndarray:
        """Content state at ``t`` (s): the stage code, except W_EYES_OPEN (5) for wake with eyes open.

        Returns
        -------
        numpy.ndarray
            uint8, shape as :meth:`stage_at`.
        """
        return self._content_at(t)

    def _content_at(self, t) -> np.ndarray:
        epoch = self._epoch_index(t)
        return np.stack([night.content[epoch] for night in self._nights])

    def _epoch_index(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if not np.isfinite(t).all():
            raise ValueError("stage and content times must be finite")
        epoch = np.maximum(np.floor(t / EPOCH_S), 0).astype(np.int64)
        need = int(epoch.max()) + 1 if epoch.size else 1
        for night in self._nights:
            night.cover_epochs(need)
        return epoch

    # ------------------------------------------------------------------------------------------ synthesis
    def _render(self, want: int) -> np.ndarray:
        """The next samples: at least ``want`` rounded up to ``piece`` (a multiple of _MAX_STEP), at most to the
        end of the current block; the next block's normals are drawn in proportion."""
        if self._current is None or self._position == self._current.n:
            block = self._next if self._next is not None else _Block(self, self.synthesised, self.block)
            self.normals_drawn += block.draw(self._rng, block.normals.size)
            self._current, self._next, self._position = block, None, 0
        block, lo = self._current, self._position
        size = max(self.piece, _MAX_STEP * math.ceil(want / _MAX_STEP))
        hi = min(block.n, lo + size)
        x = self._synthesise(block, lo, hi)
        self._position, self.synthesised = hi, self.synthesised + hi - lo
        if self._next is None:
            self._next = _Block(self, block.first + block.n, self.block)
        upcoming = self._next
        self.normals_drawn += upcoming.draw(self._rng, -(-upcoming.normals.size * hi // block.n))
        return x

    def _synthesise(self, block: _Block, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo`` .. ``hi - 1`` of ``block`` (its normals all drawn): (P, C, hi - lo) uV."""
        fs = self.sample_rate_hz
        t = (block.first + np.arange(lo, hi)) / fs  # (n,)
        # amplitudes on a coarse grid, held for _AMPLITUDE_HOLD samples (they ramp over RAMP_S >> the hold)
        coarse = t[::_AMPLITUDE_HOLD]
        epoch = np.maximum(np.floor(coarse / EPOCH_S), 0).astype(np.int64)
        previous = np.maximum(epoch - 1, 0)
        content, before = block.content[:, epoch - block.epoch0], block.content[:, previous - block.epoch0]  # (P, m)
        depth, depth_before = block.depth[:, epoch - block.epoch0], block.depth[:, previous - block.epoch0]
        blend = np.clip((coarse - epoch * EPOCH_S) / RAMP_S, 0.0, 1.0)[None, :, None]
        rms = CONTENT_RMS_UV[content] * depth * blend + CONTENT_RMS_UV[before] * depth_before * (1 - blend)
        rms *= self._gain[:, None, :]
        decline = 1.0 - SLOW_WAVE_DECLINE * np.minimum(coarse / 28800.0, 1.0)
        rms[..., _SLOW_WAVE_COMPONENTS] *= decline[None, :, None]
        rms = np.repeat(rms.transpose(0, 2, 1), _AMPLITUDE_HOLD, axis=-1)  # (P, K, n)

        topo = self._component_topography
        x = self._pink(block.pink, lo, hi) * (rms[:, 0, None, :] * topo[0][None, :, None])
        phase = 2 * np.pi * self._carrier_hz[:, :, None] * t[None, None, :] + self._carrier_phase[:, :, None]
        for k, (band, raw) in enumerate(zip(self._bands, block.bands, strict=True), start=1):
            x += band(raw, lo, hi, phase[:, k, None, :]) * (rms[:, k, None, :] * topo[k][None, :, None])
        self._add_events(x, block, t, lo, hi)
        self._add_artifacts(x, block, t, lo, hi)
        level = self.config.clipping_level_uv
        return np.clip(x, -level, level, out=x)

    def _add_events(self, x: np.ndarray, block: _Block, t: np.ndarray, lo: int, hi: int) -> None:
        """Add the block's graphoelements overlapping samples [lo, hi) to ``x`` (P, C, hi - lo)."""
        ev = block.events
        for p, a, b, kind, onset, duration, amp, freq, phase in ev[(ev[:, 1] < hi) & (ev[:, 2] > lo)]:
            a, b = max(int(a), lo) - lo, min(int(b), hi) - lo
            tau = t[a:b] - onset
            if kind == _SPINDLE:
                wave = amp * np.sin(np.pi * tau / duration) ** 2 * np.sin(2 * np.pi * freq * tau + phase)
            elif kind == _K_COMPLEX:
                wave = amp * (-np.exp(-(((tau - 0.25) / 0.09) ** 2)) + 0.55 * np.exp(-(((tau - 0.6) / 0.16) ** 2)))
            elif kind == _VERTEX:
                wave = -amp * np.exp(-(((tau - 0.15) / 0.05) ** 2))
            else:
                taper = np.sin(np.pi * tau / duration) ** 0.5
                wave = amp * taper * signal.sawtooth(2 * np.pi * freq * tau + phase, width=0.85)
            x[int(p), :, a:b] += self._topography[_EVENT_TOPOGRAPHY[int(kind)]][:, None] * wave[None, :]

    def _add_artifacts(self, x: np.ndarray, block: _Block, t: np.ndarray, lo: int, hi: int) -> None:
        """Apply the block's artifacts overlapping samples [lo, hi) to ``x`` (P, C, hi - lo)."""
        cfg = self.config
        for i, (p, a0, b0, kind, start, stop, amp, value, phase, channel) in enumerate(block.artifacts):
            if not (a0 < hi and b0 > lo):
                continue
            a, b = max(a0, lo) - lo, min(b0, hi) - lo
            tau = t[a:b] - start
            duration = stop - start
            if kind == ARTIFACT_BLINK:
                wave = cfg.blink_uv * (0.85 + 0.45 * amp) * np.sin(np.pi * tau / duration) ** 2
                x[p, :, a:b] += self._topography["blink"][:, None] * wave[None, :]
            elif kind == ARTIFACT_MOVEMENT:
                taper = np.minimum(1.0, np.minimum(tau, duration - tau) / 0.3)
                sway = (100 + 200 * amp) * np.sin(2 * np.pi * (0.3 + 1.2 * amp) * tau + phase)
                muscle = (80 + 120 * amp) * block.muscle_noise[i][:, a + lo - a0 : b + lo - a0]
                x[p, :, a:b] += taper[None, :] * (sway[None, :] + muscle)
            elif kind == ARTIFACT_FLAT:
                x[p, int(channel), a:b] = value
            elif kind == ARTIFACT_CLIPPING:
                x[p, :, a:b] = math.copysign(2.0 * cfg.clipping_level_uv, value)
            elif kind == ARTIFACT_LINE_NOISE:
                wave = (
                    cfg.line_noise_uv * (0.5 + 1.5 * amp) * np.sin(2 * np.pi * cfg.line_frequency_hz * t[a:b] + phase)
                )
                x[p, :, a:b] += wave[None, :]


def _span(start: float, stop: float, t0: float, fs: float, n: int) -> tuple[int, int]:
    """Sample indices [a, b) of a block starting at ``t0`` (n samples at ``fs``) whose times lie in [start, stop)."""
    a = max(0, math.ceil((start - t0) * fs - 1e-9))
    b = min(n, math.ceil((stop - t0) * fs - 1e-9))
    return a, b
