"""One export file + its mapping -> a validated canonical frame (nothing is written here).

Order of work: caps (size, line length, rows) -> read every cell as text -> time column (one
format, zone, label shift) -> dates within bounds -> value columns (unit, numbers, whole numbers,
non-negative) -> funding plausibility -> window -> coin-to-USD conversion (kept rows only) -> key
duplicates -> schema validation. The first problem raises a one-line :class:`~research.errors.ImportMappingError`
naming file, column and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from research.errors import ImportMappingError, SchemaError
from research.schema import get_table, validate

from . import checks
from .checks import Bounds, Limits
from .convert import Conversion, convert_coins
from .mapping import COLUMN_UNITS, CONVERTIBLE, UNITS, Mapping
from .reading import clean_numbers, is_no_data, read_table
from .times import TABLE_TIME, parse_time, shift


@dataclass
class Parsed:
    """A parsed export: the canonical rows and how coin columns were converted."""

    table: str
    frame: pl.DataFrame
    conversions: list[Conversion] = field(default_factory=list)


def _window(df: pl.DataFrame, time_col: str, start: date | None, end: date | None) -> pl.DataFrame:
    if start is None and end is None:
        return df
    c = pl.col(time_col)
    d = c if df.schema[time_col] == pl.Date else c.dt.date()
    if start is not None:
        df = df.filter(d >= start)
    if end is not None:
        df = df.filter(d <= end)
    return df


def _value(raw: pl.DataFrame, target: str, spec, t, origin: str) -> tuple[pl.Series, str]:
    if target not in t.polars_schema:
        raise ImportMappingError(f"{origin}: table {t.name!r} has no column {target!r}; columns: {t.names}")
    default, allowed = COLUMN_UNITS.get(target, ("text", {"text"}))
    unit = spec.unit or default
    if unit is None:
        raise ImportMappingError(f"{origin}: value {target!r} (from {spec.column!r}) needs a unit: one of "
                                 f"{sorted(allowed)} (e.g. percent if 0.01 means 0.01 %)")
    if unit not in UNITS:
        raise ImportMappingError(f"{origin}: unknown unit {unit!r} for {target!r}; units: {', '.join(UNITS)}")
    if unit not in allowed:
        raise ImportMappingError(f"{origin}: {target!r} cannot take unit {unit!r}; allowed: {sorted(allowed)}")
    s, lines = raw[spec.column], raw["__line"]
    if UNITS[unit] is None:
        return s.cast(pl.String).str.strip_chars(), unit
    v = clean_numbers(s.cast(pl.String)) if s.dtype == pl.String else s.cast(pl.Float64)
    bad = (v.is_null() & ~is_no_data(s)) | ~v.is_finite().fill_null(True)
    if bad.any():
        i = int(bad.arg_max())
        raise ImportMappingError(f"{origin}, column {spec.column!r}, line {lines[i]}: {s[i]!r} is not a number")
    col = t.column(target)
    if not col.nullable and v.null_count():
        i = int(v.is_null().arg_max())
        raise ImportMappingError(f"{origin}, column {spec.column!r}, line {lines[i]}: no value "
                                 f"({s[i]!r}) but {t.name}.{target} is required")
    v = v * UNITS[unit]
    checks.check_non_negative(target, v, s, lines, origin, spec.column)
    if col.dtype.is_integer():
        frac = (v - v.round(0)).abs() > 1e-9
        if frac.any():
            i = int(frac.arg_max())
            raise ImportMappingError(f"{origin}, column {spec.column!r}, line {lines[i]}: {s[i]!r} is not a whole number")
        if (v.abs() > 2**53).any():
            i = int((v.abs() > 2**53).arg_max())
            raise ImportMappingError(f"{origin}, column {spec.column!r}, line {lines[i]}: {s[i]!r} is too large")
        v = v.round(0).cast(pl.Int64)
    return v, unit


def _dedupe(df: pl.DataFrame, key: list[str], t, origin: str) -> pl.DataFrame:
    dups = df.filter(pl.struct(key).is_duplicated())
    if not dups.height:
        return df
    values = [c for c in df.columns if c not in key and c != "__line"]
    agg = pl.max_horizontal(pl.col(values).n_unique()).alias("__n") if values else pl.len().alias("__n")
    conflicting = dups.group_by(key).agg(agg, pl.col("__line").min().alias("__a"), pl.col("__line").max().alias("__b"))
    if values:
        conflicting = conflicting.filter(pl.col("__n") > 1)
    if conflicting.height:
        r = conflicting.sort("__a").row(0, named=True)
        raise ImportMappingError(f"{origin}: lines {r['__a']} and {r['__b']} give different values for the same "
                                 f"{t.name} key ({', '.join(f'{k}={r[k]}' for k in key)}); which one is right?")
    return df.unique(subset=key, keep="first", maintain_order=True)


def parse_export(path: str | Path, mapping: Mapping, *, start: date | None = None, end: date | None = None,
                 bars: pl.DataFrame | None = None, limits: Limits | None = None,
                 bounds: Bounds | dict | None = None) -> Parsed:
    """Read ``path`` with ``mapping`` into validated canonical rows plus the conversions used.

    Parameters
    ----------
    path : path
        CSV or Parquet export.
    mapping : Mapping
    start, end : date, optional
        Keep only rows inside this inclusive window (applied after every check).
    bars : polars.DataFrame, optional
        Bars to take prices from when coin columns are converted to USD (see :mod:`.convert`).
    limits : Limits, optional
        Caps on the file (default :class:`Limits`).
    bounds : Bounds or dict, optional
        Plausibility bounds, or overrides of the defaults; the mapping's ``bounds`` apply first.

    Raises
    ------
    ImportMappingError
        With the file, column and line of the first problem.
    SchemaError
        When mapped rows break a table rule (names the row and file line).
    """
    try:
        return _parse_export(Path(path), mapping, start, end, bars, limits, bounds)
    except pl.exceptions.PolarsError as e:  # a column type the rules above did not foresee (nested, binary...)
        raise ImportMappingError(f"{Path(path).name}: cannot be mapped ({str(e).splitlines()[0][:200]}); "
                                 "are the mapped columns plain text or numbers?") from None


def _parse_export(path: Path, mapping: Mapping, start, end, bars, limits, bounds) -> Parsed:
    origin, m = path.name, mapping
    t = get_table(m.table)
    if m.table not in TABLE_TIME:
        raise ImportMappingError(f"table {m.table!r} cannot be imported")
    limits = limits or Limits()
    b = checks.with_overrides(Bounds, Bounds(), m.bounds, "bound")
    b = bounds if isinstance(bounds, Bounds) else checks.with_overrides(Bounds, b, bounds, "bound")
    if m.format == "farside":
        from research.sources import etf

        if not path.is_file():
            raise ImportMappingError(f"{path}: no such file")
        if path.stat().st_size > limits.max_file_bytes:
            raise ImportMappingError(f"{origin}: larger than the {limits.max_file_bytes:,}-byte cap")
        df = etf.read_table(path, source=m.constants.get("source", etf.SOURCE))
        # etf.read_table keeps the file's row order below its header line, so row i is line i + 2
        checks.check_dates(df["date"], pl.Series(range(2, df.height + 2)), b, origin, "Date")
        return Parsed(t.name, _window(validate(t, df, origin=origin), t.time_col, start, end))
    raw = read_table(path, m.format, limits)
    if not m.time_column:
        raise ImportMappingError(f"{origin}: the mapping must name the time column (time.column)")
    needed = [m.time_column, *(v.column for v in m.values.values())]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise ImportMappingError(f"{origin}: column(s) {missing} not in the file; it has {[c for c in raw.columns if c != '__line']}")
    if m.skip_values:
        raw = raw.filter(~raw[m.time_column].cast(pl.String).str.strip_chars().is_in(m.skip_values))
    if m.drop_last_rows:
        raw = raw.head(max(raw.height - m.drop_last_rows, 0))
    out: dict[str, pl.Series] = {}
    time_col = t.time_col
    if time_col == "date":
        d = parse_time(raw, m, origin, naive_ok=True)
        out["date"] = d.dt.date()
    else:
        out["ts"] = shift(parse_time(raw, m, origin), m, origin)
    checks.check_dates(out[time_col], raw["__line"], b, origin, m.time_column)
    base_cols, units = {}, {}
    for target, spec in m.values.items():
        out[target], units[target] = _value(raw, target, spec, t, origin)
        if units[target] == "base" and target in CONVERTIBLE:
            base_cols[target] = spec.column
    for k, val in m.constants.items():
        if k not in t.polars_schema:
            raise ImportMappingError(f"{origin}: constant {k!r} is not a column of {t.name!r}; columns: {t.names}")
        if k in out:
            raise ImportMappingError(f"{origin}: {k!r} is both a constant and a value column")
        out[k] = pl.Series(k, [val] * raw.height)
    df = pl.DataFrame(out).with_columns(raw["__line"])
    if "rate" in m.values:  # every row is checked, also those outside the window
        checks.check_funding(df, df["__line"], b, origin, m.values["rate"].column, units.get("rate"))
    # only rows that are kept need a price
    keep = _window(df.with_row_index("__row"), time_col, start, end)["__row"]
    df, convs = convert_coins(df[keep], raw[keep], m, origin, base_cols, bars)
    key = list(t.key)
    miss_key = [k for k in key if k not in df.columns]
    if miss_key:
        raise ImportMappingError(f"{origin}: the mapping gives no value for key column(s) {miss_key} of {t.name!r} "
                                 "(add them as constants or value columns)")
    df = _dedupe(df, key, t, origin)
    lines = df["__line"]
    try:
        return Parsed(t.name, validate(t, df.drop("__line"), origin=origin), convs)
    except SchemaError as e:
        m_row = re.search(r"row (\d+)", str(e))
        if m_row and int(m_row.group(1)) < len(lines):
            raise SchemaError(f"{e} [file line {lines[int(m_row.group(1))]}]") from None
        raise


def parse_file(path: str | Path, mapping: Mapping, *, start: date | None = None, end: date | None = None,
               **kwargs) -> pl.DataFrame:
    """Read ``path`` with ``mapping`` into a validated canonical frame (see :func:`parse_export`)."""
    return parse_export(path, mapping, start=start, end=end, **kwargs).frame
