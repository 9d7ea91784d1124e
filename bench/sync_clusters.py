"""Cluster-detection bench of the phase-locking kernel (issue 13, finding 4).

Runs through the kernel (lumina_nodes/kernels/phase_lock/) closed over the loop simulator of
lumina_nodes/models/loop_sim.py (noisy, lossy, late reports: the natural-frequency estimates are the kernel's own,
formed from noisy reported frequencies), and compares the kernel's Gaussian partition
(kernels/phase_lock/clusters.py) with the fixed-spacing-factor histogram rule it replaced (a copy of that rule,
``legacy_histogram_partition`` below), both applied to the same estimates at every detection tick.

Scenarios
  bands    two bands 0.1 Hz apart (each band sd 0.015 Hz: the festival drill's spread) at 2 x 25 and 2 x 50
           jewels, 20 seeds, 3 s: a seed is *found* when the kernel reports >= 2 clusters in the majority of the
           ticks of the last second; also 0.2 Hz apart and three bands 0.1 Hz apart (3 x 25)
  single   one Gaussian population f ~ N(1, 0.05) Hz of N = 50 .. 10,000 jewels, 20 seeds, 3 s: the fraction of
           ticks (after the first detection) in which the kernel reports more than one cluster
  cost     one detection (partition of the strided sample of <= cluster_sample_size estimates, plus the label of
           every jewel when >= 2 clusters) at N = 1e4, 1e5, 1e6, one and two populations: the new partition and
           the legacy histogram, interleaved in the same run, median of repeats

Usage: python bench/sync_clusters.py [--seeds S] [--quick]
The last line printed is one JSON object: ``cluster_detect_rate_small`` (fraction of seeds found at 2 x 25),
``false_split_rate`` (worst over N of the fraction of ticks a single population is split), the costs per detection
(ms) of both methods, and the per-scenario figures. :func:`cluster_figures` returns the two headline numbers (for
bench/sync_lock.py).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig, gaussian_partition
from lumina_nodes.models.loop_sim import LoopSim, run_loop

SINGLE_N = (50, 100, 200, 500, 1000, 2000, 5000, 10_000)
BAND_SD_FRACTION = 0.15  # the sleeper model's drill: band sd = 0.15 x separation


# ---------------------------------------------------------------------------------------------- legacy rule
def legacy_histogram_partition(
    nat,
    center,
    n_s=None,
    gap_hz=0.005,
    spacing_factor=25.0,
    noise_fraction=1e-5,
    valley_fraction=0.02,
    span_hz=2.0,
    min_fraction=0.05,
    min_size=5,
    stride=1,
):
    """The histogram rule the kernel used before issue 13 (kernel.py ``_detect_clusters`` at 6e465f5), as a
    function: bins of cluster_gap_hz / 4 over the sample ``nat`` (Hz, shape (m,)), split at runs of (almost)
    empty bins at least max(cluster_gap_hz, cluster_gap_spacing_factor x IQR / m) wide.

    Returns
    -------
    k : int
        Number of clusters.
    label_of : callable or None
        Maps frequencies (Hz, any shape) to cluster indices, None when k == 1.
    """
    h = gap_hz / 4.0
    n_s = nat.shape[0] if n_s is None else n_s
    fmin, fmax = float(np.min(nat)), float(np.max(nat))
    lo = max(fmin, center - span_hz)
    hi = min(fmax, center + span_hz)
    nb = int((hi - lo) / h) + 2

    def bins(v):
        x = np.subtract(v, lo)
        x *= 1.0 / h
        np.clip(x, 0.0, nb - 1, out=x)
        return x.astype(np.intp)

    counts = np.bincount(bins(nat), minlength=nb)[:nb]
    cum = np.cumsum(counts)
    q1, q3 = np.searchsorted(cum, [0.25 * n_s, 0.75 * n_s])
    spacing = (q3 - q1 + 1) * h / n_s
    gap_bins = max(4, int(math.ceil(spacing_factor * spacing / h)))
    min_sz = max(min_fraction * n_s, min_size / stride)
    occ = np.flatnonzero(counts > max(noise_fraction * n_s, valley_fraction * float(counts.max())))
    if occ.shape[0] > 1:
        split = (np.diff(occ) - 1) >= gap_bins
        if split.any():
            seg = np.concatenate([[0], np.cumsum(split)])
            wts = counts[occ].astype(np.float64)
            sizes = np.bincount(seg, weights=wts)
            cent = np.bincount(seg, weights=wts * (lo + (occ + 0.5) * h)) / sizes
            keep = np.flatnonzero(sizes >= min_sz)
            if keep.shape[0] >= 2:
                kc = cent[keep]
                bounds = 0.5 * (kc[1:] + kc[:-1])
                seg_to_k = np.searchsorted(bounds, cent)
                pos = np.clip(np.searchsorted(occ, np.arange(nb), side="right") - 1, 0, None)
                labels_of_bin = seg_to_k[seg[pos]]
                return int(keep.shape[0]), lambda f: np.take(labels_of_bin, bins(f))
    return 1, None


# ---------------------------------------------------------------------------------------------- scenarios
def _run(sim, seconds, cfg=None):
    """Close the loop for ``seconds``; at every detection tick also apply both partitions to the kernel's own
    estimates. Returns (tick times, clusters reported per tick, per-detection k of the new and legacy rules)."""
    cfg = cfg or SyncConfig()
    k = PhaseLockKernel(sim.n, cfg)
    slots = k.register(0, sim.ids)
    det = {"new": [], "legacy": [], "t": []}
    every = int(cfg.cluster_every_ticks)
    count = {"tick": 0}

    def on_tick(s, kern, tr, now):
        count["tick"] += 1
        if count["tick"] % every:
            return
        st = kern.slot_state(slots)
        nat = st["nat"][st["active"]].astype(np.float64)
        if nat.shape[0] == 0:
            return
        c = float(np.mean(nat))
        det["t"].append(now)
        det["new"].append(
            gaussian_partition(
                nat,
                max(cfg.cluster_min_fraction * nat.shape[0], cfg.cluster_min_size),
                cfg.cluster_gap_hz,
                cfg.cluster_penalty,
            ).k
        )
        det["legacy"].append(legacy_histogram_partition(nat, c)[0])

    t, _, res = run_loop(sim, k, seconds, on_tick)
    ks = np.array([len(r.clusters) for r in res])
    return t, ks, {key: np.array(v) for key, v in det.items()}


def band_scenario(n_per, seed, separation=0.1, groups=2, seconds=3.0):
    """``groups`` bands ``separation`` Hz apart around 1 Hz, sd 0.15 x separation, ``n_per`` jewels each.

    Returns a dict: ``found`` (kernel reports >= groups clusters in the majority of the last second's ticks),
    ``tick_fraction`` (that fraction), ``new_found`` / ``legacy_found`` (per-detection rule on the same estimates,
    majority of the last second's detections)."""
    rng = np.random.default_rng([seed, 13])
    n = groups * n_per
    sim = LoopSim(n, rng)
    g = rng.permutation(n) % groups
    sim.nat = 1.0 + (g - (groups - 1) / 2.0) * separation + rng.normal(0.0, BAND_SD_FRACTION * separation, n)
    t, ks, det = _run(sim, seconds)
    last = t > seconds - 1.0
    frac = float(np.mean(ks[last] >= groups))
    dl = det["t"] > seconds - 1.0
    return {
        "found": frac > 0.5,
        "tick_fraction": frac,
        "new_found": float(np.mean(det["new"][dl] >= groups)) > 0.5,
        "legacy_found": float(np.mean(det["legacy"][dl] >= groups)) > 0.5,
    }


def single_scenario(n, seed, seconds=3.0):
    """One Gaussian population f ~ N(1, 0.05) Hz of ``n`` jewels. Returns the fraction of ticks (from the first
    detection on) the kernel reports > 1 cluster, and the per-detection split fractions of both rules."""
    rng = np.random.default_rng([seed, 17])
    sim = LoopSim(n, rng)
    t, ks, det = _run(sim, seconds)
    first = int(SyncConfig().cluster_every_ticks) - 1
    return {
        "split_ticks": float(np.mean(ks[first:] > 1)),
        "new_split": float(np.mean(det["new"] > 1)),
        "legacy_split": float(np.mean(det["legacy"] > 1)),
    }


def cluster_figures(seeds=20, single_n=SINGLE_N):
    """The two headline figures: ``cluster_detect_rate_small`` (fraction of ``seeds`` in which two bands 0.1 Hz
    apart, sd 0.015 Hz, 2 x 25 jewels, are found) and ``false_split_rate`` (worst over ``single_n`` of the fraction
    of ticks a single Gaussian population is reported as > 1 cluster)."""
    found = [band_scenario(25, s)["found"] for s in range(seeds)]
    worst = max(float(np.mean([single_scenario(n, s)["split_ticks"] for s in range(seeds)])) for n in single_n)
    return {"cluster_detect_rate_small": float(np.mean(found)), "false_split_rate": worst}


# ---------------------------------------------------------------------------------------------- cost
def _timed(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def detection_cost(n, two, reps=15, cfg=None):
    """ms per detection at ``n`` jewels (float32 estimates, the kernel's dtype) for the new partition and the
    legacy histogram: the strided sample of <= cluster_sample_size, the partition, and every jewel's label when
    >= 2 clusters. One population N(1, 0.05) Hz, or (``two``) two bands 0.1 Hz apart with sd 0.015 Hz."""
    cfg = cfg or SyncConfig()
    rng = np.random.default_rng(5)
    if two:
        band = rng.permutation(n) % 2  # shuffled: a strided sample of alternating bands would alias
        nat = (1.0 + 0.1 * (band - 0.5) + rng.normal(0, 0.015, n)).astype(np.float32)
    else:
        nat = rng.normal(1.0, 0.05, n).astype(np.float32)
    labels = np.zeros(n, np.intp)
    stride = max(1, n // int(cfg.cluster_sample_size))
    center = float(nat.mean())
    out = {}

    def new():
        s = nat[::stride]
        s = np.clip(s, center - cfg.cluster_span_hz, center + cfg.cluster_span_hz)
        p = gaussian_partition(
            s,
            max(cfg.cluster_min_fraction * s.shape[0], cfg.cluster_min_size / stride),
            cfg.cluster_gap_hz,
            cfg.cluster_penalty,
        )
        if p.k > 1:
            p.labels(nat, out=labels)
        out["new_k"] = p.k

    def old():
        s = nat[::stride]
        k, lab = legacy_histogram_partition(s, center, stride=stride)
        if k > 1:
            np.copyto(labels, lab(nat))
        out["legacy_k"] = k

    tn, to = [], []
    for _ in range(reps):  # interleaved, so both see the same machine load
        tn.append(_timed(new, 1))
        to.append(_timed(old, 1))
    return {"new_ms": 1e3 * float(np.median(tn)), "legacy_ms": 1e3 * float(np.median(to)), **out}


def kernel_detection_cost(n, reps=40):
    """ms per detection measured through the kernel: a step with cluster_every_ticks=1 minus one with detection
    off (single population, all jewels reporting every tick)."""
    rng = np.random.default_rng(6)
    nat = rng.normal(1.0, 0.05, n)
    ids = np.arange(n, dtype=np.uint32)
    res = {}
    for name, every in (("on", 1), ("off", 10_000)):
        k = PhaseLockKernel(n, SyncConfig(cluster_every_ticks=every))
        k.register(0, ids)
        th = rng.random(n) * 6.283 - 3.1415
        off = np.zeros(n)
        ts = []
        t = 0.0
        for i in range(reps + 5):
            k.ingest(0, ids, th, nat + off, off, t, t)
            t0 = time.perf_counter()
            k.step(t + 0.02)
            if i >= 5:
                ts.append(time.perf_counter() - t0)
            t += 0.02
        res[name] = float(np.median(ts))
    return 1e3 * (res["on"] - res["off"])


# ---------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="5 seeds, fewer N")
    a = ap.parse_args()
    seeds = range(5 if a.quick else a.seeds)
    single_n = (50, 100, 1000) if a.quick else SINGLE_N
    t_start = time.time()
    rows = []
    bands = {}
    for label, n_per, sep, groups in (
        ("2 x 25, 0.1 Hz", 25, 0.1, 2),
        ("2 x 50, 0.1 Hz", 50, 0.1, 2),
        ("2 x 50, 0.2 Hz", 50, 0.2, 2),
        ("3 x 25, 0.1 Hz", 25, 0.1, 3),
    ):
        r = [band_scenario(n_per, s, sep, groups) for s in seeds]
        ns = len(r)
        bands[label] = {
            "found": sum(x["found"] for x in r) / ns,
            "new_per_detection": sum(x["new_found"] for x in r) / ns,
            "legacy_per_detection": sum(x["legacy_found"] for x in r) / ns,
        }
        rows.append((f"bands {label}: seeds found", *(bands[label][k_] for k_ in bands[label])))
    single = {}
    for n in single_n:
        r = [single_scenario(n, s) for s in seeds]
        single[str(n)] = {
            "split_ticks": float(np.mean([x["split_ticks"] for x in r])),
            "new_per_detection": float(np.mean([x["new_split"] for x in r])),
            "legacy_per_detection": float(np.mean([x["legacy_split"] for x in r])),
            "seeds_split": int(sum(x["split_ticks"] > 0 for x in r)),
        }
        s = single[str(n)]
        rows.append(
            (f"single N={n}: fraction split", s["split_ticks"], s["new_per_detection"], s["legacy_per_detection"])
        )
    cost = {}
    for n in (10_000, 100_000, 1_000_000):
        for two in (False, True):
            c = detection_cost(n, two)
            cost[f"{n}_{'two' if two else 'one'}"] = c
    kcost = {str(n): kernel_detection_cost(n) for n in (10_000, 100_000)}
    print(
        f"cluster detection through the kernel (LoopSim: noise 0.05 rad, freq noise 2 mHz, 20 % loss, 20 ms late), "
        f"{len(seeds)} seeds; wall {time.time() - t_start:.0f} s"
    )
    print(
        f"{'scenario':36s}{'kernel':>10s}{'new rule':>10s}{'legacy':>10s}   (new/legacy: per detection, same estimates)"
    )
    for name, *vals in rows:
        print(f"{name:36s}" + "".join(f"{v:10.3f}" for v in vals))
    print(f"{'cost per detection (ms)':36s}{'new':>10s}{'legacy':>10s}{'k new':>8s}{'k old':>8s}")
    for key, c in cost.items():
        print(f"{'  N=' + key:36s}{c['new_ms']:10.3f}{c['legacy_ms']:10.3f}{c['new_k']:8d}{c['legacy_k']:8d}")
    for n, v in kcost.items():
        print(f"{'  through kernel.step, N=' + n:36s}{v:10.3f}")
    worst_n = max(single, key=lambda n: single[n]["split_ticks"])
    out = {
        "cluster_detect_rate_small": bands["2 x 25, 0.1 Hz"]["found"],
        "false_split_rate": single[worst_n]["split_ticks"],
        "false_split_worst_n": int(worst_n) if single[worst_n]["split_ticks"] > 0 else None,
        "legacy_detect_rate_small": bands["2 x 25, 0.1 Hz"]["legacy_per_detection"],
        "legacy_false_split_rate": max(s["legacy_per_detection"] for s in single.values()),
        "detect_ms": {k_: round(c["new_ms"], 4) for k_, c in cost.items()},
        "legacy_detect_ms": {k_: round(c["legacy_ms"], 4) for k_, c in cost.items()},
        "kernel_detect_ms": {k_: round(v, 4) for k_, v in kcost.items()},
        "bands": bands,
        "single": single,
        "seeds": len(seeds),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
