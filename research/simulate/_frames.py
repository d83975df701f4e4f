"""The simulated market's canonical frames and the measured ground truth."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from research.schema import SYNTHETIC_SOURCE
from research.simulate._model import (
    F_SELL,
    X_BOUNCE,
    X_LEG1,
    X_LEG2,
    X_PRE,
    _ar1,
    _Episode,
    _fg_label,
    _funding,
    _hour_ts,
    _in,
    _premium,
)
from research.simulate._params import SYMBOL, TRUTH_SCHEMA, VENUE, Params


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


