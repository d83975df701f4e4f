"""Reading an export file safely: caps checked before parsing, every cell kept as text.

The file's size is checked with ``stat`` and a CSV is scanned in 1 MiB chunks (NUL bytes, line
lengths, row count) before polars reads it, so memory stays bounded by the caps in
:class:`~research.sources.importer.checks.Limits` whatever the file holds.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import polars as pl

from research.errors import ImportMappingError, InputLimitError

from .checks import Limits

_CHUNK = 1 << 20
NO_DATA = {"", "-", "\u2013", "\u2014", "n/a", "na", "nan", "null", "none"}


def is_parquet(path: Path, fmt: str) -> bool:
    """Whether ``path`` is read as Parquet (``fmt`` auto decides by suffix)."""
    return fmt == "parquet" or (fmt == "auto" and path.suffix.lower() in (".parquet", ".pq"))


def scan_csv(path: Path, limits: Limits) -> int:
    """Check a CSV's size, bytes and line lengths without holding it; return its number of lines.

    Raises
    ------
    ImportMappingError
        Naming the file (and line) when a cap is exceeded or the file is binary.
    """
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImportMappingError(f"{path}: no such file") from None
    except OSError as e:
        raise ImportMappingError(f"{path}: cannot read ({e.strerror or e})") from None
    if size > limits.max_file_bytes:
        raise InputLimitError(f"{name}: {size:,} bytes is more than the {limits.max_file_bytes:,}-byte cap; "
                                 "split it, or raise the cap (--max-file-mb) if it is really one export")
    if not path.is_file():
        raise ImportMappingError(f"{path}: not a regular file")
    lines, cur, offset = 1, 0, 0  # cur = length of the line in progress
    gz = path.suffix.lower() == ".gz"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
        while chunk := _read_chunk(fh, name):
            a = np.frombuffer(chunk, dtype=np.uint8)
            nul = np.flatnonzero(a == 0)
            if nul.size:
                raise ImportMappingError(f"{name}: binary file (NUL byte at offset {offset + int(nul[0]):,}), not a "
                                         "UTF-8 CSV export (UTF-16 text? save it as UTF-8; Parquet needs the .parquet "
                                         "suffix or --format parquet)")
            nl = np.flatnonzero(a == 10)
            too_long = _first_long_line(nl, cur, a.size, limits.max_line_bytes)
            if too_long is not None:
                raise InputLimitError(f"{name}, line {lines + too_long}: longer than the {limits.max_line_bytes:,}-byte "
                                         "line cap (not a row-per-line CSV?); raise it with --max-line-kb if the file is right")
            cur = a.size - int(nl[-1]) - 1 if nl.size else cur + a.size
            lines += int(nl.size)
            if lines - 2 > limits.max_rows:
                raise InputLimitError(f"{name}: more than the {limits.max_rows:,}-row cap; split the file or raise "
                                         "it with --max-rows")
            offset += a.size
            if gz and offset > limits.max_file_bytes:
                raise InputLimitError(f"{name}: decompresses to more than the {limits.max_file_bytes:,}-byte cap; "
                                         "raise it with --max-file-mb if it is really one export")
    return lines


def _read_chunk(fh, name: str) -> bytes:
    try:
        return fh.read(_CHUNK)
    except (OSError, EOFError) as e:  # a damaged gzip stream
        raise ImportMappingError(f"{name}: cannot be decompressed ({e})") from None


def _first_long_line(nl: np.ndarray, cur: int, size: int, cap: int) -> int | None:
    """Offset (in lines, from the line in progress) of the first line over ``cap`` in this chunk, if any."""
    if not nl.size:
        return 0 if cur + size > cap else None
    if cur + int(nl[0]) > cap:
        return 0
    inner = np.flatnonzero(np.diff(nl) - 1 > cap)
    if inner.size:
        return 1 + int(inner[0])
    return int(nl.size) if size - int(nl[-1]) - 1 > cap else None


def read_table(path: Path, fmt: str, limits: Limits) -> pl.DataFrame:
    """Read ``path`` (CSV with every column as text, or Parquet) after checking the caps; add ``__line``."""
    if fmt not in ("auto", "csv", "parquet"):
        raise ImportMappingError(f"format {fmt!r} is not auto, csv, parquet or farside")
    parquet = is_parquet(path, fmt)
    try:
        if parquet:
            size = path.stat().st_size
            if size > limits.max_file_bytes:
                raise InputLimitError(f"{path.name}: {size:,} bytes is more than the {limits.max_file_bytes:,}-byte "
                                         "cap; raise it with --max-file-mb if it is really one export")
            lf = pl.scan_parquet(path)
            n = lf.select(pl.len()).collect().item()
            if n > limits.max_rows:
                raise InputLimitError(f"{path.name}: {n:,} rows is more than the {limits.max_rows:,}-row cap; "
                                         "raise it with --max-rows")
            df = lf.collect()
        else:
            scan_csv(path, limits)
            # every column as text: numbers like "1,205.20" and odd times are parsed by us, with line numbers
            df = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except ImportMappingError:
        raise
    except FileNotFoundError:
        raise ImportMappingError(f"{path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - polars raises several unrelated classes for unreadable files
        kind = "parquet" if parquet else "csv"
        raise ImportMappingError(f"{path.name}: cannot read as {kind} ({str(e).splitlines()[0][:200]})") from None
    dup = [c for c in df.columns if re.fullmatch(r".+_duplicated_\d+", c) and c.rsplit("_duplicated_", 1)[0] in df.columns]
    if dup:
        raise ImportMappingError(f"{path.name}, line 1: column {dup[0].rsplit('_duplicated_', 1)[0]!r} appears more than "
                                 "once in the header; which one is meant is ambiguous")
    # line numbers as a user sees them in an editor: header is line 1 in a CSV; Parquet rows count from 0
    return df.with_row_index("__line", offset=0 if parquet else 2)


def clean_numbers(s: pl.Series) -> pl.Series:
    """Text numbers -> Float64 with separators, $ and (x) negatives handled; no-data markers -> null."""
    t = s.str.strip_chars()
    nodata = t.str.to_lowercase().is_in(list(NO_DATA)) | t.is_null()
    t = t.str.replace_all("\u2212", "-").str.replace_all(r"[,$\s]", "")
    neg = t.str.starts_with("(") & t.str.ends_with(")")
    t = pl.select(pl.when(neg).then(pl.lit("-") + t.str.strip_chars("()")).otherwise(t)).to_series()
    v = t.cast(pl.Float64, strict=False)
    return pl.select(pl.when(nodata).then(None).otherwise(v)).to_series().alias(s.name)


def is_no_data(s: pl.Series) -> pl.Series:
    """True where a text cell is a no-data marker (blank, ``-``, ``n/a``, ...)."""
    return s.cast(pl.String).str.strip_chars().str.to_lowercase().is_in(list(NO_DATA)) | s.is_null()
