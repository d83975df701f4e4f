"""More venues for the simulated market: Bybit, OKX and Hyperliquid liquidations and open interest.

Binance stays the market the model simulates (its rows are unchanged), and the other venues are
derived from it, so every planted episode and every Binance-based truth value is as before:

* **Open interest**: each venue holds a share of Binance's OI that drifts slowly (a daily-scale AR
  process on the log ratio), so venue OI falls with Binance's in a flush. Base ratios to Binance
  follow the venues' typical 2025 BTC shares (Binance ~0.34 of the venues here, Bybit ~0.23, OKX
  ~0.15, Hyperliquid ~0.20 of the four-venue total).
* **Liquidations**: each venue prints a multiple of Binance's hourly long/short liquidations; the
  multiple has a base (Bybit and Hyperliquid print more than their OI share, as in the Nov 2025
  flush "Bybit and Hyperliquid together accounted for more than half"), one seeded log-normal
  factor per episode (so venues' shares differ between selloffs, which the venue-share analysis
  has to recover) and hourly noise.

:func:`venue_truth` measures each venue's share of long liquidations over each episode's window
(peak .. trough + 6 h, the same window as ``long_liq_usd`` in the truth table) on these frames.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from research.schema import SYNTHETIC_SOURCE
from research.simulate._model import _ar1
from research.simulate._params import VENUE

#: venue -> (OI ratio to Binance, liquidation multiple of Binance)
VENUES: dict[str, tuple[float, float]] = {"bybit": (0.68, 0.95), "okx": (0.45, 0.35), "hyperliquid": (0.58, 0.85)}
LIQ_EPISODE_SD = 0.45
LIQ_HOUR_SD = 0.30
VENUE_TRUTH_SCHEMA = {"episode_id": pl.Int32, "venue": pl.String, "long_liq_usd": pl.Float64, "long_liq_share": pl.Float64}


def extra_venues(frames: dict[str, pl.DataFrame], ep_of: np.ndarray, n_episodes: int,
                 rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """``frames`` with Bybit, OKX and Hyperliquid rows appended to ``liquidations`` and ``open_interest``.

    ``ep_of[h]`` is the episode index of hour ``h`` (-1 outside episodes), as the schedule gives it.
    """
    liq, oi = frames["liquidations"].sort("ts"), frames["open_interest"].sort("ts")
    n = liq.height
    liqs, ois = [liq], [oi]
    for venue, (oi_ratio, liq_mult) in VENUES.items():
        drift = np.exp(_ar1(rng, oi.height, 0.999, 0.004))
        share = oi_ratio * drift
        ois.append(oi.with_columns((pl.col("oi_base") * share).round(3), (pl.col("oi_usd") * share).round(2),
                                   pl.lit(venue).alias("venue")))
        ep_factor = np.exp(LIQ_EPISODE_SD * rng.standard_normal(max(n_episodes, 1)))
        factor = liq_mult * np.where(ep_of[:n] >= 0, ep_factor[np.maximum(ep_of[:n], 0)], 1.0)
        hl = factor * np.exp(LIQ_HOUR_SD * rng.standard_normal(n))
        hs = factor * np.exp(LIQ_HOUR_SD * rng.standard_normal(n))
        long_usd = np.round(liq["long_usd"].to_numpy() * hl, 2)
        short_usd = np.round(liq["short_usd"].to_numpy() * hs, 2)
        count = rng.poisson((long_usd + short_usd) / 2.5e4).astype(np.int64) + 1
        liqs.append(liq.with_columns(pl.Series("long_usd", long_usd), pl.Series("short_usd", short_usd),
                                     pl.Series("count", count), pl.lit(venue).alias("venue")))
    return {**frames, "liquidations": pl.concat(liqs), "open_interest": pl.concat(ois)}


def venue_truth(truth: pl.DataFrame, liquidations: pl.DataFrame) -> pl.DataFrame:
    """Each venue's long liquidations and share over each planted episode (peak .. trough + 6 h)."""
    from datetime import timedelta

    rows = []
    for r in truth.iter_rows(named=True):
        w = liquidations.filter((pl.col("ts") >= r["peak_ts"]) & (pl.col("ts") <= r["trough_ts"] + timedelta(hours=6))
                                & (pl.col("source") == SYNTHETIC_SOURCE))
        by = w.group_by("venue").agg(pl.col("long_usd").sum())
        total = by["long_usd"].sum()
        for v in [VENUE, *VENUES]:
            usd = by.filter(pl.col("venue") == v)["long_usd"].sum()
            rows.append({"episode_id": r["episode_id"], "venue": v, "long_liq_usd": float(usd),
                         "long_liq_share": float(usd / total) if total > 0 else None})
    return pl.DataFrame(rows, schema=VENUE_TRUTH_SCHEMA)
