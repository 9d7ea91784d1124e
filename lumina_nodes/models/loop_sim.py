"""The plant of the synchronizer's closed loop, and the standard scenarios run on it (plain numpy, no rclpy).

:class:`LoopSim` is a small vectorised jewel population, not the project's sleeper model: natural frequencies
~ Normal(1 Hz, 0.05 Hz), random start phases, reports with phase noise (0.05 rad), per-element loss (20 %),
offsets clamped by the device and slewed at a bounded rate (no phase jumps). :func:`run_loop` closes the loop
with any phase-locking kernel (``register``, ``ingest``, ``step``, ``commands_for``: the
:class:`~lumina_nodes.kernels.phase_lock.PhaseLockKernel` interface), delivering every report one tick late.
:func:`bound_time` and :func:`recovery_bound` are the physical bound of any control law under the comfort
limits (no law can lock faster). The scenarios measure on the *true* simulated phases, not on the kernel's
estimates; bench/sync_lock.py prints them and the kernel tests assert on them, so both exercise the same loop.

Units: time s, frequency Hz, :attr:`LoopSim.theta` in cycles, reported phases in rad.
"""

import math

import numpy as np

from ..phase import TWO_PI, wrap_cycles, wrap_phase

#: Tick period of the loop, s (50 Hz reports and kernel steps).
TICK_S = 0.02


class LoopSim:
    """Vectorised jewels: true phase (cycles), natural frequency (Hz), applied offset (Hz).

    Each tick the device slews its applied offset towards clip(command, +-max_offset) at <= device_slew Hz/s and
    integrates its phase with the mean frequency over the tick (no phase jumps).

    Parameters
    ----------
    n : int
        Number of jewels.
    rng : numpy.random.Generator
        Source of start phases, natural frequencies, noise and loss.
    f_mean, f_sd : float
        Mean and standard deviation of the natural frequencies, Hz.
    noise_rad : float
        Standard deviation of the reported phase noise, rad.
    loss : float
        Probability that one jewel's report is lost, per report.
    freq_noise_hz : float
        Standard deviation of the reported frequency noise, Hz.
    max_offset : float
        The device clamps the commanded offset to +- this, Hz.
    device_slew : float
        The applied offset moves towards the clamped command at most this fast, Hz/s.

    Attributes
    ----------
    ids : ndarray, shape (n,), uint32
        Jewel ids.
    theta : ndarray, shape (n,), float64
        True phases, cycles in [-0.5, 0.5).
    nat, off, cmd : ndarray, shape (n,), float64
        Natural frequency, applied offset, last command, Hz.
    t : float
        Simulated time, s.
    """

    def __init__(
        self,
        n,
        rng,
        f_mean=1.0,
        f_sd=0.05,
        noise_rad=0.05,
        loss=0.2,
        freq_noise_hz=0.002,
        max_offset=0.25,
        device_slew=1.0,
    ):
        self.n = n
        self.rng = rng
        self.ids = (np.arange(n, dtype=np.uint32) * 7 + 11).astype(np.uint32)
        self.theta = rng.random(n)
        self.nat = rng.normal(f_mean, f_sd, n)
        self.off = np.zeros(n)
        self.cmd = np.zeros(n)
        self.noise = noise_rad
        self.loss = loss
        self.fnoise = freq_noise_hz
        self.max_offset = max_offset
        self.slew = device_slew
        self.t = 0.0

    def advance(self, dt):
        """Move the devices on by ``dt`` seconds under the current commands."""
        target = np.clip(self.cmd, -self.max_offset, self.max_offset)
        d = np.clip(target - self.off, -self.slew * dt, self.slew * dt)
        new = self.off + d
        self.theta += (self.nat + 0.5 * (self.off + new)) * dt
        wrap_cycles(self.theta, out=self.theta)
        self.off = new
        self.t += dt

    def measure(self):
        """The reports that get through now: (ids, phase rad, frequency Hz, offset Hz, sample_time s).

        Arrays of shape (m,), m <= n (lost reports left out); sample_time is the scalar time of measurement.
        """
        keep = self.rng.random(self.n) >= self.loss
        idx = np.flatnonzero(keep)
        ph = wrap_phase(TWO_PI * self.theta[idx] + self.rng.normal(0, self.noise, idx.shape[0]))
        fr = self.nat[idx] + self.off[idx] + self.rng.normal(0, self.fnoise, idx.shape[0])
        return self.ids[idx], ph, fr, self.off[idx].copy(), self.t

    def order(self):
        """True order parameter r and mean phase psi (rad) of all jewels."""
        z = np.exp(1j * TWO_PI * self.theta).mean()
        return abs(z), math.atan2(z.imag, z.real)

    def lock_fraction(self, threshold_rad=0.1):
        """Fraction of jewels whose true phase is within ``threshold_rad`` of the true mean phase."""
        z = np.exp(1j * TWO_PI * self.theta).mean()
        e = wrap_phase(TWO_PI * self.theta - math.atan2(z.imag, z.real))
        return float(np.mean(np.abs(e) < threshold_rad))

    def rms_error(self, mask=None):
        """RMS of the true phases' wrapped distance to their mean phase (rad), over ``mask`` (all if None)."""
        th = self.theta if mask is None else self.theta[mask]
        z = np.exp(1j * TWO_PI * th).mean()
        e = wrap_phase(TWO_PI * th - math.atan2(z.imag, z.real))
        return float(np.sqrt(np.mean(e * e)))


def run_loop(sim, kernel, seconds, on_tick=None, delay_ticks=1, command_delay_ticks=0):
    """Advance ``sim`` and ``kernel`` together for ``seconds``, one tick of :data:`TICK_S` at a time.

    Reports reach the kernel ``delay_ticks`` ticks after they were measured (stamped with the time of
    measurement); the commands reach the devices ``command_delay_ticks`` ticks after the kernel computed them.
    ``on_tick(sim, kernel, tick_result, now)`` runs after every tick.

    Returns
    -------
    t : ndarray, shape (ticks,)
        Time of each tick, s.
    r : ndarray, shape (ticks,)
        True order parameter after each tick.
    results : list of TickResult
        The kernel's result of each tick.
    """
    slots = kernel.register(0, sim.ids)
    pending = []
    sent = []
    ts, rs, res = [], [], []
    for _ in range(int(round(seconds / TICK_S))):
        sim.advance(TICK_S)
        now = sim.t
        pending.append(sim.measure())
        if len(pending) > delay_ticks:
            ids, ph, fr, of, st = pending.pop(0)
            kernel.ingest(0, ids, ph, fr, of, st, now)
        tr = kernel.step(now)
        sent.append(kernel.commands_for(0, slots))
        if len(sent) > command_delay_ticks:
            sim.cmd = sent.pop(0)
        ts.append(now)
        rs.append(sim.order()[0])
        res.append(tr)
        if on_tick is not None:
            on_tick(sim, kernel, tr, now)
    return np.array(ts), np.array(rs), res


def first_time(t, cond, after=0.0, strict=True):
    """Time from ``after`` to the first tick (later than ``after``; or at it when not ``strict``) where ``cond``
    holds, s; NaN if never. ``t`` and ``cond`` have shape (ticks,)."""
    idx = np.flatnonzero(cond & ((t > after + 1e-9) if strict else (t >= after)))
    return float(t[idx[0]] - after) if idx.shape[0] else float("nan")


def lock_scenario(kernel, n, seed, seconds=12.0, scramble_at=8.0):
    """Lock ``n`` jewels from random phases, then scramble 10 % of them at ``scramble_at`` s.

    Returns
    -------
    dict
        ``t95_s``, ``t99_s``: time to true r >= 0.95 / 0.99 (s); ``rms_rad``, ``steady_r``, ``lock_fraction``:
        true RMS phase error (rad), r and lock fraction (within the kernel's lock_threshold_rad of the true mean
        phase) over the 2 s before the scramble; ``kernel_rms_rad``, ``kernel_lock_fraction``: the kernel's
        published estimates of the same two over the same ticks; ``recovery_s``: time from the scramble back to
        the steady r - 0.01 (s); ``scramble_r_min``: lowest r after it; ``kernel_r_vs_true``: the kernel's r two
        ticks before the scramble.
    """
    rng = np.random.default_rng(seed)
    sim = LoopSim(n, rng)
    scramble = {}

    def on_tick(s, k, tr, now):
        if "done" not in scramble and now >= scramble_at - 1e-9:
            m = rng.random(s.n) < 0.10
            s.theta[m] = rng.random(int(m.sum()))
            scramble["done"] = now
        if scramble_at - 2.0 <= now <= scramble_at - 1e-9:
            scramble.setdefault("rms", []).append(s.rms_error())
            scramble.setdefault("r", []).append(s.order()[0])
            scramble.setdefault("lock", []).append(s.lock_fraction(k.config.lock_threshold_rad))
            scramble.setdefault("k_rms", []).append(tr.rms_phase_error)
            scramble.setdefault("k_lock", []).append(tr.lock_fraction)

    t, r, res = run_loop(sim, kernel, seconds, on_tick)
    r_steady = float(np.mean(scramble["r"]))
    t_scramble = scramble["done"]
    before = res[int(scramble_at / TICK_S) - 2]
    return {
        "t95_s": first_time(t, r >= 0.95),
        "t99_s": first_time(t, r >= 0.99),
        "rms_rad": float(np.mean(scramble["rms"])),
        "steady_r": r_steady,
        "recovery_s": first_time(t, r >= r_steady - 0.01, after=t_scramble, strict=True),
        "scramble_r_min": float(r[t > t_scramble].min()),
        "lock_fraction": float(np.mean(scramble["lock"])),
        "kernel_rms_rad": float(np.mean(scramble["k_rms"])),
        "kernel_lock_fraction": float(np.mean(scramble["k_lock"])),
        "kernel_r_vs_true": float(before.order_parameter),
    }


def split_scenario(kernel, n, seed, shift_hz, seconds=6.0, split_at=3.0):
    """A tight population (sd 2 mHz) locks; at ``split_at`` s half of it jumps by ``shift_hz`` Hz.

    Returns
    -------
    dict
        ``detect_s``: time from the jump until the kernel reports >= 2 clusters (s); ``resolve_s``: until it is
        resolved (merging: true r >= 0.99; separate channels: each half coherent, r >= 0.99, and running within
        2 mHz of a channel) (s); ``resolution`` when detected; ``false_split_before``: clusters reported before
        the jump; ``targets``: the clusters' target frequencies when resolved (Hz). Times NaN when never.
    """
    rng = np.random.default_rng(seed)
    sim = LoopSim(n, rng, f_sd=0.002)
    half = np.zeros(n, dtype=bool)
    half[rng.permutation(n)[: n // 2]] = True
    rec = {"detect": None, "resolve": None, "resolution": None, "false_split": False}

    def on_tick(s, k, tr, now):
        if now < split_at - 1e-9:
            if len(tr.clusters) > 1:
                rec["false_split"] = True
            return
        if "shifted" not in rec:
            s.nat[half] += shift_hz
            rec["shifted"] = now
            return
        elapsed = now - rec["shifted"]
        if rec["detect"] is None and len(tr.clusters) >= 2:
            rec["detect"] = elapsed
            rec["resolution"] = tr.clusters.resolution
        if rec["detect"] is not None and rec["resolve"] is None and tr.clusters.resolution != "none":
            if tr.clusters.resolution == "merging":
                ok = s.order()[0] >= 0.99
            else:  # each half coherent and running at a channel frequency (true device frequencies)
                targets = np.asarray(tr.clusters.target_frequency)
                ok = len(targets) >= 2 and float(np.min(tr.clusters.order_parameter)) >= 0.95
                for m in (half, ~half):
                    rm = abs(np.exp(1j * TWO_PI * s.theta[m]).mean())
                    fm = float(np.mean(s.nat[m] + s.off[m]))
                    ok = ok and rm >= 0.99 and float(np.min(np.abs(targets - fm))) <= 0.002
            if ok:
                rec["resolve"] = elapsed
                rec["targets"] = [float(x) for x in tr.clusters.target_frequency]

    run_loop(sim, kernel, seconds, on_tick)
    nan = float("nan")
    return {
        "detect_s": rec["detect"] if rec["detect"] is not None else nan,
        "resolve_s": rec["resolve"] if rec["resolve"] is not None else nan,
        "resolution": rec["resolution"],
        "false_split_before": rec["false_split"],
        "targets": rec.get("targets"),
    }


def kuramoto_ideal(n, seed, coupling, seconds=20.0):
    """Plain mean-field Kuramoto on ideal oscillators (no noise, loss or limits; the SYNC_SCIENCE 3.2 setup):
    f ~ N(1, 0.05) Hz, random phases, explicit Euler at :data:`TICK_S`, float64, coupling K in rad/s.

    Returns
    -------
    t95, t99 : float
        Time to r >= 0.95 / 0.99, s (NaN if not within ``seconds``).
    """
    rng = np.random.default_rng(seed)
    th = rng.random(n) * TWO_PI
    w = TWO_PI * rng.normal(1.0, 0.05, n)
    t95 = t99 = float("nan")
    for i in range(int(seconds / TICK_S)):
        c, s = np.cos(th), np.sin(th)
        X, Y = c.mean(), s.mean()
        r = math.hypot(X, Y)
        t = i * TICK_S
        if math.isnan(t95) and r >= 0.95:
            t95 = t
        if math.isnan(t99) and r >= 0.99:
            t99 = t
            break
        th += TICK_S * (w + coupling * (Y * c - X * s))
    return t95, t99


# --------------------------------------------------------------------------------------------- the physical bound
def reach_cycles(t, umax=0.25, slew=0.5):
    """D(t): the farthest a jewel can move its phase (cycles) by time t (s) from rest relative to its drift, with
    |offset| <= umax (Hz) and |d offset/dt| <= slew (Hz/s): slew t^2/2 up to t = umax/slew, then
    umax^2/(2 slew) + umax (t - umax/slew)."""
    t = np.asarray(t, dtype=float)
    tc = umax / slew
    return np.where(t <= tc, 0.5 * slew * t * t, 0.5 * umax * umax / slew + umax * (t - tc))


def order_bound(d):
    """Largest r = |mean exp(i theta)| of uniformly spread start phases when each jewel may move at most d
    cycles either way: 2 d + sin(2 pi d)/pi (1 from d = 1/2 on)."""
    d = np.minimum(np.asarray(d, dtype=float), 0.5)
    return 2 * d + np.sin(TWO_PI * d) / np.pi


def bound_time(r, umax=0.25, slew=0.5):
    """Earliest t (s) with order_bound(reach_cycles(t)) >= r (bisection; the bound is increasing in t)."""
    lo, hi = 0.0, 0.5 / umax + umax / slew + 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if order_bound(reach_cycles(mid, umax, slew)) >= r else (mid, hi)
    return hi


def recovery_bound(fraction=0.10, drop=0.01, umax=0.25, slew=0.5):
    """Earliest return of the whole population to r >= 1 - drop after ``fraction`` of a perfectly locked
    population is re-randomised: the scrambled group needs r >= 1 - drop / fraction."""
    return bound_time(1.0 - drop / fraction, umax, slew)


def numeric_order_bound(t, n=20_000, seed=0, umax=0.25, slew=0.5, recovery=False, grid=256):
    """The bound checked on a sampled population, with detuning (f ~ N(1, 0.05) Hz): each jewel can reach the
    arc theta0 + drift + [-D_minus, D_plus] (D of its own offset room: umax from offset 0 at lock; umax -+ its
    detuning from its feed-forward offset after a scramble); r <= max over psi (grid) of the mean cos of the
    distance from psi to the arc."""
    rng = np.random.default_rng(seed)
    th = rng.random(n)
    det = rng.normal(0.0, 0.05, n)
    if recovery:  # locked: relative rate 0, offset = -detuning; room umax + det ahead, umax - det behind
        tp = np.minimum(t, (umax + det) / slew)
        tm = np.minimum(t, (umax - det) / slew)
        dp = 0.5 * slew * tp * tp + (umax + det) * (t - tp)
        dm = 0.5 * slew * tm * tm + (umax - det) * (t - tm)
        centre = th
    else:  # from offset 0: symmetric room around the drifting phase theta0 + det t
        dp = dm = np.full(n, float(reach_cycles(t, umax, slew)))
        centre = th + det * t
    best = 0.0
    for psi in np.arange(grid) / grid:  # loop over the psi grid (not over jewels)
        x = np.mod(psi - centre, 1.0)  # forward distance from the free phase to psi, cycles; 1 - x backward
        gap = np.minimum(np.maximum(x - dp, 0.0), np.maximum(1.0 - x - dm, 0.0))  # either way round
        best = max(best, float(np.mean(np.cos(TWO_PI * gap))))
    return best


def numeric_bound_time(r, **kw):
    lo, hi = 0.0, 4.0
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if numeric_order_bound(mid, **kw) >= r else (mid, hi)
    return hi
