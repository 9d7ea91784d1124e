"""Closed-loop lock bench of the phase-locking kernel (lumina_nodes/kernels/phase_lock.py).

A small vectorised device simulator (``LoopSim``, below; not the project's sleeper model) closes the loop:
natural frequencies ~ Normal(1 Hz, 0.05 Hz), random start phases, 50 Hz reports with phase noise 0.05 rad,
20 % of reports lost (per element), reports 20 ms late (sample_time = time of measurement), offsets clamped to
0.25 Hz by the device and slewed at a bounded rate (no phase jumps). All figures are measured on the *true*
simulated phases, not on the kernel's estimates.

Scenarios (N = 1e4; --long adds N = 1e6):
  lock       random phases -> time to r >= 0.95 / 0.99; steady RMS phase error; recovery after 10 % scramble
  bimodal    a tight population (sd 2 mHz) locked, then half of it jumps +20 mHz: time to detect the split
             (kernel reports >= 2 clusters) and to resolve it (resolution reported and r >= 0.99 again)
  far split  as bimodal but +0.6 Hz (beyond the comfort limit): detect and lock each half to its own channel
  kuramoto   plain mean-field Kuramoto at K = 5 Kc, ideal (no noise/limits, as SYNC_SCIENCE 3.2) and through the
             kernel's 'kuramoto' mode in the same constrained simulator

Usage: python bench/sync_lock.py [--long] [--seeds S]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig

TWO_PI = 2 * math.pi
DT = 0.02
# Physical floor for |offset| <= 0.25 Hz and slew <= 0.5 Hz/s (the kernel's defaults): ideal devices with no
# noise, loss or delay, known detuning, each driven by the time-optimal bang-bang law (offset follows
# sign(e) sqrt(2 a |e|)), N = 2e4, same f ~ N(1, 0.05) Hz; see ideal_floor().
LOWER_BOUND = {"t95": 1.80, "t99": 2.32, "recovery": 1.50}  # bench/sync_lock.py --floor


class LoopSim:
    """Vectorised jewels: true phase (cycles), natural frequency (Hz), applied offset (Hz).

    Each tick the device slews its applied offset towards clip(command, +-max_offset) at <= device_slew Hz/s and
    integrates its phase with the mean frequency over the tick (no phase jumps).
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
        self.theta = rng.random(n)  # cycles
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
        target = np.clip(self.cmd, -self.max_offset, self.max_offset)
        d = np.clip(target - self.off, -self.slew * dt, self.slew * dt)
        new = self.off + d
        self.theta += (self.nat + 0.5 * (self.off + new)) * dt
        self.theta -= np.rint(self.theta)
        self.off = new
        self.t += dt

    def measure(self):
        """(ids, phase rad, frequency Hz, offset Hz, sample_time) of the jewels whose report gets through."""
        keep = self.rng.random(self.n) >= self.loss
        idx = np.flatnonzero(keep)
        ph = TWO_PI * self.theta[idx] + self.rng.normal(0, self.noise, idx.shape[0])
        ph -= TWO_PI * np.rint(ph / TWO_PI)
        fr = self.nat[idx] + self.off[idx] + self.rng.normal(0, self.fnoise, idx.shape[0])
        return self.ids[idx], ph, fr, self.off[idx].copy(), self.t

    def order(self):
        z = np.exp(1j * TWO_PI * self.theta).mean()
        return abs(z), math.atan2(z.imag, z.real)

    def rms_error(self, mask=None):
        th = self.theta if mask is None else self.theta[mask]
        z = np.exp(1j * TWO_PI * th).mean()
        e = TWO_PI * th - math.atan2(z.imag, z.real)
        e -= TWO_PI * np.rint(e / TWO_PI)
        return float(np.sqrt(np.mean(e * e)))


def run_loop(sim, kernel, seconds, on_tick=None, delay_ticks=1):
    """Advance sim and kernel together for ``seconds``; returns arrays t, r (true) and the TickResults."""
    slots = kernel.register(0, sim.ids)
    pending = []
    ts, rs, res = [], [], []
    steps = int(round(seconds / DT))
    for _ in range(steps):
        sim.advance(DT)
        now = sim.t
        pending.append(sim.measure())
        if len(pending) > delay_ticks:
            ids, ph, fr, of, st = pending.pop(0)
            kernel.ingest(0, ids, ph, fr, of, st, now)
        tr = kernel.step(now)
        sim.cmd = kernel.commands_for(0, slots)
        r, _ = sim.order()
        ts.append(now)
        rs.append(r)
        res.append(tr)
        if on_tick is not None:
            on_tick(sim, kernel, tr, now)
    return np.array(ts), np.array(rs), res


def first_time(t, cond, after=0.0, strict=True):
    idx = np.flatnonzero(cond & ((t > after + 1e-9) if strict else (t >= after)))
    return float(t[idx[0]] - after) if idx.shape[0] else float("nan")


def lock_scenario(n, seed, cfg=None, seconds=12.0, scramble_at=8.0):
    rng = np.random.default_rng(seed)
    sim = LoopSim(n, rng)
    kernel = PhaseLockKernel(n, cfg or SyncConfig())
    scr = {}

    def on_tick(s, k, tr, now):
        if "done" not in scr and now >= scramble_at - 1e-9:
            m = rng.random(s.n) < 0.10
            s.theta[m] = rng.random(int(m.sum()))
            scr["done"] = now
            scr["rms_before"] = s.rms_error()
        if now <= scramble_at - 1e-9 and now >= scramble_at - 2.0:
            scr.setdefault("rms", []).append(s.rms_error())
            scr.setdefault("r", []).append(s.order()[0])

    t, r, res = run_loop(sim, kernel, seconds, on_tick)
    r_ss = float(np.mean(scr["r"]))
    t_scr = scr["done"]
    rec = first_time(t, r >= r_ss - 0.01, after=t_scr, strict=True)
    rmin_after = float(r[t > t_scr].min())
    return {
        "t95_s": first_time(t, r >= 0.95),
        "t99_s": first_time(t, r >= 0.99),
        "rms_rad": float(np.mean(scr["rms"])),
        "steady_r": r_ss,
        "recovery_s": rec,
        "scramble_r_min": rmin_after,
        "kernel_lock_fraction": float(res[int(scramble_at / DT) - 2].lock_fraction),
        "kernel_r_vs_true": float(res[int(scramble_at / DT) - 2].order_parameter),
    }


def split_scenario(n, seed, shift_hz, seconds=6.0, split_at=3.0, cfg=None):
    """Tight population locked, then half of it jumps by shift_hz at split_at."""
    rng = np.random.default_rng(seed)
    sim = LoopSim(n, rng, f_sd=0.002)
    kernel = PhaseLockKernel(n, cfg or SyncConfig())
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
        el = now - rec["shifted"]
        if rec["detect"] is None and len(tr.clusters) >= 2:
            rec["detect"] = el
            rec["resolution"] = tr.clusters.resolution
        if rec["detect"] is not None and rec["resolve"] is None and tr.clusters.resolution != "none":
            if tr.clusters.resolution == "merging":
                ok = s.order()[0] >= 0.99
            else:  # each half coherent and running at a channel frequency (true device frequencies)
                tg = np.asarray(tr.clusters.target_frequency)
                ok = len(tg) >= 2 and float(np.min(tr.clusters.order_parameter)) >= 0.95
                for m in (half, ~half):
                    rm = abs(np.exp(1j * TWO_PI * s.theta[m]).mean())
                    fm = float(np.mean(s.nat[m] + s.off[m]))
                    ok = ok and rm >= 0.99 and float(np.min(np.abs(tg - fm))) <= 0.002
            if ok:
                rec["resolve"] = el
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


def kuramoto_ideal(n, seed, K, seconds=20.0):
    """Plain mean-field Kuramoto, explicit Euler dt=0.02, float64, no noise/limits (SYNC_SCIENCE 3.2 setup)."""
    rng = np.random.default_rng(seed)
    th = rng.random(n) * TWO_PI
    w = TWO_PI * rng.normal(1.0, 0.05, n)
    t95 = t99 = float("nan")
    for i in range(int(seconds / DT)):
        c, s = np.cos(th), np.sin(th)
        X, Y = c.mean(), s.mean()
        r = math.hypot(X, Y)
        t = i * DT
        if math.isnan(t95) and r >= 0.95:
            t95 = t
        if math.isnan(t99) and r >= 0.99:
            t99 = t
            break
        th += DT * (w + K * (Y * c - X * s))
    return t95, t99


def ideal_floor(n=20_000, slew=0.5, umax=0.25, seed=0):
    """Time-optimal ideal devices (see LOWER_BOUND): returns t95, t99 from random phases and the time for a
    scrambled group (offsets already at their feed-forward) to reach r >= 0.9 (= whole-population recovery
    within 0.01 when 10 % are scrambled)."""
    rng = np.random.default_rng(seed)
    out = {}
    for case in ("lock", "recovery"):
        e = rng.random(n) - 0.5  # error, cycles
        d = rng.normal(0, 0.05, n)  # detuning, Hz
        off = np.zeros(n) if case == "lock" else -d.copy()
        t = 0.0
        for _ in range(400):
            tgt = np.clip(-d + np.sign(e) * np.sqrt(2 * slew * np.abs(e)), -umax, umax)
            new = off + np.clip(tgt - off, -slew * DT, slew * DT)
            e -= (d + 0.5 * (off + new)) * DT
            e -= np.rint(e)
            off = new
            t += DT
            r = abs(np.exp(2j * np.pi * e).mean())
            for key, thr in (("t95", 0.95), ("t99", 0.99)) if case == "lock" else (("recovery", 0.9),):
                if key not in out and r >= thr:
                    out[key] = round(t, 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", action="store_true", help="also run N = 1e6 (slow)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--floor", action="store_true", help="recompute the ideal time-optimal floor and exit")
    ap.add_argument("--quick", action="store_true", help="one seed")
    args = ap.parse_args()
    if args.quick:
        args.seeds = 1
    if args.floor:
        print(json.dumps(ideal_floor()))
        return
    Kc = TWO_PI * 0.05 * math.sqrt(8 / math.pi)
    K5 = 5 * Kc
    sizes = [10_000] + ([1_000_000] if args.long else [])
    out = {}
    rows = []
    t_start = time.time()
    for n in sizes:
        big = n > 10_000  # N = 1e6 (--long): one seed, the main scenarios only (~0.15 s per simulated tick)
        seeds = range(1 if big else args.seeds)
        L = [lock_scenario(n, s) for s in seeds]
        fast = [] if big else [lock_scenario(n, s, SyncConfig(max_slew_hz_per_s=2.0)) for s in seeds]
        B = [split_scenario(n, 100 + s, 0.02) for s in seeds]
        F = [split_scenario(n, 200 + s, 0.6) for s in seeds]
        kk = (
            []
            if big
            else [
                lock_scenario(
                    n,
                    s,
                    SyncConfig(mode="kuramoto", kuramoto_coupling=K5, max_slew_hz_per_s=100.0),
                    seconds=16.0,
                    scramble_at=13.0,
                )
                for s in seeds
            ]
        )
        ki = [kuramoto_ideal(n, s, K5) for s in seeds]

        def m(lst, key):
            v = np.array([d[key] for d in lst], dtype=float)
            return float(np.mean(v)) if v.size and not np.isnan(v).any() else float("nan")

        res = {
            "n": n,
            "seeds": len(seeds),
            "t95_s": m(L, "t95_s"),
            "t99_s": m(L, "t99_s"),
            "rms_rad": m(L, "rms_rad"),
            "steady_r": m(L, "steady_r"),
            "recovery_s": m(L, "recovery_s"),
            "cluster_detect_s": m(B, "detect_s"),
            "cluster_resolve_s": m(B, "resolve_s"),
            "cluster_resolution": B[0]["resolution"],
            "false_split": any(b["false_split_before"] for b in B),
            "far_split_detect_s": m(F, "detect_s"),
            "far_split_resolve_s": m(F, "resolve_s"),
            "far_split_resolution": F[0]["resolution"],
            "far_split_channels_hz": F[0]["targets"],
            "lower_bound_t95_s": LOWER_BOUND["t95"],
            "lower_bound_t99_s": LOWER_BOUND["t99"],
            "lower_bound_recovery_s": LOWER_BOUND["recovery"],
            "slew2_t95_s": m(fast, "t95_s"),
            "slew2_t99_s": m(fast, "t99_s"),
            "slew2_rms_rad": m(fast, "rms_rad"),
            "slew2_recovery_s": m(fast, "recovery_s"),
            "kuramoto_t95_s": float(np.mean([x[0] for x in ki])),
            "kuramoto_t99_s": float(np.mean([x[1] for x in ki])),
            "kuramoto_kernel_t95_s": m(kk, "t95_s"),
            "kuramoto_kernel_rms_rad": m(kk, "rms_rad"),
            "kuramoto_kernel_recovery_s": m(kk, "recovery_s"),
        }
        out[str(n)] = res
        rows.append(res)
    print(
        f"closed loop, f ~ N(1, 0.05) Hz, 50 Hz reports, noise 0.05 rad, 20 % loss, 20 ms late, "
        f"|offset| <= 0.25 Hz; Kc = {Kc:.4f} rad/s, K = 5 Kc = {K5:.3f} rad/s; wall {time.time() - t_start:.0f} s"
    )
    hdr = f"{'metric':28s}" + "".join(f"{'N=' + str(r['n']):>18s}" for r in rows) + "   target"
    print(hdr)
    targets = {
        "t95_s": "<= 1.5",
        "t99_s": "<= 3",
        "rms_rad": "<= 0.02",
        "recovery_s": "<= 1.5",
        "cluster_detect_s": "<= 1",
        "kuramoto_t95_s": "~4.8 (baseline)",
    }
    for key in rows[0]:
        if key in ("n",):
            continue
        vals = "".join(f"{str(round(r[key], 4)) if isinstance(r[key], float) else str(r[key]):>18s}" for r in rows)
        print(f"{key:28s}{vals}   {targets.get(key, '')}")
    flat = dict(rows[0])
    flat["by_n"] = out
    print(json.dumps(_nan_to_null(flat)))


def _nan_to_null(x):
    """Strict JSON: NaN (scenario not run / target never reached) becomes null."""
    if isinstance(x, dict):
        return {k: _nan_to_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_null(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


if __name__ == "__main__":
    main()
