"""Sleep staging kernel (lumina_nodes/kernels/sleep_staging.py): settings, bad configuration and input, every
artifact kind flagged instead of staged, band-power units, the transition prior and reset, and staging accuracy
on a held-out simulated night (lumina_nodes/models/eeg.py)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lumina_nodes.constants import SleepStage
from lumina_nodes.kernels.sleep_staging import (
    BANDS,
    FEATURE_NAMES,
    PROBLEMS,
    STAGES,
    TUNING_SEEDS,
    SleepStager,
    StagingConfig,
)
from lumina_nodes.models.eeg import (
    ARTIFACT_BLINK,
    ARTIFACT_CLIPPING,
    ARTIFACT_FLAT,
    ARTIFACT_LINE_NOISE,
    ARTIFACT_MOVEMENT,
    ARTIFACT_NONE,
    EPOCH_S,
    SleepEegConfig,
    SleepEegSimulator,
)

NO_ARTIFACTS = dict(
    blinks_per_hour=0, movements_per_hour=0, flat_per_hour=0, clipping_per_hour=0, line_noise_per_hour=0
)
HELD_OUT_SEED = 7  # not in TUNING_SEEDS, nor the bench's held-out seeds
# The bench measures agreement 0.987, kappa 0.980 on seeds 1-3 (bench/biodream_staging.py); one seed of two
# participants varies more, so the floors sit a few points lower.
AGREEMENT_FLOOR, KAPPA_FLOOR = 0.93, 0.90


def noise(shape, rms=20.0, seed=0):
    return np.random.default_rng(seed).normal(0.0, rms, shape)


def assert_well_formed(scores, participants):
    assert scores.stage.dtype == np.uint8 and scores.stage.shape == (participants,)
    assert scores.probability.dtype == np.float32 and scores.probability.shape == (participants, 5)
    assert scores.band_power.dtype == np.float32 and scores.band_power.shape == (participants, 6)
    assert scores.signal_quality.dtype == np.float32 and scores.signal_quality.shape == (participants,)
    assert len(scores.problem) == participants
    assert np.isfinite(scores.probability).all() and np.isfinite(scores.band_power).all()
    assert ((scores.signal_quality >= 0) & (scores.signal_quality <= 1)).all()
    unknown = scores.stage == SleepStage.UNKNOWN
    assert np.all(scores.probability[unknown] == 0) and np.all(scores.band_power[unknown] == 0)
    assert np.allclose(scores.probability[~unknown].sum(1), 1.0, atol=1e-5)
    assert np.all(np.isin(scores.stage[~unknown], STAGES))
    assert all((p == "") == (not u) for p, u in zip(scores.problem, unknown, strict=True))
    assert all(p in PROBLEMS for p in scores.problem if p)
    assert np.all(scores.signal_quality[unknown] <= 0.25) and np.all(scores.signal_quality[~unknown] >= 0.5)


# ------------------------------------------------------------------------------------------------ settings
def test_every_field_has_a_setting_that_validate_enforces():
    assert StagingConfig().validate() == []
    for field, item in StagingConfig.settings():
        bad = "yes" if item.low is None else item.high * 2 + 1
        assert any(field.name in p for p in dataclasses.replace(StagingConfig(), **{field.name: bad}).validate())
    assert any("welch_segment_s" in p for p in StagingConfig(epoch_s=10.0, welch_segment_s=20.0).validate())
    assert any("window_s" in p for p in StagingConfig(epoch_s=8.0, window_s=5.0).validate())


@pytest.mark.parametrize(
    "args, message",
    [
        ((2, 2, 80.0), "at least 90 Hz"),
        ((2, 2, 89.9), "Nyquist"),
        ((2, 2, float("nan")), "cannot be staged"),
        ((2, 2, "fast"), "must be a number"),
        ((2, 2, 50_000.0), "above"),
        ((0, 2, 256.0), "participants"),
        ((2, 0, 256.0), "channels"),
        ((2, 65, 256.0), "channels"),
        ((2, 2, 256.0, StagingConfig(max_amplitude_uv=-1.0)), "max_amplitude_uv"),
    ],
)
def test_unusable_configuration_is_a_clear_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        SleepStager(*args)


@pytest.mark.parametrize("fs, samples", [(90.0, 2700), (100.0, 3000), (250.0, 7500), (256.0, 7680), (1000.0, 30000)])
def test_epoch_samples_at_usable_rates(fs, samples):
    stager = SleepStager(2, 1, fs)
    assert stager.epoch_samples == samples
    assert_well_formed(stager.score(noise((2, 1, samples))), 2)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "shape", [(3, 2), (2, 2, 7680), (3, 1, 7680), (3, 2, 7679), (3, 2, 7680, 1), (3, 2, 0)], ids=str
)
def test_wrong_shapes_are_a_clear_value_error(shape):
    with pytest.raises(ValueError, match=r"shape \(participants, channels, samples\) = \(3, 2, 7680\)"):
        SleepStager(3, 2, 256.0).score(np.zeros(shape))


def test_non_numeric_input_is_a_clear_value_error():
    stager = SleepStager(1, 1, 256.0)
    with pytest.raises(ValueError, match="numeric"):
        stager.score(np.full((1, 1, 7680), "x", dtype=object))


def test_non_finite_and_dead_channels_are_unknown_never_a_crash():
    stager = SleepStager(6, 2, 256.0)
    x = noise((6, 2, 7680))
    x[0] = np.nan  # every sample
    x[1, 1, 100] = np.nan  # one sample of one channel
    x[2, 0, 5000:] = np.inf
    x[3] = 0.0  # amplifier off
    x[4, 1] = 1e300  # absurd
    scores = stager.score(x)
    assert_well_formed(scores, 6)
    assert scores.problem[:5] == ["non_finite", "non_finite", "non_finite", "disconnected", "disconnected"]
    assert scores.signal_quality[0] == 0.0 and scores.signal_quality[3] == 0.0
    assert scores.stage[5] != SleepStage.UNKNOWN and scores.problem[5] == ""  # its neighbours do not matter
    assert 0.0 < scores.signal_quality[1] <= 0.25  # most of its windows were fine


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        np.float64,
        (2, 1, 2700),
        elements=st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e308])
        ),
    )
)
def test_any_numbers_give_well_formed_scores(x):
    stager = SleepStager(2, 1, 90.0)
    for _ in range(2):  # and leave a state that the next epoch can use
        assert_well_formed(stager.score(x), 2)


# ------------------------------------------------------------------------------------------------ artifacts
@pytest.fixture(scope="module")
def artifact_runs():
    """For each artifact kind, 3 participants x 40 min with only that artifact, at a high rate: per epoch the
    seconds of artifact (ground truth) and the scores."""
    rates = {
        ARTIFACT_BLINK: ("blinks_per_hour", 120.0),
        ARTIFACT_MOVEMENT: ("movements_per_hour", 60.0),
        ARTIFACT_FLAT: ("flat_per_hour", 12.0),
        ARTIFACT_CLIPPING: ("clipping_per_hour", 60.0),
        ARTIFACT_LINE_NOISE: ("line_noise_per_hour", 5.0),
    }
    runs = {}
    for kind, (name, rate) in rates.items():
        sim = SleepEegSimulator(3, 2, SleepEegConfig(**{**NO_ARTIFACTS, name: rate}), seed=50 + kind)
        stager = SleepStager(3, 2, sim.sample_rate_hz)
        covered, scores = [], []
        for e in range(80):
            scores.append(stager.score(sim.read(stager.epoch_samples)))
            t = e * EPOCH_S + np.arange(0.0, EPOCH_S, 0.01)
            covered.append((sim.artifact_at(t) == kind).sum(-1) * 0.01)
        runs[kind] = (np.array(covered), scores)
    return runs


EXPECTED_PROBLEMS = {
    ARTIFACT_BLINK: {"amplitude", "clipped"},  # frontal blinks of the largest kind reach the amplifier rail
    ARTIFACT_MOVEMENT: {"movement", "amplitude", "clipped"},
    ARTIFACT_FLAT: {"flat", "disconnected"},
    ARTIFACT_CLIPPING: {"clipped"},
    ARTIFACT_LINE_NOISE: {"line_noise"},
}


@pytest.mark.parametrize(
    "kind", [ARTIFACT_BLINK, ARTIFACT_MOVEMENT, ARTIFACT_FLAT, ARTIFACT_CLIPPING, ARTIFACT_LINE_NOISE]
)
def test_each_artifact_kind_is_flagged_not_staged(artifact_runs, kind):
    covered, scores = artifact_runs[kind]
    stage = np.array([s.stage for s in scores])
    quality = np.array([s.signal_quality for s in scores])
    problem = np.array([s.problem for s in scores])
    # seconds of the artifact inside the epoch that make it detectable: a blink's peak; a weak line-noise
    # episode must hold 2 % of the epoch's EEG power (line_noise_ratio) to be told from mains hum
    hit = covered >= {ARTIFACT_BLINK: 0.3, ARTIFACT_LINE_NOISE: 5.0}.get(kind, 1.0)
    assert hit.sum() >= 20
    assert np.all(stage[hit] == SleepStage.UNKNOWN), problem[hit & (stage != SleepStage.UNKNOWN)]
    assert np.all(quality[hit] <= 0.25)
    assert set(problem[hit]) <= EXPECTED_PROBLEMS[kind]
    assert kind != ARTIFACT_FLAT or "disconnected" in set(problem[covered >= EPOCH_S])
    clean = covered == 0
    assert np.mean(stage[clean] != SleepStage.UNKNOWN) > 0.97  # the rest of the night is still staged
    assert np.median(quality[clean]) > 0.9


def test_line_noise_is_found_where_it_aliases():
    """At 100 Hz, 60 Hz mains aliases to 40 Hz: still line noise, not muscle."""
    config = SleepEegConfig(
        sample_rate_hz=100.0, **{**NO_ARTIFACTS, "line_noise_per_hour": 6.0}, line_frequency_hz=60.0
    )
    sim = SleepEegSimulator(4, 1, config, seed=3)
    stager = SleepStager(4, 1, 100.0)
    flagged = []
    for e in range(120):
        scores = stager.score(sim.read(stager.epoch_samples))
        full = sim.artifact_at(e * EPOCH_S + np.arange(0.0, EPOCH_S, 0.5)).min(-1) == ARTIFACT_LINE_NOISE
        flagged += [scores.problem[p] for p in np.flatnonzero(full)]
    assert len(flagged) >= 10 and set(flagged) == {"line_noise"}


# ------------------------------------------------------------------------------------------------ band powers
def test_band_power_is_absolute_uv2_per_band():
    fs, n = 256.0, 7680
    t = np.arange(n) / fs
    x = np.empty((len(BANDS), 1, n))
    rng = np.random.default_rng(1)
    centres = [2.0, 6.0, 10.0, 13.5, 22.0, 38.0]  # one sinusoid (amplitude 20 uV: 200 uV^2) per band
    for b, f in enumerate(centres):
        x[b, 0] = 20.0 * np.sin(2 * np.pi * f * t + 0.3) + rng.normal(0.0, 0.5, n)
    scores = SleepStager(len(BANDS), 1, fs, StagingConfig(transition_prior=False)).score(x)
    assert scores.problem == [""] * len(BANDS)
    expected = np.eye(len(BANDS)) * 200.0
    assert np.allclose(scores.band_power, expected, atol=6.0), scores.band_power.round(1)


def test_mean_over_channels():
    x = noise((1, 2, 7680), seed=4)
    x[0, 1] *= 2.0
    both = SleepStager(1, 2, 256.0).score(x).band_power
    each = [SleepStager(1, 1, 256.0).score(x[:, [c]]).band_power for c in range(2)]
    assert np.allclose(both, (each[0] + each[1]) / 2, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ state
@pytest.fixture(scope="module")
def epochs_by_stage():
    """One artifact-free epoch of each stage (truth from the simulator), participant 0 of a held-out seed."""
    sim = SleepEegSimulator(1, 2, SleepEegConfig(**NO_ARTIFACTS), seed=HELD_OUT_SEED)
    found = {}
    for e in range(480):
        x = sim.read(round(EPOCH_S * sim.sample_rate_hz))
        stage = int(sim.stage_at((e + 0.5) * EPOCH_S)[0])
        if int(sim.stage_at(e * EPOCH_S)[0]) == stage:  # no ramp from the previous stage
            found.setdefault(stage, x)
    assert set(found) == set(STAGES)
    return found


def test_transition_prior_smooths_and_reset_forgets(epochs_by_stage):
    n2, rem = epochs_by_stage[SleepStage.N2], epochs_by_stage[SleepStage.REM]
    stager = SleepStager(2, 2, 256.0, StagingConfig(temperature=8.0))  # weak evidence: the prior shows
    for _ in range(10):
        stager.score(np.concatenate([n2, n2]))
    after_n2 = stager.score(np.concatenate([rem, rem])).probability
    fresh = SleepStager(2, 2, 256.0, StagingConfig(temperature=8.0)).score(np.concatenate([rem, rem])).probability
    assert after_n2[0, 2] > fresh[0, 2] + 0.05  # N2 history keeps N2 probable
    stager.reset([0])
    reset = stager.score(np.concatenate([rem, rem])).probability
    assert np.allclose(reset[0], fresh[0], atol=1e-6)  # participant 0 forgot ...
    assert not np.allclose(reset[1], fresh[1], atol=1e-3)  # ... participant 1 did not
    memoryless = SleepStager(1, 2, 256.0, StagingConfig(transition_prior=False))
    first = memoryless.score(rem).probability
    for _ in range(5):
        memoryless.score(n2)
    assert np.allclose(memoryless.score(rem).probability, first)


def test_unusable_epochs_let_the_prior_move_on(epochs_by_stage):
    n3 = epochs_by_stage[SleepStage.N3]
    stager = SleepStager(1, 2, 256.0, StagingConfig(temperature=8.0))
    for _ in range(5):
        stager.score(n3)
    before = stager._belief.copy()
    assert stager.score(np.full_like(n3, np.nan)).stage[0] == SleepStage.UNKNOWN
    assert np.allclose(stager._belief, before @ stager._transition)


def test_participants_do_not_affect_each_other(epochs_by_stage):
    order = [SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM]
    together = SleepStager(5, 2, 256.0)
    alone = [SleepStager(1, 2, 256.0) for _ in order]
    for shift in range(3):
        epoch = np.concatenate([epochs_by_stage[order[(i + shift) % 5]] for i in range(5)])
        joint = together.score(epoch)
        for i, stager in enumerate(alone):
            single = stager.score(epoch[[i]])
            assert joint.stage[i] == single.stage[0]
            assert np.allclose(joint.probability[i], single.probability[0], atol=1e-6)


def test_hop_scales_the_prior_and_the_evidence(epochs_by_stage):
    n2, rem = epochs_by_stage[SleepStage.N2], epochs_by_stage[SleepStage.REM]
    # evidence: an epoch overlapping its predecessor by all but hop_s counts hop_s / epoch_s
    odds = []
    for hop in (30.0, 1.0):
        p = SleepStager(1, 2, 256.0, StagingConfig(hop_s=hop, transition_prior=False)).score(rem).probability[0]
        odds.append(np.log(p[4] / p[2]))
    assert odds[0] > 3.0 and odds[1] == pytest.approx(odds[0] / 30.0, rel=1e-3)
    # prior: after a stretch of N2, one new epoch of REM moves a 30 s hop a long way, a 1 s hop only a little
    epoch_hop, second_hop = SleepStager(1, 2, 256.0), SleepStager(1, 2, 256.0, StagingConfig(hop_s=1.0))
    for stager in (epoch_hop, second_hop):
        for _ in range(30):
            stager.score(n2)
    assert epoch_hop.score(rem).stage[0] == SleepStage.REM
    assert second_hop.score(rem).probability[0, 4] < 0.5
    for _ in range(60):
        late = second_hop.score(rem)
    assert late.stage[0] == SleepStage.REM


def test_spindle_and_slow_wave_features_count_what_they_should():
    """Known graphoelements on background noise: 6 spindles (13 Hz, 1 s, 30 uV) in 30 s are 12 per minute;
    1 Hz waves of 120 uV peak to peak over 12 s of the epoch are a slow-wave fraction of about 0.4."""
    fs, n = 256.0, 7680
    t = np.arange(n) / fs
    background = noise((1, 1, n), rms=3.0, seed=8)
    spindles = background.copy()
    for onset in (2.0, 7.0, 12.0, 17.0, 22.0, 27.0):
        inside = (t >= onset) & (t < onset + 1.0)
        spindles[0, 0, inside] += 30.0 * np.sin(np.pi * (t[inside] - onset)) ** 2 * np.sin(2 * np.pi * 13.0 * t[inside])
    slow = background.copy()
    slow[0, 0, (t >= 9.0) & (t < 21.0)] += 60.0 * np.sin(2 * np.pi * 1.0 * t[(t >= 9.0) & (t < 21.0)])
    stager = SleepStager(1, 1, fs)
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    features = {
        name: stager.features(x)[0][0] for name, x in (("noise", background), ("spindles", spindles), ("slow", slow))
    }
    assert features["spindles"][column["spindles_per_min"]] == pytest.approx(12.0)
    assert features["noise"][column["spindles_per_min"]] <= 2.0
    assert features["slow"][column["slow_wave_fraction"]] == pytest.approx(0.4, abs=0.05)
    assert features["noise"][column["slow_wave_fraction"]] == 0.0


# ------------------------------------------------------------------------------------------------ accuracy
def test_staging_accuracy_on_a_held_out_night():
    assert HELD_OUT_SEED not in TUNING_SEEDS
    sim = SleepEegSimulator(2, 1, seed=HELD_OUT_SEED)
    stager = SleepStager(2, 1, sim.sample_rate_hz)
    truth, staged, artifact = [], [], []
    for e in range(960):
        staged.append(stager.score(sim.read(stager.epoch_samples)).stage)
        truth.append(sim.stage_at((e + 0.5) * EPOCH_S))
        artifact.append(sim.artifact_between(e * EPOCH_S, (e + 1) * EPOCH_S))
    truth, staged, artifact = (np.array(a).ravel() for a in (truth, staged, artifact))
    clean = artifact == ARTIFACT_NONE
    t, s = truth[clean], staged[clean]
    agreement = np.mean(t == s)
    labels = np.r_[np.array(STAGES), SleepStage.UNKNOWN]
    p_true = np.array([np.mean(t == c) for c in labels])
    p_staged = np.array([np.mean(s == c) for c in labels])
    expected = np.sum(p_true * p_staged)
    kappa = (agreement - expected) / (1 - expected)
    assert agreement >= AGREEMENT_FLOOR and kappa >= KAPPA_FLOOR, (agreement, kappa)
    for stage in STAGES:  # every stage is found, not just the common ones
        assert np.mean(s[t == stage] == stage) > 0.6, stage
    assert np.mean(staged[~clean] == SleepStage.UNKNOWN) > 0.9  # artifact epochs are not staged
