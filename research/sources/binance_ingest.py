"""Verified archive zips -> lake tables, many files per parse and per write.

Small same-layout files (klines, fundingRate; hundreds of monthly or daily zips) are parsed
with one CSV read for the whole batch (a known schema, no type inference), checked in one
vectorised pass (:func:`.binance_checks.check_rows`, rows tagged with their file), and written
with one :func:`research.lake.write` per table. A file that fails a check is refused alone: its
rows are dropped from the batch, its zip moves to ``quarantine/`` (so a later run downloads it
afresh), and the manifest records why; the other files of the batch are written.
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from research import lake, paths
from research.errors import ArchiveContentError, LimitError, ResearchError
from research.sources.binance_archive import read_member, split_header
from research.sources.binance_checks import check_rows
from research.sources.binance_layout import KLINE_MARKET, FileTask
from research.sources.binance_parse import (FUNDING_SCHEMA, KLINE_SCHEMA, _funding_frame, _klines_frame,
                                            expected_kline_rows, parse_file, rules_for)
from research.sources.limits import Limits
from research.sources.manifest import Manifest
from research.sources.results import FetchSummary

__all__ = ["BatchIngester", "ingest_batch", "parse_group"]

AHEAD = 2  # batches read and prepared at once while one is stored (polars and zlib release the GIL)
BIG_BATCH_BYTES = 256 << 20  # zip bytes from which a batch is read and stored alone (memory)
_THREADED_BYTES = 1 << 20  # mean zip size from which threads beat one thread at reading members

_FAST = {"fundingRate": (FUNDING_SCHEMA, "funding"), **{d: (KLINE_SCHEMA, "bars") for d in ("klines", *KLINE_MARKET)}}


def _body(data: bytes, schema: dict, origin: str) -> tuple[bytes | memoryview, int, int] | None:
    """(data rows ending in a newline, their count, first data line number), or None when odd.

    Returns a view into ``data`` where possible (no copy); None for blank lines inside the body,
    which would break the per-file row counts (the caller then parses file by file).
    """
    _, has_header, off = split_header(data, (schema,), origin)
    end = len(data)
    while end > off and data[end - 1] in b"\r\n":  # trailing newlines only: bounded by their number
        end -= 1
    if end <= off:
        return b"", 0, 1 + has_header
    if data.find(b"\n\n", off, end) >= 0 or data.find(b"\n\r\n", off, end) >= 0:
        return None
    n = data.count(b"\n", off, end) + 1
    if end < len(data) and data[end] == 10:  # ends with "\n" (not "\r\n"): a view, no copy
        return memoryview(data)[off:end + 1], n, 1 + has_header
    return data[off:end] + b"\n", n, 1 + has_header


def parse_group(items: list[tuple[FileTask, bytes]], warnings: list[str]) -> tuple[dict[str, pl.DataFrame], dict[int, str]] | None:
    """Parse many same-layout files with one CSV read; returns (frames, {item index: refusal}).

    Returns None when the batch cannot be read as one (the caller then parses file by file,
    which names the offending file in its error).
    """
    schema, table = _FAST[items[0][0].dataset]
    bodies, counts, firsts, errors = [], [], [], {}
    for i, (task, data) in enumerate(items):
        try:
            b = _body(data, schema, task.name)
        except ArchiveContentError as e:
            errors[i], b = str(e), (b"", 0, 1)
        if b is None:
            return None
        bodies.append(b[0])
        counts.append(b[1])
        firsts.append(b[2])
    try:
        df = pl.read_csv(io.BytesIO(b"".join(bodies)), has_header=False, schema=schema)
    except Exception:
        return None
    if df.height != sum(counts):
        return None
    fidx = pl.Series("__f", range(len(items)), dtype=pl.UInt32).repeat_by(pl.Series(counts, dtype=pl.UInt32)).explode()
    df = df.with_columns(fidx)
    t0 = items[0][0]
    df, bad = check_rows(df, rules_for(t0.dataset), [t.name for t, _ in items], [t.period_bounds for t, _ in items],
                         firsts, warnings)
    errors.update(bad)
    symbols = pl.Series([t.symbol for t, _ in items]).gather(df.get_column("__f"))
    out = (_funding_frame(df, symbols) if table == "funding"
           else _klines_frame(df, t0.dataset, t0.market, t0.interval, symbols))
    if table == "bars":
        for i, ((task, _), n) in enumerate(zip(items, counts)):
            exp = expected_kline_rows(task)
            if i not in errors and exp is not None and n != exp:
                warnings.append(f"{task.name}: {n} bars, a complete {task.freq} file has {exp} "
                                "(archive gap: not filled; the daily files may have the missing rows)")
    return {table: out}, errors


def _read_members(batch: list[tuple[FileTask, Path]], limits: Limits | None = None,
                  workers: int = 4) -> list[bytes | Exception]:
    """The CSV of every zip of ``batch`` (or the error that refused it), in order.

    Small zips are read in this thread: a monthly kline zip takes ~0.1 ms, so threads only add
    hand-offs (2808 monthly zips: 0.35 s on one thread or two; with :mod:`zipfile`, 0.5 s on one
    and 0.9 s on four). Large members (daily trades) spend their time in zlib, which releases the
    GIL: those get threads, one contiguous slice per thread. The ingester already reads batches
    on its own threads.
    """
    limits = limits or Limits()  # once: a default Limits reads six environment variables

    def one(p):
        try:
            return read_member(p, limits)
        except ResearchError as e:
            return e
    paths_ = [p for _, p in batch]
    if len(paths_) < 2 * workers or sum(_size(p) for p in paths_) < _THREADED_BYTES * len(paths_):
        return [one(p) for p in paths_]
    step = -(-len(paths_) // workers)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        parts = ex.map(lambda i: [one(p) for p in paths_[i:i + step]], range(0, len(paths_), step))
        return [d for part in parts for d in part]


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0  # read_member names the problem


class BatchIngester:
    """Ingests batches behind their reading: ``ahead`` batches are read and prepared while one is stored.

    ``submit(batch)`` starts reading, parsing and preparing ``batch``'s lake writes on a
    background thread (nothing is stored or moved there: see :func:`research.lake.prepare`);
    once more than ``ahead`` batches are in flight it stores the oldest, on the calling thread:
    quarantine of refused files, the lake writes and the manifest records, as
    :func:`ingest_batch` does, in submission order. ``close()`` (or leaving the ``with`` block)
    stores the rest. A batch whose zips exceed :data:`BIG_BATCH_BYTES` is read and stored
    alone, so large members are never held for several batches at once. Leaving the block on
    an error stores nothing more: those files stay pending in the manifest and the next run
    ingests them.
    """

    def __init__(self, data_dir, summary: FetchSummary, manifest: Manifest, limits: Limits | None = None,
                 ahead: int = AHEAD):
        self.data_dir, self.summary, self.manifest, self.limits = data_dir, summary, manifest, limits
        self.ahead = max(1, ahead)
        self._ex = ThreadPoolExecutor(max_workers=self.ahead, thread_name_prefix="treadmill-ingest")
        self._queue: list = []

    def submit(self, batch: list[tuple[FileTask, Path]]) -> None:
        batch = list(batch)
        # a batch of large zips (daily trades) holds its members in memory: alone, as without read-ahead
        ahead = 0 if sum(_size(p) for _, p in batch) > BIG_BATCH_BYTES else self.ahead
        while ahead == 0 and self._queue:
            self._store_oldest()
        self._queue.append(self._ex.submit(_parse_batch, batch, self.limits))
        while len(self._queue) > ahead:
            self._store_oldest()

    def _store_oldest(self) -> None:
        fut = self._queue.pop(0)
        _store(fut.result(), self.data_dir, self.summary, self.manifest, self.limits)

    def close(self) -> None:
        try:
            while self._queue:
                self._store_oldest()
        finally:
            self._ex.shutdown(wait=True)

    def __enter__(self) -> "BatchIngester":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._queue.clear()
            self._ex.shutdown(wait=True, cancel_futures=True)


def _refuse(task: FileTask, path: Path, err: Exception | str, data_dir, summary: FetchSummary, records: list) -> None:
    """Record a file whose content is refused; its zip goes to quarantine so a re-run fetches it anew."""
    msg = str(err)
    rec = {"path": task.raw_rel, "event": "ingest", "ingest": "failed", "error": msg}
    if isinstance(err, (ArchiveContentError, LimitError, str)):
        ddir = paths.data_dir(data_dir)
        q = ddir / "quarantine" / task.raw_rel
        if path.exists():
            q.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, q)
            rec.update(ingest="rejected", quarantined=q.relative_to(ddir).as_posix())
        if not isinstance(err, LimitError):  # over a cap: the message names the override instead
            summary.rejected += 1
    summary.ingest_errors.append((task.raw_rel, msg))
    records.append(rec)


@dataclass
class _Parsed:
    """A batch parsed and checked, nothing stored yet: files kept and refused, lake writes prepared."""

    batch: list[tuple[FileTask, Path]]
    good: list[tuple[FileTask, Path, dict[str, int]]] = field(default_factory=list)
    refused: list[tuple[int, Exception | str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    prepared: list[lake.Prepared] = field(default_factory=list)
    error: ResearchError | None = None  # the kept files' rows failed validation (found file by file later)


def _parse_batch(batch: list[tuple[FileTask, Path]], limits: Limits | None = None) -> _Parsed:
    """Read, parse and check a batch and prepare its lake writes (validated, split, encoded).

    Touches nothing outside the result, so it may run on another thread.
    """
    out = _Parsed(batch)
    tables: dict[str, list[pl.DataFrame]] = {}
    datas = _read_members(batch, limits)
    groups: dict[tuple, list[int]] = {}
    slow: list[int] = []
    for i, ((task, _), data) in enumerate(zip(batch, datas)):
        if isinstance(data, Exception):
            out.refused.append((i, data))
        elif task.dataset in _FAST:
            groups.setdefault((task.dataset, task.market, task.interval), []).append(i)
        else:
            slow.append(i)
    for idxs in groups.values():
        parsed = parse_group([(batch[i][0], datas[i]) for i in idxs], out.warnings)
        if parsed is None:
            slow.extend(idxs)
            continue
        frames, errors = parsed
        for t, df in frames.items():
            tables.setdefault(t, []).append(df)
        for j, i in enumerate(idxs):
            if j in errors:
                out.refused.append((i, errors[j]))
            else:
                out.good.append((batch[i][0], batch[i][1], {}))
    for i in sorted(slow):
        task, path = batch[i]
        try:
            frames = parse_file(task, path, out.warnings, data=datas[i])
        except ResearchError as e:
            out.refused.append((i, e))
            continue
        for t, df in frames.items():
            tables.setdefault(t, []).append(df)
        out.good.append((task, path, {t: df.height for t, df in frames.items()}))
    if out.good:
        good = out.good
        origin = good[0][0].name if len(good) == 1 else f"{good[0][0].name} and {len(good) - 1} more file(s)"
        try:
            out.prepared = [lake.prepare(t, pl.concat(dfs, how="vertical_relaxed"), origin=origin)
                            for t, dfs in tables.items()]
        except ResearchError as e:
            out.error = e
    return out


def ingest_batch(batch: list[tuple[FileTask, Path]], data_dir, summary: FetchSummary, manifest: Manifest,
                 limits: Limits | None = None) -> None:
    """Parse and check a batch of verified zips and write them to the lake, one write per table."""
    _store(_parse_batch(batch, limits), data_dir, summary, manifest, limits)


def _store(parsed: _Parsed, data_dir, summary: FetchSummary, manifest: Manifest, limits: Limits | None) -> None:
    """Quarantine the refused files, store the kept ones (one write per table), record both."""
    summary.warnings.extend(parsed.warnings)
    records: list[dict] = []
    for i, err in parsed.refused:
        _refuse(*parsed.batch[i], err, data_dir, summary, records)
    good = parsed.good
    if not good:
        manifest.append_many(records)
        return
    try:
        if parsed.error is not None:
            raise parsed.error
        for prep in parsed.prepared:
            res = lake.write_prepared(prep, data_dir)
            t = prep.table
            summary.rows_in[t] = summary.rows_in.get(t, 0) + res.rows_in
            summary.rows_added[t] = summary.rows_added.get(t, 0) + res.rows_added
    except ResearchError as e:
        manifest.append_many(records)
        if len(good) > 1:  # find the offending file(s): retry one by one (writes are idempotent)
            for task, path, _ in good:
                ingest_batch([(task, path)], data_dir, summary, manifest, limits)
            return
        task = good[0][0]
        summary.ingest_errors.append((task.raw_rel, str(e)))
        manifest.append({"path": task.raw_rel, "event": "ingest", "ingest": "failed", "error": str(e)})
        return
    for task, _, rows in good:
        summary.ingested_files += 1
        records.append({"path": task.raw_rel, "event": "ingest", "ingest": "ok", **({"rows": rows} if rows else {})})
    manifest.append_many(records)
