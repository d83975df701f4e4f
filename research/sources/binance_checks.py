"""Archive rows checked against what their file claims to be, many files at once.

A batch of parsed files is one frame with a file index column ``__f``. In a few vectorised
passes (no Python loop over rows) :func:`check_rows` finds, per file,

* times that are not epoch times, or lie outside the file's own period (its daily or monthly
  name): a monthly 2025-03 file holds only rows with ``2025-03-01 <= t < 2025-04-01``;
* rows breaking a per-row invariant of the dataset (``high >= low``, ``close_time >
  open_time``, non-negative volumes, ...);
* duplicate keys: exact duplicates (same key, same values) are dropped and counted in a
  warning; conflicting duplicates (same key, different values) reject the file, naming the
  lines, because there is no way to know which row is right.

A rejected file loses all its rows (never half a file); the caller reports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

__all__ = ["RowRules", "RULES", "check_rows", "epoch_to_utc", "REFUSED_HINT"]

REFUSED_HINT = ("the archive file contradicts itself; re-running will fetch the same bytes: report it to "
                "binance/binance-public-data and fetch it again with --refresh once it is replaced")


def epoch_to_utc(col: str | pl.Expr) -> pl.Expr:
    """Epoch integers in s/ms/us/ns (decided per value by magnitude) -> ``Datetime(us, UTC)``.

    Values below 1e11 (seconds, or garbage) become null; callers reject nulls.
    """
    t = pl.col(col) if isinstance(col, str) else col
    us = (pl.when(t >= 10**17).then(t // 1000)
          .when(t >= 10**14).then(t)
          .when(t >= 10**11).then(t * 1000)
          .otherwise(None))
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


@dataclass(frozen=True)
class RowRules:
    """What every row of one dataset must satisfy.

    Attributes
    ----------
    time : str
        The epoch time column that must lie inside the file's period.
    key : tuple of str
        Columns unique within a file (empty: only exact duplicates are looked for).
    invariants : tuple of (str, polars.Expr)
        Descriptions and expressions that are True on a *bad* row.
    """

    time: str
    key: tuple[str, ...]
    invariants: tuple[tuple[str, pl.Expr], ...] = ()


def _neg(*cols: str) -> tuple[str, pl.Expr]:
    return f"negative {'/'.join(cols)}", pl.any_horizontal(pl.col(c) < 0 for c in cols)


_PRICE_KLINE = (("high below low", pl.col("high") < pl.col("low")),
                ("close_time not after open_time", pl.col("close_time") <= pl.col("open_time")))
RULES: dict[str, RowRules] = {
    "klines": RowRules("open_time", ("open_time",), (
        *_PRICE_KLINE, _neg("volume", "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume"))),
    "price_klines": RowRules("open_time", ("open_time",), _PRICE_KLINE),
    "fundingRate": RowRules("calc_time", ("calc_time",), (
        ("funding_interval_hours not positive", pl.col("funding_interval_hours") <= 0),)),
    "aggTrades": RowRules("transact_time", ("agg_trade_id",), (
        ("price not positive", pl.col("price") <= 0), _neg("quantity"),
        ("last_trade_id before first_trade_id", pl.col("last_trade_id") < pl.col("first_trade_id")))),
    "liquidationSnapshot": RowRules("time", (), (_neg("original_quantity", "price", "average_price"),)),
}


def _bounds(periods: list[tuple[datetime, datetime]], idx: pl.Series) -> tuple[pl.Series, pl.Series]:
    lo = pl.Series([a for a, _ in periods], dtype=pl.Datetime("us", "UTC")).gather(idx)
    hi = pl.Series([b for _, b in periods], dtype=pl.Datetime("us", "UTC")).gather(idx)
    return lo, hi


def check_rows(df: pl.DataFrame, rules: RowRules, names: list[str], periods: list[tuple[datetime, datetime]],
               first_lines: list[int], warnings: list[str]) -> tuple[pl.DataFrame, dict[int, str]]:
    """Check a batch frame (with file index ``__f``); returns (clean rows, {file index: error}).

    Parameters
    ----------
    df : polars.DataFrame
        Raw parsed rows of several files, in file order, with a ``__f`` (UInt32) column.
    rules : RowRules
    names : list of str
        File names by index (for messages).
    periods : list of (datetime, datetime)
        Each file's period ``[start, end)`` in UTC.
    first_lines : list of int
        Line number of each file's first data row (2 with a header row, else 1).
    warnings : list of str
        Exact-duplicate counts are appended here.
    """
    f = df.get_column("__f")
    ts = df.select(epoch_to_utc(rules.time)).to_series()
    lo, hi = _bounds(periods, f)
    checks = [("time is not an epoch time in ms/us/ns", ts.is_null()),
              ("time outside the file's own period", (ts < lo) | (ts >= hi))]
    if rules.invariants:
        inv = df.select(e.fill_null(False).alias(d) for d, e in rules.invariants)
        checks += [(c, inv.get_column(c)) for c in inv.columns]
    bad = pl.DataFrame([s.alias(f"c{i}") for i, (_, s) in enumerate(checks)]).select(
        pl.any_horizontal(pl.all()).alias("bad")).to_series()
    errors: dict[int, str] = {}
    if bad.any():
        offsets = _offsets(f, len(names))
        rows = pl.DataFrame({"__f": f, "__i": pl.int_range(0, df.height, eager=True), "__t": df.get_column(rules.time),
                             **{f"c{i}": s for i, (_, s) in enumerate(checks)}}).filter(bad)
        for (fi,), grp in rows.group_by("__f", maintain_order=True):
            r = grp.row(0, named=True)
            what = next(d for i, (d, _) in enumerate(checks) if r[f"c{i}"])
            line = r["__i"] - offsets[fi] + first_lines[fi]
            errors[fi] = (f"{names[fi]}, line {line} ({rules.time} {r['__t']}): {what}"
                          + (f" (and {grp.height - 1} more row(s))" if grp.height > 1 else "")
                          + (f"; the file covers {periods[fi][0]:%Y-%m-%d} to {periods[fi][1]:%Y-%m-%d} (exclusive)"
                             if "period" in what else "") + f"; {REFUSED_HINT}")
    df, dup_errors = _duplicates(df, rules, names, first_lines, warnings, set(errors))
    errors.update(dup_errors)
    if errors:
        df = df.filter(~pl.col("__f").is_in(list(errors)))
    return df, errors


def _offsets(f: pl.Series, n: int) -> list[int]:
    counts = f.value_counts().sort("__f")
    out, pos, by = [0] * n, 0, dict(zip(counts["__f"].to_list(), counts["count"].to_list()))
    for i in range(n):
        out[i] = pos
        pos += by.get(i, 0)
    return out


def _duplicates(df, rules, names, first_lines, warnings, skip: set[int]) -> tuple[pl.DataFrame, dict[int, str]]:
    key = list(rules.key)
    if key and len(key) == 1:
        # archive files are sorted by their key: strictly increasing means no duplicates at all
        k = df.get_column(key[0])
        suspect = df.filter(((k.diff() <= 0) & (df["__f"].diff() == 0)).fill_null(False))["__f"].unique().to_list()
    else:
        suspect = df["__f"].unique().to_list()
    suspect = [s for s in suspect if s not in skip]
    if not suspect:
        return df, {}
    offsets = _offsets(df.get_column("__f"), len(names))
    sub = df.with_row_index("__i").filter(pl.col("__f").is_in(suspect))
    values = [c for c in df.columns if c != "__f"]
    errors: dict[int, str] = {}
    keep = []
    for (fi,), grp in sub.group_by("__f", maintain_order=True):
        exact = grp.unique(subset=values, keep="first", maintain_order=True)
        n_exact = grp.height - exact.height
        if key:
            conflict = exact.filter(pl.len().over(key) > 1)
            if conflict.height:
                first = conflict.filter(pl.struct(key) == pl.struct(key).first()).get_column("__i")
                lines = [int(i) - offsets[fi] + first_lines[fi] for i in first.to_list()]
                errors[fi] = (f"{names[fi]}: {conflict.height} rows share a {'/'.join(key)} with different values "
                              f"(first: {key[0]} {conflict[key[0]][0]} on lines {', '.join(map(str, lines[:4]))}); "
                              f"cannot tell which is right; {REFUSED_HINT}")
                continue
        if n_exact:
            warnings.append(f"{names[fi]}: {n_exact:,} exact duplicate row(s) of {grp.height:,} dropped")
        keep.append(exact.drop("__i"))
    rest = df.filter(~pl.col("__f").is_in(suspect))
    return (pl.concat([rest, *keep]) if keep else rest), errors
