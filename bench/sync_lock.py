"""Closed-loop lock bench of the phase-locking kernel (lumina_nodes/kernels/phase_lock/).

The device simulator and scenarios of lumina_nodes/models/loop_sim.py (``LoopSim``, not the project's sleeper
model; the kernel tests run the same loop) close the loop: natural frequencies ~ Normal(1 Hz, 0.05 Hz), random
start phases, 50 Hz reports with phase noise 0.05 rad, 20 % of reports lost (per element), reports 20 ms late
(sample_time = time of measurement), offsets clamped to 0.25 Hz by the device and slewed at a bounded rate (no
phase jumps). All figures are measured on the *true* simulated phases, not on the kernel's estimates.

Scenarios (N = 1e4; --long adds N = 1e6):
  lock       random phases -> time to r >= 0.95 / 0.99; steady RMS phase error; recovery after 10 % scramble
  bimodal    a tight population (sd 2 mHz) locked, then half of it jumps +20 mHz: time to detect the split
             (kernel reports >= 2 clusters) and to resolve it (resolution reported and r >= 0.99 again)
  far split  as bimodal but +0.6 Hz (beyond the comfort limit): detect and lock each half to its own channel
  kuramoto   plain mean-field Kuramoto at K = 5 Kc, ideal (no noise/limits, as SYNC_SCIENCE 3.2) and through the
             kernel's 'kuramoto' mode in the same constrained simulator

Usage: python bench/sync_lock.py [--quick] [--long] [--seeds S] [--floor]
The last line printed is one JSON object.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.models.loop_sim import TICK_S, kuramoto_ideal, lock_scenario, split_scenario
from lumina_nodes.phase import TWO_PI, wrap_cycles

# Physical floor for |offset| <= 0.25 Hz and slew <= 0.5 Hz/s (the kernel's defaults): ideal devices with no
# noise, loss or delay, known detuning, each driven by the time-optimal bang-bang law (offset follows
# sign(e) sqrt(2 a |e|)), N = 2e4, same f ~ N(1, 0.05) Hz; see ideal_floor().
LOWER_BOUND = {"t95": 1.80, "t99": 2.32, "recovery": 1.50}  # bench/sync_lock.py --floor


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
            new = off + np.clip(tgt - off, -slew * TICK_S, slew * TICK_S)
            e -= (d + 0.5 * (off + new)) * TICK_S
            wrap_cycles(e, out=e)
            off = new
            t += TICK_S
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
        L = [lock_scenario(PhaseLockKernel(n), n, s) for s in seeds]
        fast = (
            [] if big else [lock_scenario(PhaseLockKernel(n, SyncConfig(max_slew_hz_per_s=2.0)), n, s) for s in seeds]
        )
        B = [split_scenario(PhaseLockKernel(n), n, 100 + s, 0.02) for s in seeds]
        F = [split_scenario(PhaseLockKernel(n), n, 200 + s, 0.6) for s in seeds]
        kuramoto = SyncConfig(mode="kuramoto", kuramoto_coupling=K5, max_slew_hz_per_s=100.0)
        kk = (
            []
            if big
            else [lock_scenario(PhaseLockKernel(n, kuramoto), n, s, seconds=16.0, scramble_at=13.0) for s in seeds]
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
