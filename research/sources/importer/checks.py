"""Limits on what is read and plausibility bounds on what is imported; each named and overridable.

:class:`Limits` guard the reader (file size, line length, rows): a file is measured and scanned
in fixed-size chunks **before** it is parsed, so a 1 GB one-line CSV is refused with the file
and line while using a few MB of memory.

:class:`Bounds` guard the values:

* funding ``|rate| <= funding_max_8h`` (default 0.5 % per 8 h), scaled in proportion to each
  settlement's ``interval_hours`` but never below ``funding_min_bound`` (0.1 % per settlement:
  hourly venues such as dYdX print up to ~0.094 % per hour). A rate of 0.01 labelled decimal
  (1 % per 8 h, 100x a usual rate) is refused with a hint that the file may be in percent;
* dates between ``min_date`` (2009-01-03, the Bitcoin genesis block) and ``max_date`` (default
  tomorrow, UTC);
* volumes, trade counts, open interest and liquidations ``>= 0``.

Overrides come from the mapping (``bounds: {funding_max_8h: 0.02}``) or from the caller
(``import_file(..., bounds={...})``, ``research import --max-funding-8h``); names are checked.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta

import polars as pl

from research.errors import ImplausibleValueError, ImportMappingError
from research.parsing import ParseError, parse_date

NON_NEGATIVE = ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume", "oi_base", "oi_usd",
                "long_usd", "short_usd", "count", "qty", "usd")


@dataclass(frozen=True)
class Limits:
    """Caps on an input file, checked before it is parsed.

    Attributes
    ----------
    max_file_bytes : int
        Largest file read (default 512 MiB).
    max_line_bytes : int
        Longest line of a CSV (default 1 MiB; a dashboard row is well under 1 KB).
    max_rows : int
        Most data rows (default 20 million).
    """

    max_file_bytes: int = 512 << 20
    max_line_bytes: int = 1 << 20
    max_rows: int = 20_000_000


@dataclass(frozen=True)
class Bounds:
    """Plausibility bounds (see the module docstring)."""

    funding_max_8h: float = 0.005
    funding_min_bound: float = 0.001
    min_date: date = date(2009, 1, 3)
    max_date: date | None = None  # None: tomorrow (UTC) at import time

    def funding_bound(self, interval_hours: pl.Expr) -> pl.Expr:
        """Per-row bound on ``|rate|`` for settlements covering ``interval_hours``."""
        scaled = pl.lit(self.funding_max_8h) * interval_hours.cast(pl.Float64) / 8.0
        return pl.max_horizontal(scaled, pl.lit(self.funding_min_bound))

    def last_date(self) -> date:
        """The latest date accepted."""
        return self.max_date or (datetime.now(UTC).date() + timedelta(days=1))


def with_overrides(cls, base, overrides: dict | None, what: str):
    """``base`` (a Limits/Bounds) with ``overrides`` applied; unknown names or bad values are refused."""
    if not overrides:
        return base
    names = {f.name: f for f in fields(cls)}
    clean = {}
    for k, v in overrides.items():
        if k not in names:
            raise ImportMappingError(f"unknown {what} {k!r}; known: {', '.join(names)}")
        if v is None:
            continue
        try:
            if k.endswith("_date"):
                clean[k] = parse_date(v, f"{what} {k}")
            elif names[k].type in ("int", int):
                clean[k] = int(v)
            else:
                clean[k] = float(v)
        except (TypeError, ValueError, ParseError) as e:
            raise ImportMappingError(f"{what} {k}={v!r} is not valid ({e})") from None
    return replace(base, **clean)


def check_dates(ts: pl.Series, lines: pl.Series, bounds: Bounds, origin: str, column: str) -> None:
    """Refuse times before ``bounds.min_date`` or after ``bounds.last_date()``, naming the line."""
    d = ts.dt.date() if ts.dtype != pl.Date else ts
    lo, hi = bounds.min_date, bounds.last_date()
    bad = (d < lo) | (d > hi)
    if bad.any():
        i = int(bad.arg_max())
        raise ImplausibleValueError(f"{origin}, column {column!r}, line {lines[i]}: {d[i]} is outside {lo}..{hi} "
                                 "(before Bitcoin or in the future: wrong format or epoch unit?); "
                                 "override with bounds min_date/max_date")


def check_non_negative(target: str, v: pl.Series, raw: pl.Series, lines: pl.Series, origin: str, column: str) -> None:
    """Refuse negative volumes, counts, open interest and liquidations, naming the line."""
    if target not in NON_NEGATIVE:
        return
    bad = v.fill_null(0) < 0
    if bad.any():
        i = int(bad.arg_max())
        raise ImplausibleValueError(f"{origin}, column {column!r}, line {lines[i]}: {raw[i]!r} is negative but {target} "
                                 "cannot be")


def check_funding(df: pl.DataFrame, lines: pl.Series, bounds: Bounds, origin: str, column: str, unit: str | None) -> None:
    """Refuse funding rates beyond the per-interval bound, with a percent-vs-decimal hint."""
    if "rate" not in df.columns or "interval_hours" not in df.columns:
        return
    hours = pl.col("interval_hours").fill_null(8)
    bad = df.select((pl.col("rate").abs() > bounds.funding_bound(hours)).fill_null(False)).to_series()
    if not bad.any():
        return
    i = int(bad.arg_max())
    rate, h = df["rate"][i], df["interval_hours"][i] or 8
    limit = max(bounds.funding_max_8h * h / 8, bounds.funding_min_bound)
    hint = ""
    if unit == "decimal" and abs(rate) / 100 <= limit:
        hint = (f"; labelled decimal this is {abs(rate) / 0.0001:,.0f}x the usual 0.01 %: "
                "is the file in percent? (unit: percent)")
    raise ImplausibleValueError(f"{origin}, column {column!r}, line {lines[i]}: funding rate {rate:g} "
                             f"({rate * 100:g} % per {h} h) is beyond the plausible +/-{limit * 100:g} % per {h} h{hint}; "
                             "override with bounds funding_max_8h")
