"""Verified, resumable HTTP downloads and the download manifest (standard library only).

Every download

* streams into ``<data_dir>/.partial/<path>.part`` (never into ``raw/``), hashing as it goes;
* resumes a kept ``.part`` with an HTTP ``Range`` request (``If-Range`` on the ETag or
  Last-Modified), restarting from zero when the server ignores the range;
* retries with exponential backoff on 5xx, 429 (honouring ``Retry-After``), dropped
  connections and short bodies; a 404/410 is ``missing`` and is not retried;
* when a sha256 is expected, is checked against it; a mismatch is downloaded once more from
  scratch and, if it still does not match, moved to ``<data_dir>/quarantine/`` and reported
  ``corrupt``;
* is moved into place with :func:`os.replace` only once complete and verified, so a killed run
  never leaves a partial file in ``raw/``.

The manifest (:func:`research.paths.manifest_path`, JSON lines) gets one record per attempt;
the newest record for a path wins. Records hold the (redacted) URL, the path relative to the
data directory, size, sha256, status (``ok``, ``missing``, ``corrupt``, ``failed``), UTC time,
Last-Modified/ETag when served, and the ingest outcome. Secrets never reach the manifest or a
log line: URLs are redacted (query parameters such as ``api_key`` and every registered secret
value), and request headers are never recorded.
"""
from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

from research import lake, paths

STATUSES = ("ok", "missing", "corrupt", "failed")
USER_AGENT = "treadmill-research/0.1 (+https://github.com/; research downloader)"
_CHUNK = 1 << 20
_SECRET_PARAMS = re.compile(r"(?i)^(api[_-]?key|apikey|key|token|secret|signature|access[_-]?token)$")


def redact(url: str, secrets: Iterable[str] = ()) -> str:
    """``url`` with secret query values and every known secret string replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.query:
        q = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        q = [(k, "***" if _SECRET_PARAMS.match(k) else v) for k, v in q]
        parts = parts._replace(query=urllib.parse.urlencode(q, safe=",:"))
    out = urllib.parse.urlunsplit(parts)
    for s in secrets:
        if s:
            out = out.replace(s, "***")
    return out


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_checksum(text: str, name: str | None = None) -> str:
    """The sha256 from a ``sha256sum``-style line (``<hex>  <file name>``, newline optional).

    Raises
    ------
    ChecksumError
        When the text holds no 64-hex-digit digest (or names a different file).
    """
    from research.errors import ChecksumError

    fields = text.split()
    if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
        raise ChecksumError(f"checksum file for {name or '?'} does not start with a sha256 digest: {text[:80]!r}")
    if name and len(fields) > 1 and fields[1].lstrip("*") != name:
        raise ChecksumError(f"checksum file names {fields[1]!r}, expected {name!r}")
    return fields[0].lower()


# --------------------------------------------------------------------------- manifest
class Manifest:
    """The download manifest: append-only JSON lines, newest record per ``path`` wins.

    Appends are serialised across threads (a lock) and processes (``flock``), and each line is
    written with one ``write`` call and flushed, so a killed run leaves at worst an incomplete
    last line, which :meth:`load` skips.
    """

    def __init__(self, data_dir=None):
        self.path = paths.manifest_path(data_dir)
        self._lock = threading.Lock()
        self._records: dict[str, dict] | None = None

    def load(self) -> dict[str, dict]:
        recs: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn last line of a killed run
                    if "path" in r:
                        recs[r["path"]] = self._merge(recs.get(r["path"]), r)
        self._records = recs
        return recs

    @staticmethod
    def _merge(old: dict | None, new: dict) -> dict:
        # an ingest event annotates the download record; a new download record replaces it
        if new.get("event") == "ingest" and old:
            return {**old, **{k: v for k, v in new.items() if k not in ("event", "time")}, "ingest_time": new.get("time")}
        return dict(new)

    def get(self, path: str) -> dict | None:
        if self._records is None:
            self.load()
        return self._records.get(path)

    def append(self, record: dict) -> None:
        self.append_many([record])

    def append_many(self, records: list[dict]) -> None:
        """Append records with one write and one fsync."""
        if not records:
            return
        recs = []
        for record in records:
            rec = {k: v for k, v in record.items() if v is not None}
            rec.setdefault("time", now_utc())
            recs.append(rec)
        line = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in recs)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            if self._records is None:
                self.load()
            else:
                for rec in recs:
                    self._records[rec["path"]] = self._merge(self._records.get(rec["path"]), rec)


# --------------------------------------------------------------------------- results
@dataclass
class FetchResult:
    """Outcome of one download."""

    url: str  # redacted
    path: str  # relative to the data directory (the final place, or the quarantine place)
    status: str  # ok | missing | corrupt | failed
    size: int | None = None
    sha256: str | None = None
    error: str | None = None
    attempts: int = 0
    last_modified: str | None = None
    etag: str | None = None
    skipped: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict:
        d = asdict(self)
        d.pop("skipped")
        extra = d.pop("extra") or {}
        return {**d, **extra}


@dataclass
class FetchSummary:
    """What a fetch did. ``exit_code``: 0 all good, 1 something failed or is corrupt, 2 files missing."""

    planned: int = 0
    downloaded: int = 0
    skipped: int = 0
    ingested_files: int = 0
    missing: list[FetchResult] = field(default_factory=list)
    corrupt: list[FetchResult] = field(default_factory=list)
    failed: list[FetchResult] = field(default_factory=list)
    ingest_errors: list[tuple[str, str]] = field(default_factory=list)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_added: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.failed or self.ingest_errors or self.missing)

    @property
    def exit_code(self) -> int:
        if self.corrupt or self.failed or self.ingest_errors:
            return 1
        return 2 if self.missing else 0

    def summary(self) -> str:
        lines = [f"planned {self.planned} file(s): downloaded {self.downloaded} ({self.bytes_downloaded:,} bytes), "
                 f"skipped {self.skipped} already verified, ingested {self.ingested_files}; "
                 f"missing {len(self.missing)}, corrupt {len(self.corrupt)}, failed {len(self.failed) + len(self.ingest_errors)}"]
        for t in sorted(self.rows_in):
            lines.append(f"  {t}: {self.rows_in[t]:,} rows read, {self.rows_added.get(t, 0):,} new in the lake")
        for label, items in (("MISSING", self.missing), ("CORRUPT", self.corrupt), ("FAILED", self.failed)):
            for r in items:
                lines.append(f"  {label} {r.url}: {r.error}")
        for p, e in self.ingest_errors:
            lines.append(f"  FAILED ingest {p}: {e}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.corrupt:
            lines.append("  corrupt files are in <data_dir>/quarantine/; re-run to try again")
        if self.failed or self.ingest_errors:
            lines.append("  re-run the same command to retry only what failed")
        return "\n".join(lines)

    def to_frame(self) -> pl.DataFrame:
        rows = [{"status": r.status, "url": r.url, "path": r.path, "error": r.error}
                for r in (*self.missing, *self.corrupt, *self.failed)]
        return pl.DataFrame(rows, schema={"status": pl.String, "url": pl.String, "path": pl.String, "error": pl.String})


class _Missing(Exception):
    pass


class _Retryable(Exception):
    def __init__(self, msg: str, delay: float | None = None):
        super().__init__(msg)
        self.delay = delay


class _Fatal(Exception):
    pass


class _RangeIgnored(Exception):
    pass


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return min(max((dt - datetime.now(timezone.utc)).total_seconds(), 0.0), cap)


class NullProgress:
    """Progress sink that does nothing (tests, --quiet)."""

    def add_bytes_total(self, n: int) -> None: ...
    def advance_bytes(self, n: int) -> None: ...
    def file_done(self) -> None: ...


# --------------------------------------------------------------------------- downloader
class Downloader:
    """Retrying, resumable, verifying HTTP client bound to one data directory.

    Parameters
    ----------
    data_dir : path, optional
        Data directory; ``.partial/`` and ``quarantine/`` live inside it.
    retries : int
        Extra attempts after the first on retryable errors (5xx, 429, dropped connections).
    backoff, max_backoff : float
        Seconds before retry ``k`` are ``min(backoff * 2**k, max_backoff)`` (or ``Retry-After``,
        capped at ``max_retry_after``). Tests pass tiny values.
    timeout : float
        Socket timeout per request.
    headers : dict, optional
        Extra request headers (e.g. an API key). Never logged or recorded.
    secrets : iterable of str
        Strings to redact from every URL and error message.
    """

    def __init__(self, data_dir=None, *, retries: int = 4, backoff: float = 0.5, max_backoff: float = 30.0,
                 max_retry_after: float = 120.0, timeout: float = 30.0, headers: dict | None = None,
                 secrets: Iterable[str] = (), sleep: Callable[[float], None] = time.sleep, progress=None):
        self.data_dir = paths.data_dir(data_dir)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.secrets = tuple(s for s in secrets if s)
        self.sleep = sleep
        self.progress = progress or NullProgress()

    # -- helpers
    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def rel(self, p: Path) -> str:
        try:
            return p.resolve().relative_to(self.data_dir).as_posix()
        except ValueError:
            return str(p)

    def partial_path(self, dest: Path) -> Path:
        return self.data_dir / ".partial" / (self.rel(dest) + ".part")

    def quarantine_path(self, dest: Path) -> Path:
        return self.data_dir / "quarantine" / self.rel(dest)

    def _delay(self, attempt: int, hint: float | None) -> float:
        if hint is not None:
            return hint
        return min(self.backoff * (2 ** attempt), self.max_backoff)

    #: Body sent with every request (makes it a POST), e.g. a JSON query for an RPC-style API such
    #: as Hyperliquid's ``/info``; None (the default) sends GETs.
    request_body: bytes | None = None

    def _open(self, url: str, headers: dict):
        req = urllib.request.Request(url, data=self.request_body, headers={**self.headers, **headers})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            code = e.code
            retry_after = e.headers.get("Retry-After") if e.headers else None
            e.close()
            if code in (404, 410):
                raise _Missing(f"HTTP {code}") from None
            if code == 416:
                raise _RangeIgnored("HTTP 416 (range not satisfiable)") from None
            if code == 429:
                raise _Retryable("HTTP 429 (rate limited)", _retry_after(retry_after, self.max_retry_after)) from None
            if code >= 500:
                raise _Retryable(f"HTTP {code}", _retry_after(retry_after, self.max_retry_after)) from None
            raise _Fatal(f"HTTP {code}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as e:
            raise _Retryable(f"connection error: {getattr(e, 'reason', e)}") from None

    def _with_retries(self, url: str, fn):
        """Call ``fn(attempt)`` until it returns; retry on :class:`_Retryable`."""
        attempt = 0
        while True:
            try:
                return fn(attempt), attempt + 1
            except _Retryable as e:
                if attempt >= self.retries:
                    raise _Fatal(f"{e} (gave up after {attempt + 1} attempts)") from None
                self.sleep(self._delay(attempt, e.delay))
                attempt += 1

    # -- small documents (checksums, JSON APIs)
    def get_bytes(self, url: str, headers: dict | None = None) -> tuple[str, bytes | None, dict]:
        """GET a small document into memory.

        Returns
        -------
        (status, body, meta)
            status is ``ok``, ``missing`` or ``failed``; meta has ``error``, ``attempts``,
            ``last_modified``, ``etag``.
        """
        def once(_attempt):
            resp = self._open(url, headers or {})
            try:
                length = resp.headers.get("Content-Length")
                body = resp.read()
            except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as e:
                raise _Retryable(f"connection dropped: {e}") from None
            finally:
                resp.close()
            if length is not None and length.isdigit() and len(body) != int(length):
                raise _Retryable(f"short body: {len(body)} of {length} bytes")
            return body, resp.headers

        try:
            (body, hdrs), attempts = self._with_retries(url, once)
        except _Missing as e:
            return "missing", None, {"error": str(e), "attempts": 1}
        except (_Fatal, _RangeIgnored) as e:
            return "failed", None, {"error": self.redact(str(e)), "attempts": self.retries + 1}
        return "ok", body, {"attempts": attempts, "last_modified": hdrs.get("Last-Modified"), "etag": hdrs.get("ETag")}

    # -- files
    def download(self, url: str, dest: Path, *, expected_sha256: str | Callable[[], str] | None = None,
                 checksum_retries: int = 1) -> FetchResult:
        """Download ``url`` to ``dest`` (verified, atomic, resumable).

        ``expected_sha256`` may be a callable, evaluated after the download (so a checksum file can
        be fetched lazily). A mismatch is re-downloaded ``checksum_retries`` times from scratch; a
        persistent mismatch is quarantined and reported ``corrupt``.
        """
        dest = Path(dest)
        red = self.redact(url)
        part = self.partial_path(dest)
        part.parent.mkdir(parents=True, exist_ok=True)
        total_attempts = 0
        meta: dict = {}
        for round_ in range(checksum_retries + 1):
            if round_ > 0:
                part.unlink(missing_ok=True)  # a mismatching file is not a base to resume from
            try:
                (digest, size, meta), attempts = self._with_retries(url, lambda a: self._stream(url, part, meta))
                total_attempts += attempts
            except _Missing as e:
                part.unlink(missing_ok=True)
                return FetchResult(red, self.rel(dest), "missing", error=str(e), attempts=total_attempts + 1)
            except _Fatal as e:
                return FetchResult(red, self.rel(dest), "failed", error=self.redact(str(e)),
                                   attempts=total_attempts + self.retries + 1)
            expected = expected_sha256() if callable(expected_sha256) else expected_sha256
            if expected is None or digest == expected.lower():
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, dest)
                self.progress.file_done()
                return FetchResult(red, self.rel(dest), "ok", size=size, sha256=digest, attempts=total_attempts,
                                   last_modified=meta.get("last_modified"), etag=meta.get("etag"))
            mismatch = f"sha256 {digest} does not match the published {expected.lower()}"
        q = self.quarantine_path(dest)
        q.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, q)
        self.progress.file_done()
        return FetchResult(red, self.rel(dest), "corrupt", size=size, sha256=digest,
                           error=mismatch + f" (after {checksum_retries + 1} downloads; quarantined in {self.rel(q)})",
                           attempts=total_attempts, last_modified=meta.get("last_modified"), etag=meta.get("etag"),
                           extra={"quarantined": self.rel(q)})

    def _stream(self, url: str, part: Path, meta: dict) -> tuple[str, int, dict]:
        """One attempt: (resume and) stream the body into ``part``; returns (sha256, size, meta)."""
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            validator = meta.get("etag") or meta.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        try:
            resp = self._open(url, headers)
        except _RangeIgnored:
            part.unlink(missing_ok=True)
            raise _Retryable("server refused the resume range; restarting from zero", 0.0) from None
        try:
            status = resp.status
            h = resp.headers
            if status == 206 and have:
                m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", h.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    resp.close()
                    part.unlink(missing_ok=True)
                    raise _Retryable("unexpected Content-Range on resume; restarting from zero", 0.0)
                mode = "ab"
            else:
                have, mode = 0, "wb"
            new_meta = {"last_modified": h.get("Last-Modified"), "etag": h.get("ETag")}
            if meta and have and (new_meta["etag"] or meta.get("etag")) and new_meta["etag"] != meta.get("etag"):
                # the file changed under us although the server honoured the range: start over
                resp.close()
                part.unlink(missing_ok=True)
                raise _Retryable("file changed on the server during resume; restarting", 0.0)
            meta.update(new_meta)
            length = h.get("Content-Length")
            expected_len = int(length) if length and length.isdigit() else None
            if expected_len is not None:
                self.progress.add_bytes_total(expected_len)
            got = 0
            with open(part, mode) as fh:
                try:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        fh.write(chunk)
                        got += len(chunk)
                        self.progress.advance_bytes(len(chunk))
                except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as e:
                    raise _Retryable(f"connection dropped after {have + got} bytes: {type(e).__name__}") from None
            if expected_len is not None and got != expected_len:
                raise _Retryable(f"connection dropped: got {got} of {expected_len} bytes")
        finally:
            resp.close()
        size = part.stat().st_size
        return sha256_file(part), size, dict(meta)


def fetch_file(dl: "Downloader", url: str, dest: Path, *, table: str, parse, source: str,
               failure_hint: str = "") -> FetchSummary:
    """Download one file, record it in the manifest, parse it and write ``table``.

    ``parse(path) -> polars.DataFrame`` reads the downloaded file. A failed download appends
    ``failure_hint`` to its error; a file that cannot be parsed or written is reported in
    ``ingest_errors`` and leaves the lake unchanged.
    """
    summary = FetchSummary(planned=1)
    res = dl.download(url, dest)
    manifest = Manifest(dl.data_dir)
    manifest.append({**res.record(), "source": source, "event": "download", "ingest": "pending" if res.ok else None})
    if not res.ok:
        if failure_hint:
            res.error = f"{res.error}; {failure_hint}"
        getattr(summary, res.status).append(res)
        return summary
    summary.downloaded, summary.bytes_downloaded = 1, res.size or 0
    try:
        w = lake.write(table, parse(dest), dl.data_dir, origin=dest.name)
    except Exception as e:  # SourceError / SchemaError / LakeError: reported, the lake is unchanged
        summary.ingest_errors.append((res.path, str(e)))
        manifest.append({"path": res.path, "event": "ingest", "ingest": "failed", "error": str(e)})
        return summary
    summary.ingested_files = 1
    summary.rows_in[table], summary.rows_added[table] = w.rows_in, w.rows_added
    manifest.append({"path": res.path, "event": "ingest", "ingest": "ok", "rows": {table: w.rows_in}})
    return summary


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy a file into place via a temp file and :func:`os.replace`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def write_atomic(dest: Path, data: bytes) -> None:
    """Write bytes into place via a temp file and :func:`os.replace`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


@contextlib.contextmanager
def rich_progress(enabled: bool = True, description: str = "downloading"):
    """A rich progress bar with a files task and a bytes task (or a no-op sink)."""
    if not enabled:
        yield NullProgress()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), transient=False)

    def _mb(n: float) -> str:
        return f"{n / 1e6:,.1f} MB"

    class _Sink:
        def __init__(self):
            self.files = prog.add_task(f"{description} files", total=None, info="")
            self.bytes = prog.add_task(f"{description} bytes", total=None, info="")
            self._lock = threading.Lock()
            self._total = self._done = self._nfiles = 0
            self._nfiles_total = None

        def set_files(self, n: int) -> None:
            self._nfiles_total = n
            prog.update(self.files, total=n, info=f"{self._nfiles}/{n}")

        def add_bytes_total(self, n: int) -> None:
            with self._lock:
                self._total += n
                prog.update(self.bytes, total=self._total, info=f"{_mb(self._done)} / {_mb(self._total)}")

        def advance_bytes(self, n: int) -> None:
            with self._lock:
                self._done += n
                prog.update(self.bytes, completed=self._done, info=f"{_mb(self._done)} / {_mb(self._total)}")

        def file_done(self) -> None:
            with self._lock:
                self._nfiles += 1
                prog.update(self.files, completed=self._nfiles, info=f"{self._nfiles}/{self._nfiles_total or '?'}")

    with prog:
        yield _Sink()
