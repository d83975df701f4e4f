"""The Parquet lake: canonical tables as sets of Parquet files listed by a committed table log.

Layout::

    <data_dir>/lake/<table>/_log.json                      the committed file list (see log.py)
    <data_dir>/lake/<table>/.lock                          writer lock; says who holds it
    <data_dir>/lake/<table>/source=<s>/.../year=<YYYY>/part-<version>-<id>.parquet

Only files the log lists are ever read: a stray copy, a file of another table or a killed writer's
leftover beside them is ignored (``research info`` lists them, ``research repair`` removes them).
Every file holds all of the table's columns; the hive directory names (the table's partition
columns, then ``year``) are for pruning and people, so DuckDB reads the files with
``hive_partitioning=False``. A write

1. validates the frame (:func:`research.schema.validate`), so a bad frame writes nothing, splits it
   by partition and year and encodes the files (:func:`prepare`: no lock, no file; a caller may
   prepare on a thread and store with :func:`write_prepared`);
2. per partition, writes rows with new keys to a new file, drops rows identical to stored ones, and
   rewrites only the stored files whose time range overlaps rows that change values (new values
   win), so a daily append costs about the day, not the year;
3. ``fsync``s the new files, then commits a new version of the log by one atomic rename. Files it
   replaced stay on disk, listed as retired, for ``RETAIN_SECONDS`` (an hour), so a reader holding
   the previous file list (a DuckDB view) can finish; a later commit deletes them. Killed at any
   point, the table shows the old version or the new one, exactly.

Writers of a table are serialised by a lock that reports its holder (pid, host, since) to a waiter
after a few seconds and times out. When a partition holds more than ``COMPACT_AT`` files, the write
that crossed the threshold merges all but its largest file into one (so the cost stays about the
appended days, not the year); :func:`compact` merges each partition into one file on demand.
"""
from __future__ import annotations

from research.lake.log import RETAIN_SECONDS, FileEntry, TableLog, load_log
from research.lake.maintain import adopt_legacy, compact, dedupe_partition, drop_files
from research.lake.table import (
    COMPACT_AT, Prepared, WriteResult, check_entry, delete, is_empty, partition_dir, prepare, read, table_dir,
    table_files, versions, write, write_prepared,
)

__all__ = ["write", "prepare", "write_prepared", "Prepared", "read", "table_files", "delete", "is_empty",
           "versions", "compact", "WriteResult", "FileEntry", "TableLog", "load_log", "check_entry", "partition_dir", "table_dir", "COMPACT_AT",
           "RETAIN_SECONDS"]
