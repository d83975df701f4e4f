"""Time cells -> UTC instants (or dates), and time labels -> the table's convention.

Text times are read with **one** format per column: the mapping's ``time.format``, or the first
of the ISO forms that reads every cell. ``01/02/2025``-style dates are refused unless the mapping
says ``dayfirst: true`` or ``false`` (or gives the format); a zone abbreviation such as ``PST`` is
refused (it names several zones) with a hint to use an offset or ``time.timezone``; an invalid
calendar date (``2025-02-30``) is reported with its line.
"""
from __future__ import annotations

import re
from datetime import timedelta

import polars as pl

from research.errors import ImportMappingError
from research.schema import INTERVALS

from .mapping import Mapping

# which instant the table's time column stands for
TABLE_TIME = {"bars": "start", "liquidations": "start", "open_interest": "end", "positioning": "end",
              "funding": "instant", "liquidation_orders": "instant", "etf_flows": "date", "sentiment": "date"}
ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f",
               "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M%z", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_DMY = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(.*)$")
_ABBREV = re.compile(r"\s([A-Za-z]{2,5})\s*$")


def _line(lines: pl.Series, i: int) -> int:
    return int(lines[i])


def _slash_formats(sep: str, dayfirst: bool, rest: str) -> list[str]:
    d = f"%d{sep}%m{sep}%Y" if dayfirst else f"%m{sep}%d{sep}%Y"
    if not rest.strip():
        return [d]
    return [f"{d} %H:%M:%S%.f", f"{d} %H:%M", f"{d}T%H:%M:%S%.f"]


def _first_bad(parsed: pl.Series, txt: pl.Series) -> int | None:
    bad = parsed.is_null() & txt.is_not_null()
    return int(bad.arg_max()) if bad.any() else None


def _explain(cell: str) -> str:
    m = _ABBREV.search(cell)
    if m and m.group(1).upper() not in ("T", "Z", "UTC", "GMT"):
        return (f"the zone abbreviation {m.group(1)!r} is ambiguous (it names several zones); export with an offset "
                "like -08:00, or drop it and name time.timezone (e.g. America/Los_Angeles)")
    if _DMY.match(cell):
        return ("day/month order is ambiguous; say which in the mapping (time.dayfirst: true for 01/02/2025 = "
                "1 Feb, false for 2 Jan) or give time.format")
    if re.match(r"^\s*\d{4}-\d{2}-\d{2}", cell):
        return "not a valid calendar date or time"
    return "not an ISO time (give time.format, e.g. '%d %b %Y')"


def parse_text_times(txt: pl.Series, m: Mapping, origin: str, col: str, lines: pl.Series) -> pl.Series:
    """Text cells -> naive or zone-aware Datetime("us") with one format for the whole column."""
    fmt = (m.time_format or "").strip()
    if txt.null_count():
        i = int(txt.is_null().arg_max())
        raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, i)}: empty time cell")
    if fmt and fmt != "iso":
        try:
            parsed = txt.str.to_datetime(fmt, time_unit="us", strict=False)
        except (pl.exceptions.PolarsError, ValueError) as e:  # an invalid strftime pattern
            raise ImportMappingError(f"{origin}, column {col!r}: time format {fmt!r} is invalid "
                                     f"({str(e).splitlines()[0]})") from None
        i = _first_bad(parsed, txt)
        if i is not None:
            raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, i)}: {txt[i]!r} cannot be read as a "
                                     f"time with format {fmt!r} (invalid date, or another layout)")
        return parsed
    txt = txt.str.replace(r"(\d)Z$", "${1}+00:00")  # RFC 3339 'Z' = UTC, which %z does not read
    first = txt[0] if txt.len() else ""
    dmy = _DMY.match(first or "")
    if dmy and m.dayfirst is not None:
        formats = _slash_formats(dmy.group(2), m.dayfirst, dmy.group(5))
    elif dmy:
        raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, 0)}: {first!r}: {_explain(first)}")
    else:
        formats = list(ISO_FORMATS)
    best, best_bad = None, None
    for f in formats:
        try:
            cand = txt.str.to_datetime(f, time_unit="us", strict=False)
        except (pl.exceptions.PolarsError, ValueError):  # a format that does not apply to this column
            continue
        i = _first_bad(cand, txt)
        if i is None:
            return cand
        n_ok = cand.len() - cand.null_count()
        if n_ok and (best is None or n_ok > best[0]):
            best, best_bad = (n_ok, f), i
    i = best_bad if best_bad is not None else 0
    raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, i)}: {txt[i]!r} cannot be read as a time "
                             f"({_explain(txt[i])})")


def _offset(tz: str) -> timedelta | None:
    m = re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", tz.strip())
    if not m:
        return None
    sign = 1 if m.group(1) == "+" else -1
    return sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))


def _epoch(s: pl.Series, fmt: str, m: Mapping, origin: str, col: str, lines: pl.Series) -> pl.Series:
    n = s if s.dtype.is_integer() else s.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
    bad = n.is_null()
    if bad.any():
        i = int(bad.arg_max())
        raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, i)}: {s[i]!r} is not an epoch integer")
    if fmt in ("", "epoch"):
        us = pl.select(pl.when(n >= 10**17).then(n // 1000).when(n >= 10**14).then(n)
                       .when(n >= 10**11).then(n * 1000).otherwise(n * 10**6)).to_series()
    elif fmt == "epoch_ns":
        us = n // 1000
    elif fmt in ("epoch_s", "epoch_ms", "epoch_us"):
        scale = {"epoch_s": 10**6, "epoch_ms": 10**3, "epoch_us": 1}[fmt]
        too = n.abs() > (2**63 - 1) // scale // 1000  # would overflow; plausibility is checked by the bounds later
        if too.any():
            i = int(too.arg_max())
            raise ImportMappingError(f"{origin}, column {col!r}, line {_line(lines, i)}: {s[i]!r} is too large for "
                                     f"{fmt} (wrong epoch unit?)")
        us = n * scale
    else:
        raise ImportMappingError(f"time format {fmt!r}: use epoch, epoch_s, epoch_ms, epoch_us or epoch_ns")
    if m.timezone and m.timezone.upper() not in ("UTC", "Z", "GMT", "ETC/UTC"):
        raise ImportMappingError(f"{origin}, column {col!r}: epoch times are UTC by definition; "
                                 f"the mapping says timezone {m.timezone!r}")
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def parse_time(df: pl.DataFrame, m: Mapping, origin: str, *, naive_ok: bool = False) -> pl.Series:
    """The mapping's time column -> ``Datetime("us", "UTC")`` (or naive when ``naive_ok`` and no zone).

    Raises
    ------
    ImportMappingError
        With file, column and line of the first cell that cannot be read or placed in its zone.
    """
    col = m.time_column
    s, lines = df[col], df["__line"]
    fmt = (m.time_format or "").strip()
    if fmt.startswith("epoch") or s.dtype.is_integer() or s.dtype.is_float():
        return _epoch(s, fmt, m, origin, col, lines)
    if s.dtype == pl.Date or isinstance(s.dtype, pl.Datetime):
        parsed = s.cast(pl.Datetime("us")) if s.dtype == pl.Date else s.dt.cast_time_unit("us")
    else:
        parsed = parse_text_times(s.cast(pl.String).str.strip_chars(), m, origin, col, lines)
    if parsed.dtype.time_zone is not None:  # type: ignore[union-attr]
        return parsed.dt.convert_time_zone("UTC")
    if naive_ok and not m.timezone:
        return parsed
    if not m.timezone:
        raise ImportMappingError(f"{origin}, column {col!r}: times like {s[0]!r} carry no time zone; name it in "
                                 "the mapping (time.timezone: UTC, or e.g. Europe/London or +03:00)")
    off = _offset(m.timezone)
    if off is not None:
        return (parsed - off).dt.replace_time_zone("UTC")
    try:
        return parsed.dt.replace_time_zone(m.timezone, ambiguous="raise", non_existent="raise").dt.convert_time_zone("UTC")
    except (pl.exceptions.PolarsError, ValueError) as e:  # unknown zone name, or a DST gap/overlap
        msg = str(e).splitlines()[0][:160]
        raise ImportMappingError(f"{origin}, column {col!r}: times cannot be placed in time zone {m.timezone!r} "
                                 f"({msg}); an ambiguous or non-existent local time (DST change) needs a UTC export") from None


def shift(ts: pl.Series, m: Mapping, origin: str) -> pl.Series:
    """Move labelled times to the table's convention (bucket start, observation instant)."""
    want = TABLE_TIME[m.table]
    label = m.label
    if label not in ("start", "end", "instant"):
        raise ImportMappingError(f"time label must be start, end or instant, not {label!r}")
    if want == label or (want == "end" and label == "instant") or (want == "instant" and label == "end"):
        return ts
    if want == "start" and label == "instant":
        raise ImportMappingError(f"{origin}: table {m.table!r} is bucketed (ts = bucket start) but the mapping "
                                 "says the time is an instant; say whether it marks the bucket start or end")
    step = timedelta(seconds=INTERVALS[bucket_of(m, origin, f"to move {label}-labelled times to the table's {want} convention")])
    return ts - step if want == "start" else ts + step


def bucket_of(m: Mapping, origin: str, why: str) -> str:
    """The export's bucket interval (``bucket`` or the ``interval`` constant)."""
    bucket = m.bucket or m.constants.get("interval")
    if bucket not in INTERVALS:
        raise ImportMappingError(f"{origin}: {why} the mapping needs the bucket interval (bucket: 4h or "
                                 f"constants.interval), got {bucket!r}")
    return bucket
