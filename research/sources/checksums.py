"""sha256 of files and the ``sha256sum``-style checksum files archives publish."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["sha256_file", "parse_checksum"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
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
