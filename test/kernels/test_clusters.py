"""Cluster detection (lumina_nodes/kernels/phase_lock/clusters.py) on synthetic samples and through the kernel.

Issue 13, finding 4: the old fixed-spacing-factor gap rule found two bands 0.1 Hz apart (sd 0.015 Hz) in 2 of 20
seeds at 2 x 25 jewels and split single populations of 100-200 jewels. The closed-loop tests here form the
natural-frequency estimates the way the kernel does, from noisy reports (lumina_nodes/models/loop_sim.py).
"""

import math

import numpy as np
import pytest

from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig, gaussian_partition
from lumina_nodes.kernels.phase_lock.clusters import split_gains
from lumina_nodes.models.loop_sim import LoopSim, run_loop

CFG = SyncConfig()


def partition(x, min_fraction=CFG.cluster_min_fraction):
    x = np.asarray(x)
    return gaussian_partition(
        x, max(min_fraction * x.shape[0], CFG.cluster_min_size), CFG.cluster_gap_hz, CFG.cluster_penalty
    )


def bands(rng, n_per, centres, sd):
    """Values of len(centres) bands of n_per each (shuffled) and the band of each value."""
    g = rng.permutation(n_per * len(centres)) % len(centres)
    return np.asarray(centres)[g] + rng.normal(0.0, sd, g.shape[0]), g


# --------------------------------------------------------------------------------------------- pure function
def test_two_bands_at_small_n_are_found_and_labelled():
    for seed in range(40):
        x, g = bands(np.random.default_rng(seed), 25, [0.95, 1.05], 0.015)
        p = partition(x)
        assert p.k == 2, (seed, p)
        assert np.mean(p.labels(x) == g) >= 0.96, seed
        assert np.all(np.abs(p.mean - [0.95, 1.05]) < 0.015), (seed, p.mean)
        assert np.array_equal(p.size, np.bincount(p.labels(x))), seed
        assert 0.95 < p.bounds[0] < 1.05


def test_one_gaussian_population_is_not_split():
    rng = np.random.default_rng(1)
    for n in (50, 100, 200, 500, 2000, 16384):
        reps = 300 if n <= 500 else 30
        ks = [partition(rng.normal(1.0, 0.05, n)).k for _ in range(reps)]
        assert max(ks) == 1, (n, np.bincount(ks))
    # below the 50 jewels of the target, chance splits stay rare (measured ~0.2-0.3 % at 10-20 jewels)
    for n in (10, 20):
        ks = np.array([partition(rng.normal(1.0, 0.05, n)).k for _ in range(300)])
        assert np.mean(ks > 1) <= 0.01, (n, np.bincount(ks))


def test_three_bands_are_three_clusters():
    for seed in range(20):
        x, g = bands(np.random.default_rng(seed), 25, [0.9, 1.0, 1.1], 0.015)
        p = partition(x)
        assert p.k == 3, (seed, p)
        assert np.mean(p.labels(x) == g) >= 0.95, seed
        out = np.full(x.shape, 7, np.intp)
        assert p.labels(x, out=out) is out
        np.testing.assert_array_equal(out, np.searchsorted(p.bounds, x, side="right"))


def test_unequal_bands_stray_values_and_resolution():
    rng = np.random.default_rng(4)
    # a 10 % group 0.3 Hz off a wide population is its own cluster
    x = np.concatenate([rng.normal(1.0, 0.05, 900), rng.normal(1.3, 0.01, 100)])
    p = partition(x)
    assert p.k == 2 and abs(p.size[1] - 100) <= 2, p
    # a few stray values far off are not a cluster, and do not split the population
    x = np.concatenate([rng.normal(1.0, 0.05, 100), [3.0, 3.0, 2.5, 0.2]])
    assert partition(x).k == 1
    # a group below cluster_min_fraction joins its nearest cluster
    x = np.concatenate([rng.normal(1.0, 0.01, 980), rng.normal(1.5, 0.01, 20)])
    p = partition(x)
    assert p.k == 1 and p.size[0] == 1000
    # identical estimates (noise-free reports): one cluster; two exact values: two clusters unless closer than
    # cluster_gap_hz (the resolution)
    assert partition(np.full(200, 1.0)).k == 1
    assert partition(np.repeat([1.0, 1.01], 100)).k == 2
    assert partition(np.repeat([1.0, 1.0 + 0.5 * CFG.cluster_gap_hz], 100)).k == 1
    assert partition(np.array([1.0])).k == 1 and partition(np.empty(0)).k == 1
    # plainly two groups (sd cluster_gap_hz / 4, 3.8 sd apart, 5000 each) closer than cluster_gap_hz: one cluster
    gap = CFG.cluster_gap_hz
    assert partition(bands(rng, 5000, [1.0, 1.0 + 0.95 * gap], gap / 4)[0]).k == 1
    assert partition(bands(rng, 5000, [1.0, 1.0 + 1.5 * gap], gap / 4)[0]).k == 2


def test_split_gains_match_the_direct_log_likelihoods():
    rng = np.random.default_rng(2)
    xs = np.sort(np.concatenate([rng.normal(0.95, 0.015, 30), rng.normal(1.05, 0.002, 20)]))
    floor = (CFG.cluster_gap_hz / 4) ** 2

    def ll(v):
        var = max(np.var(v), floor)
        return -0.5 * v.shape[0] * (math.log(2 * math.pi * var)) - 0.5 * np.sum((v - v.mean()) ** 2) / var

    m = xs.shape[0]
    g = split_gains(xs, floor)
    for i in range(1, m):
        direct = ll(xs[:i]) + ll(xs[i:]) + i * math.log(i / m) + (m - i) * math.log((m - i) / m) - ll(xs)
        assert g[i] == pytest.approx(direct, abs=1e-8)
    assert g[0] == g[m] == -np.inf and int(np.argmax(g)) == 30


# --------------------------------------------------------------------------------------------- through the kernel
def _closed_loop(nat, seed, seconds=3.0):
    rng = np.random.default_rng([seed, 99])
    sim = LoopSim(nat.shape[0], rng)
    sim.nat = nat
    k = PhaseLockKernel(nat.shape[0])
    t, _, res = run_loop(sim, k, seconds)
    return sim, k, t, res


def test_kernel_finds_two_small_bands_from_noisy_reports():
    found = 0
    for seed in range(20):
        nat, g = bands(np.random.default_rng(seed), 25, [0.95, 1.05], 0.015)
        sim, k, t, res = _closed_loop(nat, seed)
        last = [r for tt, r in zip(t, res, strict=True) if tt > t[-1] - 1.0]
        ok = all(len(r.clusters) == 2 for r in last)
        if ok:
            found += 1
            assert last[-1].clusters.resolution == "merging"  # 0.1 Hz apart: within the comfort range
            lab = k.slot_state(k.register(0, sim.ids))["label"]
            assert np.mean(lab == g) >= 0.96 or np.mean(lab != g) >= 0.96
    assert found >= 19, found


@pytest.mark.parametrize("n", [50, 100, 200, 1000])
def test_kernel_keeps_one_gaussian_population_whole(n):
    split = 0
    for seed in range(10):
        nat = np.random.default_rng([seed, n]).normal(1.0, 0.05, n)
        _, _, _, res = _closed_loop(nat, seed, seconds=2.0)
        split += sum(len(r.clusters) > 1 for r in res)
    assert split == 0, split
