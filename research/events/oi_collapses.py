"""OI collapses: open interest *in coins* falls fast, so a price fall alone is never a collapse."""
from __future__ import annotations

import numpy as np
import polars as pl

from research.events._common import (UTC_TS, finish, label_clusters, pct_change, positive, require, sorted_panel,
                                     sum_between, symbol_of)
from research.events.legs import triggered_legs
from research.oi import oi_coins

__all__ = ["detect_oi_collapses", "OI_COLUMNS"]

#: Columns after ``event_id, ts, symbol, asset, kind``, in order.
OI_COLUMNS = [
    "detected_ts", "peak_ts", "trough_ts", "trough_detected_ts", "complete",
    "oi_peak", "oi_at_detect", "oi_change_at_detect_pct", "oi_trough", "oi_change_pct",
    "price_peak", "price_at_detect", "price_change_at_detect_pct", "price_trough", "price_change_pct",
    "oi_usd_change_pct", "funding_before", "funding_after", "liq_long_usd", "liq_short_usd", "zscore",
    "rebound_pct", "oi_measure", "oi_method", "oi_approximate", "cluster_id", "cluster_size", "keep", "lookahead",
]


def detect_oi_collapses(
    panel: pl.DataFrame,
    *,
    drop_pct: float = 5.0,
    within_hours: float = 24,
    rebound_pct: float = 2.0,
    zscore: float | None = None,
    zscore_window_hours: float = 720,
    zscore_min_hours: float = 168,
    min_spacing_hours: float | None = 48,
    max_oi_age_hours: float | None = 12,
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """OI collapses: OI in coins at least ``drop_pct`` % below its high of the last ``within_hours``.

    OI is in coins by :func:`research.oi.oi_coins` (``oi_base``, else USD OI / the matching close,
    flagged). A collapse starts at the bar where the rule turns on; it lasts until OI rebounds
    ``rebound_pct`` % above its running low, and its trough is the lowest OI before that rebound.
    While a collapse lasts, further crossings belong to it (one event, nothing dropped).

    Parameters
    ----------
    panel : polars.DataFrame
        Panel (``ts``, ``oi_base`` and/or ``oi_usd``, ``price_col``; ``funding_rate_8h``,
        ``liq_long_usd``, ``liq_short_usd``, ``oi_age_hours`` used when present). Any bar length.
    drop_pct : float
        Minimum fall from the rolling ``within_hours`` high, in percent (the default rule).
    within_hours : float
        Look-back of the rolling OI high (clock hours), and the horizon of the z-score rule's change.
    rebound_pct : float
        Rise of OI from its running low, in percent, that ends the collapse (confirms the trough).
    zscore : float, optional
        If given, the rule is instead: the ``within_hours`` OI % change is at least ``zscore``
        standard deviations below its mean over the preceding ``zscore_window_hours`` (rows strictly
        before the bar; needs ``zscore_min_hours`` of history): causal.
    zscore_window_hours, zscore_min_hours : float
        See ``zscore``.
    min_spacing_hours : float or None
        Collapses detected closer than this share a ``cluster_id`` (recorded; none dropped).
    max_oi_age_hours : float, optional
        Rows whose OI observation is older than this (``oi_age_hours``) are missing.
    price_col : str
        Close used for prices and for USD-to-coins conversion.
    symbol : str, optional
        Symbol for the table.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` then :data:`OI_COLUMNS`. Known at ``ts =
        detected_ts`` (the first bar of the rule, at its close): ``peak_ts`` (latest bar of the
        rolling high), ``oi_peak``, ``oi_at_detect``, ``oi_change_at_detect_pct``, ``price_peak``,
        ``price_at_detect``, ``price_change_at_detect_pct``, ``funding_before`` (8h rate at the
        peak bar), ``zscore``. Known at ``trough_detected_ts`` (OI's rebound; null and
        ``complete`` False when the panel ends first, trough columns then provisional):
        ``trough_ts``, ``oi_trough``, ``oi_change_pct`` (peak to trough, in coins),
        ``price_trough``, ``price_change_pct``, ``oi_usd_change_pct`` (the same change in USD OI,
        for comparison; null without ``oi_usd``), ``funding_after`` (at the trough bar),
        ``liq_long_usd/liq_short_usd`` (sums over bars in (peak_ts, trough_ts]). ``oi_measure`` is
        ``"coins"``; ``oi_method``/``oi_approximate`` record how.

    Notes
    -----
    Missing data: bars with no fresh OI are ignored; windows are clock time on ``ts``.
    """
    name = "detect_oi_collapses"
    require(panel, ["ts", price_col], name)
    for k, v in (("drop_pct", drop_pct), ("within_hours", within_hours), ("rebound_pct", rebound_pct),
                 ("zscore", zscore), ("zscore_window_hours", zscore_window_hours),
                 ("max_oi_age_hours", max_oi_age_hours)):
        positive(k, v, name)
    positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    positive("zscore_min_hours", zscore_min_hours, name, allow_zero=True)
    sym = symbol_of(panel, symbol)
    df = sorted_panel(panel)
    series = oi_coins(df, price_col=price_col, max_age_hours=max_oi_age_hours)
    oi = (series.frame.select("ts", pl.col("oi_coins").alias("o"))
          .filter(pl.col("o").is_not_null() & pl.col("o").is_finite() & (pl.col("o") > 0)))
    if oi.height < 2:
        return finish(_empty(), "oi_collapse", sym, OI_COLUMNS)
    win = f"{int(round(within_hours * 3600))}s"
    lagged = oi.select((pl.col("ts") + pl.duration(seconds=int(round(within_hours * 3600)))).alias("ts"),
                       pl.col("o").alias("o_lag"))
    tol = f"{max(1, int(round(within_hours * 900)))}s"   # a quarter of the horizon
    x = (oi.join_asof(lagged.sort("ts"), on="ts", strategy="backward", tolerance=tol)
         .with_columns(pl.col("o").rolling_max_by("ts", window_size=win, closed="both").alias("hi"),
                       (100.0 * (pl.col("o") / pl.col("o_lag") - 1.0)).alias("chg")))
    zwin = f"{int(round(zscore_window_hours * 3600))}s"
    x = x.with_columns(
        pl.col("chg").rolling_mean_by("ts", window_size=zwin, closed="left").alias("mu"),
        pl.col("chg").rolling_std_by("ts", window_size=zwin, closed="left").alias("sd"),
        ((pl.col("ts") - pl.col("ts").first()).dt.total_seconds() / 3600.0).alias("_hist"),
    ).with_columns(
        pl.when((pl.col("_hist") >= zscore_min_hours) & (pl.col("sd") > 0))
        .then((pl.col("chg") - pl.col("mu")) / pl.col("sd")).alias("zscore"))
    hit = (pl.col("o") <= pl.col("hi") * (1.0 - drop_pct / 100.0)) if zscore is None else \
        (pl.col("zscore") <= -float(zscore))
    trig = x.select(hit.fill_null(False).alias("_hit"))["_hit"].to_numpy()
    legs = triggered_legs(x["o"].to_numpy(), trig, rebound_pct)
    if legs["detect_i"].size == 0:
        return finish(_empty(), "oi_collapse", sym, OI_COLUMNS)
    ev = _events(x, legs, within_hours)
    ev = _attributes(ev, df, oi, price_col)
    ev = ev.with_columns(pl.lit(float(rebound_pct)).alias("rebound_pct"), pl.lit("coins").alias("oi_measure"),
                         pl.lit(series.method).alias("oi_method"), pl.lit(series.approximate).alias("oi_approximate"))
    ev = label_clusters(ev.sort("_eid"), min_spacing_hours)
    return finish(ev.select(*OI_COLUMNS).with_columns(pl.col("detected_ts").alias("ts")), "oi_collapse", sym,
                  OI_COLUMNS)


def _events(x: pl.DataFrame, legs: dict[str, np.ndarray], within_hours: float) -> pl.DataFrame:
    """Detection, trough and confirmation bars of each collapse; the peak is the latest bar of the
    rolling high at detection (inside [detected - within_hours, detected], so known then)."""
    ts, o = x["ts"], x["o"]
    conf = legs["confirm_i"]
    ev = pl.DataFrame({
        "_eid": np.arange(conf.size, dtype=np.int64),
        "detected_ts": ts.gather(legs["detect_i"]), "oi_at_detect": o.gather(legs["detect_i"]),
        "zscore": x["zscore"].gather(legs["detect_i"]), "hi": x["hi"].gather(legs["detect_i"]),
        "trough_ts": ts.gather(legs["trough_i"]), "oi_trough": o.gather(legs["trough_i"]),
        "trough_detected_ts": ts.gather(np.where(conf >= 0, conf, 0)),
    }).with_columns(pl.when(pl.Series(conf >= 0)).then(pl.col("trough_detected_ts")).alias("trough_detected_ts"))
    ev = ev.with_columns(pl.col("trough_detected_ts").is_not_null().alias("complete"),
                         (pl.col("detected_ts") - pl.duration(seconds=int(round(within_hours * 3600)))).alias("_lo"))
    s = x.select(pl.col("ts").alias("_t"), pl.col("o").alias("_v"))
    j = (ev.select("_eid", "_lo", "detected_ts", "hi")
         .join_where(s, pl.col("_t") >= pl.col("_lo"), pl.col("_t") <= pl.col("detected_ts"))
         .filter(pl.col("_v") == pl.col("hi"))
         .group_by("_eid").agg(pl.col("_t").max().alias("peak_ts")))
    return ev.join(j, on="_eid", how="left").rename({"hi": "oi_peak"})


def _attributes(ev: pl.DataFrame, df: pl.DataFrame, oi: pl.DataFrame, price_col: str) -> pl.DataFrame:
    """Prices, USD OI, funding and liquidations at the peak, detection and trough bars."""
    px = df.select("ts", pl.col(price_col).cast(pl.Float64).alias("_p"))
    for at, alias in (("peak_ts", "price_peak"), ("detected_ts", "price_at_detect"), ("trough_ts", "price_trough")):
        ev = ev.join(px.rename({"ts": at, "_p": alias}), on=at, how="left")
    usd = df.select("ts", (pl.col("oi_usd").cast(pl.Float64) if "oi_usd" in df.columns
                           else pl.lit(None, pl.Float64)).alias("_u"))
    ev = (ev.join(usd.rename({"ts": "peak_ts", "_u": "_u0"}), on="peak_ts", how="left")
          .join(usd.rename({"ts": "trough_ts", "_u": "_u1"}), on="trough_ts", how="left"))
    f = df.select("ts", (pl.col("funding_rate_8h").cast(pl.Float64) if "funding_rate_8h" in df.columns
                         else pl.lit(None, pl.Float64)).alias("_f"))
    ev = (ev.join(f.rename({"ts": "peak_ts", "_f": "funding_before"}), on="peak_ts", how="left")
          .join(f.rename({"ts": "trough_ts", "_f": "funding_after"}), on="trough_ts", how="left"))
    ev = sum_between(ev, df, "peak_ts", "trough_ts", ["liq_long_usd", "liq_short_usd"])
    return ev.with_columns(
        pct_change("oi_peak", "oi_at_detect").alias("oi_change_at_detect_pct"),
        pct_change("oi_peak", "oi_trough").alias("oi_change_pct"),
        pct_change("price_peak", "price_at_detect").alias("price_change_at_detect_pct"),
        pct_change("price_peak", "price_trough").alias("price_change_pct"),
        pct_change("_u0", "_u1").alias("oi_usd_change_pct"))


def _empty() -> pl.DataFrame:
    types = {"detected_ts": UTC_TS, "peak_ts": UTC_TS, "trough_ts": UTC_TS, "trough_detected_ts": UTC_TS,
             "complete": pl.Boolean, "oi_measure": pl.String, "oi_method": pl.String, "oi_approximate": pl.Boolean,
             "cluster_id": pl.Int64, "cluster_size": pl.Int64, "keep": pl.String, "lookahead": pl.Boolean}
    return pl.DataFrame(schema={"ts": UTC_TS, **{c: types.get(c, pl.Float64) for c in OI_COLUMNS}})
