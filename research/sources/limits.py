"""Caps on hostile input: download size, decompressed size, line length, rows, time per file.

Every cap has a default, an environment variable to override it for a whole session, and a
keyword to override it in code (``Limits(max_rows=...)``); every violation raises
:class:`research.errors.LimitError` whose message names the file, the cap and its override.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from research.errors import LimitError

__all__ = ["Limits", "ENV"]

GiB = 1 << 30
ENV = {
    "max_download_bytes": "RESEARCH_MAX_DOWNLOAD_BYTES",
    "max_document_bytes": "RESEARCH_MAX_DOCUMENT_BYTES",
    "max_member_bytes": "RESEARCH_MAX_MEMBER_BYTES",
    "max_line_bytes": "RESEARCH_MAX_LINE_BYTES",
    "max_rows": "RESEARCH_MAX_ROWS",
    "deadline": "RESEARCH_FETCH_TIMEOUT",
}
_DEFAULTS = {
    # the largest monthly kline/funding zip is a few MB; a daily aggTrades zip of BTCUSDT is ~100 MB
    "max_download_bytes": GiB,
    "max_document_bytes": 64 << 20,  # checksums and JSON API answers
    "max_member_bytes": GiB,  # members are read into memory: a zip bomb must stop here
    "max_line_bytes": 64 << 10,  # archive lines are < 200 bytes
    "max_rows": 20_000_000,
    "deadline": 600.0,  # seconds for one attempt at one file, connect to last byte
}


def _env(name: str, default: float, kind):
    var = ENV[name]
    text = os.environ.get(var)
    if text is None or not text.strip():
        return default
    try:
        v = kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise LimitError(f"environment variable {var}={text!r} is not a number") from None
    if v <= 0:
        raise LimitError(f"environment variable {var}={text!r} must be positive")
    return v


@dataclass(frozen=True)
class Limits:
    """The caps one download or archive read obeys (defaults read from the environment).

    Attributes
    ----------
    max_download_bytes : int
        Bytes one downloaded file may have (``RESEARCH_MAX_DOWNLOAD_BYTES``).
    max_document_bytes : int
        Bytes a small document (checksum, JSON answer) read into memory may have.
    max_member_bytes : int
        Decompressed bytes of one archive member (``RESEARCH_MAX_MEMBER_BYTES``).
    max_line_bytes : int
        Bytes in one CSV line (``RESEARCH_MAX_LINE_BYTES``).
    max_rows : int
        Lines in one archive member (``RESEARCH_MAX_ROWS``).
    deadline : float
        Seconds one attempt at one file may take from connect to last byte (``--timeout``,
        ``RESEARCH_FETCH_TIMEOUT``); a trickling server is cut off here and retried.
    """

    max_download_bytes: int = field(default_factory=lambda: _env("max_download_bytes", _DEFAULTS["max_download_bytes"], int))
    max_document_bytes: int = field(default_factory=lambda: _env("max_document_bytes", _DEFAULTS["max_document_bytes"], int))
    max_member_bytes: int = field(default_factory=lambda: _env("max_member_bytes", _DEFAULTS["max_member_bytes"], int))
    max_line_bytes: int = field(default_factory=lambda: _env("max_line_bytes", _DEFAULTS["max_line_bytes"], int))
    max_rows: int = field(default_factory=lambda: _env("max_rows", _DEFAULTS["max_rows"], int))
    deadline: float = field(default_factory=lambda: _env("deadline", _DEFAULTS["deadline"], float))

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or v <= 0:
                name = "--timeout (deadline)" if f.name == "deadline" else f.name
                raise LimitError(f"limit {name} must be a positive number, not {v!r}")

    def exceeded(self, what: str, name: str, value: int | str, unit: str = "bytes") -> LimitError:
        """The error for ``what`` exceeding cap ``name``, naming the override."""
        cap = getattr(self, name)
        hint = "--timeout" if name == "deadline" else f"the environment variable {ENV[name]}"
        shown = f"{cap:,}" if isinstance(cap, int) else f"{cap:g}"
        return LimitError(f"{what}: {value} {unit} exceeds the cap of {shown} {unit} ({name}); "
                          f"if the file is genuine, raise it with {hint}")
