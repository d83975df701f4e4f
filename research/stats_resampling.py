"""Resampling and dependence-robust statistics for one time series (vectorised over draws).

* HAC: :func:`nw_lags` (the Newey-West lag rule), :func:`hac_ols` (OLS with Bartlett HAC standard
  errors for many outcome columns at once; matches statsmodels ``cov_type="HAC"`` without small-
  sample correction);
* resampling indices: :func:`stratified_permutations` (permute within strata, e.g. volatility
  deciles), :func:`circular_shifts` (rotations that keep a series' own dependence and break its
  alignment with another), :func:`moving_blocks` (moving-block bootstrap of block indices);
* placebo summaries: :func:`rank_pvalue` (placebo-calibrated p-value), :func:`rejection_rate`,
  :func:`mc_band` (the Monte-Carlo band of an empirical size) and :data:`SIZE_BAND`.

Every function takes a ``numpy.random.Generator`` or a seed; nothing here loops over draws x rows
in Python.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

__all__ = [
    "SIZE_BAND",
    "HacFit",
    "circular_shifts",
    "hac_ols",
    "mc_band",
    "moving_blocks",
    "nw_lags",
    "rank_critical_value",
    "rank_pvalue",
    "rejection_rate",
    "strata_of",
    "stratified_permutations",
    "stratified_placements",
]

#: the empirical-size band a primary test must fall in at the 5 % level (issue #12)
SIZE_BAND = (0.035, 0.075)


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def nw_lags(n: int) -> int:
    """Newey-West (1994) rule of thumb ``floor(4 (n/100)^(2/9))``, at least 1."""
    return max(1, math.floor(4 * (max(n, 1) / 100) ** (2 / 9)))


class HacFit:
    """OLS coefficients and Bartlett-HAC standard errors for every column of ``Y``.

    Attributes
    ----------
    beta : ndarray (k, m)
    se : ndarray (k, m)
    t : ndarray (k, m)
    pvalue : ndarray (k, m)
        Two-sided normal p-values (as statsmodels' HAC default).
    lags : int
    n : int
    """

    def __init__(self, beta, se, lags, n):
        self.beta, self.se, self.lags, self.n = beta, se, int(lags), int(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.t = beta / se
        self.pvalue = 2 * sps.norm.sf(np.abs(self.t))

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Wald interval ``beta ± z se`` (the same normal reference as :attr:`pvalue`)."""
        z = sps.norm.ppf(0.5 + level / 2)
        return self.beta - z * self.se, self.beta + z * self.se


def hac_ols(X: np.ndarray, Y: np.ndarray, lags: int, coef: int | None = None) -> HacFit:
    """OLS of each column of ``Y`` on ``X`` with Newey-West (Bartlett) HAC errors, vectorised.

    Parameters
    ----------
    X : ndarray (n, k)
        Regressors (include a constant column yourself).
    Y : ndarray (n,) or (n, m)
        Outcomes; every column uses the same ``X``.
    lags : int
        Bartlett kernel bandwidth (weights ``1 - l/(lags+1)``).
    coef : int, optional
        Only this coefficient's standard error (the others are NaN): k times less work.

    Rows are taken as consecutive in time: subsample to a regular grid first (the lag of a pair of
    rows is their distance in rows).

    Returns
    -------
    HacFit
    """
    X = np.asarray(X, float)
    Y = np.asarray(Y, float)
    one = Y.ndim == 1
    if one:
        Y = Y[:, None]
    n = X.shape[0]
    A = np.linalg.pinv(X.T @ X) @ X.T  # (k, n): beta = A y
    beta = A @ Y  # (k, m)
    e = Y - X @ beta  # (n, m)
    # var(beta_j) = sum_{s,t} w_|s-t| a_js a_jt e_s e_t (the sandwich's diagonal, no k x k meat)
    ks = np.arange(A.shape[0]) if coef is None else np.array([int(coef)])
    U = A[ks].T[:, :, None] * e[:, None, :]  # (n, len(ks), m)
    var = np.einsum("tkm,tkm->km", U, U)
    for lag in range(1, int(lags) + 1):
        var += 2 * (1 - lag / (lags + 1)) * np.einsum("tkm,tkm->km", U[lag:], U[:-lag])
    se = np.full(beta.shape, np.nan)
    se[ks] = np.sqrt(np.maximum(var, 0))
    fit = HacFit(beta, se, lags, n)
    if one:
        fit.beta, fit.se, fit.t, fit.pvalue = fit.beta[:, 0], fit.se[:, 0], fit.t[:, 0], fit.pvalue[:, 0]
    return fit


def forward_any_rows(ind: np.ndarray, h: int) -> np.ndarray:
    """1 where row ``i`` of the (m, n) indicator ``ind`` is true in any of the next ``h`` columns (t+1..t+h);
    NaN where that window runs off the end."""
    m, n = ind.shape
    cs = np.concatenate([np.zeros((m, 1), np.int32), np.cumsum(ind, axis=1, dtype=np.int32)], axis=1)
    t = np.arange(n)
    hi = np.minimum(t + h, n - 1)
    out = ((cs[:, hi + 1] - cs[:, t + 1]) > 0).astype(float)
    out[:, t + h > n - 1] = np.nan
    return out


def rotation_hac_test(X: np.ndarray, lags: int, n_rot: int, *, min_shift: int = 1, seed: int = 0):
    """A test of column 1 of ``X`` (``[1, signal]``): its HAC t, with a p-value among rotations of the signal.

    Returns ``test(Y) -> (t, p, critical value, beta)`` for outcome columns ``Y``: ``p`` ranks ``|t|``
    among the ``n_rot`` rotated signals' ``|t|`` (shifts of at least ``min_shift`` rows, seeded),
    and ``|t| > critical value`` exactly when ``p < 0.05``. A rare, persistent signal makes the HAC
    normal reference unreliable; its rotations keep its own persistence and break its timing.
    """
    n = X.shape[0]
    k = circular_shifts(n, n_rot, seed, min_shift=min(max(1, int(min_shift)), max(1, n // 4)))
    S = X[:, 1][(np.arange(n)[None, :] + k[:, None]) % n]  # (n_rot, n)

    def test(Y):
        fit = hac_ols(X, Y, lags, coef=1)
        t0 = fit.t[1]
        tr = np.stack([hac_ols(np.column_stack([X[:, 0], s_]), Y, lags, coef=1).t[1] for s_ in S])
        with np.errstate(invalid="ignore"):
            k_ = np.sum(np.abs(tr) >= np.abs(t0)[None, ...] - 1e-12, axis=0)
        crit = rank_critical_value(tr, 0.05, axis=0)
        return t0, (1 + k_) / (1 + n_rot), crit, fit.beta[1]

    return test


def strata_of(x: np.ndarray, n_strata: int) -> np.ndarray:
    """Quantile bins ``0..n_strata-1`` of ``x`` (NaN -> ``-1``, its own stratum)."""
    x = np.asarray(x, float)
    out = np.full(x.size, -1, dtype=np.int64)
    ok = np.isfinite(x)
    if ok.sum() >= n_strata:
        edges = np.quantile(x[ok], np.linspace(0, 1, n_strata + 1)[1:-1])
        out[ok] = np.searchsorted(edges, x[ok], side="right")
    elif ok.any():
        out[ok] = 0
    return out


def stratified_permutations(x: np.ndarray, strata: np.ndarray, n_perm: int, seed=0) -> np.ndarray:
    """``n_perm`` copies of ``x`` with its values permuted within each stratum, shape ``(n_perm, n)``.

    Each stratum keeps its own values (so its count of events), only their places inside the stratum
    change: a null that keeps whatever the strata explain (e.g. volatility regimes).
    """
    x = np.asarray(x)
    strata = np.asarray(strata, dtype=np.int64)
    rng = _rng(seed)
    order = np.argsort(strata, kind="stable")
    # integer stratum + uniform key: sorting groups by stratum, random order inside it
    keys = (strata - strata.min()).astype(float)[None, :] + rng.random((n_perm, x.size))
    src = np.argsort(keys, axis=1)
    out = np.empty((n_perm, x.size), dtype=x.dtype)
    out[:, order] = x[src]
    return out


def stratified_placements(ind: np.ndarray, strata: np.ndarray, n_perm: int, seed=0) -> tuple[np.ndarray, int]:
    """Where the events of binary series land when permuted within strata: sorted positions, padded.

    ``ind`` is one indicator series ``(n,)`` or ``d`` of them ``(d, n)``; each gets ``n_perm``
    permutations inside each stratum (rows ``i * n_perm ... (i + 1) * n_perm - 1`` for series
    ``i``), with the law of :func:`stratified_permutations`, but only the events' positions are
    drawn (per stratum, vectorised over rows: draws with repeats redrawn when events are sparse, a
    partial Fisher-Yates shuffle when they are dense): the work grows with the events, not with
    ``n log n`` per permutation. Returns ``(positions,
    sentinel)``: an int32 array ``(rows, m)`` sorted along each row, where rows with fewer events
    than ``m`` are padded with ``sentinel`` (larger than any position by more than ``n``).
    """
    X = np.atleast_2d(np.asarray(ind, bool))
    strata = np.asarray(strata, dtype=np.int64)
    d, n = X.shape
    rng = _rng(seed)
    rows = d * int(n_perm)
    sentinel = 3 * n + 1
    blocks = []
    for s in np.unique(strata):
        slots = np.flatnonzero(strata == s)
        m = np.repeat(X[:, slots].sum(axis=1), int(n_perm))   # events of this stratum, per row
        top = int(m.max()) if m.size else 0
        if top == 0:
            continue
        N = slots.size
        picks = _sparse_picks(rng, m, top, N) if 4 * top <= N else _dense_picks(rng, rows, top, N)
        pos = slots.astype(np.int32)[np.minimum(picks, N - 1)]
        blocks.append(np.where(np.arange(top)[None, :] < m[:, None], pos, np.int32(sentinel)))
    if not blocks:
        return np.full((rows, 0), sentinel, dtype=np.int32), sentinel
    out = np.concatenate(blocks, axis=1)
    out.sort(axis=1)
    return out, sentinel


def _sparse_picks(rng, m: np.ndarray, top: int, N: int) -> np.ndarray:
    """Row ``r``'s first ``m[r]`` entries: a uniform ``m[r]``-subset of ``0..N-1`` (sorted); the rest >= N.

    Draw with replacement, then redraw the repeats until none is left. Each step only compares values
    and draws uniformly, so the law of the final set is unchanged by relabelling ``0..N-1``: it is the
    uniform law on subsets of that size. Work ~ rows x top per round, and few rounds when top << N.
    """
    rows = m.size
    picks = rng.integers(0, N, size=(rows, top), dtype=np.int32)
    pad = np.arange(top)[None, :] >= m[:, None]
    picks = np.where(pad, N + np.arange(top)[None, :], picks)   # distinct, sorted last
    picks.sort(axis=1)
    while True:
        dup = picks[:, 1:] == picks[:, :-1]
        bad = np.flatnonzero(dup.any(axis=1))
        if bad.size == 0:
            return picks
        sub, d = picks[bad], dup[bad]
        sub[:, 1:][d] = rng.integers(0, N, size=int(d.sum()), dtype=np.int32)
        sub.sort(axis=1)
        picks[bad] = sub


def _dense_picks(rng, rows: int, top: int, N: int) -> np.ndarray:
    """The first ``top`` places of a partial Fisher-Yates shuffle of ``0..N-1`` per row (many events per slot)."""
    perm = np.broadcast_to(np.arange(N, dtype=np.int32), (rows, N)).copy()
    r_idx = np.arange(rows)
    for j in range(min(top, N - 1)):
        r = j + (rng.random(rows) * (N - j)).astype(np.int64)
        a = perm[:, j].copy()
        perm[:, j] = perm[r_idx, r]
        perm[r_idx, r] = a
    return perm[:, :top]


def circular_shifts(n: int, n_draws: int, seed=0, min_shift: int = 1) -> np.ndarray:
    """Random rotations ``k`` in ``[min_shift, n - min_shift]`` (index ``(t + k) % n``)."""
    rng = _rng(seed)
    lo, hi = int(min_shift), int(n - min_shift)
    if hi < lo:
        raise ValueError(f"circular_shifts: n={n} too short for min_shift={min_shift}")
    return rng.integers(lo, hi + 1, size=n_draws)


def moving_blocks(n_units: int, block: int, n_draws: int, seed=0) -> np.ndarray:
    """Moving-block bootstrap: ``(n_draws, n_units)`` unit indices built of random blocks of ``block``."""
    rng = _rng(seed)
    block = max(1, min(int(block), n_units))
    n_b = -(-n_units // block)
    starts = rng.integers(0, n_units - block + 1, size=(n_draws, n_b))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_draws, -1)
    return idx[:, :n_units]


def rank_pvalue(observed: float, null: np.ndarray, two_sided: bool = True) -> float:
    """Placebo-calibrated p-value ``(1 + #{|null| >= |obs|}) / (1 + n)`` (one-sided: ``null >= obs``)."""
    null = np.asarray(null, float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    if two_sided:
        k = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    else:
        k = int(np.sum(null >= observed - 1e-12))
    return (1 + k) / (1 + null.size)


def rank_critical_value(null: np.ndarray, alpha: float = 0.05, axis: int = 0) -> np.ndarray | float:
    """The critical value that agrees with :func:`rank_pvalue`: ``|obs| > c`` exactly when ``p < alpha``.

    With ``n`` null values, ``p = (1 + k)/(1 + n) < alpha`` means at most ``kmax`` of them reach
    ``|obs|``, so ``c`` is the ``(kmax + 1)``-th largest ``|null|`` (``inf`` when no ``k`` qualifies).
    An interval ``effect ± c se`` then excludes 0 exactly when the calibrated p is below ``alpha``.
    """
    a = -np.sort(-np.abs(np.asarray(null, float)), axis=axis)  # descending; NaN sort last
    n = np.sum(np.isfinite(a), axis=axis)
    kmax = np.ceil(alpha * (1 + n) - 1).astype(int) - 1
    take = np.clip(kmax, 0, None)
    c = np.take_along_axis(a, np.expand_dims(take, axis), axis=axis).squeeze(axis) if a.ndim > 1 else a[int(take)]
    return np.where(kmax < 0, np.inf, c) if a.ndim > 1 else (float("inf") if kmax < 0 else float(c))


def rejection_rate(pvalues: np.ndarray, alpha: float = 0.05) -> float:
    """Share of finite p-values below ``alpha`` (the rule :func:`research.stats.conclude` applies)."""
    p = np.asarray(pvalues, float)
    p = p[np.isfinite(p)]
    return float(np.mean(p < alpha)) if p.size else float("nan")


def mc_band(n_draws: int, alpha: float = 0.05, level: float = 0.95) -> tuple[float, float]:
    """The band an empirical size from ``n_draws`` draws falls in with probability ``level`` if exact."""
    z = sps.norm.ppf(0.5 + level / 2)
    half = z * math.sqrt(alpha * (1 - alpha) / max(n_draws, 1))
    return max(0.0, alpha - half), alpha + half
