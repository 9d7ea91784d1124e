"""Speed of the phase-locking kernel's whole tick, in ns per jewel.

One tick = ``ingest`` of one driver batch covering all N jewels (uint32 ids, float64 phase/frequency/offset,
scalar sample_time 20 ms old) + ``step`` + ``commands_for`` of that batch. Fresh report arrays each tick
(prepared outside the timed region). Beside it, in the same run: a plain numpy float64 mean-field Kuramoto
step (float64 cos + sin, in-place ``out=`` buffers, rint wrap), the SYNC_SCIENCE 3.1 "numpy float64 optimised" row.

Then the tick as the synchronizer node runs it at 2,500 jewels (per-jewel sample times, ingest + register + step +
commands_for): (a) no stale element, (b) 5 STALE elements per batch passed with a mask (what the node does),
(c) the same 5 passed the old way, as a subset of the batch; with cache hits, fast ingests and ratios.

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


def bench_node_path(n, stale, path, ticks, trials, seed=3):
    """One tick as the synchronizer node runs it: ``ingest`` of a batch with per-jewel sample times
    (stamp - sample_age, ages 5..15 ms) and ``stale`` STALE elements at random places (as the sim backend: the
    jewel's last report, its age grown), ``register`` of the batch's ids, ``step``, ``commands_for``.
    ``path``: 'mask' (the node now: the whole batch and a mask of new samples) or 'subset' (the node before: the
    non-stale elements only).

    Returns (us per tick, cache hits, fast ingests, ticks counted): a cache hit is a tick whose ``register``
    returned the driver's cached slots (the same array as the tick before); a fast ingest one that used no
    per-element (general) ingest.
    """
    rng = np.random.default_rng(seed)
    ids = (np.arange(n, dtype=np.uint32) * 3 + 5).astype(np.uint32)
    nat = rng.normal(1.0, 0.05, n)
    th0 = rng.random(n) * TWO_PI
    sets = []
    for j in range(8):  # rotating batches, prepared outside the timed region
        fresh = np.ones(n, np.bool_)
        fresh[rng.choice(n, stale, replace=False)] = False
        ph = wrap_phase(th0 + TWO_PI * nat * (j * DT) + rng.normal(0, 0.05, n))
        sets.append((ph, nat + rng.normal(0, 0.002, n), np.zeros(n), rng.uniform(0.005, 0.015, n), fresh))
    r_time = np.full(n, 1.0 - 0.01)  # each jewel's last delivered report (what a stale element repeats)
    k = PhaseLockKernel(n, SyncConfig())
    stamp = 1.0
    out = np.empty(n)
    best, hits, fast, counted = math.inf, 0, 0, 0
    warm = 5
    prev = None
    for trial in range(trials):
        times = []
        for i in range(ticks + (warm if trial == 0 else 0)):
            ph, fr, of, latency, fresh = sets[i % 8]
            stamp += DT
            now = stamp + 0.002  # the batch arrives 2 ms after its stamp
            # as the sim backend: a delivered report was measured `latency` ago, a stale element keeps its last
            # report and its age keeps growing; the message carries ages relative to the stamp
            np.copyto(r_time, stamp - latency, where=fresh)
            age = stamp - r_time
            writes = k._gen_writes
            t0 = time.perf_counter_ns()
            st = stamp - age
            if path == "mask":
                k.ingest(7, ids, ph, fr, of, st, now, mask=None if fresh.all() else fresh)
            else:
                k.ingest(7, ids[fresh], ph[fresh], fr[fresh], of[fresh], st[fresh], now)
            slots = k.register(7, ids)
            k.step(now)
            k.commands_for(7, slots, out=out)
            t1 = time.perf_counter_ns()
            if trial > 0 or i >= warm:
                times.append(t1 - t0)
                counted += 1
                hits += slots is prev
                fast += k._gen_writes == writes
            prev = slots
        best = min(best, float(np.median(times)))
    return best / 1e3, hits, fast, counted


def node_paths(n, stale, ticks, trials):
    """The node's tick at n jewels: (a) no stale, (b) ``stale`` stale elements via the mask, (c) the same via the
    old subset, in one run; the ratios are to (a)."""
    rows = {
        "no_stale": bench_node_path(n, 0, "mask", ticks, trials),
        "mask": bench_node_path(n, stale, "mask", ticks, trials),
        "subset": bench_node_path(n, stale, "subset", ticks, trials),
    }
    base = rows["no_stale"][0]
    return {
        name: {
            "us_per_tick": round(us, 1),
            "cache_hits": f"{h}/{c}",
            "fast_ingests": f"{f}/{c}",
            "ratio_to_no_stale": round(us / base, 2),
        }
        for name, (us, h, f, c) in rows.items()
    }


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
    node_n, node_stale = 2_500, 5
    ticks, trials = (200, 3) if args.quick else (400, 5)
    node = node_paths(node_n, node_stale, ticks, trials)
    print(
        f"node tick at {node_n} jewels (per-jewel sample times; ingest + register + step + commands_for), "
        f"{node_stale} stale elements per batch:"
    )
    print(f"{'path':>28s} {'us/tick':>9s} {'cache hits':>12s} {'fast ingests':>13s} {'ratio':>6s}")
    labels = {
        "no_stale": "(a) no stale",
        "mask": f"(b) {node_stale} stale, mask",
        "subset": f"(c) {node_stale} stale, old subset",
    }
    for name, row in node.items():
        print(
            f"{labels[name]:>28s} {row['us_per_tick']:>9.1f} {row['cache_hits']:>12s} {row['fast_ingests']:>13s} "
            f"{row['ratio_to_no_stale']:>6.2f}"
        )
    print(json.dumps({"ns_per_jewel": res, "baseline_ns_per_jewel": base, "node_tick_2500": node}))


if __name__ == "__main__":
    main()
