"""SleepTree lighting (no rclpy): every tree's pixel colours, frame by frame, from the city's collective state.

:class:`TreeRenderer` renders all trees of a controller in one vectorised pass per frame:

1. **Pulses.** The collective pulse and each frequency cluster's pulse are tracked by a :class:`PulseTracker`:
   the last observation (stamp, phase, frequency) predicted forward to the frame time, which the rendered phase
   follows through a first-order pull (``pulse_gain``), so a pulse observed at 50 Hz with jitter and noise renders
   at 40 Hz without stutter.
2. **Colour.** Each plaza's colour is its participants' stage probabilities (:class:`CollectiveStage`) mixed
   over :data:`STAGE_COLOURS`, eased over ``colour_fade_s``; a plaza with no recent usable sample of its own
   shows the whole city's, and with none at all :data:`NO_STAGE_COLOUR`.
3. **Scenes** (:data:`SCENES`), each a perceived level and colour per pixel:

   - ``harmony``: every tree breathes with the collective phase; the breath's depth is ``breathing_depth``
     times the order parameter r.
   - ``chaos``: the disruption made visible: a tree's pixels are split into contiguous bands, one per cluster
     (sized by the cluster's share of the jewels, coloured by :data:`CLUSTER_COLOURS`), each pulsing at its
     cluster's own phase, so the beating between clusters shows.
   - ``recovery``: per plaza, chaos fading into harmony as the plaza's own order parameter climbs to
     ``lock_threshold``: plaza by plaza back to calm.
   - ``aftermath``: a warm, low glow with a shallow breath.

   Scenes cross-fade linearly over ``crossfade_s``. A requested scene of ``auto`` follows the synchronizer: chaos
   while it reports two or more clusters, then recovery until every plaza is locked again, then harmony.
   Without /sync/state for ``state_timeout_s`` the breathing fades out over the same time to a steady glow.
4. **Limits** (what a sleeper sees). Levels are perceived brightness in [0, 1]; the LED drive is
   ``level ** gamma``. Every channel's drive stays at or below ``max_brightness`` (the night-time maximum, as a
   fraction of full output), and a channel's level changes by at most ``max_brightness_rate`` per second of real
   time, over at most two frame periods per frame (a stalled frame does not become a jump). Non-finite inputs are
   refused before they reach a pixel.

Time: ``now`` is the node clock (pulses, fades: sim time follows the simulated night); ``elapsed_s`` is the
real time since the previous frame (the rate limit protects real eyes).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..constants import SleepStage
from ..phase import TWO_PI, wrap_phase
from ..settings import SettingsConfig, attributes_doc, setting

__all__ = [
    "CLUSTER_COLOURS",
    "NO_STAGE_COLOUR",
    "SCENES",
    "SCENE_CHOICES",
    "STAGE_COLOURS",
    "CollectiveStage",
    "Frame",
    "LightingConfig",
    "PulseTracker",
    "SyncView",
    "TreeRenderer",
]

#: Scenes a tree can show, in the order of :attr:`Frame.scene_weights`.
SCENES = ("harmony", "chaos", "recovery", "aftermath")
#: Values of a scene request: a scene, or ``auto`` (chosen from the synchronizer's state).
SCENE_CHOICES = ("auto", *SCENES)

#: Colour of each sleep stage (rows W, N1, N2, N3, REM: SleepStage order), RGB with the largest component 1.
STAGE_COLOURS = np.array(
    [
        [1.00, 0.62, 0.28],  # W: warm amber
        [0.40, 1.00, 0.65],  # N1: pale green
        [0.25, 0.62, 1.00],  # N2: sky blue
        [0.32, 0.30, 1.00],  # N3: deep indigo
        [0.78, 0.36, 1.00],  # REM: violet
    ]
)
#: Colour of a plaza without a recent usable Bio-Dream sample: moonlight.
NO_STAGE_COLOUR = np.array([0.55, 0.70, 1.00])
#: Colours of the chaos scene's cluster bands (cycled when there are more clusters).
CLUSTER_COLOURS = np.array(
    [
        [0.20, 0.90, 1.00],  # cyan
        [1.00, 0.25, 0.70],  # magenta
        [1.00, 0.70, 0.10],  # amber
        [0.45, 1.00, 0.30],  # green
    ]
)
AFTERMATH_COLOUR = np.array([1.00, 0.55, 0.22])
AFTERMATH_LEVEL = 0.55  # of the cap
AFTERMATH_DEPTH = 0.15
CHAOS_DEPTH = 0.7
# Recovery: a plaza starts to calm this far below lock_threshold and is fully calm at it.
RECOVERY_BAND = 0.15
# A pulse observation more than this far from the rendered phase restarts the tracker instead of pulling.
RESYNC_RAD = math.pi / 2


@dataclasses.dataclass
class LightingConfig(SettingsConfig):
    """Settings of the SleepTree renderer."""

    frame_rate_hz: float = setting(40.0, "Frames per second sent to the fixtures.", "Hz", 1.0, 200.0, read_only=True)
    max_brightness: float = setting(
        0.35, "Night-time maximum of every LED channel's drive, as a fraction of full output.", "", 0.0, 1.0
    )
    max_brightness_rate: float = setting(
        1.5,
        "Largest change of a channel's perceived level per second of real time (no flashes for sleepers).",
        "1/s",
        0.01,
        20.0,
    )
    gamma: float = setting(2.2, "LED gamma: the drive sent is the perceived level ** gamma.", "", 1.0, 3.0)
    crossfade_s: float = setting(4.0, "Length of a cross-fade between scenes.", "s", 0.0, 300.0)
    breathing_depth: float = setting(
        0.5, "Depth of the harmony breath at order parameter 1, as a fraction of the level.", "", 0.0, 1.0
    )
    pulse_gain: float = setting(
        3.0, "Rate at which the rendered pulse is pulled onto the predicted pulse.", "1/s", 0.1, 100.0
    )
    state_timeout_s: float = setting(
        2.0, "Without /sync/state for this long the breathing fades to a steady glow.", "s", 0.1, 600.0
    )
    lock_threshold: float = setting(
        0.9, "Plaza order parameter at which the recovery scene shows the plaza calm again.", "", 0.0, 1.0
    )
    stage_timeout_s: float = setting(
        120.0, "A Bio-Dream sample older than this no longer colours its plaza.", "s", 1.0, 86400.0
    )
    colour_fade_s: float = setting(
        20.0, "Time constant of a plaza's colour following its collective stage.", "s", 0.0, 3600.0
    )

    def cap_level(self) -> float:
        """The perceived level whose drive is ``max_brightness``."""
        return self.max_brightness ** (1.0 / self.gamma)


LightingConfig.__doc__ += attributes_doc(LightingConfig)


@dataclasses.dataclass(frozen=True)
class SyncView:
    """What the renderer uses of one /sync/state message (plain values; the node converts the message).

    Attributes
    ----------
    stamp : float
        Time of the state, node clock, s.
    order_parameter : float
        r of all active jewels, 0..1.
    mean_phase : float
        Collective phase, rad.
    collective_frequency : float
        Hz.
    cluster_ids, cluster_sizes : ndarray, shape (k,)
        Cluster index and jewel count of each frequency cluster.
    cluster_phases, cluster_frequencies : ndarray, shape (k,)
        Mean phase (rad) and centre frequency (Hz) of each cluster.
    plaza_order : dict of str to float
        Order parameter of each plaza, by driver id.
    """

    stamp: float
    order_parameter: float
    mean_phase: float
    collective_frequency: float
    cluster_ids: np.ndarray
    cluster_sizes: np.ndarray
    cluster_phases: np.ndarray
    cluster_frequencies: np.ndarray
    plaza_order: dict

    def problem(self) -> str | None:
        """Why the view cannot be used (non-finite or out-of-range values), or None."""
        scalars = (self.stamp, self.order_parameter, self.mean_phase, self.collective_frequency)
        if not all(math.isfinite(x) for x in scalars):
            return "non-finite stamp, order parameter, phase or frequency"
        arrays = (self.cluster_sizes, self.cluster_phases, self.cluster_frequencies)
        if any(len(a) != len(self.cluster_ids) for a in arrays):
            return "cluster arrays of different lengths"
        if not all(np.isfinite(a).all() for a in arrays) or (self.cluster_sizes < 0).any():
            return "non-finite or negative cluster figures"
        if not all(math.isfinite(r) for r in self.plaza_order.values()):
            return "non-finite plaza order parameter"
        return None


class PulseTracker:
    """A pulse rendered smoothly between observations.

    The observation (stamp t_o, phase, frequency f) predicts the phase at t as phase + 2 pi f (t - t_o); the
    rendered phase advances at f and is pulled onto the prediction at ``gain`` per second, so noise and jitter in
    the observations move it gently instead of in steps. An observation further than :data:`RESYNC_RAD` from the
    rendered phase (a new stream) restarts it there.
    """

    def __init__(self, gain: float):
        self.gain = gain
        self._observation = None  # (stamp, phase, frequency)
        self._rendered = None  # (time, phase)

    def observe(self, stamp: float, phase: float, frequency: float) -> None:
        self._observation = (stamp, phase, frequency)

    def at(self, t: float) -> tuple[float, float]:
        """Rendered (phase rad in [-pi, pi), frequency Hz) at node time ``t``; t should not go backwards."""
        if self._observation is None:
            return 0.0, 0.0
        stamp, phase, frequency = self._observation
        predicted = phase + TWO_PI * frequency * (t - stamp)
        if not math.isfinite(predicted):  # a time too far from the observation to say anything
            return (0.0 if self._rendered is None else self._rendered[1]), frequency
        if self._rendered is None or t < self._rendered[0]:
            rendered = predicted
        else:
            dt = t - self._rendered[0]
            free = self._rendered[1] + TWO_PI * frequency * dt
            error = float(wrap_phase(predicted - free))
            rendered = predicted if abs(error) > RESYNC_RAD else free + min(1.0, self.gain * dt) * error
        rendered = float(wrap_phase(rendered))
        self._rendered = (t, rendered)
        return rendered, frequency


class CollectiveStage:
    """The collective sleep stage of each plaza: the mean stage probabilities of its participants' latest usable
    samples no older than ``timeout_s``."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._latest = {}  # participant id -> (plaza, stamp, probability (5,))

    def update(self, participant_id: str, plaza: str, stamp: float, stage: int, probability) -> bool:
        """Take one sample; False (and nothing kept) when it is unusable (stage UNKNOWN or bad probabilities)."""
        p = np.asarray(probability, float)
        if stage == SleepStage.UNKNOWN or p.shape != (5,) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            return False
        self._latest[participant_id] = (plaza, stamp, p / p.sum())
        return True

    def probability(self, plaza: str | None, now: float) -> np.ndarray | None:
        """Mean stage probabilities (5,) of the plaza's recent participants (of every participant when ``plaza``
        is None), or None when there are none."""
        recent = [
            p
            for q, stamp, p in self._latest.values()
            if (plaza is None or q == plaza) and 0.0 <= now - stamp <= self.timeout_s
        ]
        return np.mean(recent, axis=0) if recent else None


@dataclasses.dataclass
class Frame:
    """One rendered frame of every tree.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (pixels, 3)
        Drive of every pixel of every tree (trees concatenated in map order), R, G, B.
    level : ndarray, shape (pixels, 3)
        Perceived level of every channel, 0..1 (``rgb / 255 == level ** gamma`` up to rounding).
    scene : str
        The scene being faded to.
    scene_weights : ndarray, shape (4,)
        Weight of each of :data:`SCENES` in this frame (sums to 1).
    pulse_phase, pulse_frequency : float
        Rendered collective pulse (rad, Hz) at the frame time.
    """

    rgb: np.ndarray
    level: np.ndarray
    scene: str
    scene_weights: np.ndarray
    pulse_phase: float
    pulse_frequency: float


class TreeRenderer:
    """Renders the frames of a set of trees (see the module docstring).

    Parameters
    ----------
    tree_plazas : sequence of str
        The plaza (driver id) of each tree.
    tree_pixels : sequence of int
        Pixel count of each tree.
    config : LightingConfig
        Validated settings; replace :attr:`config` to change them live.
    """

    def __init__(self, tree_plazas, tree_pixels, config: LightingConfig):
        self.config = config
        counts = np.asarray(tree_pixels, np.int64)
        self.plazas = sorted(set(tree_plazas))
        self.tree_plaza = np.array([self.plazas.index(p) for p in tree_plazas], np.int64)  # (T,)
        self.pixel_tree = np.repeat(np.arange(len(counts)), counts)  # (P,)
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        # position of each pixel along its tree, in [0, 1)
        self.pixel_position = (np.arange(counts.sum()) - first[self.pixel_tree]) / counts[self.pixel_tree]
        self.collective = PulseTracker(config.pulse_gain)
        self.clusters = {}  # cluster index -> PulseTracker
        self.stages = CollectiveStage(config.stage_timeout_s)
        self.sync = None  # last accepted SyncView
        self.auto_scene = "harmony"
        self.requested = "auto"
        self.weights = np.eye(len(SCENES))[0]
        self.plaza_colour = np.tile(NO_STAGE_COLOUR, (len(self.plazas), 1))
        self.level = np.zeros((counts.sum(), 3))
        self.time = None  # node time of the last frame
        self._no_bands = np.zeros(counts.sum(), np.int64)
        self._band_key, self._band_cache = None, None
        self.refused_states = 0

    # ------------------------------------------------------------------------------------------ inputs
    def update_sync(self, view: SyncView) -> str | None:
        """Take one synchronizer state; returns why it was refused, or None."""
        problem = view.problem()
        if problem is not None:
            self.refused_states += 1
            return problem
        self.sync = view
        self.collective.gain = self.config.pulse_gain
        self.collective.observe(view.stamp, view.mean_phase, view.collective_frequency)
        ids = [int(i) for i in view.cluster_ids]
        for gone in set(self.clusters) - set(ids):
            del self.clusters[gone]
        for k, cluster in enumerate(ids):
            tracker = self.clusters.setdefault(cluster, PulseTracker(self.config.pulse_gain))
            tracker.observe(view.stamp, float(view.cluster_phases[k]), float(view.cluster_frequencies[k]))
        self._update_auto_scene(view)
        return None

    def _update_auto_scene(self, view: SyncView) -> None:
        if len(view.cluster_ids) >= 2:
            self.auto_scene = "chaos"
        elif self.auto_scene in ("chaos", "recovery"):
            calm = view.order_parameter >= self.config.lock_threshold and all(
                r >= self.config.lock_threshold for r in view.plaza_order.values()
            )
            self.auto_scene = "harmony" if calm else "recovery"

    def update_stage(self, participant_id, plaza, stamp, stage, probability) -> bool:
        """Take one Bio-Dream sample (see :meth:`CollectiveStage.update`)."""
        self.stages.timeout_s = self.config.stage_timeout_s
        return self.stages.update(participant_id, plaza, stamp, stage, probability)

    def request_scene(self, scene: str) -> None:
        """Fade to ``scene`` (one of :data:`SCENE_CHOICES`)."""
        if scene not in SCENE_CHOICES:
            raise ValueError(f"scene must be one of {', '.join(SCENE_CHOICES)}, got {scene!r}")
        self.requested = scene

    @property
    def scene(self) -> str:
        return self.auto_scene if self.requested == "auto" else self.requested

    # ------------------------------------------------------------------------------------------ frame
    def render(self, now: float, elapsed_s: float) -> Frame:
        """The frame at node time ``now``, ``elapsed_s`` real seconds after the previous frame.

        Every scene is uniform over a (tree, cluster band) segment, so scenes are rendered on that small grid and
        expanded to pixels once; the rate limit and gamma run per pixel.
        """
        config = self.config
        if not math.isfinite(now):
            now = 0.0 if self.time is None else self.time
        node_dt = 0.0 if self.time is None or not now > self.time else now - self.time
        self.time = now
        self._fade_scenes(node_dt)
        self._fade_colours(now, node_dt)
        live = self._liveness(now)
        phase, frequency = self.collective.at(now)
        bands, band_phases = self._bands(now)
        grid = np.zeros((len(self.tree_plaza), len(band_phases), 3))
        for s, weight in enumerate(self.weights):
            if weight > 0:
                colour, level = getattr(self, f"_{SCENES[s]}")(phase, band_phases, live)
                grid += weight * colour * level[..., None]
        cap = config.cap_level()
        # refused states keep non-finite values out; this keeps any left (a pulse far from its stamp) off the pixels
        grid = np.clip(np.nan_to_num(grid * cap, nan=0.0, posinf=0.0, neginf=0.0), 0.0, cap)
        target = grid.reshape(-1, 3)[self.pixel_tree * len(band_phases) + bands]
        frame_period = 1.0 / config.frame_rate_hz
        elapsed = float(elapsed_s) if math.isfinite(elapsed_s) else 0.0
        step = config.max_brightness_rate * min(max(elapsed, 0.0), 2.0 * frame_period)
        change = np.clip(target - self.level, -step, step, out=target)
        self.level += change
        np.minimum(self.level, cap, out=self.level)
        rgb = np.rint(255.0 * self.level**config.gamma).astype(np.uint8)
        return Frame(rgb, self.level.copy(), self.scene, self.weights.copy(), phase, frequency)

    def _bands(self, now: float):
        """Cluster band of every pixel (P,) and the rendered phase of each band (B,): one band per cluster while
        two or more are reported, sized by the clusters' shares of the jewels; otherwise one band."""
        if self.sync is None or len(self.clusters) < 2:
            return self._no_bands, np.zeros(1)
        order = np.argsort(self.sync.cluster_ids)
        sizes = self.sync.cluster_sizes[order].astype(float)
        key = tuple(sizes)
        if key != self._band_key:
            share = np.cumsum(sizes) / sizes.sum() if sizes.sum() > 0 else np.arange(1, len(sizes) + 1) / len(sizes)
            self._band_cache = np.minimum(np.searchsorted(share, self.pixel_position, side="right"), len(sizes) - 1)
            self._band_key = key
        phases = np.array([self.clusters[int(i)].at(now)[0] for i in self.sync.cluster_ids[order]])
        return self._band_cache, phases

    def _fade_scenes(self, dt: float) -> None:
        target = np.array([s == self.scene for s in SCENES], float)
        if self.config.crossfade_s <= 0:
            self.weights = target
            return
        step = dt / self.config.crossfade_s
        weights = np.where(target > 0, np.minimum(self.weights + step, 1.0), np.maximum(self.weights - step, 0.0))
        self.weights = weights / weights.sum()

    def _fade_colours(self, now: float, dt: float) -> None:
        target = np.empty_like(self.plaza_colour)
        city = self.stages.probability(None, now)  # for a plaza without a sensor of its own
        for q, plaza in enumerate(self.plazas):
            p = self.stages.probability(plaza, now)
            p = city if p is None else p
            target[q] = NO_STAGE_COLOUR if p is None else p @ STAGE_COLOURS
        fade = 1.0 if self.config.colour_fade_s <= 0 else min(1.0, dt / self.config.colour_fade_s)
        self.plaza_colour += fade * (target - self.plaza_colour)

    def _liveness(self, now: float) -> float:
        """1 while /sync/state is fresh, falling to 0 over state_timeout_s after it stops."""
        if self.sync is None:
            return 0.0
        timeout = self.config.state_timeout_s
        return float(np.clip(2.0 - (now - self.sync.stamp) / timeout, 0.0, 1.0))

    # Each scene returns the colour (T, B, 3) and level (T, B) of every (tree, band) segment.
    @staticmethod
    def _breath(phase, depth):
        """Level of a breath: 1 at the crest (phase 0), 1 - depth at the trough."""
        return 1.0 - depth * 0.5 * (1.0 - np.cos(phase))

    def _order(self) -> float:
        return 0.0 if self.sync is None else float(np.clip(self.sync.order_parameter, 0.0, 1.0))

    def _tree_colour(self, bands):
        return np.broadcast_to(self.plaza_colour[self.tree_plaza][:, None, :], (len(self.tree_plaza), bands, 3))

    def _harmony(self, phase, band_phases, live):
        depth = self.config.breathing_depth * self._order() * live
        shape = (len(self.tree_plaza), len(band_phases))
        return self._tree_colour(len(band_phases)), np.full(shape, self._breath(phase, depth))

    def _chaos(self, phase, band_phases, live):
        pulses = band_phases if len(band_phases) > 1 else np.array([phase])
        level = np.broadcast_to(self._breath(pulses, CHAOS_DEPTH * live), (len(self.tree_plaza), len(band_phases)))
        band_colour = CLUSTER_COLOURS[np.arange(len(band_phases)) % len(CLUSTER_COLOURS)]
        return 0.5 * (self._tree_colour(len(band_phases)) + band_colour[None]), level

    def _recovery(self, phase, band_phases, live):
        calm_colour, calm_level = self._harmony(phase, band_phases, live)
        rift_colour, rift_level = self._chaos(phase, band_phases, live)
        city = self._order()
        order = np.array([self.sync.plaza_order.get(p, city) if self.sync else 0.0 for p in self.plazas])
        calm = np.clip((order - (self.config.lock_threshold - RECOVERY_BAND)) / RECOVERY_BAND, 0.0, 1.0)
        calm = (calm * calm * (3.0 - 2.0 * calm))[self.tree_plaza][:, None]  # smoothstep, (T, 1)
        colour = calm[..., None] * calm_colour + (1.0 - calm[..., None]) * rift_colour
        return colour, calm * calm_level + (1.0 - calm) * rift_level

    def _aftermath(self, phase, band_phases, live):
        shape = (len(self.tree_plaza), len(band_phases))
        level = np.full(shape, AFTERMATH_LEVEL * self._breath(phase, AFTERMATH_DEPTH * live))
        return 0.5 * (self._tree_colour(len(band_phases)) + AFTERMATH_COLOUR), level
