"""Normal-return models, fitted for all events at once on ``(n_events, bars)`` matrices.

* ``"raw"``: AR = R (no estimation needed).
* ``"mean"``: AR = R - mean of R over the estimation window.
* ``"market_adjusted"``: AR = R - R_m.
* ``"market"``: OLS of R on R_m over the estimation window (complete cases), AR = R - a - b R_m.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from research.errors import EventStudyError

MODELS = ("raw", "mean", "market_adjusted", "market")
#: Parameters estimated per event (the residual variance uses ``n - k`` degrees of freedom; the
#: models without a fitted parameter still estimate a mean in their variance, hence 1).
N_PARAMS = {"raw": 1, "mean": 1, "market_adjusted": 1, "market": 2}


@dataclass
class ModelFit:
    """Abnormal returns and the estimation-window quantities every test needs.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    evt_ar : numpy.ndarray
        Abnormal returns in the event window, ``(n_events, len)``, NaN = missing.
    est_ar : numpy.ndarray
        Abnormal returns in the estimation window (a property: the market model computes them
        on first use, since only some tests need them).
    n_est : numpy.ndarray
        Estimation observations per event (complete cases used in the fit).
    k : int
        Degrees of freedom used up by the fit (``N_PARAMS[model]``).
    sigma : numpy.ndarray
        Residual standard deviation, ``sqrt(SSR / (n_est - k))``.
    sd1 : numpy.ndarray
        Standard deviation of the estimation ARs around their mean with ``ddof=1`` (estudy2's
        ``sd()``/``colVars``).
    pe : numpy.ndarray
        Prediction-error factor ``C_it`` per event bar: ``1 + 1/n + (m_t - mbar)^2 / Sxx`` (market
        model), ``1 + 1/n`` (mean model), ``1`` otherwise.
    m_mean, m_sxx : numpy.ndarray or None
        Market mean and sum of squared deviations behind ``pe`` (market model only).
    evt_m : numpy.ndarray or None
        Market returns in the event window.
    alpha, beta : numpy.ndarray or None
        Market-model coefficients.
    """

    model: str
    evt_ar: np.ndarray
    n_est: np.ndarray
    k: int
    sigma: np.ndarray
    sd1: np.ndarray
    pe: np.ndarray
    m_mean: np.ndarray | None = None
    m_sxx: np.ndarray | None = None
    evt_m: np.ndarray | None = None
    alpha: np.ndarray | None = None
    beta: np.ndarray | None = None
    est_m: np.ndarray | None = field(default=None, repr=False)
    _est_ar: np.ndarray | None = field(default=None, repr=False)
    _est_inputs: tuple | None = field(default=None, repr=False)

    def take(self, rows: np.ndarray) -> "ModelFit":
        """The fit of a subset of events (``rows``: boolean mask or indices)."""
        def pick(v):
            if isinstance(v, np.ndarray):
                return v[rows]
            if isinstance(v, tuple):
                return tuple(x[rows] for x in v)
            return v

        return replace(self, **{f.name: pick(getattr(self, f.name)) for f in fields(self)})

    @property
    def est_ar(self) -> np.ndarray:
        """Estimation-window abnormal returns ``(n_events, len)``, NaN = missing."""
        if self._est_ar is None:
            est_r, est_m = self._est_inputs
            self._est_ar = est_r - self.alpha[:, None] - self.beta[:, None] * est_m
            self.est_m = est_m  # design_hc needs the estimation-window market returns
            self._est_inputs = None
        return self._est_ar

    def car_pe(self, j1: int, j2: int, present: np.ndarray | None = None) -> np.ndarray:
        """Variance factor of a sum of prediction errors over event columns ``j1..j2``.

        ``T + T^2/n + (sum_t (m_t - mbar))^2 / Sxx`` for the market model (the exact variance of
        a CAR of OLS prediction errors, in units of sigma^2), ``T + T^2/n`` for the mean model,
        ``T`` otherwise. With ``present`` (boolean ``(n_events, j2 - j1 + 1)``), T and the market
        sum run over each event's present bars only (the CAR of a window with gaps).
        """
        t = float(j2 - j1 + 1) if present is None else present.sum(1).astype(float)
        if self.model == "market":
            d = self.evt_m[:, j1 : j2 + 1] - self.m_mean[:, None]
            dev = np.sum(d if present is None else np.where(present, d, 0.0), axis=1)
            return t + t * t / self.n_est + dev**2 / self.m_sxx
        if self.model == "mean":
            return t + t * t / self.n_est
        return np.broadcast_to(t, (self.evt_ar.shape[0],)).astype(float)


_BLOCK = 8192  # events per block of the market-model cross-products


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _nanstd(x: np.ndarray, ddof: int) -> np.ndarray:
    if x.shape[1] == 0:
        return np.full(x.shape[0], np.nan)
    ok = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        if ok.all():  # complete windows (the usual case): skip the masking temporaries
            d = x - x.mean(1)[:, None]
            return np.sqrt(_rowdot(d, d) / (x.shape[1] - ddof))
        n = ok.sum(1)
        mu = np.where(ok, x, 0.0).sum(1) / n
        d = np.where(ok, x - mu[:, None], 0.0)
        return np.sqrt(_rowdot(d, d) / (n - ddof))


def fit(
    model: str,
    est_r: np.ndarray | None,
    evt_r: np.ndarray,
    est_m: np.ndarray | None = None,
    evt_m: np.ndarray | None = None,
    *,
    full_market_term: bool = False,
    light: bool = False,
) -> ModelFit:
    """Fit a normal-return model for every event (vectorised).

    Parameters
    ----------
    model : {"raw", "mean", "market_adjusted", "market"}
        The normal-return model.
    est_r, evt_r : numpy.ndarray
        Asset returns in the estimation and event windows, ``(n_events, len)``. ``est_r`` may be
        None for ``"raw"``.
    est_m, evt_m : numpy.ndarray, optional
        Benchmark returns aligned with ``est_r``/``evt_r`` (required by the market models).
    full_market_term : bool
        Compute the market mean and ``Sxx`` of the prediction-error factor from every market
        observation of the estimation window (estudy2's convention) instead of only the complete
        cases the regression used (textbook).

    Returns
    -------
    ModelFit
    """
    if model not in MODELS:
        raise EventStudyError(f"model={model!r}; use one of {MODELS}")
    n, w = evt_r.shape
    k = N_PARAMS[model]
    if model in ("market_adjusted", "market") and (est_m is None or evt_m is None):
        raise EventStudyError(f"model={model!r} needs a benchmark: pass market=<asset name or frame (ts, return)>")
    if est_r is None:
        if model != "raw":
            raise EventStudyError(f"model={model!r} needs an estimation window")
        est_r = np.empty((n, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        if model == "raw":
            est_ar, evt_ar = est_r.copy(), evt_r.copy()
            n_est = np.isfinite(est_ar).sum(1)
            pe = np.ones((n, w))
        elif model == "mean":
            n_est = np.isfinite(est_r).sum(1)
            mu = np.where(np.isfinite(est_r), est_r, 0.0).sum(1) / n_est
            est_ar, evt_ar = est_r - mu[:, None], evt_r - mu[:, None]
            pe = np.broadcast_to(1.0 + 1.0 / n_est[:, None], (n, w)).copy()
        elif model == "market_adjusted":
            est_ar, evt_ar = est_r - est_m, evt_r - evt_m
            n_est = np.isfinite(est_ar).sum(1)
            pe = np.ones((n, w))
        else:
            return _fit_market(est_r, evt_r, est_m, evt_m, full_market_term=full_market_term, light=light)
        sigma = sd1 = np.full(n, np.nan)
        if not light:
            sigma = _nanstd(est_ar, ddof=k)
            sd1 = _nanstd(est_ar, ddof=1)
    return ModelFit(model, evt_ar, n_est, k, sigma, sd1, pe, _est_ar=est_ar)


def _fit_market(est_r, evt_r, est_m, evt_m, *, full_market_term: bool, light: bool) -> ModelFit:
    """OLS of R on R_m per event over the estimation window's complete cases."""
    n, le = est_r.shape
    xm, ym = est_m.mean(1), est_r.mean(1)
    # a row sum is finite only if every value in the row is: complete windows need no mask
    complete = bool(np.isfinite(xm).all() and np.isfinite(ym).all())
    if complete:
        n_est = np.full(n, le)
    else:
        ok = np.isfinite(est_r) & np.isfinite(est_m)
        n_est = ok.sum(1)
        xm = np.where(ok, est_m, 0.0).sum(1) / n_est
        ym = np.where(ok, est_r, 0.0).sum(1) / n_est
    sxx, sxy, syy = np.empty(n), np.empty(n), np.empty(n)
    for i in range(0, n, _BLOCK):  # centred cross-products in event blocks: no full-size temporaries
        sl = slice(i, i + _BLOCK)
        dx = est_m[sl] - xm[sl, None]
        dy = est_r[sl] - ym[sl, None]
        if not complete:
            dx = np.where(ok[sl], dx, 0.0)
            dy = np.where(ok[sl], dy, 0.0)
        sxx[sl], sxy[sl], syy[sl] = _rowdot(dx, dx), _rowdot(dx, dy), _rowdot(dy, dy)
    beta = sxy / sxx
    alpha = ym - beta * xm
    evt_ar = evt_r - alpha[:, None] - beta[:, None] * evt_m
    if full_market_term and not complete:
        okm = np.isfinite(est_m)
        mm = np.where(okm, est_m, 0.0).sum(1) / okm.sum(1)
        msxx = np.where(okm, (est_m - mm[:, None]) ** 2, 0.0).sum(1)
    else:  # textbook, or estudy2's convention where every market bar is a complete case anyway
        mm, msxx = xm, sxx
    pe = 1.0 + 1.0 / n_est[:, None] + (evt_m - mm[:, None]) ** 2 / msxx[:, None]
    sigma = sd1 = np.full(n, np.nan)
    if not light:
        # SSR = Syy - Sxy^2 / Sxx from centred sums; OLS residuals with an intercept have mean 0
        # over the complete cases, so their s.d. (ddof=1) is sqrt(SSR / (n - 1)).
        ssr = np.maximum(syy - sxy * beta, 0.0)
        sigma = np.sqrt(ssr / (n_est - 2))
        sd1 = np.sqrt(ssr / (n_est - 1))
    return ModelFit("market", evt_ar, n_est, 2, sigma, sd1, pe, m_mean=mm, m_sxx=msxx, evt_m=evt_m,
                    alpha=alpha, beta=beta, _est_inputs=(est_r, est_m))
