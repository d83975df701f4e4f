"""Cross-sectional regression of CAR on event attributes (statsmodels OLS, HC3 or HAC errors)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from research.errors import EventStudyError

from .results import EventStudyResult, _clean, window_key

COV_TYPES = ("HC3", "HAC", "nonrobust")


@dataclass
class CarRegressionResult:
    """OLS of CAR on event attributes.

    Attributes
    ----------
    window : str
        CAR window label.
    cov_type : str
        ``"HC3"``, ``"HAC"`` (with ``maxlags``) or ``"nonrobust"``.
    names : list of str
        Regressor names (``const`` first when added).
    params, bse, tvalues, pvalues : numpy.ndarray
        Coefficients, standard errors, t statistics and p-values.
    nobs : int
        Events in the regression (events with a missing CAR or attribute are left out).
    rsquared : float
        R squared.
    maxlags : int or None
        HAC lag length.
    """

    window: str
    cov_type: str
    names: list[str]
    params: np.ndarray
    bse: np.ndarray
    tvalues: np.ndarray
    pvalues: np.ndarray
    nobs: int
    rsquared: float
    maxlags: int | None = None
    _fit: Any = field(default=None, repr=False)

    def to_frame(self) -> pl.DataFrame:
        """``term, coef, se, t, pvalue``."""
        return pl.DataFrame({"term": self.names, "coef": self.params, "se": self.bse, "t": self.tvalues,
                             "pvalue": self.pvalues})

    def summary(self) -> str:
        """statsmodels' summary text."""
        return str(self._fit.summary(yname=f"CAR{self.window}", xname=self.names))

    def to_dict(self) -> dict:
        """JSON-serialisable record."""
        return _clean({"window": self.window, "cov_type": self.cov_type, "maxlags": self.maxlags, "nobs": self.nobs,
                       "rsquared": self.rsquared, "coefficients": self.to_frame().to_dicts()})

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), **kwargs)


def car_regression(
    result: EventStudyResult,
    attributes: list[str],
    *,
    window: tuple[int, int] | None = None,
    cov_type: str = "HC3",
    maxlags: int | None = None,
    add_constant: bool = True,
) -> CarRegressionResult:
    """Regress per-event CAR on event attributes.

    Parameters
    ----------
    result : EventStudyResult
        A finished study; attributes come from its ``events`` frame.
    attributes : list of str
        Event columns to use as regressors. Numeric and boolean columns enter as they are;
        string/categorical columns become dummies (alphabetically first level is the base).
    window : (int, int), optional
        CAR window (default: the whole event window).
    cov_type : {"HC3", "HAC", "nonrobust"}
        Covariance estimator. HAC (Newey-West) orders events by time.
    maxlags : int, optional
        HAC lags (default ``floor(4 (n/100)^(2/9))``).
    add_constant : bool
        Add an intercept.

    Returns
    -------
    CarRegressionResult
    """
    if cov_type not in COV_TYPES:
        raise EventStudyError(f"cov_type={cov_type!r}; use one of {COV_TYPES}")
    if isinstance(attributes, str):
        attributes = [attributes]
    missing = [a for a in attributes if a not in result.events.columns]
    if missing:
        raise EventStudyError(f"event attribute(s) {missing} not in events; have {result.events.columns}")
    w = tuple(result.spec["window"]) if window is None else tuple(window)
    cars = result.car(w)["car"]
    ev = result.events.with_columns(cars.alias("__car"))
    if cov_type == "HAC":
        ev = ev.sort("ts")
    parts, names = [], []
    for a in attributes:
        s = ev[a]
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            parts.append(s.cast(pl.Float64).fill_null(np.nan).to_numpy()[:, None])
            names.append(a)
        else:
            s = s.cast(pl.String)
            levels = sorted(s.drop_nulls().unique().to_list())  # first level (sorted) is the base
            for lv in levels[1:]:
                parts.append(np.where(s.is_null().to_numpy(), np.nan, (s == lv).fill_null(False).to_numpy().astype(float))[:, None])
                names.append(f"{a}_{lv}")
    X = np.hstack(parts) if parts else np.empty((ev.height, 0))
    y = ev["__car"].to_numpy().astype(float)
    ok = np.isfinite(y) & np.isfinite(X).all(1)
    X, y = X[ok], y[ok]
    if add_constant:
        X = np.column_stack([np.ones(len(y)), X])
        names = ["const", *names]
    if len(y) <= X.shape[1]:
        raise EventStudyError(f"only {len(y)} events with CAR and attributes for {X.shape[1]} regressors")
    kw = {}
    if cov_type == "HAC":
        maxlags = int(np.floor(4 * (len(y) / 100) ** (2 / 9))) if maxlags is None else int(maxlags)
        kw = {"cov_kwds": {"maxlags": maxlags}}
    import statsmodels.api as sm  # slow import, only when a regression runs

    fit = sm.OLS(y, X).fit(cov_type=cov_type, **kw)
    return CarRegressionResult(window_key(w), cov_type, names, np.asarray(fit.params), np.asarray(fit.bse),
                               np.asarray(fit.tvalues), np.asarray(fit.pvalues), int(fit.nobs), float(fit.rsquared),
                               maxlags if cov_type == "HAC" else None, fit)
