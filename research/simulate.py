"""A seeded synthetic BTC-like market with planted leverage flushes and spot-led exoduses.

The market is driven by a small model of leveraged positioning, stepped once per hour:

* Speculative longs and shorts open at the current price with a mix of leverages; each position
  sits in a *liquidation bucket* on a log-price grid (longs below the price, shorts above).
  Leverage builds in rallies (more, and more highly levered, longs), positions are closed slowly.
* When an hour's low (high) runs through long (short) buckets, those positions are forced out:
  the forced sells (buys) move the price by an impact proportional to their share of open
  interest, which can reach the next layer of buckets - the treadmill - and open interest falls.
* The perp premium follows long/short crowding; funding is the premium averaged over the 8 hours
  before each settlement (00/08/16 UTC), pinned to the 0.0001 interest rate near it, as Binance's
  clamp does.

Two kinds of episode are planted, well separated and in seeded random order:

``flush``
    A rally with heavy leverage build-up (crowding and funding rise), then a fast push through the
    stacked long buckets: a long-liquidation burst that decays, open interest down 5-25 %, funding
    reset from elevated to about neutral, then the price stabilises.
``exodus``
    Spot selling leads: spot share of volume and taker sell imbalance rise, the price falls while
    perp dip buyers keep open interest flat and funding positive, liquidations stay small, and after
    a bounce a second down-leg makes a lower low within days. ETF outflows accompany it.

The ground-truth table is *measured* on the generated series (peak and trough closes, OI snapshots,
funding settlements, liquidation buckets), so it always agrees with the frames. Every row carries
``source = 'synthetic'``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from research import lake, paths
from research.errors import ResearchError
from research.schema import SYNTHETIC_SOURCE, UTC_TS, validate

VENUE = "binance"
SYMBOL = "BTCUSDT"
TRUTH_DIR = "_truth"
TRUTH_FILE = "synthetic_truth.parquet"
#: Canonical tables the simulation fills, in write order.
TABLE_NAMES = ("bars", "funding", "open_interest", "liquidations", "liquidation_orders",
               "positioning", "etf_flows", "sentiment")
KINDS = ("flush", "exodus")

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


# ------------------------------------------------------------------------------------------------
# Result object
# ------------------------------------------------------------------------------------------------
@dataclass
class SimulatedMarket:
    """The simulated market: one polars frame per canonical table, the planted truth and params."""

    bars: pl.DataFrame
    funding: pl.DataFrame
    open_interest: pl.DataFrame
    liquidations: pl.DataFrame
    liquidation_orders: pl.DataFrame
    positioning: pl.DataFrame
    etf_flows: pl.DataFrame
    sentiment: pl.DataFrame
    truth: pl.DataFrame
    params: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pl.DataFrame]:
        """Canonical table name -> frame."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def to_frame(self) -> pl.DataFrame:
        """The ground-truth table (one row per planted episode)."""
        return self.truth

    def to_dict(self) -> dict:
        """JSON-ready record: params, row counts and the truth table."""
        truth = self.truth.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return {"params": self.params, "rows": {k: v.height for k, v in self.tables().items()},
                "truth": truth.to_dicts()}

    def summary(self) -> str:
        """Plain-text summary of the tables and the planted episodes."""
        lines = [f"Simulated market (seed {self.params.get('seed')}, {self.params.get('start')} + "
                 f"{self.params.get('days')} days, source '{SYNTHETIC_SOURCE}')"]
        lines += [f"  {k:<20} {v.height:>7} rows" for k, v in self.tables().items()]
        lines.append("Planted episodes:")
        for r in self.truth.iter_rows(named=True):
            leg = f", 2nd leg {r['second_leg_ts']:%m-%d %H}h" if r["second_leg"] else ""
            lines.append(
                f"  #{r['episode_id']} {r['kind']:<6} peak {r['peak_ts']:%Y-%m-%d %H}h  "
                f"dd {r['drawdown_pct']:5.1f}%  dOI {r['oi_change_pct']:+6.1f}%  funding "
                f"{r['funding_before']:.5f}->{r['funding_after']:.5f}  long liq "
                f"${r['long_liq_usd'] / 1e6:,.0f}M{leg}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ------------------------------------------------------------------------------------------------
# Schedule
# ------------------------------------------------------------------------------------------------
# Phase codes of the hourly schedule.
Q, F_BUILD, F_SELL, F_CALM, X_PRE, X_LEG1, X_BOUNCE, X_LEG2, X_AFTER = range(9)


@dataclass
class _Episode:
    kind: str
    start: int                 # first hour of the episode (build-up / pre phase)
    sell: int                  # first hour of the selloff (leg 1)
    sell_end: int              # first hour after the selloff
    end: int                   # first hour after the episode
    leg2: int = -1             # exodus: first hour of the second leg
    leg2_end: int = -1
    drawdown: float = 0.0      # target drawdown of the (first) selloff, fraction
    oi_drop: float = 0.0       # flush: target OI drop, fraction
    rally: float = 0.0         # flush: build-up rally, fraction
    leg2_extra: float = 0.0    # exodus: how far the second leg undercuts the first trough


def _lengths(kind: str, rng: np.random.Generator) -> dict[str, int]:
    if kind == "flush":
        return {"build": int(rng.integers(84, 133)), "sell": int(rng.integers(8, 23)), "calm": 72}
    return {"pre": int(rng.integers(50, 64)), "leg1": int(rng.integers(30, 55)),
            "bounce": int(rng.integers(24, 43)), "leg2": int(rng.integers(14, 31)), "after": 36}


def _schedule(p: Params, n_hours: int, rng: np.random.Generator) -> list[_Episode]:
    kinds = np.array(["flush"] * p.n_flush + ["exodus"] * p.n_exodus)
    kinds = kinds[rng.permutation(kinds.size)]
    lens = [_lengths(k, rng) for k in kinds]
    spans = [sum(d.values()) for d in lens]
    gap = int(round(p.min_gap_days * 24))
    lead = int(round(p.warmup_days * 24))
    tail = 72
    slack = n_hours - lead - tail - sum(spans) - gap * max(len(spans) - 1, 0)
    if slack < 0:
        need = (lead + tail + sum(spans) + gap * max(len(spans) - 1, 0)) / 24
        raise SimulationError(
            f"{p.n_flush} flushes + {p.n_exodus} exoduses with min_gap_days={p.min_gap_days} need "
            f"about {need:.0f} days; increase 'days' or lower n_flush/n_exodus/min_gap_days")
    # Spread the spare hours randomly over the gaps (seeded), so episode spacing varies.
    cuts = np.sort(rng.integers(0, slack + 1, size=len(spans)))
    extra = np.diff(np.concatenate([[0], cuts]))
    eps: list[_Episode] = []
    t = lead
    for k, d, s, x in zip(kinds, lens, spans, extra):
        t += int(x)
        if k == "flush":
            sell = t + d["build"]
            e = _Episode("flush", t, sell, sell + d["sell"], t + s,
                         drawdown=float(rng.uniform(*p.flush_drawdown)),
                         oi_drop=float(rng.uniform(*p.flush_oi_drop)),
                         rally=float(rng.uniform(0.04, 0.08)))
        else:
            sell = t + d["pre"]
            leg2 = sell + d["leg1"] + d["bounce"]
            e = _Episode("exodus", t, sell, sell + d["leg1"], t + s, leg2=leg2, leg2_end=leg2 + d["leg2"],
                         drawdown=float(rng.uniform(*p.exodus_drawdown)),
                         leg2_extra=float(rng.uniform(0.025, 0.05)))
        eps.append(e)
        t += s + gap
    return eps


def _phases(eps: list[_Episode], n: int) -> tuple[np.ndarray, np.ndarray]:
    phase = np.full(n, Q, dtype=np.int8)
    ep_of = np.full(n, -1, dtype=np.int32)
    for i, e in enumerate(eps):
        ep_of[e.start:e.end] = i
        if e.kind == "flush":
            phase[e.start:e.sell] = F_BUILD
            phase[e.sell:e.sell_end] = F_SELL
            phase[e.sell_end:e.end] = F_CALM
        else:
            phase[e.start:e.sell] = X_PRE
            phase[e.sell:e.sell_end] = X_LEG1
            phase[e.sell_end:e.leg2] = X_BOUNCE
            phase[e.leg2:e.leg2_end] = X_LEG2
            phase[e.leg2_end:e.end] = X_AFTER
    return phase, ep_of


# ------------------------------------------------------------------------------------------------
# Exogenous (vectorised) drivers
# ------------------------------------------------------------------------------------------------
def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) series with marginal standard deviation ``sd``."""
    e = rng.standard_normal(n) * sd * np.sqrt(1 - phi ** 2)
    out = np.empty(n)
    x = rng.standard_normal() * sd
    for i in range(n):  # 4k steps: cheaper than importing scipy.signal
        x = phi * x + e[i]
        out[i] = x
    return out


def _quiet_drivers(p: Params, n: int, hours_of_day: np.ndarray, rng: np.random.Generator):
    # Volatility clustering: log-vol AR(1); intraday seasonality peaks in US hours.
    logvol = _ar1(rng, n, 0.985, 0.35)
    season = 1.0 + 0.25 * np.cos((hours_of_day - 15) / 24 * 2 * np.pi)
    sig = p.sigma_h * np.exp(logvol - 0.35 ** 2 / 2) * season
    eps = rng.standard_t(p.t_df, n) * np.sqrt((p.t_df - 2) / p.t_df) * sig
    # Slow trend: a random drift per 10-day block (bull and chop phases).
    blocks = -(-n // 240)
    mu = np.repeat(rng.normal(0.0, 0.05, blocks) / 240, 240)[:n]
    rally = np.zeros(n)          # mild quiet rallies (leverage builds a little too)
    return sig, eps, mu, rally, season


def _plant_quiet_rallies(p: Params, phase: np.ndarray, mu: np.ndarray, rally: np.ndarray,
                         rng: np.random.Generator) -> None:
    """Mild rallies and dips in quiet stretches: false-positive material for detectors."""
    n = phase.size
    t = 48
    while t < n - 120:
        t += int(rng.integers(80, 200))
        length = int(rng.integers(36, 97))
        if t + length >= n or np.any(phase[max(t - 24, 0):t + length + 24] != Q):
            continue
        if rng.random() < 0.65:
            size = rng.uniform(0.025, 0.05)
            mu[t:t + length] += size / length
            rally[t:t + length] = 1.0
        else:
            size = rng.uniform(0.02, 0.045)
            mu[t:t + length] -= size / length
        t += length


# ------------------------------------------------------------------------------------------------
# The hourly positioning / liquidation state machine
# ------------------------------------------------------------------------------------------------
# Leverage mix: liquidation distance below (long) / above (short) entry, ~1/leverage less margin.
_LEV = np.array([3, 5, 8, 10, 15, 20, 25, 33, 50, 75], dtype=float)
_DIST = 1.0 / _LEV - 0.004
_W_QUIET = np.array([4, 6, 8, 8, 6, 4, 2, 1, 0.5, 0.2], dtype=float)
_W_CROWD = np.array([1, 2, 3, 5, 8, 10, 10, 8, 4, 1], dtype=float)
_W_LOW = np.array([6, 6, 4, 2, 1, 0, 0, 0, 0, 0], dtype=float)
_W_QUIET /= _W_QUIET.sum()
_W_LOW /= _W_LOW.sum()
_W_CROWD /= _W_CROWD.sum()
_BIN = 0.001  # log-price width of a liquidation bucket


def _run_state_machine(p: Params, eps: list[_Episode], phase: np.ndarray, ep_of: np.ndarray,
                       sig: np.ndarray, noise: np.ndarray, mu: np.ndarray, rally: np.ndarray,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = phase.size
    lp0 = float(np.log(p.p0))
    grid0 = lp0 - 2.0
    nb = int(4.0 / _BIN)
    bins_l = np.zeros(nb)
    bins_s = np.zeros(nb)
    hedged = p.oi0_btc * p.hedged_share * np.exp(_ar1(rng, n, 0.998, 0.04))
    spec0 = p.oi0_btc * (1 - p.hedged_share)
    d_long = np.log1p(-_DIST)      # negative offsets
    d_short = np.log1p(_DIST)      # positive offsets
    wick_lo = np.abs(rng.standard_normal(n)) * sig * 0.7
    wick_hi = np.abs(rng.standard_normal(n)) * sig * 0.7

    def idx(level: float) -> int:
        return min(max(int((level - grid0) / _BIN), 0), nb - 1)

    def place(bins, lp, offsets, weights, amount):
        bins[[idx(lp + o) for o in offsets]] += amount * weights

    # Seed an equilibrium book: positions opened over the previous days around p0.
    for j in range(120):
        lp = lp0 + rng.normal(0, 0.01)
        place(bins_l, lp, d_long, _W_QUIET, spec0 * 0.62 * p.close_rate * (1 - p.close_rate) ** j)
        place(bins_s, lp, d_short, _W_QUIET, spec0 * 0.38 * p.close_rate * (1 - p.close_rate) ** j)
    book_scale = spec0 / (bins_l.sum() + bins_s.sum())
    bins_l *= book_scale
    bins_s *= book_scale

    o = np.empty(n); c = np.empty(n); hi = np.empty(n); lo = np.empty(n)
    oi = np.empty(n); sl = np.empty(n); ss = np.empty(n)
    forced_l = np.zeros(n); forced_s = np.zeros(n); forced_l_px = np.zeros(n); forced_s_px = np.zeros(n)
    fund = lp0         # 'fundamental' log price: drift, noise and planted pushes
    dev = 0.0          # dislocation from forced flows; decays, so liquidations cause no long-run drift
    lp = lp0
    ref = lp0            # log price the current selloff/bounce target is measured from
    oi_ref = oi_ref_peak = p.oi0_btc
    trough1 = retrace = floor = 0.0   # set on the first hour of their phase
    closes: list[float] = []
    keep = 1 - p.close_rate
    for t in range(n):
        ph = phase[t]
        e = eps[ep_of[t]] if ep_of[t] >= 0 else None
        dev *= p.dev_decay
        lp = fund + dev
        r = mu[t] + noise[t]
        oi_now = hedged[t] + bins_l.sum() + bins_s.sum()
        # -- planted price paths: a controller steers towards the target, noise stays on top ----
        if e is not None:
            if t == e.start:
                oi_ref = oi_now
            if ph == F_BUILD:
                # the rally that draws leverage in: steered so it makes its high late in the build-up
                if t == e.start:
                    ref = lp
                k = (t - e.start + 1) / (e.sell - e.start)
                r += e.rally / (e.sell - e.start)
                gap = ref + e.rally * k - 0.008 - (lp + r)
                over = (lp + r) - (ref + e.rally * k + 0.008)
                if gap > 0:
                    r += 0.4 * gap
                elif over > 0:
                    r -= 0.4 * over
            elif ph in (F_SELL, X_LEG1, X_LEG2):
                first = t == (e.sell if ph != X_LEG2 else e.leg2)
                if first:
                    ref = max(closes[e.start:]) if ph != X_LEG2 else lp
                    trough1 = min(closes[e.sell:]) if ph == X_LEG2 else 0.0
                if ph == X_LEG2:
                    # undercut the first trough by leg2_extra
                    target_total = (trough1 + np.log1p(-e.leg2_extra)) - ref
                    k = (t - e.leg2 + 1) / (e.leg2_end - e.leg2)
                else:
                    target_total = np.log1p(-e.drawdown)
                    k = (t - e.sell + 1) / (e.sell_end - e.sell)
                shape = k ** 0.8 if ph == F_SELL else k
                want = ref + target_total * shape
                gap = want - (lp + r)
                if gap < 0:
                    r += (0.7 if ph == F_SELL else 0.5) * gap
                elif ph != F_SELL and gap > 0.015:
                    r += 0.3 * (gap - 0.015)  # spot selling is a grind, not a crash: no deep overshoot
            elif ph in (F_CALM, X_AFTER):
                # after a flush (or the second leg) buyers defend the low: the market stabilises
                if t == (e.sell_end if ph == F_CALM else e.leg2_end):
                    floor = min(closes[e.sell if ph == F_CALM else e.leg2:]) + 0.01
                gap = floor - (lp + r)
                if gap > 0:
                    r += 0.8 * gap
            elif ph == X_PRE:
                # a flat top, drifting a little higher, so the high comes just before spot selling
                if t == e.start:
                    ref = lp
                k = (t - e.start + 1) / (e.sell - e.start)
                gap = ref + 0.012 * k - 0.004 - (lp + r)
                if gap > 0:
                    r += 0.4 * gap
            elif ph == X_BOUNCE:
                if t == e.sell_end:
                    ref = lp
                    retrace = rng.uniform(0.3, 0.5) * e.drawdown
                k = (t - e.sell_end + 1) / (e.leg2 - e.sell_end)
                gap = ref + retrace * k - (lp + r)
                if gap > 0:
                    r += 0.4 * gap
        o[t] = lp
        fund += r
        c0 = lp + r
        low = min(lp, c0) - wick_lo[t]
        high = max(lp, c0) + wick_hi[t]
        # -- the treadmill: forced exits move the price into the next layer ----------------------
        fl = fs = 0.0
        moved = 0.0  # an hour's forced flow moves the price at most max_cascade; the rest waits
        for _ in range(12):
            i = idx(low)
            hit = bins_l[i:].sum()
            if hit <= 1e-9:
                break
            bins_l[i:] = 0.0
            fl += hit
            imp = min(p.impact * hit / oi_now, p.max_cascade - moved)
            moved += imp
            low -= imp
            c0 -= imp * 0.85
            dev -= imp * 0.85
            if moved >= p.max_cascade:
                break
        moved = 0.0
        for _ in range(12):
            i = idx(high)
            hit = bins_s[:i + 1].sum()
            if hit <= 1e-9:
                break
            bins_s[:i + 1] = 0.0
            fs += hit
            imp = min(p.impact * hit / oi_now, p.max_cascade - moved)
            moved += imp
            high += imp
            c0 += imp * 0.85
            dev += imp * 0.85
            if moved >= p.max_cascade:
                break
        forced_l[t], forced_s[t] = fl, fs
        forced_l_px[t] = np.exp(0.5 * (low + min(lp, c0)))
        forced_s_px[t] = np.exp(0.5 * (high + max(lp, c0)))
        lp = c0
        lo[t] = min(low, lp, o[t])
        hi[t] = max(high, lp, o[t])
        c[t] = lp
        closes.append(lp)
        # -- voluntary closes and new positions ----------------------------------------------------
        bins_l *= keep
        bins_s *= keep
        mom = lp - closes[max(t - 24, 0)]
        base_l = spec0 * 0.62 * p.close_rate
        base_s = spec0 * 0.38 * p.close_rate
        add_l = base_l * np.exp(np.clip(12 * mom, -1.0, 1.0)) * (1 + 1.5 * rally[t])
        add_s = base_s * np.exp(np.clip(-8 * mom, -1.0, 1.0))
        if ph == Q:  # the book drifts back to its usual long/short mix
            add_l += 0.02 * max(0.0, 0.62 * spec0 - bins_l.sum())
            add_s += 0.02 * max(0.0, 0.38 * spec0 - bins_s.sum())
        w_l = _W_QUIET if rally[t] == 0 else 0.5 * (_W_QUIET + _W_CROWD)
        if ph == F_BUILD:
            # leverage builds: crowded, highly levered longs, stacked under the rally
            frac = (t - e.start + 1) / (e.sell - e.start)
            add_l = base_l * (1.0 + 1.5 * frac)
            add_s *= 0.6
            w_l = _W_CROWD
        elif ph == F_SELL:
            oi_now2 = hedged[t] + bins_l.sum() + bins_s.sum()
            k = (t - e.sell + 1) / (e.sell_end - e.sell)
            target = oi_ref_peak * (1 - e.oi_drop * min(1.0, k ** 0.7))
            if oi_now2 > target:  # margin calls and stop-outs beyond the printed liquidations
                excess = min(0.6 * (oi_now2 - target), 0.9 * bins_l.sum())
                bins_l *= 1 - excess / max(bins_l.sum(), 1e-9)
                forced_l[t] += excess
            add_l = base_l * 0.3
            add_s = base_s * 0.8
            oi_floor = oi_ref_peak * 0.82
            if oi_now2 < oi_floor:  # bottom fishers re-open once the flush has gone far enough
                add_l += 0.5 * (oi_floor - oi_now2)
                w_l = _W_LOW
        elif ph == F_CALM:
            add_l = base_l * 0.5
            add_s = base_s * 0.8
        elif ph in (X_PRE, X_LEG1, X_BOUNCE, X_LEG2, X_AFTER):
            # perp dip buyers absorb spot selling: OI holds, crowding stays long; they use low
            # leverage, so the selloff prints only small liquidations
            if ph == X_PRE:
                bins_l *= 0.95
            w_l = _W_LOW
            add_s = base_s * 0.8
            add_l = base_l
            diff = oi_ref - (hedged[t] + bins_l.sum() + bins_s.sum() + add_l + add_s)
            if diff > 0:
                add_l += 0.7 * diff
            else:  # shorts cover into the decline
                bins_s *= 1 - min(-0.7 * diff / max(bins_s.sum(), 1e-9), 0.5)
        place(bins_l, lp, d_long, w_l, add_l)
        place(bins_s, lp, d_short, _W_QUIET, add_s)
        sl[t] = bins_l.sum()
        ss[t] = bins_s.sum()
        oi[t] = hedged[t] + sl[t] + ss[t]
        if ph == F_BUILD:
            oi_ref_peak = oi[t]
    return {"open": np.exp(o), "close": np.exp(c), "high": np.exp(hi), "low": np.exp(lo),
            "oi": oi, "sl": sl, "ss": ss, "crowd": 0.62 + 0.5 * ((sl - ss) / spec0 - 0.24), "forced_l": forced_l, "forced_s": forced_s,
            "forced_l_px": forced_l_px, "forced_s_px": forced_s_px}


# ------------------------------------------------------------------------------------------------
# From state to canonical tables
# ------------------------------------------------------------------------------------------------
def _in(phase: np.ndarray, *codes: int) -> np.ndarray:
    return np.isin(phase, codes)


def _premium(p: Params, eps: list[_Episode], phase: np.ndarray, crowd: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Hourly perp premium (decimal per 8 h): crowding plus noise, planted resets and support."""
    n = phase.size
    z = _ar1(rng, n, 0.97, 0.00006)
    amp = np.where(_in(phase, F_SELL, F_CALM, X_PRE, X_LEG1, X_BOUNCE, X_LEG2, X_AFTER), 0.25, 1.0)
    for e in eps:
        if e.kind == "exodus":
            amp[e.end:e.end + 48] = 0.25
    bias = np.zeros(n)
    for e in eps:
        if e.kind == "flush":
            k = np.arange(e.sell - e.start) / (e.sell - e.start)
            bias[e.start:e.sell] = 0.00005 + 0.00015 * k          # elevated as leverage builds
            h = np.arange(e.end - e.sell)
            bias[e.sell:e.end] = -0.00022 * np.exp(-h / 72)        # reset: longs gone, shorts pay
        else:
            bias[e.start:e.end + 48] = 0.00007                     # spot leads down: perp at a premium
    return 0.00004 + 0.0006 * (crowd - 0.62) + amp * z + bias


def _funding(prem: np.ndarray, ts0: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Settlement hour indices (00/08/16 UTC) and rates: mean premium of the 8 h before."""
    n = prem.size
    first = (-ts0.hour) % 8
    idx = np.arange(first, n, 8)
    csum = np.concatenate([[0.0], np.cumsum(prem)])
    lo = np.maximum(idx - 8, 0)
    hi = np.maximum(idx, 1)
    rate = (csum[hi] - csum[lo]) / (hi - lo)
    rate = np.where(np.abs(rate - INTEREST_RATE) < _PIN_BAND, INTEREST_RATE, rate)
    return idx, np.round(np.clip(rate, -0.003, 0.003), 8)


def _hour_ts(ts0: datetime, n: int) -> pl.Series:
    return pl.datetime_range(ts0, ts0 + timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC").cast(UTC_TS)


def _fg_label(v: np.ndarray) -> list[str]:
    bounds = np.array([b for b, _ in FG_LABELS])
    names = [name for _, name in FG_LABELS]
    return [names[i] for i in np.searchsorted(bounds, v, side="left")]


def _frames(p: Params, eps: list[_Episode], phase: np.ndarray, st: dict[str, np.ndarray], sig: np.ndarray,
            season: np.ndarray, ts0: datetime, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    n = phase.size
    ts = _hour_ts(ts0, n)
    ts_end = ts + timedelta(hours=1)
    o, c, h, low = st["open"], st["close"], st["high"], st["low"]
    r = np.log(c / o)
    crowd = st["crowd"]
    prem = _premium(p, eps, phase, crowd, rng)

    # --- volumes and taker flow --------------------------------------------------------------
    activity = np.exp(_ar1(rng, n, 0.97, 0.4) + 0.3 * rng.standard_normal(n))
    vol_nf = p.vol0_btc * season ** 2 * activity * (0.5 + 0.9 * np.abs(r) / p.sigma_h)
    forced = st["forced_l"] + st["forced_s"]
    perp_vol = vol_nf + forced
    drift = np.tanh(r / (2 * p.sigma_h))
    tb = 0.5 + 0.13 * drift + 0.02 * rng.standard_normal(n) - 0.01 * _in(phase, X_LEG1, X_LEG2)
    # long liquidations are taker sells, short liquidations taker buys
    perp_tb = np.clip(tb, 0.3, 0.7) * vol_nf + st["forced_s"]
    share = p.spot_share * np.exp(0.25 * rng.standard_normal(n))
    share *= np.select([_in(phase, X_LEG1, X_LEG2), _in(phase, X_PRE, X_BOUNCE), _in(phase, F_SELL)],
                       [3.0, 1.7, 0.8], 1.0)
    spot_vol = vol_nf * share
    spot_frac = (0.5 + 0.15 * drift + 0.02 * rng.standard_normal(n)
                 - 0.075 * _in(phase, X_LEG1, X_LEG2) - 0.045 * _in(phase, X_PRE, X_BOUNCE))
    spot_tb = np.clip(spot_frac, 0.25, 0.75) * spot_vol

    # --- spot prices: perp minus the basis; spot trades below perp when it leads the selling ----
    basis = (prem * 3 - 0.0005 + 0.0002 * rng.standard_normal(n)
             + 0.001 * _in(phase, X_LEG1, X_LEG2) + 0.0004 * _in(phase, X_PRE, X_BOUNCE))
    sc = c * np.exp(-basis)
    so = np.concatenate([[o[0] * np.exp(-basis[0])], sc[:-1]])
    sh = np.maximum(so, sc) * (h / np.maximum(o, c))
    sl_ = np.minimum(so, sc) * (low / np.minimum(o, c))

    def bars(market, op, hi_, lo_, cl, vol, tbv, trades_per_btc):
        vwap = (op + hi_ + lo_ + cl) / 4
        trades = np.rint(vol * trades_per_btc * np.exp(0.15 * rng.standard_normal(n))).astype(np.int64)
        return pl.DataFrame({
            "ts": ts, "venue": VENUE, "market": market, "symbol": SYMBOL, "interval": "1h",
            "open": np.round(op, 2), "high": np.round(hi_, 2), "low": np.round(lo_, 2), "close": np.round(cl, 2),
            "volume": np.round(vol, 3), "quote_volume": np.round(vol * vwap, 2), "trades": trades,
            "taker_buy_volume": np.round(np.minimum(tbv, vol), 3),
            "taker_buy_quote_volume": np.round(np.minimum(tbv, vol) * vwap, 2), "source": SYNTHETIC_SOURCE})

    perp = bars("perp", o, h, low, c, perp_vol, perp_tb, 23.0)
    spot = bars("spot", so, sh, sl_, sc, spot_vol, spot_tb, 120.0)
    # rounding must not break high >= open/close >= low
    fix = [pl.max_horizontal("open", "high", "close").alias("high"), pl.min_horizontal("open", "low", "close").alias("low")]
    bars_df = pl.concat([perp.with_columns(fix), spot.with_columns(fix)])

    # --- funding -------------------------------------------------------------------------------
    f_idx, f_rate = _funding(prem, ts0)
    funding = pl.DataFrame({"ts": ts.gather(f_idx), "venue": VENUE, "symbol": SYMBOL, "rate": f_rate,
                            "interval_hours": 8, "source": SYNTHETIC_SOURCE})

    # --- open interest: snapshot at the bar's end, valued at that instant's price ------------------
    oi_df = pl.DataFrame({"ts": ts_end, "venue": VENUE, "symbol": SYMBOL, "interval": "1h",
                          "oi_base": np.round(st["oi"], 3), "oi_usd": np.round(st["oi"] * c, 2),
                          "source": SYNTHETIC_SOURCE})

    # --- liquidations: printed share of forced exits plus small background prints ----------------
    bg_l = 9e4 * np.exp(0.9 * rng.standard_normal(n)) * (1 + 2.5 * np.maximum(-r, 0) / p.sigma_h)
    bg_s = 8e4 * np.exp(0.9 * rng.standard_normal(n)) * (1 + 2.5 * np.maximum(r, 0) / p.sigma_h)
    long_usd = np.round(p.liq_report * st["forced_l"] * st["forced_l_px"] + bg_l, 2)
    short_usd = np.round(p.liq_report * st["forced_s"] * st["forced_s_px"] + bg_s, 2)
    count = rng.poisson((long_usd + short_usd) / 2.5e4).astype(np.int64) + 1
    liq = pl.DataFrame({"ts": ts, "venue": VENUE, "symbol": SYMBOL, "interval": "1h", "long_usd": long_usd,
                        "short_usd": short_usd, "count": count, "source": SYNTHETIC_SOURCE})

    # --- a sample of large liquidation prints (hours with > $2M on a side) ------------------------
    rows = {"ts": [], "side": [], "price": [], "qty": []}
    ts_us = ts.dt.epoch("us").to_numpy()
    for side, usd_arr in (("long", long_usd), ("short", short_usd)):
        for t in np.flatnonzero(usd_arr > 2e6):
            k = int(min(30, 1 + rng.poisson(usd_arr[t] / 2e6)))
            sizes = usd_arr[t] * 0.5 * rng.dirichlet(np.full(k, 0.7))
            if side == "long":
                px = rng.uniform(low[t], min(o[t], c[t]), k)
            else:
                px = rng.uniform(max(o[t], c[t]), h[t], k)
            px = np.round(px, 1)
            qty = np.maximum(np.round(sizes / px, 3), 0.001)
            rows["ts"] += list(ts_us[t] + np.sort(rng.integers(0, 3_600_000_000, k)) // 1000 * 1000)
            rows["side"] += [side] * k
            rows["price"] += list(px)
            rows["qty"] += list(qty)
    lo_df = pl.DataFrame({"ts": pl.Series(rows["ts"], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
                          "venue": VENUE, "symbol": SYMBOL, "side": pl.Series(rows["side"], dtype=pl.String),
                          "price": pl.Series(rows["price"], dtype=pl.Float64),
                          "qty": pl.Series(rows["qty"], dtype=pl.Float64)})
    lo_df = (lo_df.with_columns((pl.col("price") * pl.col("qty")).round(2).alias("usd"),
                                pl.lit(SYNTHETIC_SOURCE).alias("source"))
             .filter(pl.col("usd") >= 1e5).unique(["ts", "side", "price", "qty"], keep="first").sort("ts"))

    # --- positioning: crowding, observed at the bar's end ---------------------------------------
    smooth = pl.Series(crowd).ewm_mean(span=24).to_numpy()
    pos = pl.DataFrame({
        "ts": ts_end, "venue": VENUE, "symbol": SYMBOL, "interval": "1h",
        "top_trader_ls_ratio": np.round(np.clip(0.55 + 2.1 * crowd + _ar1(rng, n, 0.9, 0.05), 0.5, 4.0), 4),
        "account_ls_ratio": np.round(np.clip(0.6 + 1.9 * smooth + _ar1(rng, n, 0.9, 0.04), 0.5, 4.0), 4),
        "taker_buy_sell_ratio": np.round(perp_tb / np.maximum(perp_vol - perp_tb, 1e-9), 4),
        "source": SYNTHETIC_SOURCE})

    # --- daily series: ETF flows (weekdays) and Fear & Greed ----------------------------------------
    n_days = n // 24
    day_close = np.log(c[23::24][:n_days])
    day_open = np.log(o[0::24][:n_days])
    r_day = day_close - day_open
    dates = [ts0.date() + timedelta(days=d) for d in range(n_days)]
    x_days = np.array([_in(phase[d * 24:(d + 1) * 24], X_PRE, X_LEG1, X_BOUNCE, X_LEG2).mean() > 0.3
                       for d in range(n_days)])
    flows = (8e7 + 6e9 * r_day + 2.8e8 * rng.standard_t(4, n_days) / np.sqrt(2)
             - x_days * rng.uniform(2e8, 5e8, n_days))
    weekday = np.array([d.weekday() < 5 for d in dates])
    etf = pl.DataFrame({"date": dates, "product": "TOTAL", "flow_usd": np.round(flows, -5),
                        "source": SYNTHETIC_SOURCE}).filter(pl.Series(weekday))
    lc = np.log(c[23::24][:n_days])
    r14 = lc - np.concatenate([np.full(14, lc[0]), lc[:-14]])
    r3 = lc - np.concatenate([np.full(3, lc[0]), lc[:-3]])
    fg = np.clip(np.rint(48 + 220 * r14 + 250 * r3 + _ar1(rng, n_days, 0.85, 8.0)), 1, 99)
    sent = pl.DataFrame({"date": dates, "index": "fear_greed", "value": fg.astype(float),
                         "label": _fg_label(fg), "source": SYNTHETIC_SOURCE})
    return {"bars": bars_df, "funding": funding, "open_interest": oi_df, "liquidations": liq,
            "liquidation_orders": lo_df, "positioning": pos, "etf_flows": etf, "sentiment": sent}


def _truth(eps: list[_Episode], st: dict[str, np.ndarray], frames: dict[str, pl.DataFrame],
           ts0: datetime) -> pl.DataFrame:
    """Measure each planted episode on the generated series."""
    c = st["close"]
    oi = st["oi"]
    f = frames["funding"]
    f_h = ((f["ts"].dt.epoch("us").to_numpy() - int(ts0.timestamp() * 1e6)) // 3_600_000_000).astype(int)
    f_rate = f["rate"].to_numpy()
    long_usd = frames["liquidations"]["long_usd"].to_numpy()

    def at(i: int) -> datetime:
        return ts0 + timedelta(hours=int(i))

    def mean_funding(after_hour: int, upto_hour: int) -> float:
        m = (f_h > after_hour) & (f_h <= upto_hour)
        return float(f_rate[m].mean()) if m.any() else float("nan")

    rows = []
    for i, e in enumerate(eps):
        pk = e.start + int(np.argmax(c[e.start:e.sell]))  # high of the build-up / topping phase
        end1 = e.sell_end + (12 if e.kind == "flush" else 6)
        tr = e.sell + int(np.argmin(c[e.sell:end1]))
        # funding known at the peak bar's close (24 h before it) and the 24 h after the trough bar
        row = {
            "episode_id": i + 1, "kind": e.kind, "start_ts": at(e.start), "peak_ts": at(pk), "trough_ts": at(tr),
            "end_ts": at(e.end),
            "drawdown_pct": 100 * (1 - c[tr] / c[pk]),
            "oi_change_pct": 100 * (oi[tr] / oi[pk] - 1),
            "funding_before": mean_funding(pk + 1 - 24, pk + 1),
            "funding_after": mean_funding(tr + 1, tr + 1 + 24),
            "long_liq_usd": float(long_usd[pk:tr + 7].sum()),
            "second_leg": False, "second_leg_ts": None,
        }
        if e.kind == "exodus":
            tr2 = e.leg2 + int(np.argmin(c[e.leg2:e.leg2_end + 6]))
            bounce = c[tr:tr2 + 1].max()
            if c[tr2] < c[tr] and c[tr2] < bounce * 0.97 and tr2 - tr <= 7 * 24:
                row["second_leg"] = True
                row["second_leg_ts"] = at(tr2)
        rows.append(row)
    return pl.DataFrame(rows, schema=TRUTH_SCHEMA)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def _parse_start(start) -> datetime:
    if isinstance(start, datetime):
        d = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        d = d.astimezone(timezone.utc)
    elif isinstance(start, date):
        d = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    else:
        try:
            d = datetime.fromisoformat(str(start))
        except ValueError:
            raise SimulationError(f"start={start!r} is not an ISO date; use e.g. '2025-01-01'") from None
        d = d if d.tzinfo else d.replace(tzinfo=timezone.utc)
        d = d.astimezone(timezone.utc)
    if (d.hour, d.minute, d.second, d.microsecond) != (0, 0, 0, 0):
        raise SimulationError(f"start={start!r} must be a UTC midnight (daily series start there)")
    return d


def _params(overrides: dict) -> Params:
    names = {f.name for f in dataclasses.fields(Params)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise SimulationError(f"unknown simulation parameter(s) {bad}; known: {sorted(names)}")
    p = Params(**overrides)
    for name in ("n_flush", "n_exodus"):
        v = getattr(p, name)
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise SimulationError(f"{name}={v!r} must be an integer >= 0")
    for name in ("p0", "oi0_btc", "sigma_h", "vol0_btc", "spot_share", "close_rate", "liq_report"):
        if not getattr(p, name) > 0:
            raise SimulationError(f"{name}={getattr(p, name)!r} must be > 0")
    if not 0 < p.hedged_share < 1:
        raise SimulationError(f"hedged_share={p.hedged_share!r} must be between 0 and 1")
    if p.t_df <= 2:
        raise SimulationError(f"t_df={p.t_df!r} must be > 2 (finite variance)")
    for name in ("flush_drawdown", "flush_oi_drop", "exodus_drawdown"):
        lo_, hi_ = getattr(p, name)
        if not 0 < lo_ <= hi_ < 0.5:
            raise SimulationError(f"{name}={getattr(p, name)!r} must be (low, high) with 0 < low <= high < 0.5")
    return p


def simulate(seed: int = 7, start="2025-01-01", days: int = 180, **params) -> SimulatedMarket:
    """Generate the synthetic market.

    Parameters
    ----------
    seed : int
        Seed of the random generator; the same seed gives identical frames.
    start : str, date or datetime
        First hour (a UTC midnight), e.g. ``"2025-01-01"``.
    days : int
        Length in days (hourly bars: ``24 * days``).
    **params
        Overrides of :class:`Params`, e.g. ``n_flush=5, n_exodus=3``.

    Returns
    -------
    SimulatedMarket
        One frame per canonical table (all validated, ``source='synthetic'``), ``truth`` and ``params``.

    Raises
    ------
    SimulationError
        Unknown or out-of-range parameter, or more episodes than fit into ``days``.
    """
    if not isinstance(days, (int, np.integer)) or days < 14:
        raise SimulationError(f"days={days!r} must be an integer >= 14")
    p = _params(params)
    ts0 = _parse_start(start)
    rng = np.random.default_rng(seed)
    n = int(days) * 24
    hod = (np.arange(n) + ts0.hour) % 24
    eps = _schedule(p, n, rng)
    phase, ep_of = _phases(eps, n)
    sig, noise, mu, rally, season = _quiet_drivers(p, n, hod, rng)
    _plant_quiet_rallies(p, phase, mu, rally, rng)
    # calmer after a flush: the market stabilises once the leverage is gone
    calm = _in(phase, F_CALM)
    noise[calm] *= 0.6
    st = _run_state_machine(p, eps, phase, ep_of, sig, noise, mu, rally, rng)
    frames = _frames(p, eps, phase, st, sig, season, ts0, rng)
    frames = {name: validate(name, df) for name, df in frames.items()}
    truth = _truth(eps, st, frames, ts0)
    record = {"seed": int(seed), "start": ts0.strftime("%Y-%m-%d"), "days": int(days),
              **{k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(p).items()}}
    return SimulatedMarket(**frames, truth=truth, params=record)


def truth_path(data_dir=None) -> Path:
    """Where :func:`write_sample` stores the ground truth: ``<data_dir>/lake/_truth/synthetic_truth.parquet``."""
    return paths.lake_dir(data_dir) / TRUTH_DIR / TRUTH_FILE


def write_sample(data_dir=None, seed: int = 7, days: int = 180, replace: bool = True, **params) -> SimulatedMarket:
    """Simulate and write every table into the lake (``source='synthetic'``) plus the truth table.

    Parameters
    ----------
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``).
    seed, days, **params
        Passed to :func:`simulate` (``start``, ``n_flush``, ...).
    replace : bool
        Delete the existing synthetic partitions first, so an older sample with another seed or
        span leaves no rows behind. Real-data partitions are never touched.
    """
    market = simulate(seed=seed, days=days, **params)
    if replace:
        for name in TABLE_NAMES:
            lake.delete(name, data_dir, source=SYNTHETIC_SOURCE)
    for name, df in market.tables().items():
        lake.write(name, df, data_dir, origin=f"research.simulate(seed={seed})")
    target = truth_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{TRUTH_FILE}.{uuid.uuid4().hex}.tmp")
    try:
        market.truth.write_parquet(tmp)
        # the params travel beside the truth so a reader knows which sample it describes
        meta = target.with_suffix(".json")
        tmp_meta = meta.with_name(f".{meta.name}.{uuid.uuid4().hex}.tmp")
        tmp_meta.write_text(json.dumps(market.params, indent=1))
        os.replace(tmp, target)
        os.replace(tmp_meta, meta)
    finally:
        tmp.unlink(missing_ok=True)
    return market


def read_truth(data_dir=None) -> pl.DataFrame:
    """The ground truth written by :func:`write_sample`.

    Raises
    ------
    FileNotFoundError
        When no sample was written; run ``research sample`` (or :func:`write_sample`) first.
    """
    path = truth_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no synthetic sample in this data directory; "
                                "run `research sample` first")
    return pl.read_parquet(path).cast(TRUTH_SCHEMA)
