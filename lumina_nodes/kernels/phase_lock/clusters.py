"""Frequency clusters of a jewel population: a 1-D Gaussian partition chosen by a penalised likelihood (plain numpy).

:func:`gaussian_partition` splits a sample of natural-frequency estimates (Hz) into k >= 1 clusters. It is what
:meth:`PhaseLockKernel._detect_clusters <lumina_nodes.kernels.phase_lock.kernel.PhaseLockKernel>` runs every
``cluster_every_ticks`` ticks on a strided sample of at most ``cluster_sample_size`` estimates; the kernel keeps the
confirmation (``cluster_confirm``), the labelling of every jewel and the resolution (merge or channels).

Method
------
Each cluster is a Gaussian; a partition of the sorted sample into contiguous segments S_1..S_k is scored by its
*classification* log-likelihood (nats)::

    L(S_1..S_k) = sum_j [ n_j ln(n_j / n)  -  n_j/2 ln(2 pi v_j)  -  SS_j / (2 v_j) ]
    v_j = max(SS_j / n_j, floor_var),   SS_j = sum over S_j of (x - mean_j)^2,   floor_var = (resolution_hz / 4)^2

and a split is kept only when it raises L by more than ``penalty`` x the BIC price of one more component,
``penalty * (3/2) ln n`` (a mean, a variance and a weight). Segments are found by binary segmentation: the best
split of a segment is one vectorised pass over its prefix sums (every split point at once), repeated on the parts
while a split pays for itself (a loop over clusters, never over values).

Why the classification likelihood and not the mixture likelihood: for well separated groups (means more than ~4
sd apart, what the synchronizer must act on) the two agree; for one Gaussian population the expected
classification log-likelihood of *any* hard partition is never above the single Gaussian's (chain rule of entropy:
h(X) = H(segment) + sum_j p_j h(X | S_j) <= H(segment) + sum_j p_j (1/2) ln(2 pi e v_j)), so the penalty only has to
absorb sampling noise, not the systematic gain a mixture fit gets from a Gaussian's shape. The old rule (an empty
gap of a fixed multiple of IQR / N) had no such guarantee: it split sparse samples at chance gaps and missed
bands that were plainly separate.

Groups smaller than ``min_size`` (stray or faulty jewels, tiny groups) are not clusters: they are segmented out so
they do not inflate a cluster's variance, then join the nearest cluster, as before. Means closer than
``resolution_hz`` are never separate clusters.

Cost: one sort of the sample (O(m log m)) plus O(m) per accepted split; no Python loop over values.
"""

import dataclasses
import math

import numpy as np

__all__ = ["Partition", "gaussian_partition", "split_gains"]

_LN_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class Partition:
    """Clusters of a 1-D sample, ordered by frequency.

    Attributes
    ----------
    bounds : ndarray, shape (k - 1,), float64
        Hz, ascending. A frequency f belongs to cluster ``searchsorted(bounds, f, side='right')`` (:meth:`labels`).
    size : ndarray, shape (k,), int64
        Sample values in each cluster (its stray values included).
    mean, spread : ndarray, shape (k,), float64
        Mean and standard deviation (Hz) of each cluster's sample values.
    gain : ndarray, shape (k - 1,), float64
        Log-likelihood gain (nats) of each kept split, before the penalty.
    penalty_nats : float
        The price a split had to beat, nats.
    """

    bounds: np.ndarray
    size: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    gain: np.ndarray
    penalty_nats: float

    @property
    def k(self) -> int:
        """Number of clusters (>= 1)."""
        return int(self.size.shape[0])

    def labels(self, frequencies, out=None) -> np.ndarray:
        """Cluster index (intp, shape of ``frequencies``) of each frequency (Hz), written into ``out`` if given.

        Few clusters: the count of bounds at or below each frequency, one SIMD comparison pass per bound (a
        binary search per value costs ~10 ns each at 1e6 jewels)."""
        f = np.asarray(frequencies)
        if out is None:
            out = np.zeros(f.shape, np.intp)
        else:
            out[...] = 0
        if self.bounds.shape[0] > 8:
            out[...] = np.searchsorted(self.bounds, f, side="right")
            return out
        cmp = np.empty(f.shape, np.bool_)
        for b in self.bounds:  # a loop over clusters, not values
            np.greater_equal(f, b, out=cmp)
            out += cmp
        return out


def _segment_ll(n, ss, floor_var):
    """Gaussian log-likelihood (nats) of n values with sum of squared deviations ss (scalars)."""
    v = max(ss / n, floor_var)
    return -0.5 * n * (_LN_2PI + math.log(v)) - 0.5 * ss / v


_XLOGX = np.zeros(1)  # _XLOGX[j] = j ln j (0 ln 0 = 0), grown on demand


def _xlogx(m):
    global _XLOGX
    if _XLOGX.shape[0] <= m:
        j = np.arange(1.0, 2 * m + 2)
        _XLOGX = np.concatenate([[0.0], j * np.log(j)])
    return _XLOGX


def split_gains(xs: np.ndarray, floor_var: float, resolution_hz: float = 0.0) -> np.ndarray:
    """Classification log-likelihood gain (nats) of splitting the sorted segment ``xs`` before each index.

    Parameters
    ----------
    xs : ndarray, shape (m,), float64
        Sorted values, Hz.
    floor_var : float
        Variance floor, Hz^2.
    resolution_hz : float
        Splits whose two sides' means are closer than this score -inf.

    Returns
    -------
    ndarray, shape (m + 1,), float64
        ``g[i]`` = L(xs[:i]) + L(xs[i:]) - L(xs) (weights within the segment included); -inf where a side is empty,
        where ``xs[i - 1] == xs[i]`` (no strict gap) or where the means are closer than ``resolution_hz``.
    """
    m = xs.shape[0]
    g = np.full(m + 1, -np.inf)
    if m < 2:
        return g
    c = xs - xs.mean()  # centred: the prefix sums of squares do not cancel catastrophically
    s1 = np.cumsum(c)
    s2 = np.cumsum(c * c)
    tot1, tot2 = float(s1[-1]), float(s2[-1])
    nl = np.arange(1.0, m)  # left sizes 1..m-1 (split before index 1..m-1)
    nr = m - nl
    l1 = s1[:-1]
    ml = l1 / nl  # left mean (centred)
    mr = (tot1 - l1) / nr  # right mean
    # per-side variance: (sum of squares - n mean^2) / n, floored; the log-likelihood of a side with n values is
    # -n/2 ln(2 pi v) - ss/(2 v), the ln(2 pi) terms cancel against the whole segment's
    vl = s2[:-1] / nl
    vl -= ml * ml
    vr = (tot2 - s2[:-1]) / nr
    vr -= mr * mr
    np.maximum(vl, floor_var, out=vl)
    np.maximum(vr, floor_var, out=vr)
    # ss / v: = n unless the floor bit; sum of both sides = sum of squares about each side's mean / v
    ssl = s2[:-1] - nl * ml * ml
    ssr = (tot2 - s2[:-1]) - nr * mr * mr
    gi = np.log(vl)
    gi *= nl
    t = np.log(vr)
    t *= nr
    gi += t
    np.divide(ssl, vl, out=t)
    gi += t
    np.divide(ssr, vr, out=t)
    gi += t
    gi *= -0.5
    x = _xlogx(m)
    gi += x[1:m]
    gi += x[m - 1 : 0 : -1]
    gi -= x[m] + (_segment_ll(float(m), max(tot2 - tot1 * tot1 / m, 0.0), floor_var) + 0.5 * m * _LN_2PI)
    ok = xs[1:] > xs[:-1]
    if resolution_hz > 0.0:
        ok &= (mr - ml) >= resolution_hz
    g[1:m] = np.where(ok, gi, -np.inf)
    return g


def _crossings(lo_mean, lo_sd, lo_w, hi_mean, hi_sd, hi_w, gap_lo, gap_hi):
    """Where the weighted Gaussians of adjacent clusters have equal density, clipped into the sample gap between
    them (all arrays shape (k - 1,), Hz); the gap's midpoint where no crossing lies inside it."""
    a = 0.5 / hi_sd**2 - 0.5 / lo_sd**2
    b = lo_mean / lo_sd**2 - hi_mean / hi_sd**2
    c = 0.5 * hi_mean**2 / hi_sd**2 - 0.5 * lo_mean**2 / lo_sd**2 + np.log(lo_w * hi_sd / (hi_w * lo_sd))
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
        lin = -c / b
        r1 = (-b + disc) / (2.0 * a)
        r2 = (-b - disc) / (2.0 * a)
    small = np.abs(a) * (hi_mean - lo_mean) < 1e-9 * np.abs(b)
    x = np.where(small, lin, np.where((r1 >= lo_mean) & (r1 <= hi_mean), r1, r2))
    mid = 0.5 * (gap_lo + gap_hi)
    x = np.where(np.isfinite(x) & (x > gap_lo) & (x <= gap_hi), x, mid)
    return np.where(x > gap_lo, x, gap_hi)


def gaussian_partition(
    frequencies,
    min_size: float = 5.0,
    resolution_hz: float = 0.005,
    penalty: float = 2.0,
    max_clusters: int = 64,
) -> Partition:
    """Partition natural-frequency estimates into Gaussian clusters (penalised classification likelihood).

    Parameters
    ----------
    frequencies : array_like, shape (m,)
        Natural-frequency estimates, Hz (any order; NaN not allowed). The caller bounds m (a strided sample).
    min_size : float
        A cluster holds at least this many of the m values; smaller groups join the nearest cluster.
    resolution_hz : float
        Cluster means closer than this are one cluster; each cluster's sd counts as at least resolution_hz / 4 (the
        variance floor: groups narrower than that are not told apart by their width).
    penalty : float
        Multiple of the BIC price, (3/2) ln m nats, that a split must beat (1 = plain BIC; the kernel's default
        ``cluster_penalty`` is 2).
    max_clusters : int
        At most this many clusters.

    Returns
    -------
    Partition
        ``k == 1`` (no bounds) when no split pays for itself.
    """
    x = np.sort(np.asarray(frequencies, dtype=np.float64).ravel())
    m = int(x.shape[0])
    floor_var = (0.25 * float(resolution_hz)) ** 2
    if not floor_var > 0.0:
        floor_var = 1e-18
    price = float(penalty) * 1.5 * math.log(max(m, 2))
    min_size = max(float(min_size), 1.0)
    cuts = []  # accepted split indices into x
    gains = {}
    # binary segmentation: segments waiting for a split test, as (start, stop)
    todo = [(0, m)]
    n_big = 1 if m >= min_size else 0  # segments that are clusters (>= min_size)
    while todo:
        a, b = todo.pop()
        if b - a < 2:
            continue
        g = split_gains(x[a:b], floor_var, resolution_hz)
        i = int(np.argmax(g))
        if not g[i] > price:
            continue
        left, right = i, (b - a) - i
        grows = (left >= min_size) and (right >= min_size)
        if grows and n_big >= max_clusters:
            continue
        n_big += int(grows)
        cuts.append(a + i)
        gains[a + i] = float(g[i])
        todo.append((a, a + i))
        todo.append((a + i, b))
    cuts.sort()
    edges = np.array([0, *cuts, m], dtype=np.intp)
    seg_n = np.diff(edges)
    big = np.flatnonzero(seg_n >= min_size)
    if big.shape[0] < 2:
        return _single(x, price)
    # kept clusters: segment statistics of the big segments (the stray segments are left out of the fit)
    cs = np.concatenate([[0.0], np.cumsum(x)])
    cs2 = np.concatenate([[0.0], np.cumsum((x - x.mean()) ** 2)])
    st, en = edges[big], edges[big + 1]
    nb = (en - st).astype(np.float64)
    mu = (cs[en] - cs[st]) / nb
    var = np.maximum((cs2[en] - cs2[st]) / nb - (mu - x.mean()) ** 2, 0.0)
    sd = np.sqrt(np.maximum(var, floor_var))
    w = nb / m
    bounds = _crossings(mu[:-1], sd[:-1], w[:-1], mu[1:], sd[1:], w[1:], x[en[:-1] - 1], x[st[1:]])
    lab = np.searchsorted(bounds, x, side="right")
    size = np.bincount(lab, minlength=big.shape[0])
    mean = np.bincount(lab, weights=x, minlength=big.shape[0]) / size
    dev = x - mean[lab]
    spread = np.sqrt(np.bincount(lab, weights=dev * dev, minlength=big.shape[0]) / size)
    kept_gain = np.array([gains.get(int(e), np.nan) for e in st[1:]])
    return Partition(bounds, size.astype(np.int64), mean, spread, kept_gain, price)


def _single(x, price):
    m = x.shape[0]
    if m == 0:
        return Partition(np.empty(0), np.zeros(1, np.int64), np.full(1, np.nan), np.zeros(1), np.empty(0), price)
    mu = float(x.mean())
    return Partition(
        np.empty(0), np.array([m], np.int64), np.array([mu]), np.array([float(x.std())]), np.empty(0), price
    )
