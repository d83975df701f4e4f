"""Reading Binance archive zips without trusting them: one plain member, bounded size and lines.

A zip is opened only after its checksum matched, but a matching checksum says nothing about what
is inside. :func:`read_member` therefore

* requires exactly one member, with a plain ``.csv`` file name (no folder, no ``..``);
* rejects a member whose declared size (``ZipInfo.file_size``) exceeds ``max_member_bytes``
  before decompressing anything, and stream-reads it with a running count (so a decompression
  bomb is stopped at the cap, never read whole);
* checks line length and line count while streaming (``max_line_bytes``, ``max_rows``).

:func:`split_header` finds the header row (present in newer futures files, absent in older ones
and in every spot file) and checks its names against the documented layout.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from research.errors import ArchiveContentError, SourceError
from research.sources.limits import Limits

__all__ = ["read_member", "split_header", "DATA_FIELD"]

_READ = 1 << 20
# a data row starts with an integer (epoch, id) or a date (metrics' create_time)
DATA_FIELD = re.compile(rb"^\s*(-?\d+|\d{4}-\d{2}-\d{2}.*)\s*$")


def read_member(zip_path: Path, limits: Limits | None = None) -> bytes:
    """The single CSV inside an archive zip, read within ``limits``.

    Raises
    ------
    SourceError
        Not a zip, or not exactly one plain ``.csv`` member.
    LimitError
        Declared or actual decompressed size, a line, or the line count over its cap.
    """
    lim = limits or Limits()
    name = Path(zip_path).name
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) != 1:
                raise ArchiveContentError(f"{name}: expected exactly one CSV member, found "
                                          f"{[i.filename for i in infos][:5]}")
            info = infos[0]
            member = info.filename
            if ("/" in member or "\\" in member or member.startswith(".") or "\x00" in member
                    or not member.lower().endswith(".csv")):
                raise ArchiveContentError(f"{name}: member {member!r} is not a plain CSV file name")
            if info.file_size > lim.max_member_bytes:
                raise lim.exceeded(f"{name}: member {member} declares {info.file_size:,} bytes uncompressed; it",
                                   "max_member_bytes", info.file_size)
            return _read_bounded(zf, info, lim, f"{name}: member {member}")
    except zipfile.BadZipFile as e:
        raise SourceError(f"{name}: not a readable zip ({e}); fetch it again with --refresh") from None


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, lim: Limits, what: str) -> bytes:
    buf = bytearray()
    run = 0  # bytes since the last newline
    lines = 0
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(_READ)
            if not chunk:
                break
            if len(buf) + len(chunk) > lim.max_member_bytes:
                raise lim.exceeded(f"{what} expands past the cap; it", "max_member_bytes",
                                   f"more than {lim.max_member_bytes:,}")
            first = chunk.find(b"\n")
            if first < 0:
                run += len(chunk)
            else:
                # a line inside the chunk cannot be longer than the chunk: small members skip the split
                inner = max(map(len, chunk[first + 1:].split(b"\n"))) if len(chunk) > lim.max_line_bytes else 0
                longest = max(run + first, inner)
                run = len(chunk) - chunk.rfind(b"\n") - 1
                lines += chunk.count(b"\n")
                if longest > lim.max_line_bytes:
                    raise lim.exceeded(f"{what}: a line near line {lines:,}", "max_line_bytes", f"{longest:,}")
            if run > lim.max_line_bytes:
                raise lim.exceeded(f"{what}: line {lines + 1:,}", "max_line_bytes", f"at least {run:,}")
            if lines > lim.max_rows:
                raise lim.exceeded(f"{what}", "max_rows", f"at least {lines:,}", unit="lines")
            buf += chunk
    return bytes(buf)


def split_header(data: bytes, schemas: tuple[dict, ...], origin: str) -> tuple[dict, bool, int]:
    """Which of ``schemas`` a CSV has, whether it has a header, and where its data rows start.

    The header (when the first field is not an integer or a date) must name the documented
    columns in order (case and surrounding spaces ignored).

    Returns
    -------
    (schema, has_header, body_offset)

    Raises
    ------
    ArchiveContentError
        Wrong column count, or header names that differ from the documented layout.
    """
    nl = data.find(b"\n")
    first = data if nl < 0 else data[:nl]
    fields = first.rstrip(b"\r").split(b",")
    for sch in schemas:
        if len(sch) == len(fields):
            break
    else:
        raise ArchiveContentError(f"{origin}: {len(fields)} columns in the first line, expected {len(schemas[0])} "
                                  f"({', '.join(schemas[0])}); first line: {first[:120].decode('utf-8', 'replace')!r}")
    if DATA_FIELD.match(fields[0]):
        return sch, False, 0
    names = [f.decode("utf-8", "replace").strip().strip('"').lower() for f in fields]
    if names != list(sch):
        diff = [f"{i + 1}: {got!r} (documented {want!r})" for i, (got, want) in enumerate(zip(names, sch)) if got != want]
        raise ArchiveContentError(f"{origin}: header names differ from the documented layout at column(s) "
                                  f"{'; '.join(diff[:4])}; not this dataset's file (report it upstream if the "
                                  "archive serves it under this name)")
    return sch, True, (len(data) if nl < 0 else nl + 1)
