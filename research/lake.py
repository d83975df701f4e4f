"""The Parquet lake: canonical tables as hive-style partitioned Parquet files.

Layout::

    <data_dir>/lake/<table>/source=<s>/venue=<v>/.../year=<YYYY>/part.parquet

Every file holds all of the table's columns (the directory names are for pruning and for people;
readers do not need hive partitioning). Partitions are yearly: even 5-minute data is ~105k rows a year,
and finer partitions would mean many tiny files, which are slow to write and to scan. A write

1. validates the frame (:func:`research.schema.validate`), so a bad frame writes nothing;
2. merges it with the partitions it touches, keeping one row per key (new rows win), sorted by key;
3. writes every new partition file to a temp name beside its target, then swaps all of them into
   place; if any step fails, every partition is restored, so the lake is as it was.

Writers hold an exclusive lock on ``lake/.lock`` so concurrent processes (parallel downloads,
batch runs) never interleave.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from research import paths
from research.errors import LakeError
from research.schema import TABLES, Table, get_table, validate

PART_FILE = "part.parquet"


@dataclass(frozen=True)
class WriteResult:
    """What a write did."""

    table: str
    rows_in: int
    rows_added: int
    rows_total: int
    partitions: int

    def __str__(self) -> str:
        return (f"{self.table}: {self.rows_in} rows in, {self.rows_added} new, "
                f"{self.rows_total} in the {self.partitions} touched partition(s)")


@contextlib.contextmanager
def _locked(lake: Path):
    lake.mkdir(parents=True, exist_ok=True)
    with open(lake / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _time_parts(t: Table) -> list[pl.Expr]:
    return [pl.col(t.time_col).dt.year().cast(pl.String).alias("__year")]


def partition_dir(lake: Path, t: Table, values: dict[str, str]) -> Path:
    """Directory of one partition given its partition values (plus ``__year``)."""
    d = lake / t.name
    for col in t.partition:
        d = d / f"{col}={values[col]}"
    return d / f"year={values['__year']}"


def table_files(table: str, data_dir=None) -> list[Path]:
    """Every Parquet file of ``table`` (sorted; empty list when the table has no data)."""
    root = paths.lake_dir(data_dir) / get_table(table).name
    return sorted(root.rglob(PART_FILE)) if root.exists() else []


def read(table: str, data_dir=None, **equals) -> pl.DataFrame:
    """Read a whole table (optionally filtered on equality, e.g. ``symbol="BTCUSDT"``).

    An absent table reads as an empty frame with the right columns.
    """
    t = get_table(table)
    files = table_files(t.name, data_dir)
    if not files:
        return t.empty()
    lf = pl.scan_parquet(files, schema=t.polars_schema)
    for k, v in equals.items():
        if k not in t.polars_schema:
            raise LakeError(f"table {t.name!r} has no column {k!r}; columns: {t.names}")
        lf = lf.filter(pl.col(k) == v)
    return lf.sort(list(t.key)).collect()


def write(table: str, df: pl.DataFrame, data_dir=None, *, origin: str | None = None) -> WriteResult:
    """Validate ``df`` and merge it into ``table`` atomically (idempotent on the table's key).

    Parameters
    ----------
    table : str
        Canonical table name (see :mod:`research.schema`).
    df : polars.DataFrame
        New rows; validated first, nothing is written when validation fails.
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``); created on first write.
    origin : str, optional
        Name of the input file, used in error messages.
    """
    t = get_table(table)
    clean = validate(t, df, origin=origin)
    lake = paths.lake_dir(data_dir)
    if clean.is_empty():
        return WriteResult(t.name, 0, 0, 0, 0)
    clean = clean.unique(subset=list(t.key), keep="last", maintain_order=True)
    keyed = clean.with_columns(_time_parts(t))
    group_cols = [*t.partition, "__year"]

    staged: list[tuple[Path, Path]] = []  # (tmp, final)
    added = total = 0
    with _locked(lake):
        try:
            for values, part in keyed.group_by(group_cols, maintain_order=True):
                vals = dict(zip(group_cols, values))
                final = partition_dir(lake, t, vals) / PART_FILE
                new = part.drop("__year")
                if final.exists():
                    old = pl.read_parquet(final, schema=t.polars_schema)
                    merged = pl.concat([old, new]).unique(subset=list(t.key), keep="last", maintain_order=True)
                    added += merged.height - old.height
                else:
                    merged = new
                    added += new.height
                merged = merged.sort(list(t.key))
                total += merged.height
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(f".{PART_FILE}.{uuid.uuid4().hex}.tmp")
                merged.write_parquet(tmp, compression="zstd", statistics=True)
                staged.append((tmp, final))
            _swap_all(staged)
        except BaseException as exc:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise LakeError(f"writing table {t.name!r} failed, the lake is unchanged: {exc}") from exc
    return WriteResult(t.name, clean.height, added, total, len(staged))


def _swap_all(staged: list[tuple[Path, Path]]) -> None:
    """Move every staged file into place; on any failure put every old file back."""
    backups: list[tuple[Path, Path | None]] = []  # (final, backup or None if final was new)
    try:
        for tmp, final in staged:
            backup = None
            if final.exists():
                backup = final.with_name(f".{PART_FILE}.{uuid.uuid4().hex}.bak")
                os.link(final, backup)
            backups.append((final, backup))
            os.replace(tmp, final)
    except BaseException:
        for final, backup in reversed(backups):
            if backup is None:
                final.unlink(missing_ok=True)
            elif final.exists() and os.path.samefile(backup, final):
                # this partition's swap never happened; rename() between two links of one file is a no-op
                backup.unlink()
            else:
                os.replace(backup, final)
        raise
    for _, backup in backups:
        if backup is not None:
            backup.unlink(missing_ok=True)


def delete(table: str, data_dir=None, **equals: str) -> int:
    """Remove whole partitions of ``table`` matching partition values (e.g. ``source="synthetic"``).

    Returns the number of files removed. Only partition columns may be named, so a delete never
    rewrites files.
    """
    t = get_table(table)
    bad = [k for k in equals if k not in t.partition]
    if bad:
        raise LakeError(f"table {t.name!r} can only be deleted by its partition columns {t.partition}, not {bad}")
    removed = 0
    lake = paths.lake_dir(data_dir)
    with _locked(lake):
        for f in table_files(t.name, data_dir):
            rel = f.relative_to(lake / t.name).parts
            vals = dict(p.split("=", 1) for p in rel[:-1])
            if all(vals.get(k) == v for k, v in equals.items()):
                f.unlink()
                removed += 1
    return removed


def is_empty(data_dir=None) -> bool:
    """True when no table holds a row (the main job then falls back to the simulated market)."""
    return not any(table_files(name, data_dir) for name in TABLES)
