"""Helpers shared by the hypothesis modules: input checks and hourly-index arithmetic on the panel."""
from __future__ import annotations

import numpy as np
import polars as pl

from research.errors import HypothesisError

HOUR_US = 3_600_000_000


def require(panel: pl.DataFrame, cols, who: str) -> None:
    """Raise :class:`HypothesisError` unless ``panel`` is a polars frame holding ``cols``."""
    if not isinstance(panel, pl.DataFrame):
        raise HypothesisError(f"{who}: panel must be a polars DataFrame (the hourly panel), got {type(panel).__name__}")
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise HypothesisError(f"{who}: panel has no column(s) {missing}; pass research.db.query('hourly_panel', ...)")


def col(panel: pl.DataFrame, name: str) -> np.ndarray:
    """A panel column as float numpy (null -> NaN); all-NaN when the column is absent."""
    if name not in panel.columns:
        return np.full(panel.height, np.nan)
    return panel[name].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(float)


def hours(panel: pl.DataFrame) -> np.ndarray:
    """Hours since the epoch of each panel row."""
    return panel["ts"].dt.epoch("us").to_numpy() // HOUR_US


def bar_hours(panel: pl.DataFrame) -> float:
    """Clock hours per panel bar: the median spacing of ``ts`` (1.0 for fewer than two rows)."""
    h = hours(panel)
    return float(np.median(np.diff(h))) if h.size > 1 else 1.0


def to_bars(clock_hours: float, bar_h: float) -> int:
    """A span in clock hours as a whole number of bars (at least 1): 72 h is 72 bars at 1 h, 3 at 1 d."""
    return max(1, round(float(clock_hours) / max(float(bar_h), 1e-9)))


def rows_of(panel_hours: np.ndarray, ts: pl.Series) -> np.ndarray:
    """Row index of each timestamp in the (hourly, sorted) panel; -1 when absent."""
    h = ts.dt.epoch("us").fill_null(-1).to_numpy() // HOUR_US
    i = np.searchsorted(panel_hours, h)
    i = np.clip(i, 0, len(panel_hours) - 1)
    ok = (len(panel_hours) > 0) & (panel_hours[i] == h) & (h >= 0)
    return np.where(ok, i, -1)


def sorted_panel(panel: pl.DataFrame) -> pl.DataFrame:
    """The panel sorted by ``ts`` (unchanged when already sorted)."""
    return panel if panel["ts"].is_sorted() else panel.sort("ts")


def window_sum(cs: np.ndarray, i0: int, i1: int) -> float:
    """Sum of x[i0..i1] (inclusive) from the cumulative sum ``cs`` with a leading 0."""
    if i1 < i0:
        return 0.0
    return float(cs[i1 + 1] - cs[i0])


def forward_any(ind: np.ndarray, h: int) -> np.ndarray:
    """1 where ``ind`` is true in any of the next ``h`` rows (t+1..t+h); NaN where the window runs off the end."""
    n = ind.size
    cs = np.concatenate([[0], np.cumsum(ind.astype(int))])
    t = np.arange(n)
    hi = t + h
    out = np.full(n, np.nan)
    ok = hi <= n - 1
    out[ok] = (cs[hi[ok] + 1] - cs[t[ok] + 1]) > 0
    return out


def backward_any(ind: np.ndarray, h: int) -> np.ndarray:
    """True where ``ind`` is true in any of the previous ``h`` rows (t-h..t-1)."""
    cs = np.concatenate([[0], np.cumsum(ind.astype(int))])
    t = np.arange(ind.size)
    lo = np.maximum(t - h, 0)
    return (cs[t] - cs[lo]) > 0


def nan_to_null(df: pl.DataFrame) -> pl.DataFrame:
    """Float NaN -> null in every float column (records store missing as null)."""
    return df.with_columns(pl.col(pl.Float64).fill_nan(None))
