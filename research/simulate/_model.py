"""The hourly model of leveraged positioning: episode schedule, quiet drivers, the liquidation-bucket
state machine, premium and funding (see :mod:`research.simulate`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from research.schema import UTC_TS
from research.simulate._params import (
    _PIN_BAND,
    FG_LABELS,
    INTEREST_RATE,
    Params,
    SimulationError,
)

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

