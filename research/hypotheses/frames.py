"""Frames shaped from the hourly panel for the event-study engine and the plots (shaping, no statistics)."""
from __future__ import annotations

import math

import polars as pl

from research.panel import oi_coins

__all__ = ["returns_frame", "profile_frame", "market_panel_frame", "events_for_plot"]


def _asset(panel: pl.DataFrame, asset: str | None) -> str:
    return asset or (str(panel["symbol"][0]) if "symbol" in panel.columns else "asset")


def returns_frame(panel: pl.DataFrame, col: str = "perp_ret", asset: str | None = None) -> pl.DataFrame:
    """``ts, asset, return`` for :func:`research.eventstudy.run` (log returns, NaN where missing)."""
    return panel.select("ts", pl.lit(_asset(panel, asset)).alias("asset"), pl.col(col).cast(pl.Float64).alias("return"))


def profile_frame(panel: pl.DataFrame, *, liq_window_hours: int = 4, asset: str | None = None) -> pl.DataFrame:
    """Hourly columns to profile in event time: ``ts, asset`` and

    * ``ret_pct``: perp log return in percent (profile with ``cumulate=True`` for the price path),
    * ``oi_chg_pct``: hourly log change in percent of OI in coins (:func:`research.panel.oi_coins`,
      cumulate for the OI path); null across a stale or missing OI observation,
    * ``funding_8h_bp``: funding in force per 8 h, in basis points,
    * ``liq_long_musd``/``liq_short_musd``: liquidations in the trailing ``liq_window_hours``
      (observed buckets only), in $ million; null outside liquidation coverage.
    """
    p = panel.sort("ts")
    oi = oi_coins(p)
    w = f"{int(liq_window_hours)}h"
    df = p.select(
        "ts", pl.lit(_asset(p, asset)).alias("asset"),
        (100 * pl.col("perp_ret")).alias("ret_pct"),
        (100 * (oi.log() - oi.log().shift(1))).alias("oi_chg_pct"),
        (1e4 * pl.col("funding_rate_8h")).alias("funding_8h_bp"),
        pl.col("liq_long_usd"), pl.col("liq_short_usd"), pl.col("has_liq"),
    )
    df = df.with_columns(
        (pl.col(c).fill_null(0.0).rolling_sum_by("ts", window_size=w) / 1e6).alias(n)
        for c, n in (("liq_long_usd", "liq_long_musd"), ("liq_short_usd", "liq_short_musd"))
    ).with_columns(
        pl.when(pl.col("has_liq").fill_null(False)).then(pl.col(c)).alias(c) for c in ("liq_long_musd", "liq_short_musd")
    )
    return df.drop("liq_long_usd", "liq_short_usd", "has_liq")


def market_panel_frame(panel: pl.DataFrame, *, max_rows: int = 1500) -> pl.DataFrame:
    """The wide frame :func:`research.plots.plot_market_panel` draws, at most ``max_rows`` rows.

    Columns: ``ts, price, oi_bn`` (OI in thousands of coins, :func:`research.panel.oi_coins`),
    ``funding_8h_bp``, ``liq_long_musd``, ``liq_short_musd``, ``oi_unit``. Longer spans are
    aggregated to coarser buckets (last price/OI/funding, summed liquidations).
    """
    p = panel.sort("ts")
    df = p.select("ts", pl.col("perp_close").alias("price"), (oi_coins(p) / 1e3).alias("oi_bn"),
                  (1e4 * pl.col("funding_rate_8h")).alias("funding_8h_bp"),
                  (pl.col("liq_long_usd") / 1e6).alias("liq_long_musd"),
                  (pl.col("liq_short_usd") / 1e6).alias("liq_short_musd"))
    if df.height > max_rows:
        hours = math.ceil(df.height / max_rows)
        df = (df.group_by_dynamic("ts", every=f"{hours}h")
              .agg(pl.col("price").drop_nulls().last(), pl.col("oi_bn").drop_nulls().last(),
                   pl.col("funding_8h_bp").drop_nulls().last(),
                   pl.when(pl.col("liq_long_musd").count() > 0).then(pl.col("liq_long_musd").sum()),
                   pl.when(pl.col("liq_short_musd").count() > 0).then(pl.col("liq_short_musd").sum())))
    return df.with_columns(pl.lit("k coins").alias("oi_unit"))


def events_for_plot(*tables: pl.DataFrame) -> pl.DataFrame:
    """Concatenate event tables to ``ts, kind`` for event markers."""
    parts = [t.select("ts", "kind") for t in tables if t is not None and t.height]
    if not parts:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "kind": pl.String})
    return pl.concat(parts).sort("ts")
