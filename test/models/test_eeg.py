"""Synthetic sleep EEG (lumina_nodes/models/eeg.py): settings, determinism and streaming, the hypnogram's
statistics, stage-typical content measured on the signal (independently of the stager), artifact timeline and
signatures."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import signal

from lumina_nodes.constants import SleepStage
from lumina_nodes.models import eeg
from lumina_nodes.models.eeg import (
    ARTIFACT_BLINK,
    ARTIFACT_CLIPPING,
    ARTIFACT_FLAT,
    ARTIFACT_LINE_NOISE,
    ARTIFACT_MOVEMENT,
    ARTIFACT_NONE,
    EPOCH_S,
    W_EYES_OPEN,
    SleepEegConfig,
    SleepEegSimulator,
)

W, N1, N2, N3, REM = SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM
NO_ARTIFACTS = dict(
    blinks_per_hour=0, movements_per_hour=0, flat_per_hour=0, clipping_per_hour=0, line_noise_per_hour=0
)
FS = 128.0  # content does not depend on the rate; half the samples of 256 Hz keep the suite fast


# ------------------------------------------------------------------------------------------------ settings
def test_every_field_has_a_setting_that_validate_enforces():
    assert SleepEegConfig().validate() == []
    for field, item in SleepEegConfig.settings():
        too_high = dataclasses.replace(SleepEegConfig(), **{field.name: item.high * 2 + 1})
        assert any(field.name in p for p in too_high.validate()), field.name
    assert "Attributes" in SleepEegConfig.__doc__ and "cycle_minutes" in SleepEegConfig.__doc__


def test_cross_field_checks():
    assert any("50 or 60" in p for p in SleepEegConfig(line_frequency_hz=55.0).validate())
    assert SleepEegConfig(line_frequency_hz=60.0).validate() == []
    busy = SleepEegConfig(line_noise_per_hour=30.0, flat_per_hour=10.0)
    assert any("cover" in p for p in busy.validate())


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 2), "participants"),
        ((2, 0), "channels"),
        ((2, 17), "channels"),
        ((2, 2, None, -1), "seed"),
        ((2, 2, SleepEegConfig(sample_rate_hz=50.0)), "sample_rate_hz"),
        ((2.5, 2), "participants"),
    ],
)
def test_bad_arguments_are_a_clear_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        SleepEegSimulator(*args)


# ------------------------------------------------------------------------------------------------ streaming
def test_reading_in_pieces_equals_one_read_and_seeds_repeat():
    config = SleepEegConfig(sample_rate_hz=256.0, blinks_per_hour=600.0, movements_per_hour=200.0)
    whole = SleepEegSimulator(3, 2, config, seed=5).read(40_000)
    sim = SleepEegSimulator(3, 2, config, seed=5)
    pieces = [sim.read(k) for k in (0, 1, 7, 2559, 2560, 2561, 1, 10_000, 12_311, 10_000)]
    assert np.array_equal(np.concatenate(pieces, axis=-1), whole)
    assert sim.time == pytest.approx(40_000 / 256.0)
    assert whole.dtype == np.float64 and whole.shape == (3, 2, 40_000)
    assert not np.array_equal(SleepEegSimulator(3, 2, config, seed=6).read(40_000), whole)


def test_a_read_of_a_few_samples_renders_at_most_a_piece_and_draws_random_numbers_in_proportion():
    # the node reads ~13 samples every 50 ms: no read may synthesise a whole block (10 s) at once
    config = SleepEegConfig(movements_per_hour=100.0)  # muscle noise: random numbers beyond the background's
    sim = SleepEegSimulator(8, 2, config, seed=3)
    assert sim.piece == 64 and sim.block == 2560
    sim.read(13)  # the first read draws the first block's random numbers (and a share of the second's)
    per_sample = sim.normals_drawn / sim.block
    for _ in range(4 * sim.block // 13):  # across block boundaries
        synthesised, drawn = sim.synthesised, sim.normals_drawn
        sim.read(13)
        assert sim.synthesised - synthesised <= sim.piece
        assert sim.synthesised - sim.time * sim.sample_rate_hz < sim.piece  # rendered ahead: under a piece
        assert sim.normals_drawn - drawn <= 1.5 * per_sample * sim.piece + 1
    assert sim.normals_drawn > 4 * sim.block * per_sample * 0.8  # the blocks' numbers were drawn, ahead


def test_ground_truth_does_not_depend_on_how_or_when_it_is_asked():
    t = np.arange(0.0, 12 * 3600.0, 7.0)
    a = SleepEegSimulator(4, 2, seed=9)
    late_first = (a.stage_at(11.9 * 3600.0), a.artifact_at(11.9 * 3600.0))
    a.read(256 * 60)
    b = SleepEegSimulator(4, 2, seed=9)
    stages_b, artifacts_b = b.stage_at(t), b.artifact_at(t)
    assert np.array_equal(a.stage_at(t), stages_b) and np.array_equal(a.artifact_at(t), artifacts_b)
    assert np.array_equal(late_first[0], b.stage_at(11.9 * 3600.0))
    assert stages_b.shape == (4, t.size) and stages_b.dtype == np.uint8
    assert a.stage_at(100.0).shape == (4,) and a.artifact_at(100.0).shape == (4,)
    # a participant's night depends on the seed and its index only, not on the group's size
    assert np.array_equal(SleepEegSimulator(1, 1, seed=9).stage_at(t)[0], stages_b[0])


# ------------------------------------------------------------------------------------------------ hypnogram
@pytest.fixture(scope="module")
def hypnograms():
    """Ground truth of 40 participants x 8 h, per epoch (no signal needed)."""
    sim = SleepEegSimulator(40, 1, seed=21)
    centres = (np.arange(960) + 0.5) * EPOCH_S
    return sim.stage_at(centres)


def test_cycles_last_about_90_minutes_with_individual_variation(hypnograms):
    spacing, per_person = [], []
    for night in hypnograms:
        rem = night == REM
        ends = np.flatnonzero(rem[:-1] & ~rem[1:])
        # each cycle ends with its REM period; REM interrupted by < 10 min (an arousal) is one period
        ends = ends[np.r_[np.diff(ends) > 20, True]]
        gaps = np.diff(ends) * EPOCH_S / 60.0
        spacing += gaps.tolist()
        per_person.append(gaps.mean())
    spacing = np.array(spacing)
    assert len(spacing) > 100
    assert 82.0 < np.median(spacing) < 98.0, np.median(spacing)
    assert 3.0 < np.std(per_person) < 20.0  # people differ, but everyone cycles


def test_stage_shares_and_their_course_through_the_night(hypnograms):
    share = np.bincount(hypnograms.ravel(), minlength=5) / hypnograms.size
    assert 0.02 < share[W] < 0.12 and 0.02 < share[N1] < 0.10
    assert 0.40 < share[N2] < 0.65 and 0.10 < share[N3] < 0.25 and 0.15 < share[REM] < 0.30, share
    first, last = hypnograms[:, :320], hypnograms[:, -320:]
    assert np.mean(first == N3) > 4 * np.mean(last == N3)  # deep sleep early
    assert np.mean(last == REM) > 1.5 * np.mean(first == REM)  # REM grows later
    assert np.all(hypnograms[:, 0] == W)  # the night starts awake (sleep-onset latency)


# ------------------------------------------------------------------------------------------------ content
@pytest.fixture(scope="module")
def night():
    """3 participants x 2 channels x 4.5 h without artifacts: per epoch Welch spectra and the signal."""
    sim = SleepEegSimulator(3, 2, SleepEegConfig(sample_rate_hz=FS, **NO_ARTIFACTS), seed=31)
    n_epochs = 540
    per = int(EPOCH_S * FS)
    x = sim.read(n_epochs * per).reshape(3, 2, n_epochs, per).transpose(2, 0, 1, 3)  # (E, P, C, n)
    centres = (np.arange(n_epochs) + 0.5) * EPOCH_S
    content = sim.content_at(centres).T  # (E, P)
    freqs, psd = signal.welch(x, FS, nperseg=int(4 * FS), axis=-1)
    return {"x": x, "content": content, "freqs": freqs, "psd": psd, "sim": sim}


def band(night, lo, hi, channel=0):
    f = night["freqs"]
    return night["psd"][..., channel, (f >= lo) & (f < hi)].sum(-1) * (f[1] - f[0])  # (E, P) uV^2


def test_n3_has_high_amplitude_slow_waves_and_much_more_delta_than_rem(night):
    delta = band(night, 0.5, 4.0)
    content = night["content"]
    assert np.median(delta[content == N3]) > 8 * np.median(delta[content == REM])
    assert np.median(delta[content == N3]) > 3 * np.median(delta[content == N2])
    # AASM: N3 when >= 20 % of the epoch holds 0.5-2 Hz waves >= 75 uV peak to peak
    sos = signal.butter(4, [0.5, 2.0], "bandpass", fs=FS, output="sos")
    slow = signal.sosfiltfilt(sos, night["x"][..., 0, :], axis=-1)  # (E, P, n)
    windows = slow[..., : (slow.shape[-1] // int(FS)) * int(FS)].reshape(*slow.shape[:2], -1, int(FS))
    ptp = windows.max(-1) - windows.min(-1)
    slow_wave_share = (ptp > 75.0).mean(-1)
    assert np.mean(slow_wave_share[content == N3] >= 0.2) > 0.6
    assert np.mean(slow_wave_share[content == N2] >= 0.2) < 0.05
    assert np.mean(slow_wave_share[content == REM] >= 0.2) == 0.0


def spindles_per_minute(x):
    """Independent spindle count: 11-16 Hz Hilbert envelope above 3x its median for 0.5-2 s."""
    sos = signal.butter(4, [11.0, 16.0], "bandpass", fs=FS, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x, axis=-1), axis=-1))
    above = envelope > 3.0 * np.median(envelope, axis=-1, keepdims=True)
    edges = np.diff(above.astype(np.int8), axis=-1)
    count = np.zeros(x.shape[:-1])
    for idx in np.ndindex(*x.shape[:-1]):  # per epoch: a loop over epochs, not samples
        starts, stops = np.flatnonzero(edges[idx] == 1), np.flatnonzero(edges[idx] == -1)
        stops = stops[stops > (starts[0] if starts.size else -1)]
        length = (stops[: starts.size] - starts[: stops.size]) / FS
        count[idx] = np.sum((length >= 0.5) & (length <= 2.5))
    return count * 60.0 / (x.shape[-1] / FS)


def test_spindles_in_n2(night):
    content = night["content"]
    density = spindles_per_minute(night["x"][..., 0, :])  # (E, P)
    assert np.mean(density[content == N2]) > 2.0
    assert np.mean(density[content == N2]) > 3 * np.mean(density[content == REM])
    assert np.mean(density[content == N2]) > 3 * np.mean(density[content == W])
    sigma = band(night, 12.0, 15.0) / band(night, 0.5, 30.0)
    assert np.median(sigma[content == N2]) > 1.5 * np.median(sigma[content == REM])


def test_k_complexes_in_n2(night):
    """Large sharp negative deflections (0.5-4 Hz trough < -70 uV, then a positive rebound) per minute."""
    content = night["content"]
    sos = signal.butter(4, [0.5, 4.0], "bandpass", fs=FS, output="sos")
    y = signal.sosfiltfilt(sos, night["x"][..., 0, :], axis=-1)
    troughs = (y[..., 1:-1] < -70.0) & (y[..., 1:-1] <= y[..., :-2]) & (y[..., 1:-1] < y[..., 2:])
    rate = troughs.sum(-1) * 2.0  # per minute
    assert np.mean(rate[content == N2]) > 0.5
    assert np.mean(rate[content == N2]) > 5 * np.mean(rate[content == REM])
    assert np.mean(rate[content == N2]) > 5 * np.mean(rate[content == N1])


def test_alpha_in_relaxed_wake_theta_in_n1_low_amplitude_rem(night):
    content = night["content"]
    total = band(night, 0.5, 30.0)
    alpha, theta = band(night, 8.0, 12.0) / total, band(night, 4.0, 8.0) / total
    assert np.median(alpha[content == W]) > 2 * np.median(alpha[content == N1])
    assert np.median(alpha[content == W]) > 2 * np.median(alpha[content == REM])
    assert np.median(theta[content == N1]) > 1.3 * np.median(theta[content == W])
    assert np.median(theta[content == REM]) > 1.3 * np.median(theta[content == N2])
    assert np.median(total[content == REM]) < 0.6 * np.median(total[content == N2])
    # the alpha peak sits at each participant's own alpha frequency
    f = night["freqs"]
    for p, person in enumerate(night["sim"]._nights):
        eyes_closed = content[:, p] == W
        mean_psd = night["psd"][eyes_closed, p, 0].mean(0)
        in_alpha = (f >= 7.0) & (f < 13.0)
        assert abs(f[in_alpha][np.argmax(mean_psd[in_alpha])] - person.alpha_hz) <= 0.5


def test_background_is_one_over_f_and_alpha_is_posterior(night):
    f, content = night["freqs"], night["content"]
    fit = (f >= 2.0) & (f <= 30.0)
    for state in (W, N1, N2, N3, REM):
        mean_psd = night["psd"][content == state][:, 0].mean(axis=0)
        slope = np.polyfit(np.log(f[fit]), np.log(mean_psd[fit]), 1)[0]
        assert -3.5 < slope < -0.7, (state, slope)
    wake = content == W
    occipital_like, frontal = band(night, 8.0, 12.0, channel=1), band(night, 8.0, 12.0, channel=0)
    assert np.median(frontal[wake]) > np.median(occipital_like[wake])  # channel 1 is frontal: less alpha
    slow_front, slow_central = band(night, 0.5, 2.0, channel=1), band(night, 0.5, 2.0, channel=0)
    assert np.median(slow_front[content == N3]) > np.median(slow_central[content == N3])  # slow waves frontal


def test_eyes_open_wake_has_less_alpha_and_more_muscle():
    sim = SleepEegSimulator(40, 1, SleepEegConfig(sample_rate_hz=FS, eyes_closed_fraction=0.5, **NO_ARTIFACTS), 41)
    x = sim.read(int(10 * 60 * FS))[:, 0]  # the first 10 minutes: sleep-onset wake
    content = sim.content_at(60.0)
    awake = sim.content_at(np.arange(20) * EPOCH_S + 15).max(axis=1) != 0
    assert np.all(np.isin(content, (W, W_EYES_OPEN))) and not awake.all()
    f, psd = signal.welch(x[:, : int(120 * FS)], FS, nperseg=int(4 * FS), axis=-1)
    alpha = psd[:, (f >= 8) & (f < 12)].sum(-1) / psd[:, (f >= 0.5) & (f < 30)].sum(-1)
    muscle = psd[:, (f >= 30) & (f < 45)].sum(-1)
    closed, opened = content == W, content == W_EYES_OPEN
    assert closed.any() and opened.any()
    assert np.median(alpha[closed]) > 1.5 * np.median(alpha[opened])
    assert np.median(muscle[opened]) > 1.5 * np.median(muscle[closed])


# ------------------------------------------------------------------------------------------------ artifacts
def test_artifact_rates_follow_the_configuration():
    config = SleepEegConfig(
        blinks_per_hour=20, movements_per_hour=10, flat_per_hour=2, clipping_per_hour=5, line_noise_per_hour=1
    )
    sim = SleepEegSimulator(10, 2, config, seed=3)
    t = np.arange(0.0, 24 * 3600.0, 0.05)
    codes = sim.artifact_at(t)
    hours = 10 * 24.0
    for kind, rate in enumerate(config.artifact_rates()):
        if not kind:
            continue
        starts = np.sum((codes[:, 1:] == kind) & (codes[:, :-1] != kind))
        # one artifact at a time: the realised rate is rate / (1 + total rate x mean duration)
        busy = sum(r * sum(eeg.ARTIFACT_DURATION_S[k]) / 2 for k, r in enumerate(config.artifact_rates())) / 3600
        expected = rate * hours / (1 + busy)
        assert abs(starts - expected) < 4 * math.sqrt(expected) + 2, (kind, starts, expected)
    assert np.mean(codes == ARTIFACT_NONE) > 0.8
    no = SleepEegSimulator(2, 1, SleepEegConfig(**NO_ARTIFACTS), seed=3)
    assert not no.artifact_at(t).any() and not no.artifact_between(0.0, 24 * 3600.0).any()


@pytest.mark.parametrize(
    "kind, rate_name",
    [
        (ARTIFACT_BLINK, "blinks_per_hour"),
        (ARTIFACT_MOVEMENT, "movements_per_hour"),
        (ARTIFACT_FLAT, "flat_per_hour"),
        (ARTIFACT_CLIPPING, "clipping_per_hour"),
        (ARTIFACT_LINE_NOISE, "line_noise_per_hour"),
    ],
)
def test_each_artifact_has_its_signature_where_the_timeline_says(kind, rate_name):
    fs = 256.0
    rate = {ARTIFACT_FLAT: 15.0, ARTIFACT_LINE_NOISE: 5.0}.get(kind, 60.0)  # per hour; long kinds less often
    config = SleepEegConfig(**{**NO_ARTIFACTS, rate_name: rate})
    sim = SleepEegSimulator(3, 2, config, seed=kind)
    n = int(1200 * fs)
    x = sim.read(n)
    active = sim.artifact_at(np.arange(n) / fs)  # (P, n)
    assert set(np.unique(active)) == {ARTIFACT_NONE, kind}
    inside, outside = active == kind, active == ARTIFACT_NONE
    assert inside.sum() > fs  # at least a second of it in 20 minutes
    level = config.clipping_level_uv
    if kind == ARTIFACT_BLINK:
        assert x[:, 1][inside].max() > 400 and np.abs(x[:, 0][outside]).max() < 300
    elif kind == ARTIFACT_MOVEMENT:
        hf = np.abs(np.diff(x[:, 0], axis=-1))
        assert np.median(hf[inside[:, 1:]]) > 5 * np.median(hf[outside[:, 1:]])
    elif kind == ARTIFACT_FLAT:  # one channel held constant
        flat_channel = np.abs(np.diff(x, axis=-1)) == 0.0  # (P, C, n - 1)
        assert np.all(flat_channel.any(axis=1)[inside[:, 1:] & inside[:, :-1]])
        assert not flat_channel.any(axis=1)[outside[:, 1:] & outside[:, :-1]].any()
    elif kind == ARTIFACT_CLIPPING:  # every channel at the rail
        assert np.all(np.abs(x)[np.broadcast_to(inside[:, None], x.shape)] == level)
        assert np.abs(x[np.broadcast_to(outside[:, None], x.shape)]).max() < level
    else:
        p = int(np.argmax(inside.sum(1)))
        segment = x[p, 0, inside[p]][: int(20 * fs)]
        f, psd = signal.welch(segment, fs, nperseg=int(2 * fs))
        assert abs(f[np.argmax(psd)] - config.line_frequency_hz) <= 0.5
    # artifact_between: the first artifact overlapping an interval
    starts = np.arange(0.0, 1200.0, EPOCH_S)
    overlapped = sim.artifact_between(starts, starts + EPOCH_S)
    by_samples = inside[:, : len(starts) * int(EPOCH_S * fs)].reshape(3, len(starts), -1).any(-1)
    assert np.array_equal(overlapped == kind, by_samples)
