"""``design_hc``: a CAAR test whose variance follows the design, for one asset with many events.

Every event's CAR is a linear function of the residual series: CAR_i = sum_t a_it e_t with weight
1 on its window bars and minus the OLS prediction weights on its estimation bars,
``w_is = T/n_i + D_i (m_s - mbar_i) / Sxx_i`` with ``D_i = sum_window (m_t - mbar_i)`` (market
model; ``T/n_i`` for the mean model, none for market-adjusted/raw). So the sum of the CARs is
``sum_t A_t e_t`` with calendar weights ``A_t = sum_i a_it``, and with residuals uncorrelated over
time (hourly returns) but of any variance path (volatility regimes, event-induced variance),

    Var(sum_i CAR_i) = sum_t A_t^2 sigma_t^2,     sigma_t^2 estimated by the mean squared AR at t.

That covers what the cross-sectional tests miss in this design: CAR windows that share bars,
other events inside an estimation window (negatively correlated CARs), and estimation error
common to nearby events. At single bars the slope part of ``w`` (order 1/n per bar) is left out.
The statistic is normal. Residual autocorrelation is *not* covered (use ``calendar_hac``).
"""
from __future__ import annotations

import numpy as np

#: events per block of the weight accumulations (bounds the temporaries at scale)
BLOCK = 8192


def _grid(bat, lo_off: int, hi_off: int):
    """Dense calendar index of each event's bars: (flat index base per event, grid size)."""
    b = bat.bar_idx.astype(np.int64)
    a = np.unique(bat.asset_idx, return_inverse=True)[1].astype(np.int64).ravel()  # dense: only assets present
    bmin = int(b.min())
    span = int(b.max()) - bmin + (hi_off - lo_off) + 1
    # cell (event i, offset k) sits at base_i + (k - lo_off): bars of one asset share a clock
    return a * span + (b - bmin), span * (int(a.max()) + 1), bmin


def _sums(bat, base: np.ndarray, size: int, e0: int, w0: int, lo_off: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the events in blocks: the mean squared AR per calendar bar over every
    estimation and event cell that covers it (``sigma_t^2``), and the per-bar statistic's
    calendar weights ``P_t = sum_i 1/n_i`` over estimation cells (market and mean models)."""
    cached = getattr(bat, "_sig2", None)
    if cached is not None:  # one estimate serves the per-bar and every CAR-window statistic
        return cached, bat._P
    f = bat.light
    s = np.zeros(size)
    c = np.zeros(size)
    P = np.zeros(size)
    weighted = f.model in ("market", "mean")
    for sl, blk in bat.blocks(BLOCK):
        for mat, off in ((blk.est_ar, e0), (bat.ar[sl], w0)):
            idx = base[sl, None] + (off - lo_off) + np.arange(mat.shape[1])[None, :]
            ok = np.isfinite(mat)
            s += np.bincount(idx[ok], weights=mat[ok] ** 2, minlength=size)
            c += np.bincount(idx[ok], minlength=size)
            if weighted and off == e0:
                wts = np.broadcast_to((1.0 / f.n_est[sl])[:, None], ok.shape)
                P += np.bincount(idx[ok], weights=wts[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        bat._sig2 = np.where(c > 0, s / c, 0.0)
    bat._P = P
    return bat._sig2, P


def _bounds(bat):
    e0, e1 = bat.est_window
    w0 = bat.win0
    w1 = w0 + bat.ar.shape[1] - 1
    return e0, w0, min(e0, w0), max(e1, w1)


def car_stat(bat, j1: int, j2: int, ok: np.ndarray) -> float:
    """``design_hc`` statistic of the CAAR over event columns ``j1..j2`` (events ``ok``)."""
    f = bat.light
    e0, w0, lo, hi = _bounds(bat)
    base, size, _ = _grid(bat, lo, hi)
    sig2, _ = _sums(bat, base, size, e0, w0, lo)
    A = np.zeros(size)
    total = 0.0
    for sl, blk in bat.blocks(BLOCK):  # the estimation windows are read block by block
        sub = bat.ar[sl, j1 : j2 + 1]
        present = np.isfinite(sub) & ok[sl, None]
        widx = base[sl, None] + (w0 + j1 - lo) + np.arange(sub.shape[1])[None, :]
        A += np.bincount(widx[present], minlength=size)
        total += np.where(present, sub, 0.0).sum()
        if f.model in ("market", "mean"):
            est = blk.est_ar
            est_ok = np.isfinite(est) & ok[sl, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                wts = np.broadcast_to((present.sum(1) / f.n_est[sl])[:, None], est_ok.shape)
                if f.model == "market":
                    D = np.where(present, blk.evt_m[:, j1 : j2 + 1] - f.m_mean[sl, None], 0.0).sum(1)
                    wts = wts + (D / f.m_sxx[sl])[:, None] * (est_m_matrix(blk) - f.m_mean[sl, None])
            eidx = base[sl, None] + (e0 - lo) + np.arange(est.shape[1])[None, :]
            A -= np.bincount(eidx[est_ok], weights=wts[est_ok], minlength=size)
    var = float(A**2 @ sig2)
    return float(total / np.sqrt(var)) if var > 0 else float("nan")


def est_m_matrix(f) -> np.ndarray:
    """Market returns on the estimation bars (kept by the market-model fit)."""
    if f._est_inputs is not None:
        return f._est_inputs[1]
    return f.est_m


def bar_stats(bat) -> np.ndarray:
    """``design_hc`` per event-window bar: intercept part of the estimation weights only."""
    e0, w0, lo, hi = _bounds(bat)
    base, size, _ = _grid(bat, lo, hi)
    sig2, P = _sums(bat, base, size, e0, w0, lo)
    pp = float(P**2 @ sig2)
    Ps = P * sig2
    out = np.full(bat.w, np.nan)
    for j in range(bat.w):  # O(events) per bar: u = events' bar counts, A = u - P
        col = bat.ar[:, j]
        ok = np.isfinite(col)
        idx = base[ok] + (w0 + j - lo)
        cells, u = np.unique(idx, return_counts=True)  # sparse: a few events per calendar bar
        var = float((u * u) @ sig2[cells]) - 2.0 * float(u @ Ps[cells]) + pp
        out[j] = col[ok].sum() / np.sqrt(var) if var > 0 else np.nan
    return out
