"""Event-time profiles of any columns (:func:`profile`) and their Wilcoxon intervals."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import special
from scipy import stats as sps

from research.errors import EventStudyError

from . import windows as W


def _walsh_ci(x: np.ndarray, level: float) -> tuple[float, float]:
    """Wilcoxon signed-rank (Hodges-Lehmann) confidence interval from Walsh averages.

    When ``level`` is not achievable with ``n`` observations (as R's ``wilcox.test`` warns), the
    widest interval -- the minimum and maximum Walsh averages -- is returned.
    """
    n = x.size
    if n == 0:
        return math.nan, math.nan
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    m = walsh.size
    alpha = 1 - level
    # exact lower quantile of the signed-rank statistic: P(V <= c) <= alpha/2
    if n <= 50:
        counts = _signrank_counts(n)
        cdf = np.cumsum(counts) / counts.sum()
        c = int(np.searchsorted(cdf, alpha / 2, side="right"))  # number of values with cdf <= alpha/2
    else:
        mu, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        c = int(math.floor(mu + sps.norm.ppf(alpha / 2) * sd))
    if c <= 0:
        return float(walsh[0]), float(walsh[-1])
    return float(walsh[c]), float(walsh[m - 1 - c])


def _signrank_counts(n: int) -> np.ndarray:
    """Number of subsets of {1..n} with each rank sum 0..n(n+1)/2."""
    c = np.zeros(n * (n + 1) // 2 + 1)
    c[0] = 1
    for k in range(1, n + 1):
        c[k:] = c[k:] + c[:-k].copy()
    return c


def profile(
    frame: pl.DataFrame,
    events: pl.DataFrame,
    window: tuple[int, int] = (-10, 10),
    *,
    columns: list[str] | None = None,
    anchor: str = "containing",
    bar_label: str = "open",
    band: str = "t",
    level: float = 0.95,
    cumulate: bool = False,
    require_value: str | None = None,
    return_dropped: bool = False,
):
    """Event-time profile of any columns (OI % change, funding, liquidations, returns...).

    Parameters
    ----------
    frame : polars.DataFrame
        ``ts, asset`` and value columns on a regular bar grid.
    events : polars.DataFrame
        ``ts, asset`` (+ attributes, ignored).
    window : (int, int)
        Event-time window in bars, inclusive.
    columns : list of str, optional
        Value columns (default: every column except ``ts`` and ``asset``).
    anchor, bar_label : str
        As in :func:`run`.
    band : {"t", "wilcoxon", "quantile"}
        ``lo``/``hi``: t interval of the mean (NaN when the values have no spread), the Wilcoxon
        signed-rank interval (Walsh averages; widest interval when the level is not achievable,
        as R's ``wilcox.test``), or the empirical ``(1-level)/2`` quantiles across events.
    level : float
        Confidence level.
    cumulate : bool
        Profile cumulative sums from the window start, with the first bar as base 0 (xKDR
        ``remap.cumsum(is.pc = FALSE, base = 0)``): value(t) = sum over (start, t].
    require_value : str, optional
        Column that must be present at the event bar (default: the first profiled column);
        events without it are dropped as ``"no_return_at_event"``.
    return_dropped : bool
        Also return the dropped events (``event_id, ts, asset, reason``).

    Returns
    -------
    polars.DataFrame or (polars.DataFrame, polars.DataFrame)
        Tidy ``event_time, column, mean, median, lo, hi, n``.
    """
    if band not in ("t", "wilcoxon", "quantile"):
        raise EventStudyError(f"band={band!r}; use 't', 'wilcoxon' or 'quantile'")
    W._require(frame, ["ts", "asset"], "frame")
    cols = [c for c in frame.columns if c not in ("ts", "asset")] if columns is None else list(columns)
    if not cols:
        raise EventStudyError("frame has no value columns to profile")
    panel = W.build_panel(frame, cols, what="frame")
    win = W.offsets(window, "window")
    anch = W.anchor_events(panel, events, anchor=anchor, bar_label=bar_label, value=require_value or cols[0])
    parts = []
    for c in cols:
        x = W.gather_window(panel.values[c], anch.asset_idx, anch.bar_idx, int(win[0]), int(win[-1]))
        if cumulate:
            x = x.copy()
            x[:, 0] = 0.0
            x = np.cumsum(x, axis=1)
        parts.append(_describe(x, win, c, band, level))
    out = pl.concat(parts) if parts else pl.DataFrame()
    return (out, anch.dropped) if return_dropped else out


def _describe(x: np.ndarray, win: np.ndarray, col: str, band: str, level: float) -> pl.DataFrame:
    ok = np.isfinite(x)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(x, 0) / n, np.nan)
        sd = np.sqrt(np.nansum((x - mean) ** 2, 0) / (n - 1))
    med = np.full(win.size, np.nan)
    lo = np.full(win.size, np.nan)
    hi = np.full(win.size, np.nan)
    has = n > 0
    if has.any():
        import warnings as _w

        with _w.catch_warnings():
            _w.simplefilter("ignore", RuntimeWarning)
            med[has] = np.nanmedian(x[:, has], axis=0)
            if band == "quantile":
                a = (1 - level) / 2
                lo[has] = np.nanquantile(x[:, has], a, axis=0)
                hi[has] = np.nanquantile(x[:, has], 1 - a, axis=0)
    if band == "t":
        with np.errstate(invalid="ignore", divide="ignore"):
            q = special.stdtrit(np.where(n > 1, n - 1, np.nan), 0.5 + level / 2)
            half = np.where(sd > 0, q * sd / np.sqrt(n), np.nan)  # no spread: the t interval is undefined
        lo, hi = mean - half, mean + half
    elif band == "wilcoxon":
        for j in np.flatnonzero(has):  # one interval per event-time bar
            lo[j], hi[j] = _walsh_ci(x[ok[:, j], j], level)
    return pl.DataFrame({
        "event_time": win.astype(np.int64), "column": [col] * win.size, "mean": mean, "median": med,
        "lo": lo, "hi": hi, "n": n.astype(np.int64),
    }).fill_nan(None)
