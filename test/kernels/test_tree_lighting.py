"""The SleepTree renderer (lumina_nodes.kernels.tree_lighting): pulses without stutter, the scenes as specified,
the colour of the collective stage, and the brightness and rate limits for any input sequence."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumina_nodes.constants import SleepStage
from lumina_nodes.kernels.tree_lighting import (
    SCENE_CHOICES,
    SCENES,
    STAGE_COLOURS,
    LightingConfig,
    PulseTracker,
    SyncView,
    TreeRenderer,
)
from lumina_nodes.phase import TWO_PI, wrap_phase

FPS = 40.0


def view(t, r=0.95, frequency=1.0, clusters=None, plazas=None, phase=None):
    """A /sync/state at time t: the collective pulse at ``frequency``; ``clusters`` [(size, frequency)...]."""
    phase = TWO_PI * frequency * t if phase is None else phase
    clusters = clusters or [(100, frequency)]
    return SyncView(
        stamp=t,
        order_parameter=r,
        mean_phase=float(wrap_phase(phase)),
        collective_frequency=frequency,
        cluster_ids=np.arange(len(clusters)),
        cluster_sizes=np.array([c[0] for c in clusters], float),
        cluster_phases=np.array([wrap_phase(TWO_PI * c[1] * t) for c in clusters]),
        cluster_frequencies=np.array([c[1] for c in clusters], float),
        plaza_order=plazas or {},
    )


def dominant_frequencies(series, rate, count=1):
    """The ``count`` strongest spectral peaks (Hz) of ``series`` sampled at ``rate``."""
    x = np.asarray(series) - np.mean(series)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    frequencies = np.fft.rfftfreq(len(x), 1.0 / rate)
    peaks = [
        k for k in range(1, len(spectrum) - 1) if spectrum[k] >= spectrum[k - 1] and spectrum[k] >= spectrum[k + 1]
    ]
    peaks.sort(key=lambda k: -spectrum[k])
    return sorted(frequencies[k] for k in peaks[:count])


def run(renderer, seconds, views, start=0.0, fps=FPS):
    """Render ``seconds`` of frames; ``views(t)`` gives the state published at t (50 Hz) or None."""
    frames, t_state = [], start
    for k in range(int(seconds * fps)):
        t = start + k / fps
        while t_state <= t:
            v = views(t_state)
            if v is not None:
                renderer.update_sync(v)
            t_state += 1 / 50
        frames.append(renderer.render(t, 1 / fps))
    return frames


def test_the_pulse_is_predicted_to_the_frame_time_without_stutter():
    """States at 50 Hz stamped with jitter and phase noise, frames at 40 Hz with jitter: each frame's phase step
    matches the pulse's advance; rendering the last state's phase as it is stutters by a whole state period."""
    rng = np.random.default_rng(3)
    f = 0.9
    tracker = PulseTracker(gain=3.0)
    state_times = np.cumsum(np.full(1500, 1 / 50) + rng.uniform(-0.004, 0.004, 1500))
    frame_times = np.arange(1.0, 28.0, 1 / FPS) + rng.uniform(-0.003, 0.003, len(np.arange(1.0, 28.0, 1 / FPS)))
    rendered, naive, s = [], [], 0
    last = None
    for t in frame_times:
        while s < len(state_times) and state_times[s] <= t:
            last = (state_times[s], TWO_PI * f * state_times[s] + rng.normal(0, 0.01))
            tracker.observe(last[0], float(wrap_phase(last[1])), f)
            s += 1
        rendered.append(tracker.at(t)[0])
        naive.append(last[1])
    truth = TWO_PI * f * frame_times
    error = np.abs(wrap_phase(np.array(rendered) - truth))
    step_error = np.abs(wrap_phase(np.diff(rendered) - np.diff(truth)))
    naive_step_error = np.abs(wrap_phase(np.diff(naive) - np.diff(truth)))
    assert np.percentile(error[40:], 99) < 0.02, np.percentile(error, 99)
    assert step_error[40:].max() < 0.01, step_error.max()
    assert naive_step_error.max() > 0.08  # the stutter the prediction removes (a 20 ms state period at 0.9 Hz)


def test_a_new_stream_restarts_the_pulse_instead_of_dragging_it():
    tracker = PulseTracker(gain=3.0)
    tracker.observe(0.0, 0.0, 1.0)
    tracker.at(0.5)
    tracker.observe(0.5, 0.0, 1.0)  # half a cycle away from the prediction: a restarted synchronizer
    assert tracker.at(0.5)[0] == pytest.approx(0.0)


def test_harmony_breathes_at_the_collective_frequency_with_depth_by_the_order_parameter():
    depths = {}
    for r in (1.0, 0.3):
        renderer = TreeRenderer(["plaza_1"], [50], LightingConfig(crossfade_s=0.0))
        renderer.request_scene("harmony")
        frames = run(renderer, 20.0, lambda t, r=r: view(t, r=r, frequency=0.7))
        level = np.array([fr.level.mean() for fr in frames[80:]])
        assert dominant_frequencies(level, FPS) == [pytest.approx(0.7, abs=0.06)]
        depths[r] = level.max() - level.min()
        assert frames[-1].scene == "harmony" and frames[-1].pulse_frequency == 0.7
    assert depths[0.3] == pytest.approx(0.3 * depths[1.0], rel=0.1)


def test_chaos_shows_each_cluster_beating_at_its_own_frequency():
    renderer = TreeRenderer(["plaza_1", "plaza_2"], [200, 200], LightingConfig(crossfade_s=0.0))
    frames = run(renderer, 24.0, lambda t: view(t, r=0.4, clusters=[(600, 0.8), (400, 1.25)]))
    assert frames[-1].scene == "chaos"  # chosen from the state: two clusters reported
    levels = np.array([fr.level[:200].mean(axis=1) for fr in frames[80:]])  # first tree, per pixel
    # bands sized by the clusters' shares: pixels 0..119 follow cluster 0, 120..199 cluster 1
    assert dominant_frequencies(levels[:, 60], FPS) == [pytest.approx(0.8, abs=0.06)]
    assert dominant_frequencies(levels[:, 160], FPS) == [pytest.approx(1.25, abs=0.06)]
    assert np.allclose(levels[:, :120], levels[:, :1]) and np.allclose(levels[:, 120:], levels[:, 120:121])
    whole_tree = levels.mean(axis=1)
    assert dominant_frequencies(whole_tree, FPS, 2) == [pytest.approx(0.8, abs=0.06), pytest.approx(1.25, abs=0.06)]
    colours = frames[-1].level[:200]
    assert not np.allclose(colours[60] / colours[60].max(), colours[160] / colours[160].max(), atol=0.05)


def test_recovery_calms_each_plaza_as_it_relocks():
    renderer = TreeRenderer(["plaza_1", "plaza_2"], [100, 100], LightingConfig(crossfade_s=0.0))
    run(renderer, 3.0, lambda t: view(t, r=0.4, clusters=[(50, 0.8), (50, 1.2)]))
    assert renderer.scene == "chaos"
    # one cluster again; plaza_1 re-locked, plaza_2 not yet
    frames = run(renderer, 8.0, lambda t: view(t, r=0.8, plazas={"plaza_1": 0.97, "plaza_2": 0.4}), start=3.0)
    assert renderer.scene == "recovery"
    # the two-band look needs two clusters: give them to the chaos part through the state again
    frames = run(
        renderer,
        8.0,
        lambda t: view(t, r=0.8, clusters=[(50, 0.8), (50, 1.2)], plazas={"plaza_1": 0.97, "plaza_2": 0.4}),
        start=11.0,
    )
    renderer.request_scene("recovery")
    frames = run(
        renderer,
        8.0,
        lambda t: view(t, r=0.8, clusters=[(50, 0.8), (50, 1.2)], plazas={"plaza_1": 0.97, "plaza_2": 0.4}),
        start=19.0,
    )
    calm_tree = np.array([fr.level[:100, 2] for fr in frames[80:]])
    rift_tree = np.array([fr.level[100:, 2] for fr in frames[80:]])
    assert np.allclose(calm_tree, calm_tree[:, :1])  # uniform: breathing as one
    assert np.abs(rift_tree[:, 20] - rift_tree[:, 80]).max() > 0.05  # bands apart: the rift
    # plaza_2 re-locks: its tree calms too, and auto moves on to harmony
    renderer.request_scene("auto")
    run(renderer, 4.0, lambda t: view(t, r=0.95, plazas={"plaza_1": 0.97, "plaza_2": 0.95}), start=27.0)
    assert renderer.scene == "harmony"


def test_scenes_cross_fade_linearly():
    renderer = TreeRenderer(["plaza_1"], [10], LightingConfig(crossfade_s=4.0))
    run(renderer, 6.0, lambda t: view(t))
    renderer.request_scene("aftermath")
    frames = run(renderer, 4.0, lambda t: view(t), start=6.0)
    weights = np.array([fr.scene_weights for fr in frames])
    harmony, aftermath = SCENES.index("harmony"), SCENES.index("aftermath")
    assert weights[len(weights) // 2, aftermath] == pytest.approx(0.5, abs=0.02)
    assert np.all(np.diff(weights[:, aftermath]) >= 0) and weights[-1, aftermath] == pytest.approx(1.0, abs=0.01)
    assert np.allclose(weights.sum(axis=1), 1.0) and weights[-1, harmony] == pytest.approx(0.0, abs=0.01)


def test_colour_follows_the_plazas_collective_stage():
    config = LightingConfig(crossfade_s=0.0, colour_fade_s=2.0)
    renderer = TreeRenderer(["plaza_1", "plaza_2"], [10, 10], config)
    deep = np.eye(5)[SleepStage.N3]
    awake = np.eye(5)[SleepStage.W]
    for k in range(3):
        assert renderer.update_stage(f"p{k}", "plaza_1", 1.0, SleepStage.N3, deep)
    assert not renderer.update_stage("p9", "plaza_1", 1.0, SleepStage.UNKNOWN, np.zeros(5))
    assert not renderer.update_stage("p9", "plaza_1", 1.0, SleepStage.W, [np.nan, 0, 0, 0, 1])
    frames = run(renderer, 15.0, lambda t: view(t, r=0.0))  # r 0: no breath, the colour alone
    colour = frames[-1].level
    expected = STAGE_COLOURS[SleepStage.N3] / STAGE_COLOURS[SleepStage.N3].max()
    assert np.allclose(colour[0] / colour[0].max(), expected, atol=0.02)
    # plaza_2 has no sensor: it shows the city's stage (plaza_1's)
    assert np.allclose(colour[10] / colour[10].max(), expected, atol=0.02)
    renderer.update_stage("q0", "plaza_2", 15.0, SleepStage.W, awake)
    frames = run(renderer, 15.0, lambda t: view(t, r=0.0), start=15.0)
    wake = STAGE_COLOURS[SleepStage.W] / STAGE_COLOURS[SleepStage.W].max()
    assert np.allclose(frames[-1].level[10] / frames[-1].level[10].max(), wake, atol=0.02)


def test_without_state_the_trees_hold_a_steady_glow():
    renderer = TreeRenderer(["plaza_1"], [10], LightingConfig(crossfade_s=0.0, state_timeout_s=1.0))
    run(renderer, 4.0, lambda t: view(t))
    frames = run(renderer, 6.0, lambda t: None, start=4.0)
    level = np.array([fr.level.mean() for fr in frames])
    assert np.ptp(level[-60:]) < 1e-9 and level[-1] > 0.1


def test_unusable_states_are_refused_with_a_reason():
    renderer = TreeRenderer(["plaza_1"], [10], LightingConfig())
    assert renderer.update_sync(view(1.0, r=math.nan)) is not None
    bad = view(1.0)
    bad = SyncView(**{**vars(bad), "cluster_sizes": np.array([1.0, 2.0])})
    assert "lengths" in renderer.update_sync(bad)
    assert renderer.refused_states == 2 and renderer.sync is None
    with pytest.raises(ValueError, match="scene must be one of"):
        renderer.request_scene("disco")


def test_config_ranges_are_checked():
    assert LightingConfig().validate() == []
    problems = LightingConfig(max_brightness=1.5, gamma=0.5, frame_rate_hz=0.0).validate()
    assert len(problems) == 3 and any("max_brightness must be in [0, 1]" in p for p in problems)
    assert "max_brightness_rate : float" in LightingConfig.__doc__


finite = st.floats(-1e6, 1e6, allow_nan=False)
anything = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def states(draw):
    k = draw(st.integers(0, 4))
    return SyncView(
        stamp=draw(st.one_of(finite, anything)),
        order_parameter=draw(st.one_of(st.floats(0, 1), anything)),
        mean_phase=draw(st.one_of(finite, anything)),
        collective_frequency=draw(st.one_of(st.floats(-50, 50), anything)),
        cluster_ids=np.arange(k),
        cluster_sizes=np.array(draw(st.lists(st.floats(0, 1e9), min_size=k, max_size=k)), float),
        cluster_phases=np.array(draw(st.lists(finite, min_size=k, max_size=k)), float),
        cluster_frequencies=np.array(draw(st.lists(st.floats(-50, 50), min_size=k, max_size=k)), float),
        plaza_order={"plaza_1": draw(st.floats(0, 1)), "plaza_9": draw(st.floats(0, 1))},
    )


step_input = st.tuples(
    st.one_of(st.none(), states()),
    st.one_of(st.none(), st.sampled_from(SCENE_CHOICES)),
    st.one_of(finite, anything),  # node time: may jump, go backwards, be NaN
    st.one_of(st.floats(0, 0.2), anything),  # real time since the previous frame
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(step_input, min_size=1, max_size=40),
    max_brightness=st.floats(0.0, 1.0),
    rate=st.floats(0.01, 20.0),
    gamma=st.floats(1.0, 3.0),
)
def test_brightness_and_rate_limits_hold_for_any_input_sequence(steps, max_brightness, rate, gamma):
    config = LightingConfig(max_brightness=max_brightness, max_brightness_rate=rate, gamma=gamma, crossfade_s=0.5)
    renderer = TreeRenderer(["plaza_1", "plaza_2"], [7, 5], config)
    previous = np.zeros((12, 3))
    for state, scene, now, elapsed in steps:
        if state is not None:
            renderer.update_sync(state)
        if scene is not None:
            renderer.request_scene(scene)
        frame = renderer.render(now, elapsed)
        assert np.isfinite(frame.level).all()
        # the drive sent never exceeds the night-time maximum (up to the rounding to a byte)
        assert frame.rgb.max() <= math.floor(255 * max_brightness + 0.5)
        assert frame.level.max() <= max_brightness ** (1 / gamma) + 1e-12
        allowed = rate * min(max(elapsed, 0.0), 2.0 / config.frame_rate_hz) if math.isfinite(elapsed) else 0.0
        assert np.abs(frame.level - previous).max() <= allowed + 1e-12
        previous = frame.level
