"""Closed-loop lock bench of the phase-locking kernel (lumina_nodes/kernels/phase_lock/).

The device simulator and scenarios of lumina_nodes/models/loop_sim.py (``LoopSim``, not the project's sleeper
model; the kernel tests run the same loop) close the loop: natural frequencies ~ Normal(1 Hz, 0.05 Hz), random
start phases, 50 Hz reports with phase noise 0.05 rad, 20 % of reports lost (per element), reports 20 ms late
(sample_time = time of measurement), offsets clamped to 0.25 Hz by the device and slewed at a bounded rate (no
phase jumps). All figures are measured on the *true* simulated phases, not on the kernel's estimates.

Scenarios (N = 1e4; --long adds N = 1e6):
  bound      the physical bound under the comfort limits U (offset, Hz) and A (slew, Hz/s): by time t a jewel
             can move its phase at most D(t) = A t^2/2 (t <= U/A), then U^2/(2A) + U (t - U/A) cycles, so
             uniformly spread start phases give r(t) <= 2D + sin(2 pi D)/pi (closed form, bisection:
             bound_t95_s, bound_t99_s; a 10 % scramble needs the scrambled group at r >= 0.9:
             bound_recovery_s), checked on a sampled population with detuning (*_numeric_s)
  lock       random phases -> time to r >= 0.95 / 0.99; steady RMS phase error; recovery after 10 % scramble;
             the kernel's published rms_phase_error / lock_fraction next to the simulator's true values
  bimodal    a tight population (sd 2 mHz) locked, then half of it jumps +20 mHz: time to detect the split
             (kernel reports >= 2 clusters) and to resolve it (resolution reported and r >= 0.99 again)
  far split  as bimodal but +0.6 Hz (beyond the comfort limit): detect and lock each half to its own channel
  kuramoto   the fair baseline: the kernel's 'kuramoto' mode in the same constrained simulator (same offset and
             slew limits, noise, loss, latency) at K = 5, 10, 20, 40, 80 Kc; its best t95 is
             fair_kuramoto_t95_s. Beside it plain Kuramoto at 5 Kc on ideal oscillators (SYNC_SCIENCE 3.2).

Usage: python bench/sync_lock.py [--quick] [--long] [--seeds S]
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/sync_clusters.py (PYTHONSAFEPATH is set)
from sync_clusters import cluster_figures

from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.models.loop_sim import (
    bound_time,
    kuramoto_ideal,
    lock_scenario,
    numeric_bound_time,
    recovery_bound,
    split_scenario,
)
from lumina_nodes.phase import TWO_PI

KURAMOTO_SWEEP = (5, 10, 20, 40, 80)  # K / Kc of the fair-baseline sweep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", action="store_true", help="also run N = 1e6 (slow)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one seed")
    args = ap.parse_args()
    if args.quick:
        args.seeds = 1
    Kc = TWO_PI * 0.05 * math.sqrt(8 / math.pi)
    K5 = 5 * Kc
    base = SyncConfig()
    umax, slew = base.max_offset_hz, base.max_slew_hz_per_s
    bound = {
        "bound_t95_s": bound_time(0.95, umax, slew),
        "bound_t99_s": bound_time(0.99, umax, slew),
        "bound_recovery_s": recovery_bound(0.10, 0.01, umax, slew),
        # the same bounds on a sampled population with N(0, 0.05 Hz) detuning (arcs, either way round)
        "bound_t95_numeric_s": numeric_bound_time(0.95, umax=umax, slew=slew),
        "bound_t99_numeric_s": numeric_bound_time(0.99, umax=umax, slew=slew),
        "bound_recovery_numeric_s": numeric_bound_time(0.90, umax=umax, slew=slew, recovery=True),
    }
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
        # the fair baseline: the kernel's 'kuramoto' mode in the same simulator, same limits (offset, slew),
        # noise, loss and latency, over a sweep of couplings; its best t95
        sweep = {}
        if not big:
            for km in KURAMOTO_SWEEP:
                cfg = SyncConfig(mode="kuramoto", kuramoto_coupling=km * Kc)
                sweep[km] = [
                    lock_scenario(PhaseLockKernel(n, cfg), n, s, seconds=16.0, scramble_at=13.0) for s in seeds
                ]
        ki = [kuramoto_ideal(n, s, K5) for s in seeds]

        def m(lst, key):
            v = np.array([d[key] for d in lst], dtype=float)
            return float(np.mean(v)) if v.size and not np.isnan(v).any() else float("nan")

        t95k = {km: m(v, "t95_s") for km, v in sweep.items()}
        best = min(t95k, key=lambda km: t95k[km] if t95k[km] == t95k[km] else math.inf) if t95k else None
        fair = sweep.get(best, [])
        k5 = sweep.get(5, [])
        res = {
            "n": n,
            "seeds": len(seeds),
            "t95_s": m(L, "t95_s"),
            "t99_s": m(L, "t99_s"),
            "rms_rad": m(L, "rms_rad"),
            "steady_r": m(L, "steady_r"),
            "recovery_s": m(L, "recovery_s"),
            **bound,
            "t95_over_bound": m(L, "t95_s") / bound["bound_t95_s"],
            "t99_over_bound": m(L, "t99_s") / bound["bound_t99_s"],
            "recovery_over_bound": m(L, "recovery_s") / bound["bound_recovery_s"],
            # what the kernel publishes (TickResult -> /sync/state) next to the simulator's true values, same ticks
            "kernel_rms_rad": m(L, "kernel_rms_rad"),
            "true_rms_rad": m(L, "rms_rad"),
            "kernel_lock_fraction": m(L, "kernel_lock_fraction"),
            "true_lock_fraction": m(L, "lock_fraction"),
            "fair_kuramoto_t95_s": t95k.get(best, float("nan")),
            "fair_kuramoto_t99_s": m(fair, "t99_s"),
            "fair_kuramoto_k_over_kc": best,
            "fair_kuramoto_rms_rad": m(fair, "rms_rad"),
            "fair_kuramoto_recovery_s": m(fair, "recovery_s"),
            "kuramoto_sweep_t95_s": {f"{km}Kc": v for km, v in t95k.items()},
            "kuramoto_sweep_rms_rad": {f"{km}Kc": m(v, "rms_rad") for km, v in sweep.items()},
            "fair_kuramoto_t95_over_t95": t95k.get(best, float("nan")) / m(L, "t95_s"),
            "fair_kuramoto_rms_over_rms": m(fair, "rms_rad") / m(L, "rms_rad"),
            "kuramoto5_kernel_rms_rad": m(k5, "kernel_rms_rad"),
            "kuramoto5_true_rms_rad": m(k5, "rms_rad"),
            "kuramoto5_kernel_lock_fraction": m(k5, "kernel_lock_fraction"),
            "kuramoto5_true_lock_fraction": m(k5, "lock_fraction"),
            "cluster_detect_s": m(B, "detect_s"),
            "cluster_resolve_s": m(B, "resolve_s"),
            "cluster_resolution": B[0]["resolution"],
            "false_split": any(b["false_split_before"] for b in B),
            "far_split_detect_s": m(F, "detect_s"),
            "far_split_resolve_s": m(F, "resolve_s"),
            "far_split_resolution": F[0]["resolution"],
            "far_split_channels_hz": F[0]["targets"],
            "slew2_t95_s": m(fast, "t95_s"),
            "slew2_t99_s": m(fast, "t99_s"),
            "slew2_rms_rad": m(fast, "rms_rad"),
            "slew2_recovery_s": m(fast, "recovery_s"),
            "kuramoto_ideal_5kc_t95_s": float(np.mean([x[0] for x in ki])),
            "kuramoto_ideal_5kc_t99_s": float(np.mean([x[1] for x in ki])),
        }
        out[str(n)] = res
        rows.append(res)
    print(
        f"closed loop, f ~ N(1, 0.05) Hz, 50 Hz reports, noise 0.05 rad, 20 % loss, 20 ms late, "
        f"|offset| <= {umax} Hz, slew <= {slew} Hz/s; Kc = {Kc:.4f} rad/s; wall {time.time() - t_start:.0f} s"
    )
    hdr = f"{'metric':32s}" + "".join(f"{'N=' + str(r['n']):>18s}" for r in rows) + "   target"
    print(hdr)
    targets = {
        "t95_s": f"<= 1.05 x bound = {1.05 * bound['bound_t95_s']:.3f}",
        "t99_s": f"<= 1.05 x bound = {1.05 * bound['bound_t99_s']:.3f}",
        "rms_rad": "<= 0.02",
        "recovery_s": "<= 1.55",
        "kernel_rms_rad": "within 10 % of true_rms_rad",
        "kernel_lock_fraction": "within 10 % of true_lock_fraction",
        "kuramoto5_kernel_rms_rad": "within 10 % of kuramoto5_true_rms_rad",
        "cluster_detect_s": "<= 1",
    }
    for key in rows[0]:
        if key in ("n",):
            continue
        vals = "".join(f"{str(round(r[key], 4)) if isinstance(r[key], float) else str(r[key]):>18s}" for r in rows)
        print(f"{key:32s}{vals}   {targets.get(key, '')}")
    # cluster detection (bench/sync_clusters.py): two small bands found, one population never split
    clusters = cluster_figures(seeds=5 if args.quick else 20)
    print(
        "cluster detection: two bands 0.1 Hz apart at 2 x 25 jewels found in "
        f"{clusters['cluster_detect_rate_small']:.0%} of seeds (target >= 95 %); one population split in "
        f"{clusters['false_split_rate']:.2%} of ticks, worst N (target <= 1 %)"
    )
    flat = dict(rows[0])
    flat.update(clusters)
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
