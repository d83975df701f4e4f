"""Reading and writing lake tables through their logs (see :mod:`research.lake`)."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import polars as pl

from research import paths
from research.errors import LakeCorruptError, LakeError
from research.fileio import fsync_dir
from research.lake.log import FileEntry, TableLog, commit_log, load_log, table_lock
from research.lake.prepare import Prepared, _encode, prepare
from research.schema import TABLES, Table, get_table

LEGACY_FILE = "part.parquet"
COMPACT_AT = 16  # a partition with more files than this is compacted after the write that made them

_hash_ok: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256 this process has checked


@dataclass(frozen=True)
class WriteResult:
    """What a write did: rows given, rows new to the table, rows in the touched partitions after it."""

    table: str
    rows_in: int
    rows_added: int
    rows_total: int
    partitions: int
    version: int = 0
    files_written: int = 0

    def __str__(self) -> str:
        return (f"{self.table}: {self.rows_in} rows in, {self.rows_added} new, "
                f"{self.rows_total} in the {self.partitions} touched partition(s)")


def _phase(name: str) -> None:
    """Fault-injection point (tests replace it to kill the process at a named phase of a commit)."""


def table_dir(table: str | Table, data_dir=None) -> Path:
    """Directory of one table inside the lake."""
    name = table.name if isinstance(table, Table) else get_table(table).name
    return paths.lake_dir(data_dir) / name


def partition_dir(lake: Path, t: Table, values: dict[str, str]) -> Path:
    """Directory of one partition given its partition values (plus ``year``)."""
    d = lake / t.name
    for col in t.partition:
        d = d / f"{col}={values[col]}"
    return d / f"year={values['year']}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def committed_log(t: Table, data_dir=None) -> TableLog:
    """The table's log; a table with files but no log (an older layout) is refused."""
    tdir = table_dir(t, data_dir)
    log = load_log(tdir, t.name)
    if log.version == 0 and tdir.is_dir() and next(tdir.rglob(LEGACY_FILE), None) is not None:
        raise LakeCorruptError(f"{tdir} holds Parquet files but no table log (an older lake layout); "
                               "run `research repair` to adopt them")
    return log


def _match(t: Table, entries: Iterable[FileEntry], equals: dict) -> list[FileEntry]:
    want: dict[str, set[str]] = {}
    for k, v in equals.items():
        if k == "years":
            if v is not None:
                want["year"] = {str(int(y)) for y in v}
            continue
        if k not in t.polars_schema:
            raise LakeError(f"table {t.name!r} has no column {k!r}; columns: {t.names}")
        if k in t.partition:  # other columns cannot prune files; readers filter their rows
            want[k] = {str(x) for x in v} if isinstance(v, (list, tuple, set, frozenset)) else {str(v)}
    return [e for e in entries if all(e.partition.get(k) in vs for k, vs in want.items())]


def check_entry(tdir: Path, e: FileEntry) -> Path:
    """The file's path if it is present and unchanged since its commit; else :class:`LakeCorruptError`."""
    p = tdir / e.path
    try:
        st = p.stat()
    except FileNotFoundError:
        raise LakeCorruptError(f"{p}: listed in the table log but missing; run `research repair`") from None
    if st.st_size != e.bytes:
        raise LakeCorruptError(f"{p}: {st.st_size} bytes, the table log says {e.bytes}; run `research repair`")
    if st.st_mtime_ns != e.mtime_ns:  # touched since written: only its content hash can clear it
        key = (str(p), st.st_size, st.st_mtime_ns)
        if _hash_ok.get(key) != e.sha256:
            if sha256_file(p) != e.sha256:
                raise LakeCorruptError(f"{p}: content changed since it was written (sha256 differs from the "
                                       "table log); run `research repair`")
            _hash_ok[key] = e.sha256
    return p


def table_files(table: str, data_dir=None, **equals) -> list[Path]:
    """The committed Parquet files of ``table``, optionally only the partitions matching ``equals``.

    Parameters
    ----------
    table : str
        Canonical table name.
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``).
    **equals
        Partition values to keep, e.g. ``symbol="BTCUSDT"`` (a list/tuple/set means any of them), and
        ``years=`` an iterable of years. Columns of the table that are not partition columns do not
        prune (every file may hold them). Files hold every column of the table; the hive directory
        names (``source=``, ..., ``year=``) are for pruning and people, so read with
        ``hive_partitioning=False``.

    Raises
    ------
    LakeCorruptError
        When a selected file is missing, has another size, or changed content since its commit.
    """
    t = get_table(table)
    tdir = table_dir(t, data_dir)
    return sorted(check_entry(tdir, e) for e in _match(t, committed_log(t, data_dir).files, equals))


def read(table: str, data_dir=None, **equals) -> pl.DataFrame:
    """Read a table (optionally filtered on equality, e.g. ``symbol="BTCUSDT"``), sorted by key.

    An absent table reads as an empty frame with the right columns. ``years=`` keeps whole years.
    """
    t = get_table(table)
    files = table_files(t.name, data_dir, **equals)
    if not files:
        return t.empty()
    lf = pl.scan_parquet(files, schema=t.polars_schema)
    for k, v in equals.items():
        if k == "years" or k in t.partition:
            continue  # already pruned by file
        lf = lf.filter(pl.col(k).is_in(list(v)) if isinstance(v, (list, tuple, set, frozenset)) else pl.col(k) == v)
    return lf.sort(list(t.key)).collect()


def _time_range(t: Table, df: pl.DataFrame) -> tuple[str, str]:
    s = df[t.time_col]
    lo, hi = s.min(), s.max()
    if isinstance(lo, dt.datetime):  # fixed width, so the log's ISO texts compare as times
        return lo.isoformat(timespec="microseconds"), hi.isoformat(timespec="microseconds")
    return lo.isoformat(), hi.isoformat()


class _Staging:
    """New data files of one commit: written under fresh names, fsynced together before the commit."""

    def __init__(self, t: Table, tdir: Path, version: int, origin: str | None):
        self.t, self.tdir, self.version, self.origin = t, tdir, version, origin
        self.entries: list[FileEntry] = []
        self._fds: list[int] = []

    def add(self, values: dict[str, str], df: pl.DataFrame, data: bytes | None = None,
            sha256: str | None = None) -> FileEntry:
        if data is None:
            data, sha256 = _encode(df), None
        d = partition_dir(self.tdir.parent, self.t, values)
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"part-{self.version:06d}-{uuid.uuid4().hex[:12]}.parquet"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._fds.append(fd)
        try:
            view, done = memoryview(data), 0
            while done < len(data):  # os.write may write less than it is given
                done += os.write(fd, view[done:])
        except BaseException:
            p.unlink(missing_ok=True)  # not in self.entries yet: discard() would not find it
            raise
        lo, hi = _time_range(self.t, df)
        e = FileEntry(p.relative_to(self.tdir).as_posix(), df.height, len(data), sha256 or hashlib.sha256(data).hexdigest(),
                      values, lo, hi, self.version, 0, self.origin)
        self.entries.append(e)
        _phase(f"staged:{len(self.entries)}")
        return e

    def flush_jobs(self) -> list:
        """The fsyncs that must finish before a log listing these files is renamed into place."""
        dirs = {(self.tdir / e.path).parent for e in self.entries}
        return [lambda fd=fd: os.fsync(fd) for fd in self._fds] + [lambda d=d: fsync_dir(d) for d in dirs]

    def written(self) -> list[FileEntry]:
        """The entries with their files' mtimes, so readers can skip re-hashing untouched files."""
        return [FileEntry(**{**e.__dict__, "mtime_ns": (self.tdir / e.path).stat().st_mtime_ns})
                for e in self.entries]

    def commit(self, log: TableLog, keep: list[FileEntry], retire: Iterable[str] = ()) -> TableLog:
        """Commit ``keep`` plus the staged files as the next version (data and log flushed first)."""
        try:
            return commit_log(self.tdir, log, keep + self.written(), flush=self.flush_jobs(), retire=retire)
        finally:
            self.close()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def discard(self) -> None:
        self.close()
        for e in self.entries:
            (self.tdir / e.path).unlink(missing_ok=True)


def _read_entries(t: Table, tdir: Path, entries: list[FileEntry]) -> pl.DataFrame:
    return pl.read_parquet([check_entry(tdir, e) for e in entries], schema=t.polars_schema)


def _changed(t: Table, new: pl.DataFrame, old: pl.DataFrame) -> bool:
    """True when some key of ``new`` is in ``old`` with other values."""
    key = list(t.key)
    both = new.join(old, on=key, how="inner", suffix="__old")
    if both.is_empty():
        return False
    return bool(both.select(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}__old")).any() for c in t.names if c not in key])).item())


def write(table: str, df: pl.DataFrame, data_dir=None, *, origin: str | None = None) -> WriteResult:
    """Validate ``df`` and add it to ``table`` in one atomic commit (idempotent on the table's key).

    Rows whose key is new go to new files; rows identical to stored ones are dropped; when some
    stored row gets new values (new values win), only the files whose time range overlaps the
    new rows in that partition are rewritten. Of rows sharing a key within ``df``, the last
    wins. A write that fails or is killed leaves the previous version in force. Equal to
    ``write_prepared(prepare(table, df, origin=origin), data_dir)``.

    Parameters
    ----------
    table : str
        Canonical table name (see :mod:`research.schema`).
    df : polars.DataFrame
        New rows; validated first, nothing is written when validation fails.
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``); created on first write.
    origin : str, optional
        Name of the input file, used in error messages and recorded in the log.
    """
    return write_prepared(prepare(table, df, origin=origin), data_dir)


def write_prepared(prep: Prepared, data_dir=None) -> WriteResult:
    """Store rows :func:`prepare` made ready, as :func:`write` does; only this part holds the table lock."""
    t, origin = get_table(prep.table), prep.origin
    if not prep.parts:
        return WriteResult(t.name, 0, 0, 0, 0)
    key = list(t.key)
    tdir = table_dir(t, data_dir)
    with table_lock(tdir, f"write {origin or t.name}"):
        log = committed_log(t, data_dir)
        stage = _Staging(t, tdir, log.version + 1, origin)
        replaced: set[str] = set()
        added, touched = 0, []
        try:
            for p in prep.parts:
                values, part = p.values, p.frame
                touched.append(values)
                lo, hi = _time_range(t, part)
                overlap = [e for e in log.files if e.partition == values and e.overlaps(lo, hi)]
                if not overlap:
                    stage.add(values, part, p.data, p.sha256)
                    added += part.height
                    continue
                old = _read_entries(t, tdir, overlap)
                fresh = part.join(old.select(key), on=key, how="anti")
                if _changed(t, part, old):
                    merged = pl.concat([old, part]).unique(subset=key, keep="last").sort(key)
                    stage.add(values, merged)
                    replaced.update(e.path for e in overlap)
                    added += merged.height - old.height
                elif not fresh.is_empty():
                    stage.add(values, fresh)
                    added += fresh.height
            new_files = len(stage.entries)
            _phase("before_commit")
            if new_files:
                log = stage.commit(log, [e for e in log.files if e.path not in replaced], retire=replaced)
        except BaseException as exc:
            stage.discard()
            if isinstance(exc, (KeyboardInterrupt, SystemExit, LakeError)):
                raise
            raise LakeError(f"writing table {t.name!r} failed, the lake is unchanged: {exc}") from exc
        _phase("after_commit")
        log = _compact_partitions(t, tdir, log, touched, COMPACT_AT, tiered=True)
    total = sum(e.rows for e in log.files if e.partition in touched)
    return WriteResult(t.name, prep.rows_in, added, total, len(touched), log.version, new_files)



def _unlink(tdir: Path, rel_paths: Iterable[str]) -> None:
    for rel in rel_paths:
        (tdir / rel).unlink(missing_ok=True)


def _compact_partitions(t: Table, tdir: Path, log: TableLog, partitions: list[dict], more_than: int,
                        tiered: bool = False) -> TableLog:
    """Rewrite each given partition holding more than ``more_than`` files as one file (caller holds the lock).

    ``tiered`` merges all but the partition's largest file (the automatic compaction after a write).
    """
    groups = {}
    for e in log.files:
        if e.partition in partitions:
            groups.setdefault(tuple(sorted(e.partition.items())), []).append(e)
    groups = {k: v for k, v in groups.items() if len(v) > more_than}
    if tiered:  # leave the partition's biggest file alone: merging the small ones keeps an append O(day)
        groups = {k: sorted(v, key=lambda e: e.rows)[:-1] for k, v in groups.items()}
    if not groups:
        return log
    stage = _Staging(t, tdir, log.version + 1, "compaction")
    try:
        for k, entries in groups.items():
            stage.add(dict(k), _read_entries(t, tdir, entries).sort(list(t.key)))
        gone = {e.path for es in groups.values() for e in es}
        log = stage.commit(log, [e for e in log.files if e.path not in gone], retire=gone)
    except BaseException:
        stage.discard()
        raise
    return log


def delete(table: str, data_dir=None, **equals: str) -> int:
    """Remove whole partitions of ``table`` matching partition values (e.g. ``source="synthetic"``).

    Returns the number of files removed. Only partition columns (and ``years=``) may be named, so
    a delete never rewrites files.
    """
    t = get_table(table)
    bad = [k for k in equals if k not in t.partition and k != "years"]
    if bad:
        raise LakeError(f"table {t.name!r} can only be deleted by its partition columns {t.partition}, not {bad}")
    tdir = table_dir(t, data_dir)
    if not tdir.exists():
        return 0
    with table_lock(tdir, f"delete {equals}"):
        log = committed_log(t, data_dir)
        gone = {e.path for e in _match(t, log.files, equals)}
        if gone:
            commit_log(tdir, log, [e for e in log.files if e.path not in gone], retire=gone)
    return len(gone)


def versions(data_dir=None) -> dict[str, int]:
    """Committed version of every table (0 for a table never written), for records to name."""
    return {name: load_log(table_dir(name, data_dir), name).version for name in TABLES}


def is_empty(data_dir=None) -> bool:
    """True when no table holds a row (the main job then falls back to the simulated market)."""
    return not any(committed_log(t, data_dir).files for t in TABLES.values())
