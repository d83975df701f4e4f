"""Binance public data archive (data.binance.vision): plan, download, verify, ingest.

Raw zips are kept byte for byte under ``raw/binance/<archive path>`` beside their ``.CHECKSUM``.
The work is split by job: :mod:`.binance_layout` (datasets, file names, planning),
:mod:`.binance_archive` (reading a zip within caps, headers), :mod:`.binance_checks` (rows
against the file's own period, invariants, duplicates), :mod:`.binance_parse` (CSV -> canonical
frames), :mod:`.binance_ingest` (batches -> lake). This module downloads and drives them; the
names below stay importable from here.

Mapping to canonical tables (venue ``binance``):

============================  ==============================================================
dataset                       table
============================  ==============================================================
fundingRate (um, monthly)     ``funding`` (ts = ``calc_time`` as published, with its ms jitter)
klines um / spot              ``bars`` market ``perp`` / ``spot``
markPriceKlines               ``bars`` market ``mark`` (volume columns null)
indexPriceKlines              ``bars`` market ``index`` (volume columns null)
premiumIndexKlines            ``bars`` market ``premium`` (volume columns null)
metrics (um, daily)           ``open_interest`` (5m) and ``positioning`` (5m)
liquidationSnapshot (um)      ``liquidation_orders`` and 1h ``liquidations`` buckets
aggTrades um / spot           1m ``bars`` (``perp``/``spot``), source ``binance_aggtrades``
============================  ==============================================================

Gaps are never filled: a day or month the archive does not have is recorded ``missing``. A
file whose content contradicts its name is refused whole and quarantined (see
:mod:`.binance_ingest`).
"""
from __future__ import annotations

import calendar
import os
import zipfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from research import paths
from research.errors import ArchiveContentError, ResearchError
from research.fileio import atomic_write
from research.parsing import parse_date as _parse_date
from research.sources.binance_archive import read_member  # noqa: F401  (re-export)
from research.sources.binance_checks import epoch_to_utc  # noqa: F401  (re-export)
from research.sources.binance_ingest import BatchIngester, _read_members, ingest_batch, parse_group  # noqa: F401  (re-export)
from research.sources.binance_layout import (AGG_SOURCE, BASE_URL_ENV, DATASETS, DEFAULT_BASE_URL,  # noqa: F401
                                             KLINE_MARKET, LIQ_SNAPSHOT_LAST_DAY, METRICS_LABEL_CHANGE,
                                             METRICS_ROWS_PER_DAY, SOURCE, VENUE, Dataset, FileTask,
                                             daily_tasks_for_month, plan)
from research.sources.binance_parse import (AGG_SCHEMA, AGG_SCHEMA_SPOT, FUNDING_SCHEMA, KLINE_SCHEMA,  # noqa: F401
                                            LIQ_SCHEMA, METRICS_SCHEMA, expected_kline_rows, metrics_label_is_start,
                                            parse_aggtrades, parse_file, parse_funding, parse_klines,
                                            parse_liquidation_snapshot, parse_metrics, read_archive_csv)
from research.sources.http import Downloader, parse_checksum
from research.sources.limits import Limits
from research.sources.manifest import Manifest
from research.sources.progress import rich_progress
from research.sources.results import FetchResult, FetchSummary


def base_url(explicit: str | None = None) -> str:
    return (explicit or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/") + "/"


def _download_one(dl: Downloader, base: str, task: FileTask) -> FetchResult:
    url = base + task.archive_path
    dest = dl.data_dir / task.raw_rel
    status, body, meta = dl.get_bytes(url + ".CHECKSUM")
    if status == "missing" and dl.probe(url) == "ok":
        # the zip is there, only its checksum is not: say so (it is not a missing month)
        return FetchResult(dl.redact(url), task.raw_rel, "failed", attempts=meta.get("attempts", 1),
                           error=f"the archive has {task.name} but its .CHECKSUM answers 404, so the zip cannot be "
                                 "verified and was not stored; retry later, or report it to binance/binance-public-data")
    if status != "ok":
        return FetchResult(dl.redact(url), task.raw_rel, status,
                           error="HTTP 404: neither the zip nor its .CHECKSUM is in the archive" if status == "missing"
                           else f"{meta.get('error')} (fetching the .CHECKSUM file)",
                           attempts=meta.get("attempts", 1))
    try:
        expected = parse_checksum(body.decode("utf-8", "replace"), task.name)
    except ResearchError as e:
        return FetchResult(dl.redact(url), task.raw_rel, "failed", error=str(e))
    res = dl.download(url, dest, expected_sha256=expected, checksum_retries=1,
                      validate=lambda p: check_zip(p, task.name, dl.limits))
    if res.ok:
        atomic_write(dest.with_name(dest.name + ".CHECKSUM"), body)
    return res


def check_zip(path: Path, name: str, limits: Limits) -> None:
    """Cheap structural check of a downloaded zip before it enters ``raw/`` (no decompression).

    Raises
    ------
    ArchiveContentError, LimitError
        Not a zip, not exactly one plain ``.csv`` member, or a declared size over the cap.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        raise ArchiveContentError(f"{name} matches its checksum but is not a readable zip ({e}); "
                                  "report it to binance/binance-public-data") from None
    if len(infos) != 1:
        raise ArchiveContentError(f"{name}: expected exactly one CSV member, found {[i.filename for i in infos][:5]}")
    m = infos[0]
    if "/" in m.filename or "\\" in m.filename or m.filename.startswith(".") or not m.filename.lower().endswith(".csv"):
        raise ArchiveContentError(f"{name}: member {m.filename!r} is not a plain CSV file name")
    if m.file_size > limits.max_member_bytes:
        raise limits.exceeded(f"{name}: member {m.filename} declares {m.file_size:,} bytes uncompressed; it",
                              "max_member_bytes", m.file_size)


def fetch(symbols: Sequence[str], datasets: Sequence[str], *, start: date, end: date | None = None,
          market: str = "um", interval: str | None = "1h", granularity: str = "auto", data_dir=None,
          base: str | None = None, workers: int = 4, dry_run: bool = False, refresh: bool = False,
          retries: int = 4, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 60.0,
          progress: bool = True, batch_files: int = 32, deadline: float | None = None,
          limits: Limits | None = None) -> FetchSummary:
    """Download, verify and ingest Binance archive files.

    Parameters
    ----------
    symbols, datasets : sequence of str
        E.g. ``["BTCUSDT"]`` and ``["fundingRate", "klines"]`` (see :data:`DATASETS`).
    start, end : date
        Inclusive range (``end`` defaults to yesterday, UTC).
    market : {'um', 'spot'}
    interval : str
        Kline interval for the ``*klines`` datasets.
    granularity : {'auto', 'daily', 'monthly'}
        ``auto`` = monthly files for whole months, daily files otherwise; a monthly file that is
        404 is replaced by that month's daily files.
    base : str, optional
        Archive base URL (default ``$RESEARCH_BINANCE_BASE_URL`` or https://data.binance.vision/).
    workers : int
        Parallel downloads (default 4).
    dry_run : bool
        Only list the URLs (``summary.urls``); nothing is downloaded.
    refresh : bool
        Re-download files already verified (to pick up files the archive replaced).
    retries, backoff, max_backoff, timeout
        Retry policy (tests pass tiny backoffs); ``timeout`` bounds one socket read.
    deadline : float, optional
        Seconds one attempt at one file may take, connect to last byte (the CLI's ``--timeout``).
    limits : Limits, optional
        Size, line and row caps (default: :class:`Limits` from the environment).

    Returns
    -------
    FetchSummary
    """
    end = end or (datetime.now(timezone.utc).date() - timedelta(days=1))
    tasks, notes = plan(symbols, datasets, market=market, interval=interval, start=start, end=end,
                        granularity=granularity)
    b = base_url(base)
    summary = FetchSummary(planned=len(tasks), notes=list(notes))
    if dry_run:
        summary.urls = [b + t.archive_path for t in tasks]
        return summary
    ddir = paths.data_dir(data_dir)
    manifest = Manifest(ddir)
    manifest.load()
    summary.warnings.extend(manifest.warnings)
    dl = Downloader(ddir, retries=retries, backoff=backoff, max_backoff=max_backoff, timeout=timeout,
                    limits=limits, deadline=deadline)
    pending: list[tuple[FileTask, Path]] = []
    seen: set[FileTask] = set()
    with rich_progress(progress, "binance") as prog, ThreadPoolExecutor(max_workers=max(1, workers)) as ex, \
            BatchIngester(ddir, summary, manifest, dl.limits) as ingester:
        dl.progress = prog
        if hasattr(prog, "set_files"):
            prog.set_files(len(tasks))
        futures = {}

        def submit(task: FileTask) -> None:
            if task in seen:
                return
            seen.add(task)
            raw = ddir / task.raw_rel
            rec = manifest.get(task.raw_rel)
            if (not refresh and rec and rec.get("status") == "ok" and raw.exists()
                    and raw.stat().st_size == rec.get("size")):
                summary.skipped += 1
                prog.file_done()
                if rec.get("ingest") != "ok":
                    pending.append((task, raw))
                return
            futures[ex.submit(_download_one, dl, b, task)] = task

        for t in tasks:
            submit(t)
        while futures:
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for f in done:
                task = futures.pop(f)
                try:
                    res = f.result()
                except Exception as e:  # a bug or disk error must not lose the other files' results
                    res = FetchResult(dl.redact(b + task.archive_path), task.raw_rel, "failed",
                                      error=str(e) if isinstance(e, ResearchError) else repr(e))
                if res.ok and res.skipped:  # another process downloaded it while we waited for its lock
                    summary.skipped += 1
                    prog.file_done()
                    pending.append((task, ddir / task.raw_rel))
                    continue
                manifest.append({**res.record(), "source": "binance", "ingest": "pending" if res.ok else None,
                                 "event": "download"})
                if res.ok:
                    summary.downloaded += 1
                    summary.bytes_downloaded += res.size or 0
                    pending.append((task, ddir / task.raw_rel))
                elif res.status == "missing" and task.freq == "monthly" and granularity == "auto" \
                        and "daily" in DATASETS[task.dataset].freqs:
                    daily = daily_tasks_for_month(task, start, end)
                    summary.notes.append(f"{task.name} is not in the archive (404); using {len(daily)} daily file(s)")
                    summary.planned += len(daily)
                    if hasattr(prog, "set_files"):
                        prog.set_files(summary.planned)
                    prog.file_done()
                    for d in daily:
                        submit(d)
                else:
                    if res.status != "ok" and res.status != "corrupt":
                        prog.file_done()
                    getattr(summary, res.status).append(res)
            if len(pending) >= batch_files:
                ingester.submit(pending)
                pending.clear()
        if pending:
            ingester.submit(pending)
    return summary


def parse_date(value: str | date, what: str = "date") -> date:
    """Thin alias of :func:`research.parsing.parse_date` (kept while the CLI still calls it here)."""
    return _parse_date(value, what)


def month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])
