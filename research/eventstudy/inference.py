"""Resampling inference for single-asset many-event designs, and Benjamini-Hochberg.

* :func:`bootstrap` resamples *events* with replacement (seeded) and tests CAAR = 0 per horizon
  with the centred bootstrap distribution.
* :func:`placebo` shifts the real event pattern (same gaps, same clusters) to offsets matched on
  trailing realised volatility, re-runs the same design there, and compares the real CAAR with
  that null distribution.
* :func:`bh` adjusts p-values across horizons (Benjamini-Hochberg 1995 step-up).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.errors import EventStudyError
from research.stats import TestStat

from . import models as _models
from . import windows as W
from .placebo import matched_shifts
from .results import EventStudyResult, _clean, window_key


def bh(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg adjusted p-values (q-values) and rejections at FDR ``alpha``.

    Parameters
    ----------
    pvalues : array-like
        P-values; NaNs are ignored (their q-value is NaN, never rejected).
    alpha : float
        False-discovery rate.

    Returns
    -------
    qvalues, reject : numpy.ndarray
    """
    p = np.asarray(pvalues, dtype=float)
    if not 0 < alpha < 1:
        raise EventStudyError(f"alpha={alpha} must be in (0, 1)")
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if (p[ok] < 0).any() or (p[ok] > 1).any():
        raise EventStudyError("p-values must lie in [0, 1]")
    m = int(ok.sum())
    if m:
        pv = p[ok]
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]  # step-up: q_i = min_{j>=i}
        out = np.empty(m)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q, np.where(ok, q <= alpha, False)


@dataclass
class InferenceResult:
    """Resampling test of CAAR = 0 over several horizons.

    Attributes
    ----------
    method : str
        ``"bootstrap"`` or ``"placebo"``.
    frame : polars.DataFrame
        ``window, caar, lo, hi, pvalue, qvalue, reject, n_events``. For the bootstrap ``lo``/``hi``
        is the percentile interval of the CAAR; for placebo it is the central ``level`` range of
        the placebo (null) CAARs.
    n_draws, seed : int
        Resampling draws and the seed that reproduces them.
    level, alpha : float
        Interval level and the FDR used for ``reject``.
    draws : numpy.ndarray
        ``(n_draws, n_horizons)`` resampled CAARs.
    """

    method: str
    frame: pl.DataFrame
    n_draws: int
    seed: int
    level: float
    alpha: float
    draws: np.ndarray = field(repr=False)

    @property
    def tests(self) -> dict[str, TestStat]:
        """Per horizon, the :class:`TestStat` (stat = CAAR, p-value from the resampling)."""
        return {
            r["window"]: TestStat(self.method, r["caar"], r["pvalue"], None, f"CAAR{r['window']} = 0", self.method)
            for r in self.frame.iter_rows(named=True)
        }

    def to_frame(self) -> pl.DataFrame:
        """The per-horizon table."""
        return self.frame

    def summary(self) -> str:
        """Plain-text table."""
        head = f"{self.method} inference: {self.n_draws} draws, seed {self.seed}, BH at {self.alpha}"
        rows = [f"  {r['window']:<10}{r['caar']:>12.6g}{r['pvalue']:>10.4f}{r['qvalue']:>10.4f}  {'*' if r['reject'] else ''}"
                for r in self.frame.fill_null(float('nan')).iter_rows(named=True)]
        return "\n".join([head, f"  {'window':<10}{'caar':>12}{'p':>10}{'q':>10}", *rows])

    def to_dict(self) -> dict:
        """JSON-serialisable record."""
        return _clean({"method": self.method, "n_draws": self.n_draws, "seed": self.seed, "level": self.level,
                       "alpha": self.alpha, "horizons": self.frame.to_dict(as_series=False)})

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), **kwargs)


def _horizons(result: EventStudyResult, horizons) -> list[tuple[int, int]]:
    lo, hi = result.spec["window"]
    if horizons is None:
        if lo <= 0 <= hi:
            return [(0, h) for h in range(0, hi + 1)]
        return [(lo, hi)]
    out = [(int(a), int(b)) for a, b in horizons]
    for a, b in out:
        if not lo <= a <= b <= hi:
            raise EventStudyError(f"horizon {(a, b)} is not inside the event window {(lo, hi)}")
    return out


def _car_matrix(ar: np.ndarray, win0: int, hz: list[tuple[int, int]]) -> np.ndarray:
    """CARs ``(n_events, n_horizons)``: sums of the present ARs (the engine's missing-bar rule),
    NaN when a horizon has no present bar."""
    ok = np.isfinite(ar)
    cs = np.concatenate([np.zeros((ar.shape[0], 1)), np.cumsum(np.where(ok, ar, 0.0), axis=1)], axis=1)
    cn = np.concatenate([np.zeros((ar.shape[0], 1)), np.cumsum(ok, axis=1)], axis=1)
    a = np.array([h[0] - win0 for h in hz])
    b = np.array([h[1] - win0 for h in hz])
    return np.where(cn[:, b + 1] - cn[:, a] > 0, cs[:, b + 1] - cs[:, a], np.nan)


def _frame(hz, caar, lo, hi, p, n, alpha):
    q, rej = bh(p, alpha)
    return pl.DataFrame({
        "window": [window_key(h) for h in hz], "caar": caar, "lo": lo, "hi": hi, "pvalue": p,
        "qvalue": q, "reject": rej, "n_events": n.astype(np.int64),
    }).fill_nan(None)


def bootstrap(
    result: EventStudyResult,
    *,
    horizons: list[tuple[int, int]] | None = None,
    n_draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    chunk: int = 200,
) -> InferenceResult:
    """Event-resampling bootstrap of CAAR per horizon.

    Parameters
    ----------
    result : EventStudyResult
        A finished study (its abnormal returns are resampled, the model is not re-fitted).
    horizons : list of (int, int), optional
        CAR windows (default ``(0, h)`` for every ``h`` in the post-event window).
    n_draws : int
        Bootstrap draws.
    seed : int
        Seed of ``numpy.random.default_rng``.
    level : float
        Percentile-interval level.
    alpha : float
        FDR for the Benjamini-Hochberg column.
    chunk : int
        Draws per vectorised block (memory bound).

    Returns
    -------
    InferenceResult
        p-value = (1 + #{|CAAR* - CAAR| >= |CAAR|}) / (1 + n_draws), the centred bootstrap test.
    """
    if n_draws < 1:
        raise EventStudyError(f"n_draws={n_draws} must be positive")
    hz = _horizons(result, horizons)
    car = _car_matrix(result.ar, int(result.event_time[0]), hz)
    ok = np.isfinite(car)
    filled = np.where(ok, car, 0.0)
    okf = ok.astype(np.float64)
    n = car.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        caar = filled.sum(0) / okf.sum(0)
    rng = np.random.default_rng(seed)
    draws = np.empty((n_draws, len(hz)))
    for s in range(0, n_draws, chunk):
        c = min(chunk, n_draws - s)
        idx = rng.integers(0, n, size=(c, n))
        counts = np.bincount((np.arange(c)[:, None] * n + idx).ravel(), minlength=c * n).reshape(c, n).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[s : s + c] = (counts @ filled) / (counts @ okf)
    a = (1 - level) / 2
    lo, hi = np.nanquantile(draws, a, axis=0), np.nanquantile(draws, 1 - a, axis=0)
    exceed = (np.abs(draws - caar) >= np.abs(caar)).sum(0)
    p = (1 + exceed) / (1 + n_draws)
    return InferenceResult("bootstrap", _frame(hz, caar, lo, hi, p, ok.sum(0), alpha), n_draws, seed, level, alpha, draws)


def placebo(
    result: EventStudyResult,
    *,
    horizons: list[tuple[int, int]] | None = None,
    n_draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    max_cells: int = 20_000_000,
    progress: bool = False,
    vol_window: int = 168,
) -> InferenceResult:
    """Placebo-date inference with the events' own clustering and volatility regime.

    Each draw is the real event pattern shifted by one offset (so every gap, cluster and overlap
    is kept), the offsets being those whose placebo events' trailing realised volatility is
    closest to the real events' (:func:`research.eventstudy.placebo.matched_shifts`). The same
    model is re-fitted on each placebo set and its CAAR per horizon forms the null distribution.

    Parameters
    ----------
    result : EventStudyResult
        A finished study from :func:`research.eventstudy.run`.
    horizons : list of (int, int), optional
        CAR windows (default ``(0, h)`` for every post-event ``h``).
    n_draws : int
        Placebo draws.
    seed : int
        Seed of ``numpy.random.default_rng``.
    level : float
        Level of the reported null range.
    alpha : float
        FDR for the Benjamini-Hochberg column.
    max_cells : int
        Memory bound of one vectorised block (events x bars).
    progress : bool
        Show a rich progress bar.
    vol_window : int
        Bars of trailing realised volatility the placebo sets are matched on.

    Returns
    -------
    InferenceResult
        p-value = (1 + #{|placebo CAAR| >= |CAAR|}) / (1 + n_draws).

    Raises
    ------
    EventStudyError
        If no shift keeps the pattern inside the data.
    """
    ctx = result._context
    if ctx is None:
        raise EventStudyError("placebo() needs a result from run() in this session (it re-fits the model)")
    hz = _horizons(result, horizons)
    win0 = int(ctx.win[0])
    real = _car_matrix(result.ar, win0, hz)
    ok = np.isfinite(real)
    with np.errstate(invalid="ignore", divide="ignore"):
        caar = np.where(ok, real, 0.0).sum(0) / ok.sum(0)
    rng = np.random.default_rng(seed)
    span = (int(ctx.win[0]) if ctx.est is None else min(int(ctx.win[0]), int(ctx.est[0])),
            int(ctx.win[-1]) if ctx.est is None else max(int(ctx.win[-1]), int(ctx.est[-1])))
    shifts = matched_shifts(ctx.panel, ctx.asset_idx, ctx.bar_idx, span, int(ctx.win.size), n_draws, rng, vol_window)
    A = np.broadcast_to(ctx.asset_idx, (n_draws, ctx.asset_idx.size))
    B = ctx.bar_idx[None, :] + shifts[:, None]
    n_ev = A.shape[1]
    width = ctx.win.size + (0 if ctx.est is None else ctx.est.size)
    per = max(1, int(max_cells // max(1, n_ev * width)))
    draws = np.empty((n_draws, len(hz)))
    R = ctx.panel.values["return"]
    prog = None
    if progress:
        from rich.progress import Progress

        prog = Progress(transient=True)
        prog.start()
        task = prog.add_task("placebo draws", total=n_draws)
    try:
        for s in range(0, n_draws, per):
            c = min(per, n_draws - s)
            a = A[s : s + c].ravel()
            b = B[s : s + c].ravel()
            w0, w1 = int(ctx.win[0]), int(ctx.win[-1])
            evt_r = W.gather_window(R, a, b, w0, w1)
            evt_m = W.gather_window(ctx.market, None, b, w0, w1) if ctx.market is not None else None
            est_r = est_m = None
            if ctx.est is not None:
                e0, e1 = int(ctx.est[0]), int(ctx.est[-1])
                est_r = W.gather_window(R, a, b, e0, e1)
                est_m = W.gather_window(ctx.market, None, b, e0, e1) if ctx.market is not None else None
            fit = _models.fit(ctx.model, est_r, evt_r, est_m, evt_m, full_market_term=ctx.compat, light=True)
            car = _car_matrix(fit.evt_ar, win0, hz)
            if ctx.est is not None:
                car[fit.n_est < ctx.min_estimation] = np.nan
            car = car.reshape(c, n_ev, len(hz))
            okc = np.isfinite(car)
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[s : s + c] = np.where(okc, car, 0.0).sum(1) / okc.sum(1)
            if prog is not None:
                prog.update(task, advance=c)
    finally:
        if prog is not None:
            prog.stop()
    a_ = (1 - level) / 2
    lo, hi = np.nanquantile(draws, a_, axis=0), np.nanquantile(draws, 1 - a_, axis=0)
    exceed = (np.abs(draws) >= np.abs(caar)).sum(0)
    p = (1 + exceed) / (1 + n_draws)
    return InferenceResult("placebo", _frame(hz, caar, lo, hi, p, ok.sum(0), alpha), n_draws, seed, level, alpha, draws)
