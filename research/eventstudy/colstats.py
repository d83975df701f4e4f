"""Column statistics and p-value helpers shared by the test battery: NaN-aware sums, means and
moments over events, two-sided t/normal p-values, and the Kolari-Pynnonen mean cross-correlation."""
from __future__ import annotations

import numpy as np
from scipy import special

# Two-sided p-values from scipy.special: the same functions scipy.stats' t and norm call, without
# their per-call argument checking (which costs more than the rest of a small study).
def _p_t(x, df):
    with np.errstate(invalid="ignore"):
        return 2.0 * special.stdtr(df, -np.abs(x))


def _p_norm(x):
    return 2.0 * special.ndtr(-np.abs(x))


def _colsum(x: np.ndarray, compat: bool) -> np.ndarray:
    """Sum over events (axis 0); NaN when no event has data. estudy2: nanmean * N_total."""
    cnt = np.isfinite(x).sum(0)
    with np.errstate(invalid="ignore"):
        if compat:
            return np.nanmean(np.where(cnt > 0, x, 0.0), 0) * x.shape[0] if x.size else np.full(x.shape[1], np.nan)
        return np.where(cnt > 0, np.nansum(x, 0), np.nan)


def _sum_count0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Column sums of the finite values, their counts, and whether every value is finite."""
    s = x.sum(0)
    if np.isfinite(s).all():  # a column sum is finite only if every value in it is: no mask
        return s, np.full(x.shape[1], x.shape[0]), True
    ok = np.isfinite(x)
    return np.where(ok, x, 0.0).sum(0), ok.sum(0), False


def _nanmean0(x):
    s, cnt, _ = _sum_count0(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / cnt, np.nan)


def col_moments(x: np.ndarray, ddof: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column mean, s.d. (``ddof``) and count of the finite values (axis 0), in one sum pass."""
    s, cnt, complete = _sum_count0(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(cnt > 0, s / cnt, np.nan)
        d = x - mu
        ss = np.einsum("ij,ij->j", d, d) if complete else np.nansum(d * d, 0)
        return mu, np.where(cnt > ddof, np.sqrt(ss / (cnt - ddof)), np.nan), cnt


def _nanstd0(x, ddof=1):
    return col_moments(x, ddof)[1]


def kp_rbar(est_ar: np.ndarray) -> float:
    """Average pairwise correlation of estimation-window residuals across events.

    Rows are standardised over their own bars (missing bars count as 0 after standardising), so
    the value is exact for complete windows and an approximation otherwise.
    """
    n = est_ar.shape[0]
    if n < 2 or est_ar.shape[1] < 3:
        return 0.0
    cnt = np.isfinite(est_ar).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(est_ar, 1) / cnt
        sd = np.sqrt(np.nansum((est_ar - mu[:, None]) ** 2, 1) / (cnt - 1))
        z = np.nan_to_num((est_ar - mu[:, None]) / sd[:, None], nan=0.0, posinf=0.0, neginf=0.0)
    s = z.sum(0)
    cross = float(s @ s - np.einsum("ij,ij->", z, z))
    ell = float(np.mean(cnt)) - 1.0
    return cross / (ell * n * (n - 1)) if ell > 0 else 0.0
