"""Frequency channels for clusters that cannot share one rhythm (plain numpy; scipy for the weighted case)."""

import math

import numpy as np


def assign_channels(centers, sizes=None, spacing_hz: float = 0.05, *, power: float = 2.0) -> np.ndarray:
    """Give each cluster a distinct frequency on the grid ``spacing_hz * integer``, minimising
    ``sum_j w_j * |centers_j - channel_j| ** power`` (``power >= 1``, a convex 1-D cost).

    Unweighted (``sizes`` None or all equal): the cost is Monge, so an optimal assignment keeps the sorted order
    (SYNC_SCIENCE 1.9) and a monotone dynamic programme over the k sorted clusters and m candidate channels is
    exact in O(k m). Weighted (w_j = cluster sizes, so big clusters move least): the weights break the Monge
    property, so the k x m problem is solved exactly with ``scipy.optimize.linear_sum_assignment`` (k is a handful;
    both run only when the cluster structure changes, never per tick).

    Parameters
    ----------
    centers : array_like, shape (k,)
        Cluster centre frequencies (Hz), any order.
    sizes : array_like, shape (k,), optional
        Cluster weights (jewel counts).
    spacing_hz : float
        Channel grid spacing (Hz).

    Returns
    -------
    channels : ndarray, shape (k,), float64
        Channel frequency (Hz) per cluster, in the order of ``centers``; all distinct.
    """
    c = np.asarray(centers, dtype=np.float64)
    k = c.shape[0]
    if k == 0:
        return np.empty(0)
    w = np.ones(k) if sizes is None else np.asarray(sizes, dtype=np.float64)
    order = np.argsort(c, kind="stable")
    cs, ws = c[order], w[order]
    lo = math.floor(cs[0] / spacing_hz) - k
    hi = math.ceil(cs[-1] / spacing_hz) + k
    grid = np.arange(lo, hi + 1, dtype=np.float64) * spacing_hz  # (m,)
    m = grid.shape[0]
    cost = ws[:, None] * np.abs(cs[:, None] - grid[None, :]) ** power  # (k, m)
    channels = np.empty(k)
    if not np.all(ws == ws[0]):
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        channels[order[rows]] = grid[cols]
        return channels
    idx = np.arange(m)
    d = cost[0].copy()
    back = np.empty((k, m), dtype=np.intp)
    for j in range(1, k):  # loop over clusters: allocation events only
        run_min = np.minimum.accumulate(d)
        run_arg = np.maximum.accumulate(np.where(d == run_min, idx, 0))
        prev = np.empty(m)
        prev[0] = np.inf
        prev[1:] = run_min[:-1]
        back[j, 0] = 0
        back[j, 1:] = run_arg[:-1]
        d = prev + cost[j]
    out_sorted = np.empty(k, dtype=np.intp)
    out_sorted[-1] = int(np.argmin(d))
    for j in range(k - 1, 0, -1):
        out_sorted[j - 1] = back[j, out_sorted[j]]
    channels[order] = grid[out_sorted]
    return channels
