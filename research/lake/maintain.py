"""Lake maintenance: compaction on demand, and the one-commit fixes repair uses.

Every function takes the table's writer lock and commits a new version of its log, like a write.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterable

import polars as pl

from research.fileio import fsync_dir
from research.lake.log import FileEntry, TableLog, commit_log, load_log, table_lock
from research.lake.table import (
    _compact_partitions, _Staging, _time_range, _unlink, check_entry, committed_log, sha256_file, table_dir,
)
from research.schema import TABLES, Table, get_table


def compact(table: str | None = None, data_dir=None, *, more_than: int = 1, keep_largest: bool = False) -> dict[str, int]:
    """Rewrite every partition with more than ``more_than`` files as one file; return table -> version.

    ``keep_largest`` merges only the smaller files of each partition (what a write does on its own
    once a partition holds more than :data:`COMPACT_AT` files). Orphans of killed writers (unlisted
    ``part-*.parquet`` and temp files) are removed too, under the same lock.
    """
    from research.lake.verify import unlisted_files  # verify imports this package's table module
    out = {}
    for name in [get_table(table).name] if table else list(TABLES):
        t = get_table(name)
        tdir = table_dir(t, data_dir)
        if not (tdir / "_log.json").exists():
            continue
        with table_lock(tdir, "compact"):
            log = committed_log(t, data_dir)
            parts = [dict(p) for p in {tuple(sorted(e.partition.items())) for e in log.files}]
            out[name] = _compact_partitions(t, tdir, log, parts, more_than, tiered=keep_largest).version
            for p in unlisted_files(data_dir, table=name):
                if p.kind == "orphan":
                    p.path.unlink(missing_ok=True)
    return out


def drop_files(table: str, rel_paths: Iterable[str], data_dir=None) -> TableLog:
    """Commit a version of ``table`` without the listed files (repair uses it for damaged files)."""
    t = get_table(table)
    tdir = table_dir(t, data_dir)
    gone = set(rel_paths)
    with table_lock(tdir, "repair"):
        log = load_log(tdir, t.name)
        log = commit_log(tdir, log, [e for e in log.files if e.path not in gone])
    _unlink(tdir, gone)
    return log


def _entry_for(t: Table, tdir: Path, p: Path, values: dict[str, str], version: int, origin: str) -> FileEntry:
    df = pl.read_parquet(p, schema=t.polars_schema)
    lo, hi = _time_range(t, df) if df.height else (None, None)
    st = p.stat()
    return FileEntry(p.relative_to(tdir).as_posix(), df.height, st.st_size, sha256_file(p), values, lo, hi,
                     version, st.st_mtime_ns, origin)


def adopt_legacy(table: str, legacy: list[Path], data_dir=None) -> TableLog:
    """List an older layout's ``part.parquet`` files in a new log (renamed to this layout, not rewritten)."""
    t = get_table(table)
    tdir = table_dir(t, data_dir)
    with table_lock(tdir, "repair: adopt legacy files"):
        log = load_log(tdir, t.name)
        entries = []
        for p in legacy:
            values = dict(d.split("=", 1) for d in p.relative_to(tdir).parts[:-1])
            new = p.with_name(f"part-{log.version + 1:06d}-{uuid.uuid4().hex[:12]}.parquet")
            os.replace(p, new)  # unlisted either way until the commit below
            entries.append(_entry_for(t, tdir, new, values, log.version + 1, f"adopted {p.name}"))
        fsync_dir(tdir)
        return commit_log(tdir, log, log.files + entries)


def dedupe_partition(table: str, values: dict[str, str], data_dir=None) -> TableLog:
    """Rewrite one partition as one file with each key once (the row of the newest file wins), in one commit."""
    t = get_table(table)
    tdir = table_dir(t, data_dir)
    with table_lock(tdir, "repair: duplicate keys"):
        log = load_log(tdir, t.name)
        entries = sorted((e for e in log.files if e.partition == values), key=lambda e: e.version)
        df = pl.concat([pl.read_parquet(check_entry(tdir, e), schema=t.polars_schema) for e in entries])
        df = df.unique(subset=list(t.key), keep="last", maintain_order=True).sort(list(t.key))
        stage = _Staging(t, tdir, log.version + 1, "repair: duplicate keys")
        try:
            stage.add(values, df)
            gone = {e.path for e in entries}
            log = stage.commit(log, [e for e in log.files if e.path not in gone], retire=gone)
        except BaseException:
            stage.discard()
            raise
    return log


def refresh_mtimes(table: str, data_dir=None) -> int:
    """Record the current mtimes of files whose content still matches the log (e.g. after ``cp -r``).

    Readers re-hash a file whose mtime differs from the log's; this spares them that. Returns the
    number of entries updated (0 commits nothing).
    """
    t = get_table(table)
    tdir = table_dir(t, data_dir)
    with table_lock(tdir, "repair: refresh mtimes"):
        log = load_log(tdir, t.name)
        files, changed = [], 0
        for e in log.files:
            p = tdir / e.path
            st = p.stat() if p.exists() else None
            if st is not None and st.st_mtime_ns != e.mtime_ns and st.st_size == e.bytes and sha256_file(p) == e.sha256:
                e = FileEntry(**{**e.__dict__, "mtime_ns": st.st_mtime_ns})
                changed += 1
            files.append(e)
        if changed:
            commit_log(tdir, log, files)
    return changed
