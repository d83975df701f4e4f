"""The lock-free half of a lake write: validate, split by partition and year, encode.

:func:`prepare` touches no file, so a caller can prepare one batch on a thread while
:func:`research.lake.write_prepared` stores the previous one under the table lock.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import polars as pl

from research.errors import LakeError
from research.schema import Table, get_table, validate

__all__ = ["Prepared", "prepare"]


@dataclass(frozen=True)
class _Part:
    """One partition-year of a prepared write."""

    values: dict[str, str]
    frame: pl.DataFrame
    data: bytes  # the frame as the Parquet file a fresh partition gets
    sha256: str


@dataclass(frozen=True)
class Prepared:
    """Rows validated, split by partition and year, and encoded: the work of a write that needs no lock.

    Made by :func:`prepare` (anywhere, e.g. on a thread while another batch is written) and
    stored by :func:`research.lake.write_prepared`, which only then reads the table's log: a part
    whose partition holds overlapping rows is merged there and encoded again.
    """

    table: str
    rows_in: int
    parts: tuple[_Part, ...]
    origin: str | None = None


def _encode(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def _split(t: Table, clean: pl.DataFrame) -> list[tuple[dict[str, str], pl.DataFrame]]:
    """``clean`` as (partition values, rows sorted by key) per partition and year, one row per key.

    Of rows sharing a key the last given wins. One stable sort by partition, year and key puts
    every partition in one contiguous, key-ordered run, so the parts are zero-copy slices.
    """
    key = list(t.key)
    by = [*t.partition, "__year"]
    order = [*by, *(k for k in key if k not in t.partition)]  # the year is a function of time_col, in the key
    s = clean.with_columns(pl.col(t.time_col).dt.year().alias("__year")).sort(order, maintain_order=True)
    n = s.height
    last = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(-1)) for k in key]) | (pl.int_range(pl.len()) == n - 1)
    s = s.filter(last)
    first = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by]) | (pl.int_range(pl.len()) == 0)
    starts = s.select(pl.arg_where(first)).to_series().to_list()
    heads = s.select(by).gather(starts).rows()
    s = s.drop("__year")
    ends = [*starts[1:], s.height]
    return [({**{c: str(v) for c, v in zip(t.partition, h)}, "year": str(h[-1])}, s.slice(a, b - a))
            for h, a, b in zip(heads, starts, ends)]


def prepare(table: str, df: pl.DataFrame, *, origin: str | None = None) -> Prepared:
    """Validate, split and encode ``df`` for :func:`research.lake.write_prepared`; touches no file.

    Raises
    ------
    SchemaError
        As :func:`research.schema.validate`: nothing is written from a frame that fails.
    """
    t = get_table(table)
    clean = validate(t, df, origin=origin)
    parts = []
    try:
        for values, part in _split(t, clean) if not clean.is_empty() else ():
            data = _encode(part)
            parts.append(_Part(values, part, data, hashlib.sha256(data).hexdigest()))
    except Exception as exc:
        raise LakeError(f"writing table {t.name!r} failed, the lake is unchanged: {exc}") from exc
    return Prepared(t.name, clean.height, tuple(parts), origin)
