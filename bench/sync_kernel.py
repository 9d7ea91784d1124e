"""Speed of the phase-locking kernel's whole tick, in ns per jewel.

One tick = ``ingest`` of one driver batch covering all N jewels (uint32 ids, float64 phase/frequency/offset,
scalar sample_time 20 ms old) + ``step`` + ``commands_for`` of that batch. Fresh report arrays each tick
(prepared outside the timed region). Beside it, in the same run: a plain numpy float64 mean-field Kuramoto
step (float64 cos + sin, in-place ``out=`` buffers, rint wrap), the SYNC_SCIENCE 3.1 "numpy float64 optimised" row.

Timing: median tick of each trial, best trial of several (single thread, after warm-up ticks).
Usage: python bench/sync_kernel.py [--quick]. The last line printed is one JSON object.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.phase import TWO_PI, wrap_phase

DT = 0.02


def bench_kernel(n, ticks, trials, cfg=None, kernel_only=False):
    rng = np.random.default_rng(n)
    ids = (np.arange(n, dtype=np.uint32) * 3 + 5).astype(np.uint32)
    nat = rng.normal(1.0, 0.05, n)
    th0 = rng.random(n) * TWO_PI
    sets = []
    for j in range(4):  # rotating report sets, prepared outside the timed region
        ph = wrap_phase(th0 + TWO_PI * nat * (j * DT) + rng.normal(0, 0.05, n))
        sets.append((ph, nat + rng.normal(0, 0.002, n), np.zeros(n)))
    k = PhaseLockKernel(n, cfg or SyncConfig())
    now = 1.0
    out = np.empty(n)
    slots = k.register(7, ids)
    best = math.inf
    stats = None
    warm = 5
    for trial in range(trials):
        times = []
        for i in range(ticks + (warm if trial == 0 else 0)):
            ph, fr, of = sets[i % 4]
            now += DT
            t0 = time.perf_counter_ns()
            rep = k.ingest(7, ids, ph, fr, of, now - DT, now)
            res = k.step(now)
            k.commands_for(7, slots, out=out)
            t1 = time.perf_counter_ns()
            if trial > 0 or i >= warm:
                times.append(t1 - t0)
        med = float(np.median(times))
        if med < best:
            best = med
            stats = (rep.accepted, res.jewels_active)
    assert stats[0] == n and stats[1] == n, stats
    return best / n


def bench_baseline(n, ticks, trials):
    """Plain numpy float64 mean-field Kuramoto step: K (Y cos th - X sin th), float64 cos/sin, out= buffers."""
    rng = np.random.default_rng(n + 1)
    th = rng.random(n) * TWO_PI
    w = TWO_PI * rng.normal(1.0, 0.05, n)
    c, s, b = np.empty(n), np.empty(n), np.empty(n)
    K = 2.5
    best = math.inf
    for trial in range(trials):
        times = []
        for i in range(ticks + (3 if trial == 0 else 0)):
            t0 = time.perf_counter_ns()
            np.cos(th, out=c)
            np.sin(th, out=s)
            X = np.add.reduce(c) / n
            Y = np.add.reduce(s) / n
            c *= Y * K
            s *= X * K
            c -= s
            c += w
            c *= DT
            th += c
            np.multiply(th, 1 / TWO_PI, out=b)
            np.rint(b, out=b)
            b *= TWO_PI
            th -= b
            t1 = time.perf_counter_ns()
            if trial > 0 or i >= 3:
                times.append(t1 - t0)
        best = min(best, float(np.median(times)))
    return best / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer ticks and trials")
    args = ap.parse_args()
    sizes = [1_000, 10_000, 100_000, 1_000_000]
    res, base = {}, {}
    for n in sizes:
        if args.quick:
            ticks, trials = (200, 3) if n <= 10_000 else ((60, 3) if n <= 100_000 else (15, 2))
        else:
            ticks, trials = (500, 5) if n <= 10_000 else ((150, 5) if n <= 100_000 else (40, 5))
        res[str(n)] = round(bench_kernel(n, ticks, trials), 3)
        base[str(n)] = round(bench_baseline(n, ticks, trials), 3)
    print(
        f"phase-lock kernel, whole tick (ingest all + step + commands_for), ns per jewel; "
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}"
    )
    print(
        f"{'N':>10s} {'kernel ns/jewel':>16s} {'us/tick':>10s} {'numpy f64 Kuramoto':>19s} {'ratio':>7s} {'target':>8s}"
    )
    for n in sizes:
        kv, bv = res[str(n)], base[str(n)]
        tgt = {1_000_000: "<= 10", 100_000: "<= 8", 10_000: "<= 8", 1_000: "<=50us"}.get(n, "")
        print(f"{n:>10d} {kv:>16.2f} {kv * n / 1e3:>10.1f} {bv:>19.2f} {bv / kv:>7.2f} {tgt:>8s}")
    print(json.dumps({"ns_per_jewel": res, "baseline_ns_per_jewel": base}))


if __name__ == "__main__":
    main()
