"""The download manifest: append-only JSON lines, newest record per ``path`` wins.

Records hold the (redacted) URL, the path relative to the data directory, size, sha256, status
(``ok``, ``missing``, ``corrupt``, ``failed``), UTC time, Last-Modified/ETag when served, and the
ingest outcome (``event: ingest`` records annotate the download record of the same path).

A line that is not a JSON object with a string ``path`` (a torn last line of a killed run, a
stray ``42``, a hand edit) is skipped with a warning naming the line, so one bad line never stops
every fetch; :attr:`Manifest.warnings` holds those warnings for the fetch summary.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
from datetime import datetime, timezone

from research import paths

__all__ = ["Manifest", "now_utc"]


def now_utc() -> str:
    """The current UTC time as ISO text with microseconds and a ``Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Manifest:
    """The download manifest of one data directory.

    Appends are serialised across threads (a lock) and processes (``flock``); each append is one
    ``write`` call followed by ``fsync``. When the file does not end with a newline (a killed
    writer), the append starts a new line so the torn line cannot swallow the new record.

    Parameters
    ----------
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``).
    """

    def __init__(self, data_dir=None):
        self.path = paths.manifest_path(data_dir)
        self._lock = threading.Lock()
        self._records: dict[str, dict] | None = None
        self.warnings: list[str] = []

    def load(self) -> dict[str, dict]:
        """Read every record; returns ``{path: newest merged record}``."""
        recs: dict[str, dict] = {}
        warnings: list[str] = []
        if self.path.exists():
            with open(self.path, "rb") as fh:
                for lineno, raw in enumerate(fh, 1):
                    line = raw.strip()
                    if not line:
                        continue
                    why = None
                    try:
                        r = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        r, why = None, "is not JSON (a torn line of a killed run?)"
                    if why is None and not isinstance(r, dict):
                        why = f"is a JSON {type(r).__name__}, not an object"
                    elif why is None and not isinstance(r.get("path"), str):
                        why = "has no 'path'"
                    if why:
                        warnings.append(f"{self.path}, line {lineno} {why}: {line[:60].decode('utf-8', 'replace')!r}; "
                                        "skipped (the files it described will be verified again)")
                        continue
                    recs[r["path"]] = self._merge(recs.get(r["path"]), r)
        self._records = recs
        self.warnings = warnings
        return recs

    @staticmethod
    def _merge(old: dict | None, new: dict) -> dict:
        # an ingest event annotates the download record; a new download record replaces it
        if new.get("event") == "ingest" and old:
            return {**old, **{k: v for k, v in new.items() if k not in ("event", "time")}, "ingest_time": new.get("time")}
        return dict(new)

    def get(self, path: str) -> dict | None:
        """The newest merged record for ``path`` (relative to the data directory), or None."""
        if self._records is None:
            self.load()
        return self._records.get(path)

    def append(self, record: dict) -> None:
        """Append one record (``None`` values dropped, ``time`` added)."""
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
            with open(self.path, "a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    end = fh.seek(0, os.SEEK_END)
                    if end:
                        fh.seek(end - 1)
                        if fh.read(1) != b"\n":
                            line = "\n" + line
                    fh.write(line.encode("utf-8"))
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            if self._records is None:
                self.load()
            else:
                for rec in recs:
                    if isinstance(rec.get("path"), str):
                        self._records[rec["path"]] = self._merge(self._records.get(rec["path"]), rec)
