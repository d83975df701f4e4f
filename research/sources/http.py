"""Verified, resumable, bounded HTTP downloads (standard library only).

Every download streams into ``<data_dir>/.partial/<path>.part`` under a per-file lock
(:mod:`.locks`: concurrent fetches of one file wait, never race); resumes a kept ``.part`` with
``Range``/``If-Range``; retries with backoff on 5xx, 429 (``Retry-After``), dropped connections,
short bodies and a blown per-attempt deadline (404/410 = ``missing``); obeys
:class:`.limits.Limits` (size cap by ``Content-Length`` and by count, a deadline from connect to
last byte that cuts off a trickling server); follows redirects only through
:class:`.redirects.RedirectGuard` (an API key never reaches another origin or plain http); is
checked against an expected sha256 (a persistent mismatch is quarantined, ``corrupt``) and by the
caller's ``validate(path)`` *before* it replaces the previous file (a 200-OK error document
never overwrites a good one); and is moved into place with :func:`os.replace` only then.

The manifest (:mod:`.manifest`), results (:mod:`.results`), progress sinks (:mod:`.progress`)
and the one-file lake ingest (:mod:`.ingest`) are re-exported here for older imports.
"""
from __future__ import annotations

import email.utils
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from research import paths
from research.errors import RedirectRefused, ResearchError
from research.fileio import atomic_write
from research.sources.checksums import parse_checksum, sha256_file  # noqa: F401  (re-export)
from research.sources.limits import Limits
from research.sources.locks import file_lock
from research.sources.manifest import Manifest, now_utc  # noqa: F401  (re-export)
from research.sources.progress import NullProgress, rich_progress  # noqa: F401  (re-export)
from research.sources.redirects import RedirectGuard, redact
from research.sources.results import STATUSES, FetchResult, FetchSummary  # noqa: F401  (re-export)

USER_AGENT = "treadmill-research/0.1 (+https://github.com/; research downloader)"
_CHUNK = 1 << 20
_NET_ERRORS = (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError)
write_atomic = atomic_write  # older name, kept for callers outside this package


def __getattr__(name):  # lazy re-export: ingest imports this module
    if name == "fetch_file":
        from research.sources.ingest import fetch_file
        return fetch_file
    raise AttributeError(name)


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


def _set_read_timeout(resp, seconds: float) -> None:
    """Bound the next socket read (so a trickle cannot outlive the deadline by a socket timeout)."""
    try:
        resp.fp.raw._sock.settimeout(max(seconds, 0.01))
    except AttributeError:
        pass


class Downloader:
    """Retrying, resumable, verifying, bounded HTTP client bound to one data directory.

    Parameters
    ----------
    data_dir : path, optional
        Data directory; ``.partial/``, ``.locks/`` and ``quarantine/`` live inside it.
    retries : int
        Extra attempts after the first on retryable errors (5xx, 429, dropped connections, deadline).
    backoff, max_backoff : float
        Seconds before retry ``k`` are ``min(backoff * 2**k, max_backoff)`` (or ``Retry-After``,
        capped at ``max_retry_after``). Tests pass tiny values.
    timeout : float
        Socket timeout per read.
    headers : dict, optional
        Extra request headers (e.g. an API key). Never logged, recorded, or sent to another origin.
    secrets : iterable of str
        Strings to redact from every URL and error message.
    limits : Limits, optional
        Size caps and the per-attempt deadline (default: :class:`Limits` from the environment).
    deadline : float, optional
        Shortcut overriding ``limits.deadline`` (the CLI's ``--timeout``).
    redirects : {'follow', 'same-origin', 'never'}, optional
        Redirect policy (see :class:`RedirectGuard`); default ``same-origin`` when ``secrets`` or
        ``headers`` are given (keyed sources), else ``follow``.
    lock_wait, lock_report_after : float
        Seconds to wait for another process downloading the same file, and after which to say
        who it is (through ``report``, default stderr).
    """

    def __init__(self, data_dir=None, *, retries: int = 4, backoff: float = 0.5, max_backoff: float = 30.0,
                 max_retry_after: float = 120.0, timeout: float = 30.0, headers: dict | None = None,
                 secrets: Iterable[str] = (), sleep: Callable[[float], None] = time.sleep, progress=None,
                 limits: Limits | None = None, deadline: float | None = None, redirects: str | None = None,
                 lock_wait: float = 3600.0, lock_report_after: float = 3.0,
                 report: Callable[[str], None] | None = None):
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
        limits = limits or Limits()
        if deadline is not None:
            limits = Limits(**{**limits.__dict__, "deadline": float(deadline)})
        self.limits = limits
        policy = redirects or ("same-origin" if (self.secrets or headers) else "follow")
        self._opener = urllib.request.build_opener(RedirectGuard(self.secrets, policy, self.redact))
        self.lock_wait = lock_wait
        self.lock_report_after = lock_report_after
        self.report = report or (lambda m: print(m, file=sys.stderr))

    # -- helpers
    def redact(self, text: str) -> str:
        """``text`` with secrets replaced by ``***``."""
        return redact(text, self.secrets)

    def rel(self, p: Path) -> str:
        """``p`` relative to the data directory (POSIX), or as given when outside it."""
        try:
            return p.resolve().relative_to(self.data_dir).as_posix()
        except ValueError:
            return str(p)

    def partial_path(self, dest: Path) -> Path:
        return self.data_dir / ".partial" / (self.rel(dest).lstrip("/") + ".part")

    def quarantine_path(self, dest: Path) -> Path:
        return self.data_dir / "quarantine" / self.rel(dest).lstrip("/")

    def lock_path(self, dest: Path) -> Path:
        return self.data_dir / ".locks" / (self.rel(dest).lstrip("/") + ".lock")

    def _delay(self, attempt: int, hint: float | None) -> float:
        if hint is not None:
            return hint
        return min(self.backoff * (2 ** attempt), self.max_backoff)

    #: Body sent with every request (makes it a POST), e.g. a JSON query for an RPC-style API such
    #: as Hyperliquid's ``/info``; None (the default) sends GETs.
    request_body: bytes | None = None

    def _open(self, url: str, headers: dict, t_end: float):
        req = urllib.request.Request(url, data=self.request_body, headers={**self.headers, **headers})
        try:
            return self._opener.open(req, timeout=max(0.01, min(self.timeout, t_end - time.monotonic())))
        except RedirectRefused as e:
            raise _Fatal(str(e)) from None
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
        except _NET_ERRORS as e:
            if time.monotonic() >= t_end:
                raise _Retryable(self._late(0)) from None
            raise _Retryable(f"connection error: {getattr(e, 'reason', e)}") from None

    def _late(self, got: int) -> str:
        return (f"no complete answer within the deadline of {self.limits.deadline:g} s ({got:,} bytes received); "
                "raise --timeout for a slow link")

    def _read_body(self, resp, write: Callable[[bytes], None], t_end: float, cap: int, cap_name: str,
                   what: str, have: int = 0) -> int:
        """Stream ``resp`` into ``write`` until EOF, the deadline or the cap; returns bytes read."""
        got = 0
        try:
            while True:
                left = t_end - time.monotonic()
                if left <= 0:
                    raise _Retryable(self._late(have + got))
                _set_read_timeout(resp, min(self.timeout, left))
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    return got
                got += len(chunk)
                if have + got > cap:
                    raise _Fatal(str(self.limits.exceeded(what, cap_name, f"more than {cap:,}")))
                write(chunk)
                self.progress.advance_bytes(len(chunk))
        except _NET_ERRORS as e:
            if time.monotonic() >= t_end:
                raise _Retryable(self._late(have + got)) from None
            raise _Retryable(f"connection dropped after {have + got} bytes: {type(e).__name__}") from None

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
        """GET a small document into memory (capped at ``limits.max_document_bytes``).

        Returns
        -------
        (status, body, meta)
            status is ``ok``, ``missing`` or ``failed``; meta has ``error``, ``attempts``,
            ``last_modified``, ``etag``.
        """
        red = self.redact(url)

        def once(_attempt):
            t_end = time.monotonic() + self.limits.deadline
            resp = self._open(url, headers or {}, t_end)
            buf = bytearray()
            try:
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > self.limits.max_document_bytes:
                    raise _Fatal(str(self.limits.exceeded(red, "max_document_bytes", int(length))))
                self._read_body(resp, buf.extend, t_end, self.limits.max_document_bytes, "max_document_bytes", red)
            finally:
                resp.close()
            if length is not None and length.isdigit() and len(buf) != int(length):
                raise _Retryable(f"short body: {len(buf)} of {length} bytes")
            return bytes(buf), resp.headers

        try:
            (body, hdrs), attempts = self._with_retries(url, once)
        except _Missing as e:
            return "missing", None, {"error": str(e), "attempts": 1}
        except (_Fatal, _RangeIgnored) as e:
            return "failed", None, {"error": self.redact(str(e)), "attempts": self.retries + 1}
        return "ok", body, {"attempts": attempts, "last_modified": hdrs.get("Last-Modified"), "etag": hdrs.get("ETag")}

    def probe(self, url: str) -> str:
        """Whether ``url`` exists: ``ok``, ``missing`` (404/410) or ``failed``; reads at most a few bytes."""
        try:
            resp = self._open(url, {"Range": "bytes=0-0"}, time.monotonic() + min(self.limits.deadline, 60.0))
        except _Missing:
            return "missing"
        except (_Fatal, _Retryable, _RangeIgnored):
            return "failed"
        resp.close()
        return "ok"

    # -- files
    def download(self, url: str, dest: Path, *, expected_sha256: str | Callable[[], str] | None = None,
                 checksum_retries: int = 1, validate: Callable[[Path], None] | None = None) -> FetchResult:
        """Download ``url`` to ``dest`` (verified, atomic, resumable, bounded, locked per file).

        ``expected_sha256`` may be a callable, evaluated after the download (so a checksum file can
        be fetched lazily). A mismatch is re-downloaded ``checksum_retries`` times from scratch; a
        persistent mismatch is quarantined and reported ``corrupt``. ``validate(part)`` may raise
        a :class:`ResearchError` to refuse the body; it is then quarantined, reported ``failed``,
        and ``dest`` (a previous good file) is left as it was.
        """
        dest = Path(dest)
        with file_lock(self.lock_path(dest), self.rel(dest), wait=self.lock_wait,
                       report_after=self.lock_report_after, report=self.report):
            if isinstance(expected_sha256, str) and dest.exists() and sha256_file(dest) == expected_sha256.lower():
                # another process finished this file while we waited for its lock
                return FetchResult(self.redact(url), self.rel(dest), "ok", size=dest.stat().st_size,
                                   sha256=expected_sha256.lower(), skipped=True)
            return self._download_locked(url, dest, expected_sha256, checksum_retries, validate)

    def _download_locked(self, url, dest, expected_sha256, checksum_retries, validate) -> FetchResult:
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
                if validate is not None:
                    try:
                        validate(part)
                    except ResearchError as e:
                        q = self._quarantine(part, dest)
                        return FetchResult(red, self.rel(dest), "failed", size=size, sha256=digest,
                                           error=self.redact(f"{e}; refused before it replaced {self.rel(dest)} "
                                                             f"(kept in {self.rel(q)})"),
                                           attempts=total_attempts, extra={"quarantined": self.rel(q)})
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, dest)
                self.progress.file_done()
                return FetchResult(red, self.rel(dest), "ok", size=size, sha256=digest, attempts=total_attempts,
                                   last_modified=meta.get("last_modified"), etag=meta.get("etag"))
            mismatch = f"sha256 {digest} does not match the published {expected.lower()}"
        q = self._quarantine(part, dest)
        self.progress.file_done()
        return FetchResult(red, self.rel(dest), "corrupt", size=size, sha256=digest,
                           error=mismatch + f" (after {checksum_retries + 1} downloads; quarantined in {self.rel(q)})",
                           attempts=total_attempts, last_modified=meta.get("last_modified"), etag=meta.get("etag"),
                           extra={"quarantined": self.rel(q)})

    def _quarantine(self, src: Path, dest: Path) -> Path:
        q = self.quarantine_path(dest)
        q.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, q)
        return q

    def _stream(self, url: str, part: Path, meta: dict) -> tuple[str, int, dict]:
        """One attempt: (resume and) stream the body into ``part``; returns (sha256, size, meta)."""
        t_end = time.monotonic() + self.limits.deadline
        cap, red = self.limits.max_download_bytes, self.redact(url)
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            validator = meta.get("etag") or meta.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        try:
            resp = self._open(url, headers, t_end)
        except _RangeIgnored:
            part.unlink(missing_ok=True)
            raise _Retryable("server refused the resume range; restarting from zero", 0.0) from None
        try:
            h = resp.headers
            if resp.status == 206 and have:
                m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", h.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    part.unlink(missing_ok=True)
                    raise _Retryable("unexpected Content-Range on resume; restarting from zero", 0.0)
                mode = "ab"
            else:
                have, mode = 0, "wb"
            new_meta = {"last_modified": h.get("Last-Modified"), "etag": h.get("ETag")}
            if meta and have and (new_meta["etag"] or meta.get("etag")) and new_meta["etag"] != meta.get("etag"):
                # the file changed under us although the server honoured the range: start over
                part.unlink(missing_ok=True)
                raise _Retryable("file changed on the server during resume; restarting", 0.0)
            meta.update(new_meta)
            length = h.get("Content-Length")
            expected_len = int(length) if length and length.isdigit() else None
            if expected_len is not None and have + expected_len > cap:
                part.unlink(missing_ok=True)
                raise _Fatal(str(self.limits.exceeded(red, "max_download_bytes", have + expected_len)))
            if expected_len is not None:
                self.progress.add_bytes_total(expected_len)
            with open(part, mode) as fh:
                try:
                    got = self._read_body(resp, fh.write, t_end, cap, "max_download_bytes", red, have)
                except _Fatal:
                    fh.close()
                    part.unlink(missing_ok=True)
                    raise
            if expected_len is not None and got != expected_len:
                raise _Retryable(f"connection dropped: got {got} of {expected_len} bytes")
        finally:
            resp.close()
        return sha256_file(part), part.stat().st_size, dict(meta)


