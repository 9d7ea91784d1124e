"""Sleep staging of EEG epochs (no rclpy): signal-quality checks, band powers, a stage classifier with
probabilities, and a transition prior across epochs; vectorised over participants and channels.

:class:`SleepStager` scores one epoch (``epoch_s`` s, AASM: 30 s) of every participant per call:

1. Quality, per channel on windows of ``window_s``: non-finite samples; flat line (peak-to-peak below
   ``flat_ptp_uv``; the whole epoch flat is ``disconnected``); clipping (the epoch's extreme value held for
   ``clip_min_s`` of consecutive samples); line noise (a 50 or 60 Hz peak, as aliased at the sample rate, whose
   power exceeds ``line_noise_ratio`` of the epoch's 0.5-45 Hz power); movement (muscle activity: 20-45 Hz
   RMS above ``movement_uv``); excessive amplitude (blinks, eye movements, electrode pops: more than
   ``max_amplitude_uv`` from the channel's median). A participant any of whose channels fails a check is not
   staged: stage UNKNOWN, probabilities 0, ``signal_quality`` at most 0.25 (the share of clean windows / 4),
   ``problem`` the reason (the first in :data:`PROBLEMS` order over the channels). A usable epoch's quality is
   1, falling towards 0.5 as any check approaches its threshold.
2. Features of the channel-mean spectrum (``scipy.signal.welch``, ``welch_segment_s`` segments): relative band
   powers, total power and the muscle ratio, plus the slow-wave fraction (share of the epoch whose 0.5-2 Hz
   activity exceeds 75 uV peak-to-peak within 1 s, the AASM N3 criterion) and the spindle density (11-16 Hz
   bursts >= 0.5 s above 3 times the channel's median envelope), as :data:`FEATURE_NAMES`.
3. Classifier: multinomial logistic regression on the standardised features (:data:`FEATURE_MEAN`,
   :data:`FEATURE_SD`, :data:`WEIGHTS`, :data:`BIAS`), its posterior divided by the class shares it was fitted
   with (:data:`CLASS_PRIOR`) as the epoch's evidence, combined per participant with the previous epochs by a
   hidden Markov forward filter whose transitions come from the stage transition rates
   :data:`TRANSITION_RATE_PER_HOUR` over ``hop_s``. The published probabilities are the filtered posterior.

Every constant was fitted offline by ``python bench/biodream_staging.py --tune`` on the simulated nights of
:data:`TUNING_SEEDS` (``lumina_nodes.models.eeg``; artifact-free epochs, ground-truth stages); the bench and
the tests evaluate on other seeds. Nothing is learnt at run time.

Frequency-domain envelopes (spindles, slow waves, muscle, line noise) come from one FFT of each channel's epoch:
a band's bins, moved to a short inverse FFT, give its analytic signal at a low rate without filtering.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import linalg, ndimage
from scipy import signal as sps

from ..constants import SleepStage
from ..settings import SettingsConfig, attributes_doc, setting

__all__ = [
    "BANDS",
    "FEATURE_NAMES",
    "PROBLEMS",
    "STAGES",
    "TUNING_SEEDS",
    "EpochScores",
    "SleepStager",
    "StagingConfig",
]

#: EEG bands (name, low Hz, high Hz), as msg/BioDreamSample.msg; a band holds [low, high).
BANDS = (
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 12.0),
    ("sigma", 12.0, 15.0),
    ("beta", 15.0, 30.0),
    ("gamma", 30.0, 45.0),
)
#: Stage codes in the order of the probability columns.
STAGES = (SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM)
#: Reasons an epoch is not staged, in precedence order ("" when clean).
PROBLEMS = ("non_finite", "disconnected", "flat", "clipped", "line_noise", "movement", "amplitude")
MIN_SAMPLE_RATE_HZ = 2 * BANDS[-1][2]  # the gamma band must lie below Nyquist
MAX_SAMPLE_RATE_HZ = 10000.0
MAX_CHANNELS = 64
ABSURD_UV = 1e9
LINE_FREQUENCIES_HZ = (50.0, 60.0)
SLOW_WAVE_BAND_HZ = (0.5, 2.0)
SLOW_WAVE_PTP_UV = 75.0  # AASM: N3 slow waves are >= 75 uV peak to peak
SPINDLE_BAND_HZ = (11.0, 16.0)
SPINDLE_MIN_S = 0.5
SPINDLE_FACTOR = 3.0  # a spindle's envelope exceeds this many times the channel's median sigma envelope
MUSCLE_BAND_HZ = (20.0, 45.0)
LINE_HALF_WIDTH_HZ = 1.0
LINE_PROMINENCE = 10.0  # line noise is a narrow peak: this many times the power 1-3 Hz beside it
ENVELOPE_RATE_HZ = 8.0  # at least this many envelope samples per second for the narrow bands

#: Feature vector of an epoch (channel means): log relative powers of delta..beta (of the 0.5-30 Hz total),
#: log10 of that total (uV^2), log of gamma / total, slow-wave fraction, spindles per minute.
FEATURE_NAMES = (
    "log_rel_delta",
    "log_rel_theta",
    "log_rel_alpha",
    "log_rel_sigma",
    "log_rel_beta",
    "log10_total_uv2",
    "log_gamma_ratio",
    "slow_wave_fraction",
    "spindles_per_min",
)

# ---- fitted by `python bench/biodream_staging.py --tune` (paste its output here) ----------------------------
#: Seeds of the simulated nights every constant below was fitted on (8 participants x 8 h each).
TUNING_SEEDS = (101, 102, 103, 104)
# fitted on 27961 artifact-free epochs; per-epoch training accuracy 0.973
FEATURE_MEAN = np.array([-0.489768, -1.87967, -2.67421, -3.06492, -3.17808, 2.41134, -5.07192, 0.0674827, 1.21351])
FEATURE_SD = np.array([0.255795, 0.453288, 0.631918, 0.676143, 0.853401, 0.341156, 0.839951, 0.143886, 1.70676])
WEIGHTS = np.array(
    [
        [-1.3154, -0.65499, 0.63907, -0.43341, 0.77946, 0.0054116, 3.4638, 0.009023, -0.019279],
        [-0.33541, 0.82109, -0.092668, -0.91471, 1.1511, -0.54672, 1.8053, -0.046027, -0.17226],
        [1.1943, -0.069801, 0.22241, 1.3377, -2.117, -0.17475, -0.86499, -0.48984, 1.051],
        [0.46943, -0.6359, -0.95669, 0.37689, -2.8512, 2.309, -1.5815, 0.92637, 0.17079],
        [-0.012884, 0.5396, 0.18788, -0.36647, 3.0376, -1.593, -2.8226, -0.39952, -1.0303],
    ]
)
BIAS = np.array([-5.4304, -1.8765, 6.1629, 0.33556, 0.80847])
CLASS_PRIOR = np.array([0.041272, 0.029255, 0.58653, 0.15371, 0.18923])
TRANSITION_RATE_PER_HOUR = np.array(
    [
        [0, 31.569, 0, 0, 0],
        [1.2067, 0, 43.575, 6.1676, 6.838],
        [1.0087, 0, 0, 0.835, 1.0621],
        [1.14, 0, 3.1919, 0, 0],
        [2.065, 1.9618, 0, 0, 0],
    ]
)
# ---- end of fitted constants ---------------------------------------------------------------------------------


@dataclasses.dataclass
class StagingConfig(SettingsConfig):
    """Sleep staging settings (SI units, microvolts). :meth:`validate` lists what is wrong, if anything."""

    epoch_s: float = setting(30.0, "Length of a scored epoch (AASM: 30 s).", "s", 5.0, 120.0, read_only=True)
    hop_s: float = setting(
        30.0,
        "Time between successive score() calls of a participant: the transition prior spans it, and an epoch "
        "overlapping its predecessor counts as hop_s / epoch_s of new evidence.",
        "s",
        0.01,
        3600.0,
    )
    welch_segment_s: float = setting(4.0, "Welch segment length (50 % overlap, Hann window).", "s", 1.0, 30.0)
    window_s: float = setting(0.5, "Window of the quality checks.", "s", 0.1, 5.0)
    flat_ptp_uv: float = setting(
        1.0, "A window whose peak-to-peak is below this is flat (a whole flat epoch: disconnected).", "uV", 0.0, 100.0
    )
    clip_min_s: float = setting(
        0.02,
        "A channel holding its epoch's maximum or minimum value for this long (consecutive samples) is clipped.",
        "s",
        0.001,
        10.0,
    )
    line_noise_ratio: float = setting(
        0.02,
        "Line noise: 50/60 Hz (+-1 Hz) power in a window above this share of the epoch's 0.5-45 Hz power.",
        "",
        0.0,
        100.0,
        low_open=True,
    )
    movement_uv: float = setting(
        25.0, "Movement: 20-45 Hz (muscle) RMS in a window above this.", "uV", 0.0, 10000.0, low_open=True
    )
    max_amplitude_uv: float = setting(
        400.0, "Excessive amplitude: a sample farther than this from its channel's median.", "uV", 1.0, 100000.0
    )
    temperature: float = setting(
        1.0, "Divides the classifier's log evidence: > 1 trusts one epoch less.", "", 0.05, 20.0
    )
    transition_prior: bool = setting(
        True, "Filter with the stage transition prior across epochs (False: each epoch on its own)."
    )

    def cross_field_problems(self) -> list[str]:
        errors = []
        if self.welch_segment_s > self.epoch_s:
            errors.append(f"welch_segment_s ({self.welch_segment_s} s) must not exceed epoch_s ({self.epoch_s} s)")
        if self.window_s > self.epoch_s / 2:
            errors.append(f"window_s ({self.window_s} s) must be at most half of epoch_s ({self.epoch_s} s)")
        return errors


StagingConfig.__doc__ += attributes_doc(StagingConfig, " Read-only in the node.")


@dataclasses.dataclass
class EpochScores:
    """What :meth:`SleepStager.score` returns for one epoch of every participant (P participants).

    Attributes
    ----------
    stage : numpy.ndarray
        (P,) uint8 SleepStage codes; SleepStage.UNKNOWN where the epoch is unusable.
    probability : numpy.ndarray
        (P, 5) float32 stage probabilities, order W N1 N2 N3 REM (:data:`STAGES`), rows sum to 1; all 0 where
        UNKNOWN.
    band_power : numpy.ndarray
        (P, 6) float32 absolute band powers, uV^2 (:data:`BANDS` order), mean over channels; 0 where unusable.
    signal_quality : numpy.ndarray
        (P,) float32, 0 (unusable) .. 1 (clean); at most 0.25 where unusable.
    problem : list of str
        Per participant: "" when clean, else the reason it is unusable (one of :data:`PROBLEMS`).
    """

    stage: np.ndarray
    probability: np.ndarray
    band_power: np.ndarray
    signal_quality: np.ndarray
    problem: list[str]


class SleepStager:
    """Stages one epoch of every participant per :meth:`score` call; see the module docstring.

    Parameters
    ----------
    participants : int
        Number of participants P, >= 1.
    channels : int
        EEG channels per participant C, 1..64.
    sample_rate_hz : float
        Sample rate, Hz: at least 90 (Nyquist above the 45 Hz top of the gamma band), at most 10000.
    config : StagingConfig, optional
        Settings; None for the defaults.

    Raises
    ------
    ValueError
        For a sample rate it cannot use, bad counts or an invalid configuration, saying which and why.

    Attributes
    ----------
    epoch_samples : int
        Samples per channel of the epoch :meth:`score` takes (round(epoch_s * sample_rate_hz)).
    """

    def __init__(self, participants: int, channels: int, sample_rate_hz: float, config: StagingConfig | None = None):
        if isinstance(participants, bool) or not isinstance(participants, (int, np.integer)) or participants < 1:
            raise ValueError(f"participants must be an integer >= 1, got {participants!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 64:
            raise ValueError(f"channels must be an integer in [1, {MAX_CHANNELS}], got {channels!r}")
        try:
            fs = float(sample_rate_hz)
        except (TypeError, ValueError):
            raise ValueError(f"sample_rate_hz must be a number, got {sample_rate_hz!r}") from None
        if not math.isfinite(fs) or fs < MIN_SAMPLE_RATE_HZ:
            raise ValueError(
                f"sample_rate_hz {sample_rate_hz!r} cannot be staged: at least {MIN_SAMPLE_RATE_HZ:g} Hz is needed "
                f"(the Nyquist frequency must reach the {BANDS[-1][2]:g} Hz top of the gamma band)"
            )
        if fs > MAX_SAMPLE_RATE_HZ:
            raise ValueError(f"sample_rate_hz {fs:g} is above the {MAX_SAMPLE_RATE_HZ:g} Hz this stager handles")
        self.config = config if config is not None else StagingConfig()
        errors = self.config.validate()
        if errors:
            raise ValueError("invalid StagingConfig: " + "; ".join(errors))
        cfg = self.config
        self.participants, self.channels, self.sample_rate_hz = int(participants), int(channels), fs
        n = self.epoch_samples = round(cfg.epoch_s * fs)
        self._window = max(2, round(cfg.window_s * fs))
        starts = np.arange(0, n - self._window + 1, self._window)
        if starts[-1] + self._window < n:
            starts = np.append(starts, n - self._window)  # the tail, as one more (overlapping) window
        self._window_index = starts[:, None] + np.arange(self._window)  # (W, L)
        self._nperseg = min(n, round(cfg.welch_segment_s * fs))
        self._freqs = np.fft.rfftfreq(n, 1.0 / fs)
        duration = n / fs
        self._spindle = _Band((SPINDLE_BAND_HZ,), self._freqs, duration, ENVELOPE_RATE_HZ, False)
        self._slow = _Band((SLOW_WAVE_BAND_HZ,), self._freqs, duration, ENVELOPE_RATE_HZ, True)
        self._muscle = _Band((MUSCLE_BAND_HZ,), self._freqs, duration, ENVELOPE_RATE_HZ, False)
        # line noise at 50 and 60 Hz as aliased at this rate (one near DC would be the EEG itself: not checked)
        aliases = {round(abs(f - fs * round(f / fs)), 6) for f in LINE_FREQUENCIES_HZ}
        self._lines = sorted(f for f in aliases if f > 3 * LINE_HALF_WIDTH_HZ)
        self._clip_samples = max(2, math.ceil(cfg.clip_min_s * fs))
        weight = min(1.0, cfg.hop_s / cfg.epoch_s)
        self._evidence_scale = weight / cfg.temperature
        rate = TRANSITION_RATE_PER_HOUR / 3600.0
        generator = rate - np.diag(rate.sum(axis=1))
        self._transition = np.clip(linalg.expm(generator * cfg.hop_s), 0.0, None)  # (5, 5) rows: from
        self._transition /= self._transition.sum(axis=1, keepdims=True)
        self._log_prior = np.log(CLASS_PRIOR)
        self._belief = np.full((self.participants, len(STAGES)), 1.0 / len(STAGES))

    # ------------------------------------------------------------------------------------------ public
    def reset(self, participants=None) -> None:
        """Forget the epochs seen so far of ``participants`` (indices, a slice or a boolean mask; None: all)."""
        index = slice(None) if participants is None else participants
        self._belief[index] = 1.0 / len(STAGES)

    def score(self, epoch: np.ndarray) -> EpochScores:
        """Score one epoch of every participant and advance each one's transition prior.

        Parameters
        ----------
        epoch : array_like
            (P, C, epoch_samples) EEG, microvolts; may hold NaN or inf (that participant is then unusable).

        Returns
        -------
        EpochScores

        Raises
        ------
        ValueError
            When ``epoch`` is not numeric or not of shape (P, C, epoch_samples). Bad values never raise.
        """
        x = self._checked(epoch)
        assessment = self._assess(x)
        usable = assessment.usable
        with np.errstate(all="ignore"):
            evidence = self._log_evidence(assessment.features)
        belief = self._belief @ self._transition if self.config.transition_prior else np.full_like(self._belief, 0.2)
        post = np.log(np.maximum(belief, 1e-300)) + self._evidence_scale * np.where(usable[:, None], evidence, 0.0)
        post = np.exp(post - post.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        self._belief = np.where(usable[:, None], post, belief)  # unusable: the prior only moves on
        stage = np.where(usable, np.array(STAGES, np.uint8)[np.argmax(post, axis=1)], SleepStage.UNKNOWN)
        return EpochScores(
            stage=stage.astype(np.uint8),
            probability=np.where(usable[:, None], post, 0.0).astype(np.float32),
            band_power=np.where(usable[:, None], assessment.band_power, 0.0).astype(np.float32),
            signal_quality=np.where(usable, assessment.quality, np.minimum(assessment.quality, 0.25)).astype(
                np.float32
            ),
            problem=[PROBLEMS[c] if c < len(PROBLEMS) else "" for c in assessment.problem.tolist()],
        )

    def features(self, epoch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's input for one epoch, without touching any state.

        Returns
        -------
        features : numpy.ndarray
            (P, len(FEATURE_NAMES)) float64, :data:`FEATURE_NAMES` order; NaN where unusable.
        usable : numpy.ndarray
            (P,) bool: the epoch passed every quality check.
        """
        assessment = self._assess(self._checked(epoch))
        return assessment.features, assessment.usable

    # ------------------------------------------------------------------------------------------ internals
    def _checked(self, epoch) -> np.ndarray:
        try:
            x = np.asarray(epoch, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"epoch must be a numeric array: {exc}") from None
        want = (self.participants, self.channels, self.epoch_samples)
        if x.shape != want:
            raise ValueError(f"epoch must have shape (participants, channels, samples) = {want}, got {x.shape}")
        return x

    def _log_evidence(self, features: np.ndarray) -> np.ndarray:
        """log p(features | stage) up to a constant per participant: (P, 5)."""
        logits = ((features - FEATURE_MEAN) / FEATURE_SD) @ WEIGHTS.T + BIAS
        log_posterior = logits - _logsumexp(logits)
        return log_posterior - self._log_prior

    def _assess(self, x: np.ndarray) -> _Assessment:
        cfg, fs = self.config, self.sample_rate_hz
        finite = np.isfinite(x)
        with np.errstate(all="ignore"):
            # absurd values (beyond +-1 kV) are clipped so that sums and squares stay finite: they show up as
            # flat, clipped or excessive instead
            x = np.clip(np.where(finite, x, 0.0), -ABSURD_UV, ABSURD_UV)
            x -= x.mean(axis=-1, keepdims=True)
            windows = x[..., self._window_index]  # (P, C, W, L)
            window_ok = finite[..., self._window_index].all(axis=-1)
            window_top, window_bottom = windows.max(axis=-1), windows.min(axis=-1)  # (P, C, W)
            ptp = window_top - window_bottom
            top, bottom = x.max(axis=-1), x.min(axis=-1)
            tolerance = 1e-9 * (top - bottom)[..., None] + 1e-12
            at_top, at_bottom = x >= top[..., None] - tolerance, x <= bottom[..., None] + tolerance
            # a saturated amplifier holds its rail for consecutive samples; a periodic test signal only returns
            # to the same maximum now and then
            clipped = (_has_run(at_top, self._clip_samples) | _has_run(at_bottom, self._clip_samples)) & (
                top - bottom >= cfg.flat_ptp_uv
            )
            on_rail = (at_top | at_bottom)[..., self._window_index].any(axis=-1) & clipped[..., None]
            flat = (ptp < cfg.flat_ptp_uv) & ~on_rail
            disconnected = (top - bottom) < cfg.flat_ptp_uv
            # the largest |sample - median| of a window is at its top or its bottom (rounding is monotonic)
            median = np.median(x, axis=-1)[..., None]
            deviation = np.maximum(window_top - median, median - window_bottom)

            spectrum = np.fft.rfft(x, axis=-1)
            starts, n = self._window_index[:, 0], x.shape[-1]
            muscle = self._muscle.window_power(spectrum, n, starts, self._window)  # (P, C, W)
            freqs, psd = sps.welch(x, fs, window="hann", nperseg=self._nperseg, detrend=False, axis=-1)
            df = freqs[1] - freqs[0]
            eeg_power = psd[..., (freqs >= 0.5) & (freqs < BANDS[-1][2])].sum(-1) * df  # (P, C)
            # line noise: a narrow peak (LINE_PROMINENCE x the power density 1-3 Hz beside it) holding a share of
            # the EEG power; broadband muscle activity has no peak
            line_ratio = np.zeros(x.shape[:2])
            for f in self._lines:
                distance = np.abs(freqs - f)
                peak = psd[..., distance <= LINE_HALF_WIDTH_HZ].sum(-1) * df
                beside = np.median(psd[..., (distance > LINE_HALF_WIDTH_HZ) & (distance <= 3 * LINE_HALF_WIDTH_HZ)], -1)
                beside *= np.count_nonzero(distance <= LINE_HALF_WIDTH_HZ) * df
                share = np.where(peak > LINE_PROMINENCE * beside, (peak - beside) / np.maximum(eeg_power, 1e-12), 0.0)
                line_ratio = np.maximum(line_ratio, share)
            line_noise = line_ratio > cfg.line_noise_ratio  # (P, C): the whole epoch

            # per-channel problem codes, PROBLEMS order
            checks = np.stack(
                [
                    ~window_ok.all(-1),
                    disconnected,
                    flat.any(-1),
                    clipped,
                    line_noise,
                    (np.sqrt(muscle) > cfg.movement_uv).any(-1),
                    (deviation > cfg.max_amplitude_uv).any(-1),
                ]
            )  # (problems, P, C)
            channel_problem = np.where(checks.any(0), np.argmax(checks, axis=0), len(PROBLEMS))
            problem = channel_problem.min(axis=1)  # (P,)
            usable = problem == len(PROBLEMS)
            bad_window = (
                ~window_ok
                | flat
                | on_rail
                | line_noise[..., None]
                | (np.sqrt(muscle) > cfg.movement_uv)
                | (deviation > cfg.max_amplitude_uv)
                | disconnected[..., None]
            )
            clean_share = 1.0 - bad_window.mean(axis=(1, 2))
            closeness = np.stack(
                [
                    deviation.max(-1) / cfg.max_amplitude_uv,
                    np.sqrt(muscle.max(-1)) / cfg.movement_uv,
                    line_ratio / cfg.line_noise_ratio,
                    cfg.flat_ptp_uv / np.maximum(ptp.min(-1), 1e-12),
                ]
            ).max(axis=(0, 2))
            margin = np.clip((closeness - 0.5) / 0.5, 0.0, 1.0)
            quality = np.where(usable, 1.0 - 0.5 * margin**2, 0.25 * clean_share)

            mean_psd = psd.mean(axis=1)  # (P, F)
            band_power = np.stack(
                [mean_psd[:, (freqs >= lo) & (freqs < hi)].sum(-1) * df for _, lo, hi in BANDS], axis=-1
            )
            total = band_power[:, :5].sum(-1)
            slow = self._slow.analytic(spectrum, n).real  # (P, C, m) uV, at the band's rate
            size = max(1, round(self._slow.rate))
            swing = ndimage.maximum_filter1d(slow, size, axis=-1) - ndimage.minimum_filter1d(slow, size, axis=-1)
            slow_wave_fraction = (swing > SLOW_WAVE_PTP_UV).mean(axis=(1, 2))
            spindles = self._spindle_density(spectrum, n)
            floor = 1e-12  # keeps the logs finite for a band without power (total is > 0 unless flat)
            features = np.column_stack(
                [
                    np.log(np.maximum(band_power[:, :5] / total[:, None], floor)),
                    np.log10(np.maximum(total, floor)),
                    np.log(np.maximum(band_power[:, 5] / total, floor)),
                    slow_wave_fraction,
                    spindles,
                ]
            )
            features[~usable] = np.nan
        return _Assessment(usable, problem, quality, band_power, features)

    def _spindle_density(self, spectrum: np.ndarray, n: int) -> np.ndarray:
        """Spindles per minute, mean over channels: (P,)."""
        envelope = np.abs(self._spindle.analytic(spectrum, n))  # (P, C, m)
        threshold = SPINDLE_FACTOR * np.median(envelope, axis=-1, keepdims=True)
        above = envelope > threshold
        run = max(1, math.ceil(SPINDLE_MIN_S * self._spindle.rate))
        count = np.cumsum(np.pad(above, [(0, 0), (0, 0), (1, 0)]), axis=-1)
        full = (count[..., run:] - count[..., :-run]) == run  # a run of >= `run` samples starts covering here
        onsets = full[..., 0] + (full[..., 1:] & ~full[..., :-1]).sum(-1)
        return onsets.mean(axis=1) * 60.0 / (n / self.sample_rate_hz)


@dataclasses.dataclass
class _Assessment:
    usable: np.ndarray  # (P,) bool
    problem: np.ndarray  # (P,) index into PROBLEMS, len(PROBLEMS) when clean
    quality: np.ndarray  # (P,)
    band_power: np.ndarray  # (P, 6) uV^2
    features: np.ndarray  # (P, F)


class _Band:
    """Frequency bins of an epoch's rFFT (one or more ranges [lo, hi) Hz), turned into a low-rate time signal
    by a short inverse FFT of ``m`` bins (a power of 2 giving at least ``min_rate_hz``): sampled at ``rate`` =
    m / duration instead of the full rate, with no filtering.

    ``keep_frequency``: the bins keep their place, so the real part is the band-limited signal itself (m covers
    twice the band's top bin); otherwise they are moved down to bin 0, which keeps the envelope (the magnitude
    of the analytic signal) and needs m to cover only the band's width.
    """

    def __init__(self, ranges_hz: tuple, freqs: np.ndarray, duration_s: float, min_rate_hz: float, keep_frequency):
        self.bins = np.flatnonzero(np.any([(freqs >= lo) & (freqs < hi) for lo, hi in ranges_hz], axis=0))
        self.width_hz = self.bins.size / duration_s
        self.keep_frequency = keep_frequency
        span = 2 * (int(self.bins[-1]) + 1) if keep_frequency else self.bins.size
        self.m = 1 << max(1, math.ceil(math.log2(max(span, min_rate_hz * duration_s, 2))))
        self.rate = self.m / duration_s
        self._to = self.bins if keep_frequency else np.arange(self.bins.size)

    def analytic(self, spectrum: np.ndarray, n: int) -> np.ndarray:
        """The band's analytic signal (complex, uV; shifted down unless keep_frequency) at ``rate``: (..., m)."""
        short = np.zeros((*spectrum.shape[:-1], self.m), complex)
        short[..., self._to] = 2.0 * spectrum[..., self.bins]
        return np.fft.ifft(short, axis=-1) * (self.m / n)

    def window_power(self, spectrum: np.ndarray, n: int, starts: np.ndarray, window: int) -> np.ndarray:
        """Mean power (uV^2) of the band in the windows of ``window`` full-rate samples starting at ``starts``:
        (..., len(starts))."""
        power = np.abs(self.analytic(spectrum, n)) ** 2 / 2.0  # instantaneous power of the real band signal
        per = max(1, round(window * self.m / n))
        first = np.minimum(np.floor(starts * self.m / n).astype(np.int64), self.m - per)
        return power[..., first[:, None] + np.arange(per)].mean(axis=-1)


def _has_run(mask: np.ndarray, length: int) -> np.ndarray:
    """Whether ``mask`` (..., n) holds ``length`` consecutive True values along its last axis: (...).

    Only the rows with at least ``length`` True values can (a channel's extreme value is usually one sample):
    the others are not scanned."""
    found = np.zeros(mask.shape[:-1], bool)
    rows = np.count_nonzero(mask, axis=-1) >= length
    if rows.any():
        count = np.cumsum(np.pad(mask[rows], [(0, 0), (1, 0)]), axis=-1)
        found[rows] = ((count[..., length:] - count[..., :-length]) == length).any(axis=-1)
    return found


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1, keepdims=True)
    return top + np.log(np.exp(a - top).sum(axis=1, keepdims=True))
