"""Helpers shared by the detectors: input checks, bar length, de-clustering, table assembly."""
from __future__ import annotations

import numpy as np
import polars as pl

from research.errors import EventDetectionError

#: Binance's neutral funding: the interest-rate component, 0.01 % per 8 h.
NEUTRAL_FUNDING_8H = 0.0001

HOUR_US = 3_600_000_000
UTC_TS = pl.Datetime("us", "UTC")
# funding rates are compared with this slack, so 3 * 0.0001 counts as reaching 0.0003
RATE_EPS = 1e-12
KEEP_RULES = ("first", "largest_lookahead")


def require(panel: pl.DataFrame, cols, who: str) -> None:
    """Raise :class:`EventDetectionError` unless ``panel`` is a polars frame holding ``cols``.

    Parameters
    ----------
    panel : polars.DataFrame
        The frame to check (a panel from ``research.db.query('hourly_panel', ...)``).
    cols : iterable of str
        Columns that must be present.
    who : str
        The caller, named in the message.
    """
    if not isinstance(panel, pl.DataFrame):
        raise EventDetectionError(f"{who}: panel must be a polars DataFrame (from research.db.query"
                                  f"('hourly_panel', ...)), got {type(panel).__name__}")
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise EventDetectionError(
            f"{who}: panel has no column(s) {missing}; pass the panel from "
            f"research.db.query('hourly_panel', ...) (columns: {', '.join(panel.columns)})")
    if "ts" in panel.columns and not isinstance(panel.schema["ts"], pl.Datetime):
        raise EventDetectionError(f"{who}: column 'ts' must be a Datetime, got {panel.schema['ts']}")


def positive(name: str, value, who: str, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is None or a finite positive (or, with ``allow_zero``, >= 0) number."""
    if value is None:
        return
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        raise EventDetectionError(f"{who}: parameter {name}={value!r} must be a positive number")


def check_keep(keep: str, who: str) -> None:
    """Raise unless ``keep`` is a known de-clustering rule (``'largest'`` is named as look-ahead)."""
    if keep == "largest":
        raise EventDetectionError(f"{who}: keep='largest' chooses with future data; say so with "
                                  "keep='largest_lookahead', or use the causal keep='first'")
    if keep not in KEEP_RULES:
        raise EventDetectionError(f"{who}: keep={keep!r}; use one of {', '.join(KEEP_RULES)}")


def symbol_of(panel: pl.DataFrame, symbol: str | None) -> str:
    """The instrument for the event table: ``symbol`` or the panel's first non-null ``symbol``."""
    if symbol is not None:
        return symbol
    if "symbol" in panel.columns and panel.height:
        s = panel["symbol"].drop_nulls()
        if s.len():
            return str(s[0])
    return "UNKNOWN"


def sorted_panel(panel: pl.DataFrame) -> pl.DataFrame:
    """The panel in time order (a no-op when it already is)."""
    return panel.sort("ts") if not panel["ts"].is_sorted() else panel


def bar_hours(panel: pl.DataFrame) -> float:
    """Bar length of a panel in hours, inferred from ``ts`` (the most common step between rows).

    Parameters
    ----------
    panel : polars.DataFrame
        A panel with a sorted or unsorted datetime column ``ts``; 1h, 4h and 1d panels all work.

    Returns
    -------
    float
        The modal positive difference between consecutive ``ts`` in hours; 1.0 when the panel has
        fewer than two distinct times (nothing to infer from).
    """
    if panel.height < 2:
        return 1.0
    t = np.unique(panel["ts"].dt.epoch("us").to_numpy())
    d = np.diff(t)
    d = d[d > 0]
    if d.size == 0:
        return 1.0
    vals, counts = np.unique(d, return_counts=True)
    return float(vals[np.argmax(counts)]) / HOUR_US


def hours_to_bars(hours: float, bar_h: float) -> int:
    """``hours`` as a whole number of bars of ``bar_h`` hours (at least one)."""
    return max(1, int(round(float(hours) / bar_h)))


def pct_change(a: str, b: str) -> pl.Expr:
    """Percent change from column ``a`` to column ``b``."""
    return 100.0 * (pl.col(b) / pl.col(a) - 1.0)


def hours_between(a: str, b: str) -> pl.Expr:
    """Clock hours from datetime column ``a`` to ``b``."""
    return (pl.col(b) - pl.col(a)).dt.total_minutes() / 60.0


def clusters(t_us: np.ndarray, gap_us: int) -> np.ndarray:
    """Cluster ids of sorted times: a new cluster starts where the step to the previous time is >= gap."""
    if t_us.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.r_[0, np.cumsum(np.diff(t_us) >= gap_us)].astype(np.int64)


def decluster(events: pl.DataFrame, min_spacing_hours: float | None, ts_col: str = "ts", *,
              keep: str = "first", score: str | None = None) -> pl.DataFrame:
    """Keep events at least ``min_spacing_hours`` apart.

    Parameters
    ----------
    events : polars.DataFrame
        Candidate events with a datetime column ``ts_col``.
    min_spacing_hours : float or None
        Minimum distance between kept events; ``None`` or ``0`` keeps all.
    ts_col : str
        The time column.
    keep : {"first", "largest_lookahead"}
        ``"first"`` (causal): greedy in time order; an event less than the spacing after the previous
        *kept* event is dropped, so whether an event is kept is known at its own time.
        ``"largest_lookahead"``: within each cluster (events chained by steps shorter than the
        spacing) keep the largest ``score`` by non-maximum suppression. This choice uses data up to
        the cluster's end; the returned frame gets ``choice_known_ts`` = last member of the cluster
        + the spacing, the first time at which the choice is final.
    score : str, optional
        Column ranking events for ``keep="largest_lookahead"``.

    Returns
    -------
    polars.DataFrame
        The kept events in time order (plus ``choice_known_ts`` for ``largest_lookahead``).

    Notes
    -----
    The loop runs over candidate events only (tens to hundreds), never over bars.
    """
    check_keep(keep, "decluster")
    if keep == "largest_lookahead" and (score is None or score not in events.columns):
        raise EventDetectionError(f"decluster: keep='largest_lookahead' needs a score column, got score={score!r}")
    events = events.sort(ts_col)
    if keep == "largest_lookahead":
        events = events.with_columns(pl.col(ts_col).alias("choice_known_ts"))
    if events.height == 0 or not min_spacing_hours:
        return events
    t = events[ts_col].dt.epoch("us").to_numpy()
    gap = int(round(float(min_spacing_hours) * HOUR_US))
    kept = np.zeros(len(t), dtype=bool)
    if keep == "first":
        last = None
        for i, ti in enumerate(t):
            if last is None or ti - last >= gap:
                kept[i] = True
                last = ti
        return events.filter(pl.Series(kept))
    s = events[score].cast(pl.Float64).fill_null(-np.inf).to_numpy()
    alive = np.ones(len(t), dtype=bool)
    for i in np.argsort(-s, kind="stable"):
        if alive[i]:
            kept[i] = True
            alive &= np.abs(t - t[i]) >= gap
    # NMS inside a cluster depends only on its members: the choice is final one spacing after the last
    cid = clusters(t, gap)
    last_t = pl.Series(t).to_frame("t").with_columns(pl.Series("c", cid)).group_by("c").agg(pl.col("t").max())
    end = dict(zip(last_t["c"].to_list(), last_t["t"].to_list()))
    known = np.array([end[c] + gap for c in cid], dtype=np.int64)
    events = events.with_columns(pl.Series("choice_known_ts", known).cast(pl.Datetime("us"))
                                 .dt.replace_time_zone(events.schema[ts_col].time_zone))
    return events.filter(pl.Series(kept))


def finish(events: pl.DataFrame, kind: str, symbol: str, first_cols) -> pl.DataFrame:
    """Number the events and put ``event_id, ts, symbol, asset, kind, *first_cols`` first."""
    events = events.sort("ts").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("event_id"),
        pl.lit(symbol).alias("symbol"),
        pl.lit(symbol).alias("asset"),
        pl.lit(kind).alias("kind"),
    )
    head = ["event_id", "ts", "symbol", "asset", "kind", *first_cols]
    return events.select(head + [c for c in events.columns if c not in head])


def first_after(events: pl.DataFrame, series: pl.DataFrame, *, after: str, level: str, value: str,
                alias: str, until: str | None = None) -> pl.DataFrame:
    """Per event (``_eid``): first ts > ``events[after]`` with ``series[value] >= events[level]``."""
    s = series.select(pl.col("ts").alias("_t"), pl.col(value).alias("_v")).drop_nulls()
    conds = [pl.col("_t") > pl.col(after), pl.col("_v") >= pl.col(level)]
    if until is not None:
        conds.append(pl.col("_t") <= pl.col(until))
    cols = ["_eid", after, level] + ([until] if until else [])
    j = events.select(cols).join_where(s, *conds)
    out = j.group_by("_eid").agg(pl.col("_t").min().alias(alias))
    return events.join(out, on="_eid", how="left")


def sum_between(ev: pl.DataFrame, df: pl.DataFrame, lo: str, hi: str, cols: list[str]) -> pl.DataFrame:
    """Per event (``_eid``), sums of ``cols`` over panel rows with ts in (lo, hi]; null if none observed."""
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


def label_clusters(ev: pl.DataFrame, min_spacing_hours: float | None, keep: str = "all", *,
                   score: str | None = None) -> pl.DataFrame:
    """Record clusters of legs; keep all of them, or the largest ``score`` per cluster (look-ahead).

    Parameters
    ----------
    ev : polars.DataFrame
        Legs with ``_eid``, ``detected_ts``, ``trough_detected_ts`` and ``complete``, in time order.
    min_spacing_hours : float or None
        A leg detected less than this after the previous one joins its cluster.
    keep : {"all", "largest_lookahead"}
        ``"all"``: nothing dropped. ``"largest_lookahead"``: the largest ``score`` per cluster, with
        ``choice_known_ts`` = when the choice is final (null while the cluster is still open).
    score : str, optional
        Column ranking legs for ``largest_lookahead``.

    Returns
    -------
    polars.DataFrame
        ``ev`` with ``cluster_id, cluster_size, keep, lookahead`` (and ``choice_known_ts``).
    """
    t = ev["detected_ts"].dt.epoch("us").to_numpy()
    gap = int(round(float(min_spacing_hours) * HOUR_US)) if min_spacing_hours else 0
    cid = clusters(t, gap) if gap else np.arange(t.size, dtype=np.int64)
    ev = ev.with_columns(pl.Series("cluster_id", cid, dtype=pl.Int64),
                         pl.lit(keep).alias("keep"), pl.lit(keep != "all").alias("lookahead"))
    ev = ev.with_columns(pl.len().over("cluster_id").cast(pl.Int64).alias("cluster_size"))
    if keep == "all":
        return ev
    # the largest leg of a cluster is known once the cluster is closed (one spacing after its last
    # detection) and every member's trough is confirmed
    ev = ev.with_columns(
        pl.when(pl.col("complete").all().over("cluster_id"))
        .then(pl.max_horizontal(pl.col("detected_ts").max().over("cluster_id") + pl.duration(microseconds=gap),
                                pl.col("trough_detected_ts").max().over("cluster_id")))
        .alias("choice_known_ts"))
    return (ev.sort(["cluster_id", score, "_eid"], descending=[False, True, False], nulls_last=True)
            .unique("cluster_id", keep="first", maintain_order=True).sort("_eid"))
