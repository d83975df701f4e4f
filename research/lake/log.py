"""The table log: which files make up a table, and the lock that serialises its writers.

Each table directory holds one ``_log.json``. It lists every committed data file (path relative to
the table directory, rows, bytes, sha256, partition values, time range, the version that added it)
and the table's version number. A commit writes a whole new log to a temp file, ``fsync``s it and
renames it over the old one (:func:`research.fileio.write_json`), so readers see the old file list or
the new one, never a mix. Data files are written under fresh names and ``fsync``ed (together
with the new log's temp file) before that rename; a file that no log lists is never read, whatever killed its writer.

Writers of a table hold an exclusive ``flock`` on ``<table>/.lock`` and record in it who they are
(pid, host, since, what); a writer that waits for it says who holds it after
:data:`REPORT_AFTER` seconds, and gives up after the lock timeout (``RESEARCH_LAKE_LOCK_TIMEOUT``
seconds, default 600) with an error naming the holder.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from research.errors import LakeCorruptError, LakeLockTimeout
from research.fileio import atomic_path, fsync_dir

LOG_FILE = "_log.json"
LOCK_FILE = ".lock"
FORMAT = "treadmill-lake/1"
REPORT_AFTER = 3.0
LOCK_TIMEOUT_ENV = "RESEARCH_LAKE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0
RETAIN_SECONDS = 3600.0  # how long a replaced file outlives the commit that replaced it

_log = logging.getLogger("research.lake")


def now_iso() -> str:
    """Current UTC time as ISO text (seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class FileEntry:
    """One committed data file of a table."""

    path: str  # relative to the table directory, POSIX separators
    rows: int
    bytes: int
    sha256: str
    partition: dict  # partition column -> value as text, including "year"
    min: str | None  # time range of the rows (ISO text), for pruning and overlap checks
    max: str | None
    version: int
    mtime_ns: int = 0
    origin: str | None = None

    def overlaps(self, lo: str, hi: str) -> bool:
        """True when the file's time range may share a timestamp with ``[lo, hi]``."""
        return self.min is None or self.max is None or not (hi < self.min or lo > self.max)


@dataclass
class TableLog:
    """The committed state of one table: its version and its files."""

    table: str
    version: int = 0
    files: list[FileEntry] = field(default_factory=list)
    committed_at: str | None = None
    retired: list[dict] = field(default_factory=list)  # {"path", "at"}: replaced files kept for open readers

    def to_json(self) -> dict:
        return {"format": FORMAT, "table": self.table, "version": self.version,
                "committed_at": self.committed_at, "files": [dict(f.__dict__) for f in self.files],
                "retired": self.retired}


def log_path(table_dir: Path) -> Path:
    return table_dir / LOG_FILE


def load_log(table_dir: Path, table: str) -> TableLog:
    """The committed log of a table (version 0 and no files when it has never been written)."""
    p = log_path(table_dir)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TableLog(table)
    try:
        obj = json.loads(raw)
        if obj.get("format") != FORMAT or obj.get("table") != table:
            raise ValueError(f"format {obj.get('format')!r}, table {obj.get('table')!r}")
        files = [FileEntry(**f) for f in obj["files"]]
        return TableLog(table, int(obj["version"]), files, obj.get("committed_at"), list(obj.get("retired", [])))
    except (ValueError, KeyError, TypeError) as e:
        raise LakeCorruptError(f"table log {p} is unreadable ({e}); run `research repair`") from None


def commit_log(table_dir: Path, log: TableLog, files: list[FileEntry], *,
               flush: list[Callable[[], None]] = (), retire: Iterable[str] = ()) -> TableLog:
    """Write ``files`` as the next version of the table (one atomic rename); return the new log.

    The new log goes to a temp file, which is fsynced together with ``flush`` (the fsyncs of the
    data files it lists, run concurrently so they share journal commits) before the rename; the
    folder is fsynced after it. Files in ``retire`` (replaced by this version) stay on disk for
    :data:`RETAIN_SECONDS`, so a reader holding the previous file list can finish; older retired
    files are deleted after the rename.
    """
    now = time.time()
    keep = [r for r in log.retired if now - r["at"] < RETAIN_SECONDS]
    purge = [r["path"] for r in log.retired if now - r["at"] >= RETAIN_SECONDS]
    new = TableLog(log.table, log.version + 1, sorted(files, key=lambda f: f.path), now_iso(),
                   keep + [{"path": p, "at": now} for p in sorted(retire)])
    text = json.dumps(new.to_json(), allow_nan=False)
    dest = log_path(table_dir)
    with atomic_path(dest, fsync=False) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            run_all([*flush, lambda: os.fsync(fh.fileno())])
    fsync_dir(table_dir)
    for rel in purge:
        (table_dir / rel).unlink(missing_ok=True)
    return new


def run_all(jobs: list[Callable[[], None]]) -> None:
    """Run blocking flushes, concurrently when there are several (concurrent fsyncs share journal commits)."""
    if len(jobs) <= 2:
        for job in jobs:
            job()
        return
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as ex:
        for f in [ex.submit(job) for job in jobs]:
            f.result()


def lock_timeout() -> float:
    """Seconds a writer waits for a table lock (``RESEARCH_LAKE_LOCK_TIMEOUT``, default 600)."""
    try:
        return float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


def holder(lock: Path) -> str:
    """Who holds (or last held) a lock, from what the holder wrote into it."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not said who it is yet)"
    return (f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
            f" ({info.get('what') or 'a write'})")


@contextlib.contextmanager
def table_lock(table_dir: Path, what: str = "", timeout: float | None = None) -> Iterator[None]:
    """Hold the table's writer lock; report the holder after a few seconds; give up after ``timeout``."""
    table_dir.mkdir(parents=True, exist_ok=True)
    lock = table_dir / LOCK_FILE
    limit = lock_timeout() if timeout is None else timeout
    with open(lock, "a+", encoding="utf-8") as fh:
        start, pause, reported = time.monotonic(), 0.001, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= limit:
                    raise LakeLockTimeout(
                        f"{lock}: still locked after {waited:.0f} s by {holder(lock)}; wait for it to finish, "
                        f"stop it, or raise {LOCK_TIMEOUT_ENV}") from None
                if waited >= REPORT_AFTER and not reported:
                    _log.warning("waiting for the lake lock %s, held by %s", lock, holder(lock))
                    reported = True
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(), "what": what}))
            fh.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
