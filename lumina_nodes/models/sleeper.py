"""Sleeper + Sleep Jewel oscillator model, vectorised over the K jewels of one plaza (no rclpy).

Units and shapes (K = number of jewels; every per-jewel array has shape (K,)):

* time ``t``: seconds, supplied by the caller through ``advance(dt)`` (sim time may run faster than real time)
* ``phase``: float64 rad, wrapped to [-pi, pi)
* ``natural``: float64 Hz, the wearer's natural pulse frequency now (base + stage drift + drill shift)
* ``offset``: float64 Hz, correction in effect (slews towards ``offset_target`` at ``max_slew`` Hz/s)
* ``offset_target``: float64 Hz, commanded offset after clamping to +-``comfort_limit``
* ``frequency``: float64 Hz = natural + offset (the pulse rate the jewel is emitting)
* ``stage``: int8 codes 0..4 = W, N1, N2, N3, REM
* ``cycle_pos``: float64 in [0, 1), position in the wearer's ultradian cycle; ``period``: float64 s
* ``intensity``: float32 0..1; ``battery``: float64 percent

Dynamics over a sub-step h (at most ``max_step`` s; ``advance`` splits larger dt):

* cycle_pos += h / period (mod 1); stage = template segment holding cycle_pos (sampled at the start of the
  sub-step, so a stage boundary is resolved to within ``max_step``)
* natural relaxes exponentially (time constant ``tau_natural``) to target = base + gain * shift[stage] + drill
* offset moves linearly towards offset_target at ``max_slew`` (never jumps)
* phase += 2 pi * (exact integral of natural + offset over h) + sqrt(2 D h) * N(0, 1)  (phase diffusion D)

The natural-frequency, offset and cycle updates are exact for any h; only the phase noise realisation
depends on how dt is split. Deterministic for a given seed and sequence of calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..constants import SleepStage
from ..phase import TWO_PI, wrap_phase

MIN_BAND_HZ = 0.1  # lowest natural frequency a drill may move a band to

W, N1, N2, N3, REM = SleepStage.W, SleepStage.N1, SleepStage.N2, SleepStage.N3, SleepStage.REM


@dataclass
class SleeperParams:
    # population of natural pulse frequencies
    natural_mean: float = 1.0  # Hz
    natural_sd: float = 0.05  # Hz, between wearers
    # ultradian cycle
    cycle_mean: float = 90.0 * 60.0  # s
    cycle_sd: float = 8.0 * 60.0  # s, between wearers
    cycle_min: float = 60.0 * 60.0  # s, floor of the individual period
    # stage template, in order through one cycle: (stage, fraction of the cycle)
    template: Sequence = ((W, 0.03), (N1, 0.07), (N2, 0.25), (N3, 0.25), (N2, 0.10), (REM, 0.30))
    # where each wearer starts in the cycle: uniform in [start_pos_lo, start_pos_hi)
    start_pos_lo: float = 0.0
    start_pos_hi: float = 0.05
    # natural frequency drift by stage, Hz, indexed by stage code W,N1,N2,N3,REM; scaled per wearer by gain
    stage_shift: Sequence = (0.06, 0.03, 0.0, -0.05, 0.04)
    gain_sd: float = 0.2
    tau_natural: float = 30.0  # s
    # phase diffusion, rad^2/s
    phase_diffusion: float = 0.002
    # device behaviour
    comfort_limit: float = 0.25  # Hz
    max_slew: float = 0.5  # Hz/s
    # battery: initial percent uniform in [lo, hi), drain %/hour uniform in [lo, hi)
    battery_lo: float = 55.0
    battery_hi: float = 100.0
    drain_lo: float = 3.0
    drain_hi: float = 8.0
    # integration
    max_step: float = 1.0  # s
    # drill: spread of natural frequencies inside one group, as a fraction of the group separation
    band_spread: float = 0.15


class SleeperModel:
    """K sleepers wearing K jewels. See the module docstring for units and shapes."""

    def __init__(self, n: int, seed: int = 0, params: SleeperParams | None = None, t0: float = 0.0):
        if int(n) < 0:
            raise ValueError("n must be >= 0")
        self.n = int(n)
        self.p = params or SleeperParams()
        p = self.p
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.t = float(t0)
        k = self.n
        self.base = rng.normal(p.natural_mean, p.natural_sd, k)
        self.gain = np.clip(rng.normal(1.0, p.gain_sd, k), 0.0, None)
        self.period = np.maximum(rng.normal(p.cycle_mean, p.cycle_sd, k), p.cycle_min)
        self.cycle_pos = rng.uniform(p.start_pos_lo, p.start_pos_hi, k)
        self.phase = rng.uniform(-math.pi, math.pi, k)
        self.offset = np.zeros(k)
        self.offset_target = np.zeros(k)
        self.intensity = np.full(k, 0.5, dtype=np.float32)
        self.battery = rng.uniform(p.battery_lo, p.battery_hi, k)
        self.drain = rng.uniform(p.drain_lo, p.drain_hi, k) / 3600.0
        self.drill_delta = np.zeros(k)
        self.drill_group = np.full(k, -1, dtype=np.int16)
        self.drill_until: float | None = None
        self._seg_stage = np.array([s for s, _ in p.template], dtype=np.int8)
        fr = np.array([f for _, f in p.template], dtype=np.float64)
        self._seg_end = np.cumsum(fr / fr.sum())
        self._seg_end[-1] = 1.0
        self._shift = np.asarray(p.stage_shift, dtype=np.float64)
        self.natural = self._target()
        self._t_off = self.t  # the offset (and its share of the phase) is integrated up to here (>= t)
        self._cache_key = None  # the per-step constants below belong to these arrays (see _refresh_cache)
        self._scratch = tuple(np.empty(k) for _ in range(4)) + (np.empty(k, np.bool_),)

    # ----------------------------------------------------------------------------------------- derived
    def stage_at(self, cycle_pos: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(self._seg_end, cycle_pos, side="right")
        return self._seg_stage[np.minimum(seg, len(self._seg_stage) - 1)]

    @property
    def stage(self) -> np.ndarray:
        return self.stage_at(self.cycle_pos)

    @property
    def frequency(self) -> np.ndarray:
        return self.natural + self.offset

    def _target(self) -> np.ndarray:
        return self.base + self.gain * self._shift[self.stage] + self.drill_delta

    # ----------------------------------------------------------------------------------------- integration
    def advance(self, dt: float) -> None:
        """Integrate dt seconds (>= 0), sub-stepping at ``max_step``."""
        dt = float(dt)
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f"dt must be finite and >= 0, got {dt}")
        if dt == 0 or self.n == 0:
            self.t += dt
            self._t_off = max(self._t_off, self.t)
            return
        steps = max(1, int(math.ceil(dt / self.p.max_step - 1e-12)))
        h = dt / steps
        for _ in range(steps):
            if self.drill_until is not None and self.t >= self.drill_until:
                self.clear_drills()
            self._step(h)

    def advance_offset(self, dt: float) -> None:
        """Integrate only the offset (its slew and its share of the phase) up to ``t + dt``; the rest (natural
        frequency, phase noise, cycle, battery) follows at the next :meth:`advance`, which then integrates the
        offset from there on. The result is the same as ``advance(dt)`` then the rest (the offset integral is
        exact for any split): a command that takes effect at ``t + dt`` costs this one part, not a whole step.
        Between the two, ``frequency`` mixes times: read the state after :meth:`advance`."""
        dt = float(dt)
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f"dt must be finite and >= 0, got {dt}")
        h = self.t + dt - self._t_off
        if h > 0 and self.n:
            buf = self._scratch
            acc = buf[0]
            acc.fill(0.0)
            self._offset_part(h, acc, buf[1], buf[2], buf[4])
            acc *= TWO_PI
            self.phase += acc
            wrap_phase(self.phase, out=self.phase)
        self._t_off = max(self._t_off, self.t + dt)

    def _refresh_cache(self) -> None:
        """Per-jewel constants of a step (stage-dependent target, its segment's end, 1 / period), rebuilt when
        the arrays they come from were replaced; the stage part is then kept current in _step (crossings)."""
        key = (self.base, self.gain, self.period, self.cycle_pos)
        if self._cache_key is not None and all(a is b for a, b in zip(key, self._cache_key, strict=True)):
            return
        seg = np.minimum(np.searchsorted(self._seg_end, self.cycle_pos, side="right"), len(self._seg_stage) - 1)
        self._seg_hi = self._seg_end[seg]
        self._tbase = self.base + self.gain * self._shift[self._seg_stage[seg]]
        self._inv_period = 1.0 / self.period
        self._cache_key = key

    def _offset_part(self, h, acc, b1, b2, mask) -> None:
        """offset: linear slew towards the (clamped) target over h, its exact integral added to ``acc``."""
        s = self.p.max_slew
        off = self.offset
        if s > 0:
            d = np.subtract(self.offset_target, off, out=b1)
            tr = np.abs(d, out=b2)
            np.less_equal(tr, s * h, out=mask)  # reached within h: lands exactly on the target
            tr *= 1.0 / s
            np.minimum(tr, h, out=tr)  # time spent slewing
            v = np.copysign(tr, d, out=d)
            v *= s  # signed change of the offset over h
            # integral = off * h + v * (h - tr / 2)
            tr *= -0.5
            tr += h
            tr *= v
            acc += tr
            np.multiply(off, h, out=tr)
            acc += tr
            off += v
            np.copyto(off, self.offset_target, where=mask)
        else:
            np.multiply(off, h, out=b2)
            acc += b2

    def _step(self, h: float) -> None:
        p = self.p
        self._refresh_cache()
        acc, b1, b2, b3, mask = self._scratch
        # natural: exponential relaxation to the target (exact integral)
        target = np.add(self._tbase, self.drill_delta, out=b3)
        e = math.exp(-h / p.tau_natural)
        dev = np.subtract(self.natural, target, out=b1)
        np.multiply(target, h, out=acc)
        np.multiply(dev, p.tau_natural * (1.0 - e), out=b2)
        acc += b2
        nat = self.natural
        nat *= e
        target *= 1.0 - e
        nat += target
        # the offset's share from where advance_offset left it
        h_off = self.t + h - self._t_off
        if h_off > 0:
            self._offset_part(min(h_off, h), acc, b1, b2, mask)
        acc *= TWO_PI
        if p.phase_diffusion > 0:
            noise = self.rng.standard_normal(out=b1)
            noise *= math.sqrt(2.0 * p.phase_diffusion * h)
            acc += noise
        self.phase += acc
        wrap_phase(self.phase, out=self.phase)
        # cycle and stage: only jewels crossing into their next segment are looked up again
        cp = self.cycle_pos
        np.multiply(self._inv_period, h, out=b1)
        cp += b1
        np.greater_equal(cp, self._seg_hi, out=mask)
        if mask.any():
            idx = np.flatnonzero(mask)
            c = np.mod(cp[idx], 1.0)
            cp[idx] = c
            seg = np.minimum(np.searchsorted(self._seg_end, c, side="right"), len(self._seg_stage) - 1)
            self._seg_hi[idx] = self._seg_end[seg]
            self._tbase[idx] = self.base[idx] + self.gain[idx] * self._shift[self._seg_stage[seg]]
        np.multiply(self.drain, h, out=b1)
        self.battery -= b1
        np.maximum(self.battery, 0.0, out=self.battery)
        self.t += h
        self._t_off = max(self._t_off, self.t)

    # ----------------------------------------------------------------------------------------- commands
    def set_offset_target(self, idx, offset) -> None:
        """Commanded offset(s), Hz, for jewel indices idx; clamped to +-comfort_limit (device behaviour)."""
        lim = self.p.comfort_limit
        self.offset_target[idx] = np.clip(np.asarray(offset, dtype=np.float64), -lim, lim)

    def set_intensity(self, idx, intensity) -> None:
        self.intensity[idx] = np.clip(np.asarray(intensity, dtype=np.float32), 0.0, 1.0)

    # ----------------------------------------------------------------------------------------- drills
    def _choose(self, fraction: float, seed: int) -> np.ndarray:
        if not (0.0 <= fraction <= 1.0):
            raise ValueError("fraction must be in [0, 1]")
        m = int(round(fraction * self.n))
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(self.n, size=m, replace=False)) if m else np.zeros(0, dtype=np.int64)

    def group_centres(self, groups: int, separation: float, around: float | None = None) -> np.ndarray:
        mean = float(np.mean(self.natural)) if around is None else float(around)
        return mean + (np.arange(groups) - (groups - 1) / 2.0) * separation

    def inject_overlapping(
        self, fraction: float, groups: int, separation: float, seed: int = 0, duration: float = 0.0
    ) -> np.ndarray:
        """Move round(fraction*K) jewels' natural frequencies into `groups` bands centred at
        mean(natural) + (g - (groups-1)/2) * separation, spread sd = band_spread * separation.
        Returns the affected indices; ``drill_group`` holds each jewel's band (-1 = unaffected).
        The natural frequency steps (the phase stays continuous). duration > 0: cleared after it."""
        groups = int(groups)
        if groups < 2:
            raise ValueError("groups must be >= 2")
        if not (math.isfinite(separation) and separation > 0):
            raise ValueError("separation must be finite and > 0")
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError("duration must be finite and >= 0")
        centres = self.group_centres(groups, separation)
        # every band, 4 spreads down, stays a positive rhythm (the contract: frequency > 0)
        lowest = float(centres.min() - 4.0 * self.p.band_spread * separation)
        if lowest < MIN_BAND_HZ:
            raise ValueError(
                f"{groups} groups {separation:g} Hz apart around {float(np.mean(self.natural)):.3f} Hz would put the "
                f"lowest band at {lowest:.3f} Hz (at least {MIN_BAND_HZ:g} Hz): fewer groups or less separation"
            )
        idx = self._choose(fraction, seed)
        rng = np.random.default_rng([seed, 1])
        grp = rng.permutation(len(idx)) % groups
        want = centres[grp] + rng.normal(0.0, self.p.band_spread * separation, len(idx))
        base_target = self._target() - self.drill_delta
        self.drill_delta[idx] = want - base_target[idx]
        self.natural[idx] = want
        self.drill_group[:] = -1
        self.drill_group[idx] = grp
        self.drill_until = self.t + duration if duration > 0 else None
        return idx

    def inject_phase_scramble(self, fraction: float, seed: int = 0) -> np.ndarray:
        """Set the phase of round(fraction*K) jewels uniformly at random (a deliberate jump, for drills)."""
        idx = self._choose(fraction, seed)
        rng = np.random.default_rng([seed, 2])
        self.phase[idx] = rng.uniform(-math.pi, math.pi, len(idx))
        return idx

    def clear_drills(self) -> None:
        """End the frequency drill; the natural frequencies relax back with tau_natural (no step)."""
        self.drill_delta[:] = 0.0
        self.drill_group[:] = -1
        self.drill_until = None
