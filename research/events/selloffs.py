"""Sell-off legs: causal, complete drawdowns of the close (see :mod:`research.events.legs`)."""
from __future__ import annotations

import numpy as np
import polars as pl

from research.errors import EventDetectionError
from research.events._common import (UTC_TS, finish, first_after, hours_between, label_clusters, positive,
                                     require, sorted_panel, symbol_of)
from research.events.legs import zigzag_legs

__all__ = ["detect_selloffs", "SELLOFF_COLUMNS"]

#: Columns after ``event_id, ts, symbol, asset, kind``, in order.
SELLOFF_COLUMNS = [
    "detected_ts", "peak_ts", "cross_ts", "trough_ts", "trough_detected_ts", "complete",
    "peak_price", "cross_price", "detected_price", "drawdown_at_detect_pct", "trough_price",
    "drawdown_pct", "trough_detected_price", "hours_to_detect", "hours_to_trough",
    "recovery_ts", "recovery_price", "hours_to_recovery", "recovery_level",
    "rebound_pct", "threshold_pct", "cluster_id", "cluster_size", "keep", "lookahead",
]
_SELLOFF_KEEP = ("all", "largest_lookahead")


def detect_selloffs(
    panel: pl.DataFrame,
    *,
    drawdown_pct: float = 5.0,
    rebound_pct: float = 3.0,
    within_hours: float | None = None,
    min_spacing_hours: float | None = 72,
    keep: str = "all",
    price_col: str = "perp_close",
    recovery_frac: float = 1.0,
    recovery_max_hours: float | None = None,
    symbol: str | None = None,
) -> pl.DataFrame:
    """Sell-off legs: from a peak to the lowest close before a rebound of ``rebound_pct`` %.

    The close falls at least ``drawdown_pct`` % below its running peak (the highest close since the
    previous leg's trough was confirmed); the leg's trough is the lowest close before the first
    close ``rebound_pct`` % above the running low. Thresholds are percentages, so the rule is the
    same on 1h, 4h or 1d panels. Every leg of the zigzag is reported (none is dropped).

    Parameters
    ----------
    panel : polars.DataFrame
        Panel with ``ts`` (bar label; the close is the bar's last price) and ``price_col``;
        ``symbol`` optional. Any bar length.
    drawdown_pct : float
        Fall from the running peak, in percent, that makes a leg a sell-off.
    rebound_pct : float
        Rise from the running low, in percent, that confirms the trough (ends the leg).
    within_hours : float, optional
        Speed condition (causal, never cuts a leg): the leg counts only if at some bar of its down
        phase the close is also ``drawdown_pct`` % below the highest close of the preceding
        ``within_hours`` clock hours; ``detected_ts`` is then the first such bar. ``None``: no
        speed condition, ``detected_ts = cross_ts``.
    min_spacing_hours : float or None
        Legs whose ``detected_ts`` follow the previous leg's by less than this share a
        ``cluster_id`` (recorded, nothing dropped unless ``keep="largest_lookahead"``).
    keep : {"all", "largest_lookahead"}
        ``"all"`` (default, causal): every leg. ``"largest_lookahead"``: one leg per cluster, the
        largest ``drawdown_pct``; that choice needs the whole cluster, so ``lookahead`` is True,
        ``ts`` stays the leg's own detection bar and ``detected_ts = choice_known_ts`` is the bar at
        which the choice is final (null while the cluster is open).
    price_col : str
        Price column (bar closes).
    recovery_frac : float
        Recovery is the first close after the trough (and after ``detected_ts``) at or above
        ``trough + recovery_frac * (peak - trough)``; 1.0 = regain the peak.
    recovery_max_hours : float, optional
        Look at most this many hours after the trough for the recovery (None: to the panel's end).
    symbol : str, optional
        Symbol for the table (default: the panel's ``symbol`` column).

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` then :data:`SELLOFF_COLUMNS`. What is known when
        (every time is a bar label; the bar's close is the instant of knowledge):

        * ``ts = detected_ts``: the sell-off is known (``cross_ts`` = first close ``drawdown_pct`` %
          below the running peak; later only under ``within_hours``). Known then:
          ``peak_ts, peak_price, cross_ts, cross_price, detected_price, drawdown_at_detect_pct,
          hours_to_detect``.
        * ``trough_detected_ts``: the rebound confirms the trough. Known then: ``trough_ts,
          trough_price, drawdown_pct`` (peak to trough, >= the threshold), ``hours_to_trough``,
          ``trough_detected_price``. Null when the panel ends first: ``complete`` is False and the
          trough columns are provisional (lowest close so far).
        * ``recovery_ts``: first close at the recovery level (null if none by the end).

    Raises
    ------
    EventDetectionError
        Missing columns or an invalid parameter.

    Notes
    -----
    Rows with a null or non-positive price are ignored. Ties: the latest of equal highs is the
    peak, the earliest of equal lows the trough. ``within_hours`` is clock time on ``ts``; with it
    the trough may come before ``detected_ts`` (it is still known only at ``trough_detected_ts``).
    A close below a confirmed trough that follows a rebound of ``rebound_pct`` % is not part of the
    leg: it is a new leg if it falls ``drawdown_pct`` % from the new running peak, else no event.
    """
    name = "detect_selloffs"
    require(panel, ["ts", price_col], name)
    for k, v in (("drawdown_pct", drawdown_pct), ("rebound_pct", rebound_pct), ("within_hours", within_hours),
                 ("recovery_max_hours", recovery_max_hours)):
        positive(k, v, name)
    positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    if not drawdown_pct < 100:
        raise EventDetectionError(f"{name}: drawdown_pct={drawdown_pct!r} must be below 100")
    if not 0 < recovery_frac <= 1:
        raise EventDetectionError(f"{name}: recovery_frac={recovery_frac!r} must be in (0, 1]")
    if keep not in _SELLOFF_KEEP:
        raise EventDetectionError(f"{name}: keep={keep!r}; use 'all' (causal) or 'largest_lookahead'")
    sym = symbol_of(panel, symbol)
    px = (sorted_panel(panel).select("ts", pl.col(price_col).cast(pl.Float64).alias("p"))
          .filter(pl.col("p").is_not_null() & pl.col("p").is_finite() & (pl.col("p") > 0)))
    if px.height < 2:
        return finish(_empty(keep), "selloff", sym, SELLOFF_COLUMNS)
    trigger = None
    if within_hours is not None:
        hi = px.select(pl.col("p").rolling_max_by("ts", window_size=f"{int(round(within_hours * 3600))}s",
                                                   closed="both"))["p"].to_numpy()
        trigger = px["p"].to_numpy() <= hi * (1.0 - drawdown_pct / 100.0)
    legs = zigzag_legs(px["p"].to_numpy(), drawdown_pct, rebound_pct, trigger)
    ok = legs["detect_i"] >= 0
    legs = {k: v[ok] for k, v in legs.items()}
    if legs["cross_i"].size == 0:
        return finish(_empty(keep), "selloff", sym, SELLOFF_COLUMNS)
    ev = _leg_frame(px, legs)
    ev = ev.with_columns(
        (100.0 * (1.0 - pl.col("trough_price") / pl.col("peak_price"))).alias("drawdown_pct"),
        (100.0 * (1.0 - pl.col("detected_price") / pl.col("peak_price"))).alias("drawdown_at_detect_pct"),
        hours_between("peak_ts", "detected_ts").alias("hours_to_detect"),
        hours_between("peak_ts", "trough_ts").alias("hours_to_trough"),
        (pl.col("trough_price") + recovery_frac * (pl.col("peak_price") - pl.col("trough_price")))
        .alias("recovery_level"),
        pl.max_horizontal("trough_ts", "detected_ts").alias("_rafter"),
        (pl.col("trough_ts") + pl.duration(seconds=int(round(recovery_max_hours * 3600))) if recovery_max_hours
         else pl.lit(None, dtype=UTC_TS)).alias("_rhi"),
    )
    ev = first_after(ev, px, after="_rafter", level="recovery_level", value="p", alias="recovery_ts",
                     until="_rhi" if recovery_max_hours else None)
    ev = (ev.join(px.rename({"ts": "recovery_ts", "p": "recovery_price"}), on="recovery_ts", how="left")
          .with_columns(hours_between("trough_ts", "recovery_ts").alias("hours_to_recovery"),
                        pl.lit(float(rebound_pct)).alias("rebound_pct"),
                        pl.lit(float(drawdown_pct)).alias("threshold_pct"))
          .sort("_eid"))
    ev = label_clusters(ev, min_spacing_hours, keep, score="drawdown_pct")
    ev = ev.with_columns(pl.col("detected_ts").alias("ts"))
    if keep == "largest_lookahead":   # the anchor stays the leg's own detection; the choice is known later
        ev = ev.with_columns(pl.col("choice_known_ts").alias("detected_ts"))
    extra = ["choice_known_ts"] if keep == "largest_lookahead" else []
    return finish(ev.select("ts", *SELLOFF_COLUMNS, *extra), "selloff", sym, SELLOFF_COLUMNS)


def _leg_frame(px: pl.DataFrame, legs: dict[str, np.ndarray]) -> pl.DataFrame:
    """Times and prices of each leg's bars (``confirm_i = -1`` gives nulls)."""
    ts, p = px["ts"], px["p"]

    def pick(s: pl.Series, idx: np.ndarray, alias: str) -> pl.Series:
        out = s.gather(np.where(idx >= 0, idx, 0)).alias(alias)
        return pl.select(pl.when(pl.Series(idx >= 0)).then(out)).to_series().alias(alias)

    cols = [pl.Series("_eid", np.arange(legs["cross_i"].size, dtype=np.int64))]
    for key, stem in (("peak_i", "peak"), ("cross_i", "cross"), ("detect_i", "detected"),
                      ("trough_i", "trough"), ("confirm_i", "trough_detected")):
        cols += [pick(ts, legs[key], f"{stem}_ts"), pick(p, legs[key], f"{stem}_price")]
    return pl.DataFrame(cols).with_columns(pl.col("trough_detected_ts").is_not_null().alias("complete"))


def _empty(keep: str) -> pl.DataFrame:
    ts = UTC_TS
    types = {"detected_ts": ts, "peak_ts": ts, "cross_ts": ts, "trough_ts": ts, "trough_detected_ts": ts,
             "complete": pl.Boolean, "recovery_ts": ts, "cluster_id": pl.Int64, "cluster_size": pl.Int64,
             "keep": pl.String, "lookahead": pl.Boolean}
    schema = {"ts": ts, **{c: types.get(c, pl.Float64) for c in SELLOFF_COLUMNS}}
    if keep == "largest_lookahead":
        schema["choice_known_ts"] = ts
    return pl.DataFrame(schema=schema)
