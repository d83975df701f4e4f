"""The liquidation-level model: an estimator of where liquidations would sit, from OI increases and a
leverage mix (not a test; :mod:`research.hypotheses.heatmap` tests it)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from research.errors import HypothesisError
from research.panel import oi_units

from .common import HOUR_US, col, require, sorted_panel

__all__ = ["LiquidationHeatmap", "liquidation_heatmap"]


@dataclass
class LiquidationHeatmap:
    """Modelled liquidation levels: USD per price bin per hour (long and short positions).

    Attributes
    ----------
    ts : polars.Series
        Hours (rows of the panel).
    edges : numpy.ndarray
        Price bin edges (log-spaced), ``len(centers) + 1``.
    long_usd, short_usd : numpy.ndarray
        ``(hours, bins)`` USD of long (short) positions whose liquidation price lies in the bin,
        after the hour's close.
    """

    ts: pl.Series
    edges: np.ndarray
    long_usd: np.ndarray
    short_usd: np.ndarray
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    params: dict

    @property
    def centers(self) -> np.ndarray:
        return np.sqrt(self.edges[:-1] * self.edges[1:])

    def frame(self, *, max_cells: int = 3_500, band_pct: float = 10.0) -> pl.DataFrame:
        """Aggregate for plotting: ``t0, t1, p0, p1, usd`` with at most ``max_cells`` cells.

        Time blocks average the hourly maps; price bins are merged; the price range is trimmed to
        ``band_pct`` % around the traded range.
        """
        T, B = self.long_usd.shape
        lo_p = np.nanmin(self.low) * (1 - band_pct / 100)
        hi_p = np.nanmax(self.high) * (1 + band_pct / 100)
        keep = (self.edges[1:] >= lo_p) & (self.edges[:-1] <= hi_p)
        b_idx = np.flatnonzero(keep)
        tot = (self.long_usd + self.short_usd)[:, b_idx]
        edges = self.edges[b_idx[0]: b_idx[-1] + 2]
        nb = tot.shape[1]
        # about 60 price rows; time blocks so that rows x blocks <= max_cells
        bm = max(1, -(-nb // 60))
        nbm = -(-nb // bm)
        tb = max(1, -(-T // max(1, max_cells // nbm)))
        nt = -(-T // tb)
        pad_t, pad_b = nt * tb - T, nbm * bm - nb
        m = np.pad(tot, ((0, pad_t), (0, pad_b)))
        cnt = np.pad(np.ones(T), (0, pad_t)).reshape(nt, tb).sum(axis=1)
        m = m.reshape(nt, tb, nbm * bm).sum(axis=1) / cnt[:, None]
        m = m.reshape(nt, nbm, bm).sum(axis=2)
        e = np.concatenate([edges, np.full(pad_b, edges[-1])])
        p0 = e[:-1][::bm][:nbm]
        p1 = e[np.minimum(np.arange(1, nbm + 1) * bm, len(e) - 1)]
        t_us = self.ts.dt.epoch("us").to_numpy()
        t0 = t_us[np.arange(nt) * tb]
        t1 = t_us[np.minimum(np.arange(1, nt + 1) * tb, T) - 1] + HOUR_US
        grid_t0 = np.repeat(t0, nbm)
        grid_t1 = np.repeat(t1, nbm)
        out = pl.DataFrame({
            "t0": grid_t0, "t1": grid_t1, "p0": np.tile(p0, nt), "p1": np.tile(p1, nt), "usd": m.ravel(),
        }).with_columns(pl.from_epoch("t0", "us").dt.replace_time_zone("UTC"),
                        pl.from_epoch("t1", "us").dt.replace_time_zone("UTC"))
        return out.filter(pl.col("usd") > 0)

    def price_frame(self, *, max_points: int = 2000) -> pl.DataFrame:
        """Hourly closes thinned to at most ``max_points`` rows (last close of each block)."""
        T = self.close.size
        step = max(1, -(-T // max_points))
        idx = np.arange(step - 1, T, step)
        return pl.DataFrame({"ts": self.ts.gather(idx), "close": self.close[idx]})


def _check(who: str, leverage_mix, long_share: float, bin_pct: float) -> dict:
    mix = {float(k): float(v) for k, v in (leverage_mix or {10: 0.3, 25: 0.4, 50: 0.2, 100: 0.1}).items()}
    if not mix or any(k <= 1 for k in mix) or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise HypothesisError(f"{who}: leverage_mix={leverage_mix!r} needs leverages > 1 and non-negative weights")
    if not 0 <= long_share <= 1:
        raise HypothesisError(f"{who}: long_share={long_share} must be in [0, 1]")
    if bin_pct <= 0:
        raise HypothesisError(f"{who}: bin_pct={bin_pct} must be > 0")
    return mix


def _fresh_span(panel: pl.DataFrame, max_oi_age_hours, who: str) -> pl.DataFrame:
    """The bars from the first to the last fresh OI observation.

    Fresh: ``oi_age_hours`` at most ``max_oi_age_hours``; with None, the panel's own staleness
    (``has_oi``: within ``stale_after`` of the OI series' interval), else every bar.
    """
    if max_oi_age_hours is not None and "oi_age_hours" in panel.columns:
        ok, what = (panel["oi_age_hours"] <= max_oi_age_hours), f"younger than max_oi_age_hours={max_oi_age_hours}"
    elif max_oi_age_hours is None and "has_oi" in panel.columns:
        ok, what = panel["has_oi"], "the panel marks usable (has_oi)"
    else:
        return panel
    fresh = np.flatnonzero(ok.fill_null(False).to_numpy())
    if fresh.size == 0:
        raise HypothesisError(f"{who}: no open-interest observation {what} in the panel; import OI for this span "
                              "or raise the limit")
    return panel.slice(int(fresh[0]), int(fresh[-1] - fresh[0] + 1))


def _evolve(close, high, low, oi, edges, lo_edge: float, step: float, lev, w, *, long_share: float,
            decay_on_oi_drop: bool, half_life_hours) -> tuple[np.ndarray, np.ndarray]:
    """Hour by hour: clear crossed levels, decay, add the hour's new positions; ``(long, short)`` maps."""
    nb = edges.size - 1
    T = close.size
    L = np.zeros((T, nb))
    S = np.zeros((T, nb))
    cur_l = np.zeros(nb)
    cur_s = np.zeros(nb)
    decay = 0.5 ** (1 / half_life_hours) if half_life_hours else 1.0
    d_oi = np.diff(oi, prepend=np.nan)
    ratio = np.where(np.isfinite(d_oi) & (oi > 0), oi / np.where(np.isfinite(oi - d_oi), oi - d_oi, np.nan), 1.0)
    lvl_l = np.log1p(-1 / lev)
    lvl_s = np.log1p(1 / lev)
    centers_log = np.log(np.sqrt(edges[:-1] * edges[1:]))
    for t in range(T):  # one step per hour, numpy over bins
        if np.isfinite(low[t]):
            cur_l[centers_log >= math.log(low[t])] = 0.0
        if np.isfinite(high[t]):
            cur_s[centers_log <= math.log(high[t])] = 0.0
        if decay_on_oi_drop and np.isfinite(ratio[t]) and ratio[t] < 1:
            cur_l *= ratio[t]
            cur_s *= ratio[t]
        if decay != 1.0:
            cur_l *= decay
            cur_s *= decay
        if np.isfinite(d_oi[t]) and d_oi[t] > 0 and np.isfinite(close[t]):
            usd = d_oi[t] * close[t]
            lp = math.log(close[t])
            il = ((lp + lvl_l - lo_edge) / step).astype(int)
            is_ = ((lp + lvl_s - lo_edge) / step).astype(int)
            np.add.at(cur_l, np.clip(il, 0, nb - 1), usd * long_share * w)
            np.add.at(cur_s, np.clip(is_, 0, nb - 1), usd * (1 - long_share) * w)
        L[t] = cur_l
        S[t] = cur_s
    return L, S


def liquidation_heatmap(
    panel: pl.DataFrame,
    *,
    leverage_mix: dict | None = None,
    long_share: float = 0.5,
    bin_pct: float = 0.25,
    decay_on_oi_drop: bool = True,
    half_life_hours: float | None = None,
    max_oi_age_hours: float | None = None,
) -> LiquidationHeatmap:
    """Estimate where liquidations would sit from OI increases and a leverage mix.

    Each hour's OI increase (base units x close, USD) opens positions at the close: a share
    ``long_share`` long, the rest short, spread over ``leverage_mix`` (leverage -> weight). A long
    with leverage L is liquidated at ``close * (1 - 1/L)``, a short at ``close * (1 + 1/L)``
    (maintenance margin ignored). Positions leave the map when the hour's low (high) crosses their
    level; with ``decay_on_oi_drop`` an OI decrease closes all positions proportionally, and with
    ``half_life_hours`` they also decay exponentially. One numpy step per hour over all bins.

    The map covers only the hours from the first to the last fresh OI observation (``oi_age_hours``
    at most ``max_oi_age_hours``; None: the panel's own ``has_oi``): the panel carries the last OI value forward,
    and without new OI the modelled clusters would be stale guesses.
    """
    who = "liquidation_heatmap"
    require(panel, ["ts", "perp_close", "perp_high", "perp_low"], who)
    mix = _check(who, leverage_mix, long_share, bin_pct)
    panel = _fresh_span(sorted_panel(panel).filter(pl.col("perp_close").is_not_null()), max_oi_age_hours, who)
    close = col(panel, "perp_close")
    high = col(panel, "perp_high")
    low = col(panel, "perp_low")
    oi = oi_units(panel)
    if not np.isfinite(oi).any():
        raise HypothesisError(f"{who}: no open interest in the panel (oi_base/oi_usd); import OI or pick another span")
    lev = np.array(list(mix.keys()))
    w = np.array(list(mix.values()))
    w = w / w.sum()
    step = math.log1p(bin_pct / 100)
    lo_edge = math.log(np.nanmin(low) * (1 - 1 / lev.min()) * 0.98)
    hi_edge = math.log(np.nanmax(high) * (1 + 1 / lev.min()) * 1.02)
    nb = int(math.ceil((hi_edge - lo_edge) / step))
    edges = np.exp(lo_edge + step * np.arange(nb + 1))
    L, S = _evolve(close, high, low, oi, edges, lo_edge, step, lev, w, long_share=long_share,
                   decay_on_oi_drop=decay_on_oi_drop, half_life_hours=half_life_hours)
    params = {"leverage_mix": {str(int(k) if k.is_integer() else k): v for k, v in mix.items()},
              "long_share": long_share, "bin_pct": bin_pct, "decay_on_oi_drop": decay_on_oi_drop,
              "half_life_hours": half_life_hours, "max_oi_age_hours": max_oi_age_hours}
    return LiquidationHeatmap(ts=panel["ts"], edges=edges, long_usd=L, short_usd=S, close=close, high=high, low=low,
                              params=params)