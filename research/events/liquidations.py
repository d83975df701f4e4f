"""Liquidation prints: a bucket's long (or short) liquidations far above their recent level."""
from __future__ import annotations

import polars as pl

from research.errors import EventDetectionError
from research.events._common import (bar_hours, check_keep, decluster, finish, hours_to_bars, pct_change,
                                     positive, require, sorted_panel, symbol_of)

__all__ = ["detect_liquidation_prints", "LIQ_COLUMNS"]

#: Columns after ``event_id, ts, symbol, asset, kind``, in order.
LIQ_COLUMNS = ["detected_ts", "side", "usd", "other_side_usd", "median_usd", "multiple", "threshold_usd",
               "n_history", "price_before_pct", "price_after_pct", "around_hours", "keep", "lookahead"]


def detect_liquidation_prints(
    panel: pl.DataFrame,
    *,
    side: str = "long",
    pct: float | None = None,
    k: float | None = 5.0,
    window_hours: float = 720,
    min_history: int = 12,
    min_usd: float = 0.0,
    around_hours: float = 24,
    min_spacing_hours: float | None = 24,
    keep: str = "first",
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """Liquidation prints: a bucket at least ``k`` x the rolling median of earlier buckets.

    A bucket is a print when its USD is at least ``k`` times the rolling median of the observed
    buckets in the preceding ``window_hours`` (or, with ``pct``, at least that rolling percentile),
    and at least ``min_usd``. The rolling statistics use buckets strictly before the bucket and need
    ``min_history`` of them, so a print is known at its own bar.

    Parameters
    ----------
    panel : polars.DataFrame
        Panel (``ts``, ``liq_long_usd``, ``liq_short_usd``, ``price_col``). A liquidation bucket
        sits on the bar that contains the bucket's end; other bars are null. Any bar length.
    side : {"long", "short"}
        Which liquidations.
    pct : float, optional
        Rolling percentile (0-100) threshold; takes precedence over ``k``.
    k : float, optional
        Multiple of the rolling median.
    window_hours : float
        Rolling window of earlier buckets, in clock hours.
    min_history : int
        Minimum number of earlier observed buckets in the window.
    min_usd : float
        Absolute floor in USD (a rolling median of 0 would otherwise make any bucket a print).
    around_hours : float
        ``price_before_pct`` = close change over the ``around_hours`` before the print bar,
        ``price_after_pct`` = from the print bar's close over the ``around_hours`` after it
        (rounded to whole bars; the bar length is inferred from ``ts``).
    min_spacing_hours : float or None
        De-clustering.
    keep : {"first", "largest_lookahead"}
        ``"first"`` (default, causal): the first print of a cluster, kept when no kept print lies
        less than ``min_spacing_hours`` before it; known at its bar. ``"largest_lookahead"``: the
        largest bucket of each cluster, a choice that needs the cluster's end: ``detected_ts`` is
        then one spacing after the cluster's last print and ``lookahead`` is True.
    price_col : str
        Close column.
    symbol : str, optional
        Symbol for the table.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` then :data:`LIQ_COLUMNS`. ``ts`` is the bar
        containing the bucket's end (for a 4h bucket 20:00-24:00 on an hourly panel, the 23:00
        bar); ``detected_ts = ts`` under ``keep="first"``. ``multiple`` = usd / rolling median.
        ``price_before_pct`` is pre-event and mechanical (longs are liquidated because the price
        fell); ``price_after_pct`` starts at ``ts``.

    Raises
    ------
    EventDetectionError
        Missing columns or an invalid parameter.

    Notes
    -----
    Bars without a bucket (null) are not buckets and never enter the rolling statistics; a bucket
    with 0 USD is an observed quiet bucket and does. Price changes are null when the panel has no
    close at the needed bar.
    """
    name = "detect_liquidation_prints"
    if side not in ("long", "short"):
        raise EventDetectionError(f"{name}: side={side!r}; use 'long' or 'short'")
    check_keep(keep, name)
    col, other = (("liq_long_usd", "liq_short_usd") if side == "long" else ("liq_short_usd", "liq_long_usd"))
    require(panel, ["ts", col, price_col], name)
    if pct is None and k is None:
        raise EventDetectionError(f"{name}: give k (multiple of the rolling median) or pct (percentile)")
    if pct is not None and not 0 < pct < 100:
        raise EventDetectionError(f"{name}: pct={pct!r} must be a percentile in (0, 100)")
    positive("k", k, name)
    positive("window_hours", window_hours, name)
    positive("min_usd", min_usd, name, allow_zero=True)
    positive("around_hours", around_hours, name)
    positive("min_history", min_history, name, allow_zero=True)
    positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    sym = symbol_of(panel, symbol)
    df = sorted_panel(panel)
    win = f"{int(round(window_hours * 3600))}s"
    b = df.filter(pl.col(col).is_not_null()).select(
        "ts", pl.col(col).cast(pl.Float64).alias("usd"),
        (pl.col(other).cast(pl.Float64) if other in df.columns else pl.lit(None, pl.Float64)).alias("other_side_usd"))
    ref = (pl.col("usd").rolling_quantile_by("ts", window_size=win, quantile=pct / 100.0, closed="left")
           if pct is not None else
           pl.col("usd").rolling_median_by("ts", window_size=win, closed="left") * float(k))
    b = b.with_columns(
        pl.col("usd").rolling_median_by("ts", window_size=win, closed="left").alias("median_usd"),
        pl.col("usd").is_not_null().cast(pl.Int64).rolling_sum_by("ts", window_size=win, closed="left")
        .fill_null(0).alias("n_history"),
        ref.alias("threshold_usd"),
    )
    ev = b.filter((pl.col("n_history") >= min_history) & (pl.col("usd") >= pl.col("threshold_usd"))
                  & (pl.col("usd") >= min_usd) & (pl.col("usd") > 0))
    bar = bar_hours(df)
    ah_hours = hours_to_bars(around_hours, bar) * bar
    ev = ev.with_columns(
        pl.when(pl.col("median_usd") > 0).then(pl.col("usd") / pl.col("median_usd")).alias("multiple"),
        pl.lit(side).alias("side"), pl.lit(float(ah_hours)).alias("around_hours"))
    px = df.select("ts", pl.col(price_col).alias("_p"))
    ah = pl.duration(seconds=int(round(ah_hours * 3600)))
    ev = (ev.join(px, on="ts", how="left")
          .join(px.with_columns(pl.col("ts") + ah), on="ts", how="left", suffix="_before")
          .join(px.with_columns(pl.col("ts") - ah), on="ts", how="left", suffix="_after")
          .with_columns(pct_change("_p_before", "_p").alias("price_before_pct"),
                        pct_change("_p", "_p_after").alias("price_after_pct"),
                        pl.lit(keep).alias("keep"), pl.lit(keep != "first").alias("lookahead")))
    ev = decluster(ev, min_spacing_hours, keep=keep, score="usd")
    ev = ev.with_columns((pl.col("choice_known_ts") if keep == "largest_lookahead" else pl.col("ts"))
                         .alias("detected_ts"))
    return finish(ev.select("ts", *LIQ_COLUMNS), "liquidation_print", sym, LIQ_COLUMNS)
