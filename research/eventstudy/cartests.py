"""CAR tests over a sub-window ``j1..j2`` of the event window (textbook and estudy2 conventions).

Missing bars: an event in the study (see ``min_coverage`` in :func:`research.eventstudy.run`) has
CAR_i = the sum of its *present* ARs in the window and T_i = its present bars; every variance
below uses the same T_i, so CAAR, the CAR tests and :func:`car_regression` share one sample.

Textbook variances (``V_i`` = :meth:`ModelFit.car_pe`, the exact variance factor of a sum of T_i
OLS prediction errors including the estimation-error covariance across bars):

``brown_warner_1980``  CAAR / (sqrt(sum_i s_i^2 V_i) / N), t with mean(n_est) - 1 df.
``brown_warner_1985``  CAAR / (sd(estimation AAR) sqrt(mean_i V_i)), t with L - 1 df.
``lamb``               as ``brown_warner_1985`` with normal critical values.
``patell``/``bmp``     SCAR_i = CAR_i / (s_i sqrt(V_i)).
``bmp_kp``             BMP times sqrt((1 - r)/(1 + (N - 1) r)); r is the mean pairwise correlation
                       of the SCARs: the estimation-residual correlation r0 (lag 0, other assets)
                       for pairs without shared bars and shared_ij / T for same-asset pairs whose
                       windows share bars (the correlation of sums over common iid bars).
``sign``               (|N+ - N/2| - 1/2) sgn / sqrt(N/4) (continuity-corrected binomial).
``generalized_sign``   (|N+ - N p| - 1/2) sgn / sqrt(N p (1 - p)); p = share of positive
                       T-bar sums of estimation ARs (not the single-bar share).
``corrado_rank``/``corrado_sign``/``modified_rank``
                       sum_t z_t / sqrt(T (L - T)/(L - 1)): ranks of one event over its L bars are
                       drawn without replacement, so a sum over T of them has the finite-population
                       variance (Kolari-Pynnonen 2011); without it the test rejects 1 % at T/L = 241/491.
``calendar_hac``       calendar-time portfolio: the mean, over calendar bars, of the average AR of
                       the events whose CAR window covers the bar, with a Newey-West (Bartlett,
                       lag T) variance; times T it estimates the CAAR. Robust to overlapping windows.
``wilcoxon``           exact (n <= 50) or normal two-sided p of W+ on CAR_i.

``estudy2_compat=True``: the bar-aggregated tests sum per-bar z over sqrt(T) (estudy2's
``car_brown_warner_1985``/``car_lamb``), and ``corrado_rank`` is estudy2's ``car_rank_test``
(Cowan 1992): ranks over estimation + CAR bars, sqrt(T) (mean CAR rank - mean rank) /
sqrt(sum_t (mean rank_t - mean rank)^2 / mean(L_i)).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from research.errors import EventStudyError
from research.stats import TestStat

from . import overlap as O
from .ranks import row_ranks, wilcoxon_columns

BAR_AGGREGATED = ("brown_warner_1980", "brown_warner_1985", "lamb", "corrado_sign", "corrado_rank", "modified_rank")


def _p_t(x, df):
    with np.errstate(invalid="ignore"):
        return 2.0 * special.stdtr(df, -np.abs(x))


def _p_norm(x):
    return 2.0 * special.ndtr(-np.abs(x))


def _t(name, stat, null, df=None):
    stat = float(stat)
    if df is None:
        return TestStat(name, stat, float(_p_norm(stat)), None, null, "normal")
    return TestStat(name, stat, float(_p_t(stat, df)), float(df), null, "t")


def cc_binomial(pos: float, n: float, p: float) -> float:
    """Continuity-corrected normal statistic of a binomial count (0 inside the half-unit)."""
    if n <= 0:
        return float("nan")
    d = pos - n * p
    return float(np.sign(d) * max(abs(d) - 0.5, 0.0) / np.sqrt(n * p * (1 - p)))


def phat_sums(est_ar: np.ndarray, T: int) -> float:
    """Share of positive T-bar sums of estimation ARs (all start bars, complete sums only)."""
    L = est_ar.shape[1]
    T = max(1, min(int(T), L))
    cs = np.concatenate([np.zeros((est_ar.shape[0], 1)), np.cumsum(est_ar, axis=1)], axis=1)
    s = cs[:, T:] - cs[:, :-T]  # NaN where a bar of the sum is missing
    ok = np.isfinite(s)
    return float((s[ok] > 0).mean()) if ok.any() else float("nan")


def newey_west_var(x: np.ndarray, lag: int) -> float:
    """Long-run variance of a series (Bartlett kernel), for the variance of its mean: / n."""
    n = x.size
    d = x - x.mean()
    v = float(d @ d) / n
    for k in range(1, min(int(lag), n - 1) + 1):
        v += 2.0 * (1.0 - k / (lag + 1.0)) * float(d[k:] @ d[:-k]) / n
    return v


def calendar_portfolio(ar: np.ndarray, asset_idx, bar_idx, j1: int, j2: int) -> np.ndarray:
    """Per calendar bar, the average AR of the events whose window ``j1..j2`` covers it."""
    sub = ar[:, j1 : j2 + 1]
    cal = bar_idx[:, None] + np.arange(j1, j2 + 1)[None, :]
    ok = np.isfinite(sub)
    c = cal[ok]
    u, inv = np.unique(c, return_inverse=True)
    s = np.bincount(inv, weights=sub[ok], minlength=u.size)
    n = np.bincount(inv, minlength=u.size)
    return s / n


def car_test(bat, name: str, j1: int, j2: int, null: str) -> TestStat:
    """Test ``name`` on the CAR over event columns ``j1..j2`` of battery ``bat``."""
    f = bat.light  # per-event vectors; bat.fit materialises a chunked study's estimation matrices
    T = j2 - j1 + 1
    if bat.compat and name == "corrado_rank":
        return _t(name, cowan_car_rank(bat.fit.est_ar, bat.ar[:, j1 : j2 + 1]), null)
    if name in BAR_AGGREGATED and bat.compat:
        z = bat.bar(name).stat[j1 : j2 + 1]
        stat = np.nansum(z) / np.sqrt(np.isfinite(z).sum()) if np.isfinite(z).any() else np.nan
        return _t(name, stat, null)
    car = bat.car(j1, j2)
    ok = np.isfinite(car)
    c = car[ok]
    n = c.size
    if name in ("corrado_rank", "corrado_sign", "modified_rank"):
        z = bat.bar(name).stat[j1 : j2 + 1]
        zt = int(np.isfinite(z).sum())
        L = bat.full_length()
        fpc = (L - zt) / (L - 1) if L > zt else np.nan
        stat = np.nansum(z) / np.sqrt(zt * fpc) if zt else np.nan
        return _t(name, stat, null)
    if name in ("brown_warner_1980", "brown_warner_1985", "lamb", "patell", "bmp", "bmp_kp"):
        V = bat.car_var(j1, j2)  # only these need the prediction-error factors (a chunked study's full fit)
    if name == "brown_warner_1980":
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt(np.nansum((f.sd1**2 * V)[ok])) / n
        return _t(name, c.mean() / den if n else np.nan, null, float(np.mean(f.n_est)) - 1)
    if name in ("brown_warner_1985", "lamb"):
        sd, m = bat._est_aar_sd()
        stat = c.mean() / (sd * np.sqrt(np.nanmean(V[ok]))) if n else np.nan
        return _t(name, stat, null, m - 1.0 if name == "brown_warner_1985" else None)
    if name == "cross_sectional_t":
        stat = c.mean() / (c.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        return _t(name, stat, null, n - 1)
    if name in ("patell", "bmp", "bmp_kp"):
        with np.errstate(invalid="ignore", divide="ignore"):
            scar = car / (bat.s_patell * np.sqrt(V))
        ok2 = np.isfinite(scar)
        sc = scar[ok2]
        m = sc.size
        if name == "patell":
            stat = sc.sum() / np.sqrt(np.nansum(bat._var_ratio()[ok2])) if m else np.nan
            return _t(name, stat, null)
        stat = sc.mean() / (sc.std(ddof=1) / np.sqrt(m)) if m > 1 else np.nan
        if name == "bmp_kp":
            r = overlap_rbar(bat, j1, j2, ok2)
            stat = stat * np.sqrt((1 - r) / (1 + (m - 1) * r))
        return _t(name, stat, null, m - 1)
    if name in ("sign", "generalized_sign"):
        pos = float((c > 0).sum())
        p = 0.5 if name == "sign" else (bat._phat() if bat.compat else phat_sums(bat.fit.est_ar, T))
        if bat.compat:
            stat = (pos - n * p) / np.sqrt(n * p * (1 - p)) if n else np.nan
        else:
            stat = cc_binomial(pos, n, p)
        return _t(name, stat, null)
    if name == "wilcoxon":
        s, p = wilcoxon_columns(c[:, None])
        return TestStat(name, float(s[0]), float(p[0]), None, null, "signed-rank")
    if name == "design_hc":
        from . import robust

        return _t(name, robust.car_stat(bat, j1, j2, ok), null)
    if name == "calendar_hac":
        if bat.bar_idx is None:
            raise EventStudyError("calendar_hac needs the events' bars (run it through run())")
        # one calendar clock for all assets: a bar of the grid is the same instant for each
        P = calendar_portfolio(bat.ar[ok], bat.asset_idx[ok], bat.bar_idx[ok], j1, j2)
        if P.size < 3:
            return _t(name, np.nan, null)
        v = newey_west_var(P, T)
        stat = P.mean() / np.sqrt(v / P.size) if v > 0 else np.nan
        return _t(name, stat, null)
    raise EventStudyError(f"unknown test {name!r}")


def overlap_rbar(bat, j1: int, j2: int, ok: np.ndarray) -> float:
    """Mean pairwise SCAR correlation: shared bars / T for same-asset overlapping windows, the
    lag-0 estimation-residual correlation for every other pair."""
    m = int(ok.sum())
    if m < 2:
        return 0.0
    r0 = bat.rbar
    if bat.bar_idx is None:
        return r0
    T = j2 - j1 + 1
    shared = O.pair_overlap_sum(bat.asset_idx[ok], bat.bar_idx[ok], j1, j2)  # ordered pairs, in bars
    pairs = m * (m - 1)
    close = _close_pairs(bat.asset_idx[ok], bat.bar_idx[ok], T)
    return (shared / T + r0 * (pairs - close)) / pairs


def _close_pairs(asset_idx, bar_idx, T: int) -> float:
    """Number of ordered same-asset pairs less than T bars apart."""
    key, order = O._sorted_keys(asset_idx, bar_idx, T)
    sk = key[order]
    hi = np.searchsorted(sk, sk + T, side="left")
    return float(2 * (hi - np.arange(sk.size) - 1).sum())


def cowan_car_rank(est_ar: np.ndarray, car_ar: np.ndarray, percentage: float = 90.0) -> float:
    """estudy2 0.10.0 ``car_rank_test`` (Cowan 1992) statistic.

    Ranks each event's ARs over its estimation bars plus the CAR bars; CAR bars with no more than
    ``percentage`` % of events present are left out of the event mean, as in estudy2.
    """
    full = np.concatenate([est_ar, car_ar], axis=1)
    r = row_ranks(full)
    cnt = np.isfinite(full).sum(1)
    mean_rank = float(np.mean((cnt + 1) / 2.0))  # each row's mean rank is (n_i + 1) / 2
    ev = r[:, est_ar.shape[1]:]
    pct = np.isfinite(ev).sum(0) / ev.shape[0] * 100
    tidy = ev[:, pct > percentage]
    has = np.isfinite(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        colmean = np.where(has, r, 0.0).sum(0) / has.sum(0)  # R's rowMeans(na.rm = TRUE) over dates
    den = np.sqrt(np.nansum((colmean - mean_rank) ** 2) / np.mean(cnt))
    return float(np.sqrt(tidy.shape[1]) * (np.nanmean(tidy) - mean_rank) / den)
