"""What the lake holds: per table and series, the span, row count, interval and gaps.

A *series* is one (table, source, venue, symbol[, market], interval) combination. Gaps are expected
timestamps that are missing on the series' own grid (funding: its ``interval_hours``; bars, OI,
liquidations, positioning: ``interval``; sentiment: days; ETF flows: weekdays, so US market holidays
show up as gaps). Gaps are reported, never filled.
"""
from __future__ import annotations

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


def _series_row(table: str, info: dict, s: pl.DataFrame) -> dict:
    t = s["t"].unique().sort()
    rows = s.height
    venue = info.get("venue") or info.get("product") or info.get("index") or ""
    symbol = info.get("symbol") or ""
    if table == "bars":
        symbol = f"{symbol} ({info['market']})"
    if table == "funding":
        interval = f"{info['interval_hours']}h"
        step = int(info["interval_hours"]) * 3600
    elif "interval" in info:
        interval = info["interval"]
        step = INTERVALS.get(interval)
    elif table in ("etf_flows", "sentiment"):
        interval, step = "1d", 86400
    else:
        interval, step = "irregular", None
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
