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

import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

from research.errors import ArchiveContentError, SourceError
from research.sources.limits import Limits

__all__ = ["read_member", "split_header", "DATA_FIELD"]

_READ = 1 << 20
_PLAIN_MAX = 16 << 20  # zips up to this size are read whole by the plain-zip path
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record, no comment
_CDH = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LFH = struct.Struct("<4s5H3L2H")  # local file header
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
        small = _read_plain(zip_path, lim, name)
        if small is not None:
            return small
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) != 1:
                raise ArchiveContentError(f"{name}: expected exactly one CSV member, found "
                                          f"{[i.filename for i in infos][:5]}")
            info = infos[0]
            member = info.filename
            _check_name(name, member)
            if info.file_size > lim.max_member_bytes:
                raise lim.exceeded(f"{name}: member {member} declares {info.file_size:,} bytes uncompressed; it",
                                   "max_member_bytes", info.file_size)
            return _read_bounded(zf, info, lim, f"{name}: member {member}")
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # a damaged deflate stream raises zlib.error
        raise SourceError(f"{name}: not a readable zip ({e}); fetch it again with --refresh") from None


def _check_name(name: str, member: str) -> None:
    if ("/" in member or "\\" in member or member.startswith(".") or "\x00" in member
            or not member.lower().endswith(".csv")):
        raise ArchiveContentError(f"{name}: member {member!r} is not a plain CSV file name")


def _read_plain(zip_path: Path, lim: Limits, name: str) -> bytes | None:
    """The member of a small, plain one-member zip (the archive's every monthly and daily kline file).

    :mod:`zipfile` spends more time in Python per small zip than zlib spends inflating it, and a
    batch reads thousands. This reads the file once, takes the one entry from the central
    directory, and inflates it in one bounded call. Anything else (an archive comment, zip64,
    encryption, another method, several entries, a local header that disagrees, a size or CRC
    that does not match) returns None, and :mod:`zipfile` reads the file and says what is wrong.
    """
    try:
        with open(zip_path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > _PLAIN_MAX:
                return None
            data = fh.read()
    except OSError:
        return None
    n = len(data)
    if n < _EOCD.size + _CDH.size + _LFH.size or data[-_EOCD.size:-_EOCD.size + 4] != b"PK\x05\x06":
        return None
    _, disk, cd_disk, here, total, cd_size, cd_off, comment = _EOCD.unpack_from(data, n - _EOCD.size)
    if (disk, cd_disk, here, total, comment) != (0, 0, 1, 1, 0) or cd_off + cd_size != n - _EOCD.size:
        return None
    (sig, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _, off) = _CDH.unpack_from(data, cd_off)
    if (sig != b"PK\x01\x02" or _CDH.size + nlen + xlen + clen != cd_size or flags & 0x41 or method not in (0, 8)
            or 0xFFFFFFFF in (csize, usize, off)):
        return None
    raw = data[cd_off + _CDH.size:cd_off + _CDH.size + nlen]
    member = raw.decode("utf-8" if flags & 0x800 else "cp437")
    if member.endswith("/"):
        return None
    _check_name(name, member)
    if usize > lim.max_member_bytes:
        raise lim.exceeded(f"{name}: member {member} declares {usize:,} bytes uncompressed; it",
                           "max_member_bytes", usize)
    lsig, _, _, lmethod, _, _, _, _, _, lnlen, lxlen = _LFH.unpack_from(data, off)
    start = off + _LFH.size + lnlen + lxlen
    if (lsig != b"PK\x03\x04" or lmethod != method or data[off + _LFH.size:off + _LFH.size + lnlen] != raw
            or start + csize > cd_off):
        return None
    body = data[start:start + csize]
    if method == 8:
        d = zlib.decompressobj(-15)
        try:
            out = d.decompress(body, usize + 1)  # bounded by the declared size, itself within the cap
        except zlib.error:
            return None
        if not d.eof or d.unconsumed_tail:
            return None
    else:
        out = body
    if len(out) != usize or zlib.crc32(out) != crc:
        return None
    _check_lines(out, lim, f"{name}: member {member}")
    return out


def _check_lines(out: bytes, lim: Limits, what: str) -> None:
    """Line count and longest line within the caps, at C speed (a jump per ``max_line_bytes``)."""
    lines = out.count(b"\n")
    if lines > lim.max_rows:
        raise lim.exceeded(f"{what}", "max_rows", f"at least {lines:,}", unit="lines")
    cap, pos, n = lim.max_line_bytes, 0, len(out)
    while n - pos > cap:  # the line starting at pos ends within cap bytes, or it is too long
        nl = out.rfind(b"\n", pos, pos + cap + 1)
        if nl < 0:
            end = out.find(b"\n", pos)
            longest = (n if end < 0 else end) - pos
            line = out.count(b"\n", 0, pos) + 1
            raise lim.exceeded(f"{what}: line {line:,}", "max_line_bytes", f"{longest:,}")
        pos = nl + 1


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
