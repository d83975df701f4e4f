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
# funding rates are compared with this slack, so 3 * 0.0001 counts as reaching 0.0003
_RATE_EPS = 1e-12


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


def decluster(events: pl.DataFrame, min_spacing_hours: float | None, ts_col: str = "ts", *,
              keep: str = "first", score: str | None = None) -> pl.DataFrame:
    """Keep events at least ``min_spacing_hours`` apart.

    Parameters
    ----------
    events : polars.DataFrame
        Candidate events with a datetime column ``ts_col``.
    min_spacing_hours : float or None
        Minimum distance between kept events; ``None`` or ``0`` keeps all.
    keep : {"first", "largest"}
        ``"first"``: greedy in time order; an event less than the spacing after the previous *kept*
        event is dropped, so a cluster keeps its earliest event and no choice depends on later data.
        ``"largest"``: greedy by descending ``score`` (non-maximum suppression); a cluster keeps its
        largest event, whose choice does use data up to ``min_spacing_hours`` later.
    score : str, optional
        Column ranking events for ``keep="largest"``.

    Notes
    -----
    The loop runs over candidate events only (tens to hundreds), never over bars.
    """
    if keep not in ("first", "largest"):
        raise EventDetectionError(f"decluster: keep={keep!r}; use 'first' or 'largest'")
    if keep == "largest" and (score is None or score not in events.columns):
        raise EventDetectionError(f"decluster: keep='largest' needs a score column, got score={score!r}")
    if events.height == 0 or not min_spacing_hours:
        return events.sort(ts_col)
    events = events.sort(ts_col)
    t = events[ts_col].dt.epoch("us").to_numpy()
    gap = int(round(float(min_spacing_hours) * _HOUR_US))
    kept = np.zeros(len(t), dtype=bool)
    if keep == "first":
        last = None
        for i, ti in enumerate(t):
            if last is None or ti - last >= gap:
                kept[i] = True
                last = ti
    else:
        s = events[score].cast(pl.Float64).fill_null(-np.inf).to_numpy()
        alive = np.ones(len(t), dtype=bool)
        for i in np.argsort(-s, kind="stable"):
            if alive[i]:
                kept[i] = True
                alive &= np.abs(t - t[i]) >= gap
    return events.filter(pl.Series(kept))


def _finish(events: pl.DataFrame, kind: str, symbol: str, min_spacing_hours, first_cols,
            keep: str = "first", score: str | None = None) -> pl.DataFrame:
    events = decluster(events, min_spacing_hours, keep=keep, score=score)
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


def _pct_change(a: str, b: str) -> pl.Expr:
    return 100.0 * (pl.col(b) / pl.col(a) - 1.0)


def _oi_column(panel: pl.DataFrame, oi_col: str | None, detector: str) -> str:
    if oi_col is not None:
        _require(panel, [oi_col], detector)
        return oi_col
    for c in ("oi_base", "oi_usd"):
        if c in panel.columns and panel[c].null_count() < panel.height:
            return c
    _require(panel, ["oi_base", "oi_usd"], detector)
    return "oi_base"


def _typed_empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


# --------------------------------------------------------------------------------------------------
# funding resets
# --------------------------------------------------------------------------------------------------
_FUNDING_COLS = ["elevated_ts", "rate_before", "rate_after", "settlements_taken", "hours_taken",
                 "elevated_threshold", "oi_before", "oi_after", "oi_change_pct", "price_before",
                 "price_after", "price_change_pct"]


def detect_funding_resets(
    panel: pl.DataFrame,
    *,
    elevated: float | None = 0.0003,
    elevated_k: float | None = None,
    elevated_pct: float | None = None,
    neutral: float = NEUTRAL_FUNDING_8H,
    within_settlements: int = 3,
    min_spacing_hours: float | None = 24,
    oi_col: str | None = None,
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """Funding resets: the 8h-equivalent funding rate falls from elevated to at/below neutral.

    A settlement is *elevated* when its rate (per 8 h, ``funding_settled * 8 / funding_interval_hours``,
    i.e. the panel's ``funding_rate_8h`` at the settlement) is at or above the threshold. A reset is
    the first settlement at or below ``neutral`` that follows an elevated settlement within
    ``within_settlements`` settlements.

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``ts``, ``funding_settled``, ``funding_rate_8h`` or ``funding_interval_hours``,
        ``price_col``; OI columns optional).
    elevated : float, optional
        Absolute threshold per 8 h (default 0.0003 = 3x neutral). Used when neither ``elevated_k``
        nor ``elevated_pct`` is given.
    elevated_k : float, optional
        Threshold = ``elevated_k * 0.0001`` (k times Binance's neutral rate); takes precedence over
        ``elevated``.
    elevated_pct : float, optional
        Threshold = this percentile (0-100) of the panel's settled 8h rates; takes precedence over
        both. This is an in-sample level (it uses the whole panel), documented in
        ``elevated_threshold``.
    neutral : float
        Neutral level per 8 h (0.0001 on Binance).
    within_settlements : int
        Maximum number of settlements from the last elevated one to the reset; the clock time between
        them must also be at most ``within_settlements`` settlement intervals, so a data gap cannot
        bridge two far-apart settlements.
    min_spacing_hours : float or None
        De-clustering (earliest kept).
    oi_col, price_col : str
        OI column (default ``oi_base`` if present else ``oi_usd``) and price column.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` plus ``elevated_ts`` (the last elevated settlement),
        ``rate_before`` (its 8h rate), ``rate_after`` (the reset settlement's 8h rate),
        ``settlements_taken``, ``hours_taken``, ``elevated_threshold``, ``oi_before/oi_after/
        oi_change_pct`` and ``price_before/price_after/price_change_pct`` (panel values at the hours
        of the two settlements, percent changes). ``ts`` is the panel hour containing the reset
        settlement (known at that hour's close).

    Notes
    -----
    Missing data: hours without a settlement are ignored (funding is a settlement series); a
    settlement whose rate is null is dropped. OI/price attributes are null where the panel has none.
    """
    name = "detect_funding_resets"
    _require(panel, ["ts", "funding_settled", price_col], name)
    if "funding_interval_hours" not in panel.columns and "funding_rate_8h" not in panel.columns:
        raise EventDetectionError(f"{name}: panel needs funding_interval_hours or funding_rate_8h "
                                  "to express settled rates per 8 h")
    for p in ("elevated_k", "within_settlements"):
        _positive(p, locals()[p], name)
    _positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    if elevated_pct is not None and not 0 < elevated_pct < 100:
        raise EventDetectionError(f"{name}: elevated_pct={elevated_pct!r} must be a percentile in (0, 100)")
    if elevated is None and elevated_k is None and elevated_pct is None:
        raise EventDetectionError(f"{name}: give one of elevated, elevated_k, elevated_pct")
    sym = _symbol(panel, symbol)
    oi = _oi_column(panel, oi_col, name) if any(c in panel.columns for c in ("oi_base", "oi_usd")) or oi_col else None

    df = _sorted(panel)
    if "funding_interval_hours" in df.columns:
        rate8 = pl.col("funding_settled") * 8.0 / pl.col("funding_interval_hours")
        ivh = pl.col("funding_interval_hours").cast(pl.Float64)
        if "funding_rate_8h" in df.columns:
            rate8 = pl.coalesce(rate8, pl.col("funding_rate_8h"))
    else:
        rate8, ivh = pl.col("funding_rate_8h"), pl.lit(8.0)
    st = (df.filter(pl.col("funding_settled").is_not_null())
          .select("ts", rate8.alias("r"), ivh.fill_null(8.0).alias("ivh"), pl.col(price_col).alias("_px"),
                  (pl.col(oi) if oi else pl.lit(None, pl.Float64)).alias("_oi"))
          .filter(pl.col("r").is_not_null()))
    if elevated_pct is not None:
        thr = float(st["r"].quantile(elevated_pct / 100.0, "linear")) if st.height else float("nan")
    elif elevated_k is not None:
        thr = elevated_k * NEUTRAL_FUNDING_8H
    else:
        thr = float(elevated)
    if not thr > neutral:
        raise EventDetectionError(f"{name}: the elevated threshold {thr!r} must lie above neutral={neutral!r}")

    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    st = st.with_columns(idx.alias("i")).with_columns(
        pl.when(pl.col("r") >= thr - _RATE_EPS).then(pl.col("i")).forward_fill().shift(1).alias("last_elev"),
        pl.when(pl.col("r") <= neutral + _RATE_EPS).then(pl.col("i")).forward_fill().shift(1).alias("last_neut"),
    )
    ev = st.filter(
        (pl.col("r") <= neutral + _RATE_EPS)
        & pl.col("last_elev").is_not_null()
        & ((pl.col("i") - pl.col("last_elev")) <= within_settlements)
        # the first neutral settlement after the elevated one
        & (pl.col("last_neut").is_null() | (pl.col("last_neut") < pl.col("last_elev")))
    )
    before = st.select(pl.col("i").alias("last_elev"), pl.col("ts").alias("elevated_ts"),
                       pl.col("r").alias("rate_before"), pl.col("_oi").alias("oi_before"),
                       pl.col("_px").alias("price_before"))
    ev = (ev.join(before, on="last_elev", how="left")
          .with_columns(
              (pl.col("i") - pl.col("last_elev")).alias("settlements_taken"),
              ((pl.col("ts") - pl.col("elevated_ts")).dt.total_minutes() / 60.0).alias("hours_taken"))
          .filter(pl.col("hours_taken") <= within_settlements * pl.col("ivh") + 1e-9)
          .rename({"r": "rate_after", "_oi": "oi_after", "_px": "price_after"})
          .with_columns(pl.lit(thr).alias("elevated_threshold"),
                        _pct_change("oi_before", "oi_after").alias("oi_change_pct"),
                        _pct_change("price_before", "price_after").alias("price_change_pct"))
          .select("ts", *_FUNDING_COLS))
    return _finish(ev, "funding_reset", sym, min_spacing_hours, _FUNDING_COLS)


# --------------------------------------------------------------------------------------------------
# OI collapses
# --------------------------------------------------------------------------------------------------
_OI_COLS = ["peak_ts", "trough_ts", "oi_peak", "oi_trough", "oi_change_pct", "price_peak", "price_trough",
            "price_change_pct", "funding_before", "funding_after", "liq_long_usd", "liq_short_usd",
            "zscore", "oi_column"]


def detect_oi_collapses(
    panel: pl.DataFrame,
    *,
    drop_pct: float = 5.0,
    within_hours: int = 24,
    zscore: float | None = None,
    zscore_window_hours: int = 720,
    zscore_min_hours: int = 168,
    min_spacing_hours: float | None = 48,
    oi_col: str | None = None,
    max_oi_age_hours: float | None = 12,
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """OI collapses: open interest falls at least ``drop_pct`` % below its ``within_hours`` high.

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``ts``, OI column, ``price_col``; ``funding_rate_8h``, ``liq_long_usd``,
        ``liq_short_usd``, ``oi_age_hours`` used when present).
    drop_pct : float
        Minimum fall from the rolling high, in percent (the default rule).
    within_hours : int
        Look-back of the rolling OI high, and the horizon of the z-score rule's OI change.
    zscore : float, optional
        If given, the rule is instead: the ``within_hours`` OI % change is at least ``zscore``
        standard deviations below its mean over the preceding ``zscore_window_hours`` (rows strictly
        before t; needs ``zscore_min_hours`` of history), so the threshold has no look-ahead.
    min_spacing_hours : float or None
        De-clustering (earliest kept).
    oi_col : str, optional
        ``oi_base`` (coins; default when present) or ``oi_usd`` (moves with price).
    max_oi_age_hours : float, optional
        The panel carries the last OI observation forward; rows whose observation is older than
        this (``oi_age_hours``) are treated as missing. ``None`` keeps all.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` plus ``peak_ts/trough_ts`` (rows of the OI high before
        the crossing and of the OI low in ``(peak_ts, peak_ts + within_hours]``, at least up to the
        crossing), ``oi_peak, oi_trough, oi_change_pct`` (negative), ``price_peak, price_trough,
        price_change_pct`` (closes at those rows), ``funding_before/funding_after`` (8h rate in force
        at peak_ts / trough_ts), ``liq_long_usd/liq_short_usd`` (sums over ``(peak_ts, trough_ts]``,
        null without liquidation coverage), ``zscore`` (z of the OI change at ``ts``; null under the
        percent rule when there is too little history) and ``oi_column``. ``ts`` is the first row
        at which the rule holds (known at its close).

    Notes
    -----
    Missing data: rows with a null (or too old) OI are ignored; windows are clock time on ``ts``,
    so gaps shorten windows rather than stretching them.
    """
    name = "detect_oi_collapses"
    _require(panel, ["ts", price_col], name)
    col = _oi_column(panel, oi_col, name)
    _positive("drop_pct", drop_pct, name)
    _positive("within_hours", within_hours, name)
    _positive("zscore", zscore, name)
    _positive("zscore_window_hours", zscore_window_hours, name)
    _positive("max_oi_age_hours", max_oi_age_hours, name)
    _positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    sym = _symbol(panel, symbol)
    h = int(within_hours)
    df = _sorted(panel)
    fresh = pl.col(col).is_not_null() & pl.col(col).is_finite() & (pl.col(col) > 0)
    if max_oi_age_hours is not None and "oi_age_hours" in df.columns:
        fresh = fresh & (pl.col("oi_age_hours").is_null() | (pl.col("oi_age_hours") <= max_oi_age_hours))
    oi = df.filter(fresh).select("ts", pl.col(col).cast(pl.Float64).alias("o"))
    empty = _typed_empty({"ts": pl.Datetime("us", "UTC"), "peak_ts": pl.Datetime("us", "UTC"),
                          "trough_ts": pl.Datetime("us", "UTC"),
                          **{c: pl.Float64 for c in _OI_COLS[2:-1]}, "oi_column": pl.String})
    if oi.height < 2:
        return _finish(empty, "oi_collapse", sym, None, _OI_COLS)

    lagged = oi.select((pl.col("ts") + pl.duration(hours=h)).alias("ts"), pl.col("o").alias("o_lag"))
    x = (oi.join_asof(lagged.sort("ts"), on="ts", strategy="backward",
                      tolerance=f"{max(1, h // 4)}h")
         .with_columns(
             pl.col("o").rolling_max_by("ts", window_size=f"{h}h", closed="both").alias("hi"),
             (100.0 * (pl.col("o") / pl.col("o_lag") - 1.0)).alias("chg")))
    win = f"{int(zscore_window_hours)}h"
    x = x.with_columns(
        pl.col("chg").rolling_mean_by("ts", window_size=win, closed="left").alias("mu"),
        pl.col("chg").rolling_std_by("ts", window_size=win, closed="left").alias("sd"),
        (pl.col("ts") - pl.col("ts").first()).dt.total_hours().alias("_hist"),
    ).with_columns(
        pl.when((pl.col("_hist") >= zscore_min_hours) & (pl.col("sd") > 0))
        .then((pl.col("chg") - pl.col("mu")) / pl.col("sd")).alias("zscore"))
    if zscore is None:
        hit = pl.col("o") <= pl.col("hi") * (1.0 - drop_pct / 100.0)
    else:
        hit = pl.col("zscore") <= -float(zscore)
    cand = (x.with_columns(hit.fill_null(False).alias("hit"))
            .filter(pl.col("hit") & ~pl.col("hit").shift(1, fill_value=False))
            .select("ts", "zscore"))
    if cand.height == 0:
        return _finish(empty, "oi_collapse", sym, None, _OI_COLS)
    cand = decluster(cand, min_spacing_hours)
    ev = cand.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_eid"),
                           (pl.col("ts") - pl.duration(hours=h)).alias("_lo"))
    ev = _window_extreme(ev, oi, lo="_lo", hi="ts", value="o", how="max", closed_lo=True,
                         prefix="peak", latest=True)
    ev = ev.with_columns(pl.max_horizontal(pl.col("peak_ts") + pl.duration(hours=h), pl.col("ts")).alias("_thi"))
    ev = _window_extreme(ev, oi, lo="peak_ts", hi="_thi", value="o", how="min", closed_lo=False,
                         prefix="trough", latest=False)
    ev = ev.rename({"peak_value": "oi_peak", "trough_value": "oi_trough"})
    px = df.select("ts", pl.col(price_col).alias("_p"))
    ev = (ev.join(px.rename({"ts": "peak_ts", "_p": "price_peak"}), on="peak_ts", how="left")
          .join(px.rename({"ts": "trough_ts", "_p": "price_trough"}), on="trough_ts", how="left"))
    if "funding_rate_8h" in df.columns:
        f = df.select("ts", "funding_rate_8h")
        ev = (ev.join(f.rename({"ts": "peak_ts", "funding_rate_8h": "funding_before"}), on="peak_ts", how="left")
              .join(f.rename({"ts": "trough_ts", "funding_rate_8h": "funding_after"}), on="trough_ts", how="left"))
    else:
        ev = ev.with_columns(pl.lit(None, pl.Float64).alias("funding_before"),
                             pl.lit(None, pl.Float64).alias("funding_after"))
    ev = _sum_between(ev, df, "peak_ts", "trough_ts", ["liq_long_usd", "liq_short_usd"])
    ev = (ev.with_columns(_pct_change("oi_peak", "oi_trough").alias("oi_change_pct"),
                          _pct_change("price_peak", "price_trough").alias("price_change_pct"),
                          pl.lit(col).alias("oi_column"))
          .sort("_eid").select("ts", *_OI_COLS))
    return _finish(ev, "oi_collapse", sym, None, _OI_COLS)


def _sum_between(ev: pl.DataFrame, df: pl.DataFrame, lo: str, hi: str, cols: list[str]) -> pl.DataFrame:
    """Per event, sums of ``cols`` over panel rows with ts in (lo, hi]; null where nothing is observed."""
    present = [c for c in cols if c in df.columns]
    for c in set(cols) - set(present):
        ev = ev.with_columns(pl.lit(None, pl.Float64).alias(c))
    if not present:
        return ev
    s = df.select(pl.col("ts").alias("_t"), *present).filter(pl.any_horizontal(pl.col(present).is_not_null()))
    j = ev.select("_eid", lo, hi).join_where(s, pl.col("_t") > pl.col(lo), pl.col("_t") <= pl.col(hi))
    agg = j.group_by("_eid").agg(
        pl.when(pl.col(c).count() > 0).then(pl.col(c).sum()).alias(c) for c in present)
    return ev.join(agg, on="_eid", how="left")


# --------------------------------------------------------------------------------------------------
# liquidation prints
# --------------------------------------------------------------------------------------------------
_LIQ_COLS = ["side", "usd", "other_side_usd", "median_usd", "multiple", "threshold_usd", "n_history",
             "price_before_pct", "price_after_pct", "around_hours"]


def detect_liquidation_prints(
    panel: pl.DataFrame,
    *,
    side: str = "long",
    pct: float | None = None,
    k: float | None = 5.0,
    window_hours: int = 720,
    min_history: int = 12,
    min_usd: float = 0.0,
    around_hours: int = 24,
    min_spacing_hours: float | None = 24,
    keep: str = "largest",
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """Liquidation prints: a bucket's long (or short) liquidations far above their recent level.

    A bucket is a print when its USD is at least ``k`` times the rolling median of the observed
    buckets in the preceding ``window_hours`` (or, with ``pct``, at least that rolling percentile),
    and at least ``min_usd``. The rolling statistics use buckets strictly before the bucket (no
    look-ahead), and need ``min_history`` earlier buckets.

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``ts``, ``liq_long_usd``, ``liq_short_usd``, ``price_col``). A liquidation
        bucket sits on the panel hour that contains the bucket's end; other hours are null.
    side : {"long", "short"}
    pct : float, optional
        Rolling percentile (0-100) threshold; takes precedence over ``k``.
    k : float, optional
        Multiple of the rolling median.
    window_hours : int
        Rolling window of earlier buckets, in hours.
    min_history : int
        Minimum number of earlier observed buckets in the window.
    min_usd : float
        Absolute floor in USD (a rolling median of 0 would otherwise make any bucket a print).
    around_hours : int
        ``price_before_pct`` = close change over the ``around_hours`` before the print row,
        ``price_after_pct`` = over the ``around_hours`` after it.
    min_spacing_hours : float or None
        De-clustering.
    keep : {"largest", "first"}
        Which print of a cluster is kept. ``"largest"`` (default) keeps the peak bucket of a cascade,
        whose choice uses up to ``min_spacing_hours`` of later data; ``"first"`` keeps the earliest,
        known in real time.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` plus ``side, usd, other_side_usd, median_usd,
        multiple`` (usd / rolling median), ``threshold_usd``, ``n_history``, ``price_before_pct``,
        ``price_after_pct``, ``around_hours``. ``ts`` is the panel hour containing the bucket's end
        (for a 4h bucket 20:00-24:00, the 23:00 row).

    Notes
    -----
    Missing data: hours without a bucket (null) are not buckets and never enter the rolling
    statistics; a bucket with 0 USD is an observed quiet bucket and does. Price changes are null when
    the panel has no close at the needed hour.
    """
    name = "detect_liquidation_prints"
    if side not in ("long", "short"):
        raise EventDetectionError(f"{name}: side={side!r}; use 'long' or 'short'")
    col, other = (("liq_long_usd", "liq_short_usd") if side == "long" else ("liq_short_usd", "liq_long_usd"))
    _require(panel, ["ts", col, price_col], name)
    if pct is None and k is None:
        raise EventDetectionError(f"{name}: give k (multiple of the rolling median) or pct (percentile)")
    if pct is not None and not 0 < pct < 100:
        raise EventDetectionError(f"{name}: pct={pct!r} must be a percentile in (0, 100)")
    _positive("k", k, name)
    _positive("window_hours", window_hours, name)
    _positive("min_usd", min_usd, name, allow_zero=True)
    _positive("around_hours", around_hours, name)
    _positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    sym = _symbol(panel, symbol)
    df = _sorted(panel)
    win = f"{int(window_hours)}h"
    b = df.filter(pl.col(col).is_not_null()).select(
        "ts", pl.col(col).cast(pl.Float64).alias("usd"),
        (pl.col(other).cast(pl.Float64) if other in df.columns else pl.lit(None, pl.Float64)).alias("other_side_usd"))
    ref = (pl.col("usd").rolling_quantile_by("ts", window_size=win, quantile=pct / 100.0, closed="left")
           if pct is not None else
           pl.col("usd").rolling_median_by("ts", window_size=win, closed="left") * float(k))
    b = b.with_columns(
        pl.col("usd").rolling_median_by("ts", window_size=win, closed="left").alias("median_usd"),
        pl.col("usd").is_not_null().cast(pl.Int64).rolling_sum_by("ts", window_size=win, closed="left")
        .fill_null(0).alias("n_history"),
        ref.alias("threshold_usd"),
    )
    ev = b.filter((pl.col("n_history") >= min_history) & (pl.col("usd") >= pl.col("threshold_usd"))
                  & (pl.col("usd") >= min_usd) & (pl.col("usd") > 0))
    ev = ev.with_columns(
        pl.when(pl.col("median_usd") > 0).then(pl.col("usd") / pl.col("median_usd")).alias("multiple"),
        pl.lit(side).alias("side"), pl.lit(int(around_hours)).alias("around_hours"))
    px = df.select("ts", pl.col(price_col).alias("_p"))
    ah = pl.duration(hours=int(around_hours))
    ev = (ev.join(px, on="ts", how="left")
          .join(px.with_columns(pl.col("ts") + ah), on="ts", how="left", suffix="_before")
          .join(px.with_columns(pl.col("ts") - ah), on="ts", how="left", suffix="_after")
          .with_columns(_pct_change("_p_before", "_p").alias("price_before_pct"),
                        _pct_change("_p", "_p_after").alias("price_after_pct"))
          .select("ts", *_LIQ_COLS))
    return _finish(ev, "liquidation_print", sym, min_spacing_hours, _LIQ_COLS, keep=keep, score="usd")
