"""Constants, parameters and the ground-truth schema of the simulated market."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from research.errors import ResearchError
from research.schema import UTC_TS

VENUE = "binance"
SYMBOL = "BTCUSDT"
TRUTH_DIR = "_truth"
TRUTH_FILE = "synthetic_truth.parquet"
#: Canonical tables the simulation fills, in write order.
TABLE_NAMES = ("bars", "funding", "open_interest", "liquidations", "liquidation_orders",
               "positioning", "etf_flows", "sentiment")

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "episode_id": pl.Int32,
    "kind": pl.String,
    "start_ts": UTC_TS,
    "peak_ts": UTC_TS,
    "trough_ts": UTC_TS,
    "end_ts": UTC_TS,
    "drawdown_pct": pl.Float64,
    "oi_change_pct": pl.Float64,
    "funding_before": pl.Float64,
    "funding_after": pl.Float64,
    "long_liq_usd": pl.Float64,
    "second_leg": pl.Boolean,
    "second_leg_ts": UTC_TS,
}

# Funding pins to the interest rate when the premium is within this band of it.
INTEREST_RATE = 0.0001
_PIN_BAND = 0.00003
# Alternative.me classification (upper bounds, inclusive), checked against the real index.
FG_LABELS = ((25, "Extreme Fear"), (46, "Fear"), (54, "Neutral"), (75, "Greed"), (100, "Extreme Greed"))


class SimulationError(ResearchError, ValueError):
    """Invalid simulation parameters (names the parameter and the allowed range)."""


@dataclass(frozen=True)
class Params:
    """Tunable constants of the simulated market (all overridable via ``simulate(**params)``).

    Magnitudes are calibrated against real Binance BTCUSDT data (2025-2026, see ``../shared``).
    """

    n_flush: int = 4
    n_exodus: int = 4
    min_gap_days: float = 7.0          # quiet days between one episode's end and the next start
    warmup_days: float = 6.0           # quiet days before the first episode
    p0: float = 93_500.0               # perp price at start (USDT)
    oi0_btc: float = 85_000.0          # open interest at start (BTC), ~8e9 USD
    hedged_share: float = 0.6          # OI share not exposed to liquidation (basis trades, hedges)
    sigma_h: float = 0.0041            # base hourly return scale
    t_df: float = 4.0                  # Student-t tail of hourly noise
    vol0_btc: float = 5_100.0          # base perp volume per hour (BTC)
    spot_share: float = 0.11           # spot volume / perp volume in quiet hours
    impact: float = 0.3                # log-price impact per unit of OI forced out
    max_cascade: float = 0.025         # most one hour of forced flow can move the price (log)
    dev_decay: float = 0.96            # hourly decay of the forced-flow dislocation (half-life ~17 h)
    close_rate: float = 1 / 120        # hourly voluntary close rate of speculative positions
    liq_report: float = 0.08           # share of forced exits printed as liquidations (feeds are throttled)
    flush_drawdown: tuple = (0.06, 0.11)
    flush_oi_drop: tuple = (0.06, 0.12)
    exodus_drawdown: tuple = (0.06, 0.10)
