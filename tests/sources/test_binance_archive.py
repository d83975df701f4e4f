"""The plain-zip fast path reads what zipfile reads, and leaves every other zip to zipfile."""
from __future__ import annotations

import io
import zipfile
import zlib

import pytest

from research.errors import ArchiveContentError, LimitError, SourceError
from research.sources import binance_archive
from research.sources.binance_archive import read_member
from research.sources.limits import Limits

TEXT = b"open_time,open\n" + b"".join(b"%d,1.5\n" % (1_700_000_000_000 + i) for i in range(2000))


def _zip(path, members=(("a.csv", TEXT),), method=zipfile.ZIP_DEFLATED, comment=b"", stream=False):
    buf = io.BytesIO()
    target = _Unseekable(buf) if stream else buf  # unseekable: sizes go to a data descriptor
    with zipfile.ZipFile(target, "w", method) as zf:
        for name, data in members:
            with zf.open(name, "w") as fh:
                fh.write(data)
        zf.comment = comment
    path.write_bytes(buf.getvalue())
    return path


class _Unseekable(io.RawIOBase):
    def __init__(self, buf):
        self.buf = buf

    def writable(self):
        return True

    def write(self, b):
        return self.buf.write(b)


@pytest.mark.parametrize("kw", [{}, {"method": zipfile.ZIP_STORED}, {"stream": True}])
def test_plain_zips_take_the_fast_path_and_read_the_member(tmp_path, kw):
    p = _zip(tmp_path / "x.zip", **kw)
    assert binance_archive._read_plain(p, Limits(), p.name) == TEXT
    assert read_member(p) == TEXT


def test_a_zip_with_a_comment_or_bzip2_goes_to_zipfile_and_reads_the_same(tmp_path):
    for kw in ({"comment": b"hello"}, {"method": zipfile.ZIP_BZIP2}):
        p = _zip(tmp_path / "x.zip", **kw)
        assert binance_archive._read_plain(p, Limits(), p.name) is None
        assert read_member(p) == TEXT


def test_a_damaged_member_is_left_to_zipfile_which_refuses_it(tmp_path):
    p = _zip(tmp_path / "x.zip")
    data = bytearray(p.read_bytes())
    data[30 + len("a.csv") + 100] ^= 0xFF  # inside the deflate stream (after the 30-byte local header)
    p.write_bytes(bytes(data))
    assert binance_archive._read_plain(p, Limits(), p.name) is None
    with pytest.raises(SourceError, match="not a readable zip"):
        read_member(p)


def test_two_members_and_unsafe_names_are_refused_on_either_path(tmp_path):
    p = _zip(tmp_path / "two.zip", members=(("a.csv", TEXT), ("b.csv", TEXT)))
    with pytest.raises(ArchiveContentError, match="exactly one CSV member"):
        read_member(p)
    for bad in ("../a.csv", "a.txt", ".a.csv"):
        p = _zip(tmp_path / "bad.zip", members=((bad, TEXT),))
        with pytest.raises(ArchiveContentError, match="not a plain CSV file name"):
            read_member(p)


@pytest.mark.parametrize("lim, match", [
    (Limits(max_member_bytes=1000), "declares"),
    (Limits(max_rows=1000), "max_rows"),
    (Limits(max_line_bytes=10), "max_line_bytes"),
])
def test_caps_hold_on_the_fast_path(tmp_path, lim, match):
    p = _zip(tmp_path / "x.zip")
    with pytest.raises(LimitError, match=match):
        read_member(p, lim)


def test_the_longest_line_check_is_exact_at_the_cap(tmp_path):
    line = b"1," + b"9" * 98  # 100 bytes before the newline
    text = (b"1,1\n" * 50 + line + b"\n") * 3
    p = _zip(tmp_path / "x.zip", members=(("a.csv", text),))
    assert read_member(p, Limits(max_line_bytes=100)) == text
    with pytest.raises(LimitError, match=r"line 51\b.*max_line_bytes|max_line_bytes.*"):
        read_member(p, Limits(max_line_bytes=99))
    last = b"1,1\n" * 50 + b"7" * 150  # no final newline: the last line is too long
    p = _zip(tmp_path / "y.zip", members=(("a.csv", last),))
    with pytest.raises(LimitError, match="max_line_bytes"):
        read_member(p, Limits(max_line_bytes=120))
