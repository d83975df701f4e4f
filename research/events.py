"""Event detectors on the hourly panel (``queries/hourly_panel.sql``).

Every detector takes the panel as a polars frame (one row per UTC hour, ``ts`` = the hour's open,
prices are the hour's close) and returns an *event table*: one row per event with at least

* ``event_id`` – 0, 1, ... in time order,
* ``ts`` – the event time (UTC; the panel row at whose close the event is known, see each detector),
* ``symbol`` – the instrument (``asset`` is the same value, for the event-study engine),
* ``kind`` – the detector (``"selloff"``, ``"funding_reset"``, ``"oi_collapse"``, ``"liquidation_print"``),

plus the attributes the hypotheses need. Every threshold is a keyword parameter. Events are
de-clustered with :func:`decluster`: an event closer than ``min_spacing_hours`` to the previous *kept*
event is dropped (the earliest event of a cluster wins, so no event depends on what came after it).

Computation is vectorised with polars window/rolling expressions and inequality joins; the only
Python loop is the greedy de-clustering pass over candidate events (never over bars).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from research.errors import ResearchError

__all__ = [
    "EventDetectionError",
    "NEUTRAL_FUNDING_8H",
    "decluster",
    "detect_selloffs",
    "detect_funding_resets",
    "detect_oi_collapses",
    "detect_liquidation_prints",
]

#: Binance's neutral funding: the interest-rate component, 0.01 % per 8 h.
NEUTRAL_FUNDING_8H = 0.0001

_HOUR_US = 3_600_000_000


class EventDetectionError(ResearchError, ValueError):
    """A detector got a panel without the columns it needs or an invalid parameter."""


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _require(panel: pl.DataFrame, cols, detector: str) -> None:
    if not isinstance(panel, pl.DataFrame):
        raise EventDetectionError(f"{detector}: panel must be a polars DataFrame (from research.db.query"
                                  f"('hourly_panel', ...)), got {type(panel).__name__}")
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise EventDetectionError(
            f"{detector}: panel has no column(s) {missing}; pass the hourly panel from "
            f"research.db.query('hourly_panel', ...) (columns: {', '.join(panel.columns)})")
    if "ts" in panel.columns and not isinstance(panel.schema["ts"], pl.Datetime):
        raise EventDetectionError(f"{detector}: column 'ts' must be a Datetime, got {panel.schema['ts']}")


def _positive(name: str, value, detector: str, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        raise EventDetectionError(f"{detector}: parameter {name}={value!r} must be a positive number")


def _symbol(panel: pl.DataFrame, symbol: str | None) -> str:
    if symbol is not None:
        return symbol
    if "symbol" in panel.columns and panel.height:
        s = panel["symbol"].drop_nulls()
        if s.len():
            return str(s[0])
    return "UNKNOWN"


def _sorted(panel: pl.DataFrame) -> pl.DataFrame:
    return panel.sort("ts") if not panel["ts"].is_sorted() else panel


def decluster(events: pl.DataFrame, min_spacing_hours: float | None, ts_col: str = "ts") -> pl.DataFrame:
    """Keep events at least ``min_spacing_hours`` apart (greedy, earliest first).

    An event is dropped when it lies less than ``min_spacing_hours`` after the previous *kept* event,
    so a run of events closer than the spacing keeps only its first. ``None`` or ``0`` keeps all.
    The loop runs over events only (tens to hundreds), never over bars.
    """
    if events.height == 0 or not min_spacing_hours:
        return events
    events = events.sort(ts_col)
    t = events[ts_col].dt.epoch("us").to_numpy()
    gap = int(round(float(min_spacing_hours) * _HOUR_US))
    keep = np.zeros(len(t), dtype=bool)
    last = None
    for i, ti in enumerate(t):
        if last is None or ti - last >= gap:
            keep[i] = True
            last = ti
    return events.filter(pl.Series(keep))


def _finish(events: pl.DataFrame, kind: str, symbol: str, min_spacing_hours, first_cols) -> pl.DataFrame:
    events = decluster(events, min_spacing_hours)
    events = events.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("event_id"),
        pl.lit(symbol).alias("symbol"),
        pl.lit(symbol).alias("asset"),
        pl.lit(kind).alias("kind"),
    )
    head = ["event_id", "ts", "symbol", "asset", "kind", *first_cols]
    return events.select(head + [c for c in events.columns if c not in head])


def _window_extreme(events: pl.DataFrame, series: pl.DataFrame, *, lo: str, hi: str, value: str,
                    how: str, closed_lo: bool, prefix: str, latest: bool) -> pl.DataFrame:
    """Per event: the ts and value of the max/min of ``series[value]`` with ts in [lo, hi].

    An inequality join (events x bars inside each event's window only), then one group_by.
    """
    s = series.select(pl.col("ts").alias("_t"), pl.col(value).alias("_v"))
    lo_cond = pl.col("_t") >= pl.col(lo) if closed_lo else pl.col("_t") > pl.col(lo)
    j = events.select("_eid", lo, hi).join_where(s, lo_cond, pl.col("_t") <= pl.col(hi))
    best = pl.col("_v").max() if how == "max" else pl.col("_v").min()
    j = j.filter(pl.col("_v") == best.over("_eid"))
    pick = pl.col("_t").max() if latest else pl.col("_t").min()
    out = j.group_by("_eid").agg(pick.alias(f"{prefix}_ts"), pl.col("_v").first().alias(f"{prefix}_value"))
    return events.join(out, on="_eid", how="left")


def _value_at(events: pl.DataFrame, series: pl.DataFrame, at: str, value: str, alias: str,
              strategy: str = "backward") -> pl.DataFrame:
    """Attach ``series[value]`` as of ``events[at]`` (last observation at or before it)."""
    s = series.select(pl.col("ts").alias("_t"), pl.col(value).alias(alias)).drop_nulls().sort("_t")
    left = events.with_columns(pl.col(at).alias("_at"))
    sorted_left = left.sort("_at")
    out = sorted_left.join_asof(s, left_on="_at", right_on="_t", strategy=strategy)
    return out.drop("_at", "_t").sort("_eid")


def _first_after(events: pl.DataFrame, series: pl.DataFrame, *, after: str, level: str, value: str,
                 alias: str, until: str | None = None) -> pl.DataFrame:
    """Per event: first ts > ``events[after]`` with ``series[value] >= events[level]`` (null if none)."""
    s = series.select(pl.col("ts").alias("_t"), pl.col(value).alias("_v")).drop_nulls()
    conds = [pl.col("_t") > pl.col(after), pl.col("_v") >= pl.col(level)]
    if until is not None:
        conds.append(pl.col("_t") <= pl.col(until))
    cols = ["_eid", after, level] + ([until] if until else [])
    j = events.select(cols).join_where(s, *conds)
    out = j.group_by("_eid").agg(pl.col("_t").min().alias(alias))
    return events.join(out, on="_eid", how="left")


# --------------------------------------------------------------------------------------------------
# sell-offs
# --------------------------------------------------------------------------------------------------
def detect_selloffs(
    panel: pl.DataFrame,
    *,
    drawdown_pct: float = 5.0,
    within_hours: int = 48,
    min_spacing_hours: float | None = 72,
    price_col: str = "perp_close",
    trough_hours: int | None = None,
    recovery_frac: float = 1.0,
    recovery_max_hours: int | None = None,
    symbol: str | None = None,
) -> pl.DataFrame:
    """Sell-offs: price falls at least ``drawdown_pct`` % below its high of the last ``within_hours``.

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``ts``, ``price_col``; ``symbol`` optional).
    drawdown_pct : float
        Minimum fall from the local high, in percent.
    within_hours : int
        The fall must happen within this many hours of the high (the look-back of the rolling high).
    min_spacing_hours : float or None
        De-clustering: events closer than this to the previous kept event are dropped.
    price_col : str
        Price column (hour closes).
    trough_hours : int, optional
        The trough is the lowest close in ``(peak_ts, peak_ts + trough_hours]``; defaults to
        ``within_hours`` and is never shorter than the crossing time.
    recovery_frac : float
        Recovery is the first close after the trough at or above
        ``trough + recovery_frac * (peak - trough)``; 1.0 = regain the peak, 0.5 = half the loss.
    recovery_max_hours : int, optional
        Only look this many hours after the trough for the recovery (None: to the panel's end).
    symbol : str, optional
        Symbol for the table (default: the panel's ``symbol`` column).

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind, peak_ts, trough_ts, peak_price, trough_price,
        drawdown_pct, cross_ts, cross_price, hours_to_trough, recovery_ts, recovery_price,
        hours_to_recovery, recovery_level``. ``ts`` = ``cross_ts`` = the panel row whose close first
        lies ``drawdown_pct`` % below the rolling ``within_hours`` high: the time the sell-off is
        known, usable as an event-study anchor without look-ahead. ``peak_ts``/``trough_ts`` are
        the rows of the high and of the lowest close (they use later data; use them explicitly).
        ``drawdown_pct`` is the peak-to-trough fall in percent (>= the threshold). ``recovery_ts``
        is null when the price has not recovered by the panel's end (or ``recovery_max_hours``).

    Notes
    -----
    Missing data: rows with a null price are ignored. Windows are measured in clock time on ``ts``,
    so a gap in the bars shortens a window rather than stretching it over more bars; a close right
    after a gap is compared with the highs inside the last ``within_hours`` of clock time only.
    Ties: the latest of equal highs is the peak, the earliest of equal lows is the trough.
    """
    name = "detect_selloffs"
    _require(panel, ["ts", price_col], name)
    _positive("drawdown_pct", drawdown_pct, name)
    _positive("within_hours", within_hours, name)
    _positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    _positive("trough_hours", trough_hours, name)
    _positive("recovery_max_hours", recovery_max_hours, name)
    if not 0 < recovery_frac <= 1:
        raise EventDetectionError(f"{name}: recovery_frac={recovery_frac!r} must be in (0, 1]")
    sym = _symbol(panel, symbol)
    within = int(within_hours)
    trough_h = int(trough_hours or within)

    px = (_sorted(panel).select("ts", pl.col(price_col).cast(pl.Float64).alias("p"))
          .filter(pl.col("p").is_not_null() & pl.col("p").is_finite() & (pl.col("p") > 0)))
    empty = _empty_selloffs()
    if px.height < 2:
        return _finish(empty, "selloff", sym, None, _SELLOFF_COLS)

    thr = 1.0 - drawdown_pct / 100.0
    cand = (
        px.with_columns(pl.col("p").rolling_max_by("ts", window_size=f"{within}h", closed="both").alias("hi"))
        .with_columns((pl.col("p") <= pl.col("hi") * thr).alias("hit"))
        # a crossing: the first row of a run of rows below the threshold
        .filter(pl.col("hit") & ~pl.col("hit").shift(1, fill_value=False))
        .select(pl.col("ts").alias("cross_ts"), pl.col("p").alias("cross_price"), pl.col("hi"))
    )
    if cand.height == 0:
        return _finish(empty, "selloff", sym, None, _SELLOFF_COLS)
    # de-cluster crossings before the (joins) below, so they run on kept events only
    cand = decluster(cand.rename({"cross_ts": "ts"}), min_spacing_hours).rename({"ts": "cross_ts"})
    ev = cand.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_eid"),
        (pl.col("cross_ts") - pl.duration(hours=within)).alias("_lo"),
    )
    ev = _window_extreme(ev, px, lo="_lo", hi="cross_ts", value="p", how="max", closed_lo=True,
                         prefix="peak", latest=True)
    ev = ev.with_columns(
        pl.max_horizontal(pl.col("peak_ts") + pl.duration(hours=trough_h), pl.col("cross_ts")).alias("_thi"))
    ev = _window_extreme(ev, px, lo="peak_ts", hi="_thi", value="p", how="min", closed_lo=False,
                         prefix="trough", latest=False)
    ev = ev.rename({"peak_value": "peak_price", "trough_value": "trough_price"}).with_columns(
        (pl.col("trough_price") + recovery_frac * (pl.col("peak_price") - pl.col("trough_price"))).alias("recovery_level"),
        (pl.col("trough_ts") + pl.duration(hours=recovery_max_hours)).alias("_rhi") if recovery_max_hours
        else pl.lit(None, dtype=px.schema["ts"]).alias("_rhi"),
    )
    ev = _first_after(ev, px, after="trough_ts", level="recovery_level", value="p", alias="recovery_ts",
                      until="_rhi" if recovery_max_hours else None)
    ev = ev.join(px.rename({"ts": "recovery_ts", "p": "recovery_price"}), on="recovery_ts", how="left")
    ev = ev.with_columns(
        pl.col("cross_ts").alias("ts"),
        (100.0 * (1.0 - pl.col("trough_price") / pl.col("peak_price"))).alias("drawdown_pct"),
        ((pl.col("trough_ts") - pl.col("peak_ts")).dt.total_minutes() / 60.0).alias("hours_to_trough"),
        ((pl.col("recovery_ts") - pl.col("trough_ts")).dt.total_minutes() / 60.0).alias("hours_to_recovery"),
    ).sort("_eid")
    ev = ev.select("ts", *_SELLOFF_COLS)
    return _finish(ev, "selloff", sym, None, _SELLOFF_COLS)


_SELLOFF_COLS = ["peak_ts", "trough_ts", "peak_price", "trough_price", "drawdown_pct", "cross_ts",
                 "cross_price", "hours_to_trough", "recovery_ts", "recovery_price", "hours_to_recovery",
                 "recovery_level"]


def _empty_selloffs() -> pl.DataFrame:
    ts = pl.Datetime("us", "UTC")
    schema = {"ts": ts, "peak_ts": ts, "trough_ts": ts, "peak_price": pl.Float64, "trough_price": pl.Float64,
              "drawdown_pct": pl.Float64, "cross_ts": ts, "cross_price": pl.Float64,
              "hours_to_trough": pl.Float64, "recovery_ts": ts, "recovery_price": pl.Float64,
              "hours_to_recovery": pl.Float64, "recovery_level": pl.Float64}
    return pl.DataFrame(schema=schema)
