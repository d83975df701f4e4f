"""What the lake holds: per table and series, the span, row count, interval and gaps.

A *series* is one (table, source, venue, symbol[, market], interval) combination. Its interval is
detected from its timestamps (the median spacing), not taken from a column: a daily funding series
whose rows say ``interval_hours = 8`` is a 1d series. Gaps are expected timestamps that are missing
on that grid (sentiment: days; ETF flows: weekdays, so US market holidays show up as gaps). Gaps are
reported, never filled.

:func:`panel_coverage` says, for a panel and the inputs an analysis needs, the first and last usable
bar of each input and whether it covers the requested span.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from research import db, lake
from research.schema import INTERVALS, TABLES

MAX_GAPS_LISTED = 5

_SERIES_COLS = {
    "bars": ("source", "venue", "market", "symbol", "interval"),
    "funding": ("source", "venue", "symbol"),
    "open_interest": ("source", "venue", "symbol", "interval"),
    "liquidations": ("source", "venue", "symbol", "interval"),
    "liquidation_orders": ("source", "venue", "symbol"),
    "positioning": ("source", "venue", "symbol", "interval"),
    "etf_flows": ("source", "product"),
    "sentiment": ("source", "index"),
}

COLUMNS = {
    "table": pl.String, "source": pl.String, "venue": pl.String, "symbol": pl.String,
    "interval": pl.String, "rows": pl.Int64, "start": pl.String, "end": pl.String,
    "expected": pl.Int64, "missing": pl.Int64, "gaps": pl.Int64, "largest_gaps": pl.String,
}


def coverage(data_dir=None) -> pl.DataFrame:
    """One row per series in the lake (empty frame when the lake is empty).

    Columns: table, source, venue, symbol, interval, rows, start, end, expected, missing, gaps
    (number of holes), largest_gaps (up to five, as ``first missing .. last missing (n)``).
    """
    out = []
    con = db.connect(data_dir)
    try:
        for name, t in TABLES.items():
            if not lake.table_files(name, data_dir):
                continue
            keys = list(_SERIES_COLS[name])
            cols = ", ".join(f'"{k}"' for k in keys) + (", interval_hours" if name == "funding" else "")
            # Identifiers come from research.schema, not from input; nothing here is user-supplied.
            df = con.sql(f'SELECT {cols}, "{t.time_col}" AS t FROM "{name}"').pl()
            if name == "funding":
                # settlement times carry ms of jitter: put them on the hour grid before comparing
                df = df.with_columns(pl.col("t").dt.truncate("1h"))
            group = keys + (["interval_hours"] if name == "funding" else [])
            for vals, s in df.group_by(group, maintain_order=True):
                info = dict(zip(group, vals))
                out.append(_series_row(name, info, s))
    finally:
        con.close()
    if not out:
        return pl.DataFrame(schema=COLUMNS)
    return pl.DataFrame(out, schema=COLUMNS).sort(["table", "source", "venue", "symbol", "interval"])


def detect_step(t: pl.Series) -> int | None:
    """A series' interval in seconds: the median spacing of its sorted unique timestamps (None if < 2)."""
    t = t.unique().sort()
    if t.len() < 2:
        return None
    secs = t.cast(pl.Int64).diff().drop_nulls() / 1_000_000
    return int(round(float(secs.median())))


def interval_name(secs: int) -> str:
    """``3600`` -> ``"1h"``; a spacing that is no standard interval reads as seconds, e.g. ``"5400s"``."""
    for name, s in INTERVALS.items():
        if s == secs:
            return name
    return f"{secs}s"


def _series_row(table: str, info: dict, s: pl.DataFrame) -> dict:
    t = s["t"].unique().sort()
    rows = s.height
    venue = info.get("venue") or info.get("product") or info.get("index") or ""
    symbol = info.get("symbol") or ""
    if table == "bars":
        symbol = f"{symbol} ({info['market']})"
    if table in ("etf_flows", "sentiment"):
        interval, step = "1d", 86400
    else:
        step = detect_step(t)
        if step is None and table == "funding":
            step = int(info["interval_hours"]) * 3600
        elif step is None and "interval" in info:
            step = INTERVALS.get(info["interval"])
        interval = interval_name(step) if step else "irregular"
    row = {
        "table": table, "source": info["source"], "venue": venue, "symbol": symbol, "interval": interval,
        "rows": rows, "start": str(t.min()), "end": str(t.max()),
        "expected": None, "missing": None, "gaps": None, "largest_gaps": "",
    }
    if step is None or t.len() < 2:
        return row
    if table == "etf_flows":
        t = t.cast(pl.Date)
        full = pl.date_range(t.min(), t.max(), "1d", eager=True)
        full = full.filter(full.dt.weekday() <= 5)
    elif table == "sentiment":
        full = pl.date_range(t.min(), t.max(), "1d", eager=True)
    else:
        full = pl.datetime_range(t.min(), t.max(), f"{step}s", eager=True, time_zone="UTC")
    present = pl.DataFrame({"t": t, "p": True})
    grid = pl.DataFrame({"t": full}).join(present, on="t", how="left").with_columns(pl.col("p").fill_null(False))
    missing = grid.filter(~pl.col("p"))
    runs = (
        grid.with_columns(run=(pl.col("p") != pl.col("p").shift(1)).fill_null(True).cum_sum())
        .filter(~pl.col("p"))
        .group_by("run")
        .agg(first=pl.col("t").min(), last=pl.col("t").max(), n=pl.len())
        .sort("n", descending=True)
    )
    row.update(
        expected=grid.height,
        missing=missing.height,
        gaps=runs.height,
        largest_gaps="; ".join(f"{r['first']} .. {r['last']} ({r['n']})" for r in runs.head(MAX_GAPS_LISTED).to_dicts()),
    )
    return row


def unlisted(data_dir=None) -> list[str]:
    """One line per file under ``lake/`` that no table log lists (stray, orphan or older layout)."""
    from research.lake.verify import unlisted_files

    return [f"{p.path} ({p.kind}: {p.detail})" for p in unlisted_files(data_dir)]


#: panel input -> (the column that says a row has it usable, the label in the panel's ``inputs``)
PANEL_INPUTS = {
    "price": ("close", "price"), "perp": ("has_perp", "perp"), "spot": ("has_spot", "spot"),
    "funding": ("has_funding", "funding"), "oi": ("has_oi", "oi"),
    "liquidations": ("has_liq", "liquidations"), "positioning": ("has_positioning", "positioning"),
    "etf_flows": ("etf_flow_usd", "etf"), "fear_greed": ("fear_greed", "fear_greed"),
}

PANEL_COVERAGE_COLUMNS = {
    "input": pl.String, "series": pl.String, "first": pl.Datetime("us", "UTC"), "last": pl.Datetime("us", "UTC"),
    "usable_bars": pl.Int64, "requested_start": pl.Datetime("us", "UTC"), "requested_end": pl.Datetime("us", "UTC"),
    "covered": pl.Boolean,
}


def _utc(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    else:
        d = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def panel_coverage(panel: pl.DataFrame, required=("price",), start=None, end=None) -> pl.DataFrame:
    """First and last usable bar of each required input of a panel, and whether it covers the span.

    Parameters
    ----------
    panel : polars.DataFrame
        A ``panel`` / ``hourly_panel`` / ``daily_panel`` result (``ts`` or ``date`` rows).
    required : iterable of str
        Inputs the analysis needs, from :data:`PANEL_INPUTS` (``price``, ``perp``, ``spot``,
        ``funding``, ``oi``, ``liquidations``, ``positioning``, ``etf_flows``, ``fear_greed``).
    start, end : date, datetime or ISO string, optional
        The requested span (end exclusive); default: the panel's first row and the end of its last.

    Returns
    -------
    polars.DataFrame
        One row per input: ``input``, ``series`` (the chosen series from the panel's ``inputs``),
        ``first``/``last`` (open of the first and last bar where the input is usable; null when it
        never is), ``usable_bars``, ``requested_start``/``requested_end`` and ``covered`` (the
        usable bars reach from the requested start to the requested end; gaps inside are not judged).
    """
    unknown = [r for r in required if r not in PANEL_INPUTS]
    if unknown:
        raise ValueError(f"panel_coverage: unknown input(s) {unknown}; known: {', '.join(PANEL_INPUTS)}")
    tcol = "ts" if "ts" in panel.columns else "date"
    ts = panel[tcol].cast(pl.Datetime("us", "UTC")) if panel.height else pl.Series(tcol, [], pl.Datetime("us", "UTC"))
    step = detect_step(ts) if ts.len() >= 2 else None
    bar = dt.timedelta(seconds=step or (86400 if tcol == "date" else 3600))
    lo = _utc(start) or (ts.min() if ts.len() else None)
    hi = _utc(end) or (ts.max() + bar if ts.len() else None)
    inputs = dict(part.split("=", 1) for part in (panel["inputs"][0].split("; ") if panel.height and "inputs" in panel.columns
                                                    and panel["inputs"][0] else []) if "=" in part)
    rows = []
    for name in required:
        col, label = PANEL_INPUTS[name]
        ok = panel[col] if col in panel.columns else pl.Series([None] * panel.height)
        ok = ok.fill_null(False) if ok.dtype == pl.Boolean else ok.is_not_null()
        usable = ts.filter(ok) if panel.height else ts
        first, last = (usable.min(), usable.max()) if usable.len() else (None, None)
        covered = bool(first is not None and lo is not None and first <= lo + bar and last + bar >= hi)
        series = inputs.get(label) if name != "price" else inputs.get("price")
        rows.append(dict(input=name, series=series, first=first, last=last, usable_bars=usable.len(),
                         requested_start=lo, requested_end=hi, covered=covered))
    return pl.DataFrame(rows, schema=PANEL_COVERAGE_COLUMNS)
