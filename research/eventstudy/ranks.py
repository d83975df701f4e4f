"""Row ranks, row medians and column-wise Wilcoxon signed-rank statistics (vectorised)."""
from __future__ import annotations

import numpy as np
from scipy import special
from scipy import stats as sps


def _p_norm(x):
    return 2.0 * special.ndtr(-np.abs(x))


def row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest) within each row, NaN where ``x`` is NaN.

    The values of ``scipy.stats.rankdata(x, axis=1, nan_policy="omit")`` from one sort; only the
    tie groups (rare in continuous returns) are averaged, in work proportional to their size.
    """
    n, L = x.shape
    # NaN sorts last, so finite values rank 1..count; tie groups are averaged, so any order within
    # a group gives the same ranks (no need for a slower stable sort)
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, axis=1)
    ranks_sorted = np.broadcast_to(np.arange(1.0, L + 1.0), (n, L))
    if L > 1:
        # tie[p]: sorted values p and p + 1 are equal (NaN == NaN is False: missing never ties).
        # Two False columns of padding keep runs from crossing rows in the flattened mask.
        tie = np.zeros((n, L + 1), dtype=np.int8)
        np.equal(xs[:, 1:], xs[:, :-1], out=tie[:, : L - 1].view(bool))
        edge = np.diff(tie.ravel(), prepend=np.int8(0))
        run_start = np.flatnonzero(edge == 1)  # a run of ties over flat positions [start, end)
        if run_start.size:
            run_end = np.flatnonzero(edge == -1)
            ranks_sorted = np.array(ranks_sorted)
            width = L + 1
            row, p0 = np.divmod(run_start, width)
            p1 = run_end - row * width  # the group spans sorted positions p0..p1 inclusive
            size = p1 - p0 + 1
            grp = np.repeat(np.arange(run_start.size), size)
            pos = p0[grp] + (np.arange(grp.size) - np.repeat(np.cumsum(size) - size, size))
            ranks_sorted[row[grp], pos] = ((p0 + p1) / 2.0 + 1.0)[grp]
    out = np.empty((n, L))
    np.put_along_axis(out, order, ranks_sorted, axis=1)
    out[np.isnan(x)] = np.nan
    return out


def row_median(x: np.ndarray) -> np.ndarray:
    """``np.nanmedian(x, axis=1)`` (NaN for a row without values, and no warning).

    Complete rows use numpy's partition-based median; only rows with gaps are sorted (numpy's
    own nan-median goes through masked arrays for rows shorter than 600, several times slower).
    """
    n, L = x.shape
    if L == 0:
        return np.full(n, np.nan)
    cnt = L - np.isnan(x).sum(1)
    out = np.empty(n)
    complete = cnt == L
    if complete.any():
        out[complete] = np.median(x[complete], axis=1)
    part = np.flatnonzero(~complete)
    if part.size:
        xs = np.sort(x[part], axis=1)  # NaN last: the c finite values come first
        c, i = cnt[part], np.arange(part.size)
        with np.errstate(invalid="ignore"):
            out[part] = np.where(c > 0, (xs[i, np.maximum((c - 1) // 2, 0)] + xs[i, np.maximum(c // 2, 0)]) / 2, np.nan)
    return out


def wilcoxon_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilcoxon signed-rank per column: W+ (sum of ranks of |x| over positive x, zeros dropped)
    and the two-sided p-value as scipy computes it: exact (scipy) for n <= 50, otherwise the
    normal approximation with tie correction and no continuity correction, vectorised."""
    a = np.abs(x)
    a = np.where(a == 0, np.nan, a)
    r = row_ranks(a.T).T
    has = np.isfinite(a)
    wplus = np.where(has & (np.nan_to_num(x) > 0), r, 0.0).sum(0)
    n = has.sum(0).astype(float)
    # sum of squared average ranks = n(n+1)(2n+1)/6 - sum(t^3 - t)/12, which gives the tie term
    r2 = np.where(has, r, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        var = r2.sum(0) / 4.0
        z = (wplus - n * (n + 1) / 4.0) / np.sqrt(var)
    p = _p_norm(z)
    for j in np.flatnonzero((n > 0) & (n <= 50)):  # small samples: scipy's exact/auto p-value
        col = x[:, j]
        p[j] = sps.wilcoxon(col[np.isfinite(col) & (col != 0)], zero_method="wilcox").pvalue
    p = np.where(n > 0, p, np.nan)
    wplus = np.where(n > 0, wplus, np.nan)
    return wplus.astype(float), p


def signrank_quantile(p: float, n: int) -> int:
    """R's ``qsignrank(p, n)``: the smallest x with P(V <= x) >= p under the null."""
    dist = np.zeros(n * (n + 1) // 2 + 1)
    dist[0] = 1.0
    for k in range(1, n + 1):  # probabilities, halved each step (no overflow for large n)
        dist[k:] = (dist[k:] + dist[:-k].copy())
        dist /= 2.0
    return int(np.searchsorted(np.cumsum(dist), p - 1e-12))


def estudy2_wilcoxon_signif(wplus: np.ndarray, n: np.ndarray) -> np.ndarray:
    """estudy2 0.10.0's Wilcoxon significance codes (``estudy2_compat`` only).

    estudy2 marks a bar at level alpha when W+ >= qsignrank(1 - alpha, N) (an upper *one-sided*
    alpha quantile) or W+ <= N(N+1)/2 - qsignrank(1 - alpha/2, N). Those regions are not of exact
    size alpha (the upper tail has alpha, the lower alpha/2); the engine's own p-value stays the
    exact two-sided one.
    """
    out = np.full(wplus.shape, "", dtype=object)
    for j in np.flatnonzero(np.isfinite(wplus) & (n > 0)):
        N = int(n[j])
        top = N * (N + 1) / 2
        for alpha, code in ((0.1, "*"), (0.05, "**"), (0.01, "***")):
            if wplus[j] >= signrank_quantile(1 - alpha, N) or wplus[j] <= top - signrank_quantile(1 - alpha / 2, N):
                out[j] = code
    return out
