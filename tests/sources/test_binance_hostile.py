"""Hostile archive files: each is refused whole, nothing of it is stored, and a rerun heals.

Decompression bomb, oversize line, too many rows, two members, bad header, rows outside the
file's period, broken invariants, conflicting and exact duplicates, a monthly ``.CHECKSUM`` 404,
a corrupt manifest line, and nine processes fetching the same files at once. Local servers on
127.0.0.1 only; every loop is bounded.
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import struct
import zlib
import zipfile
from datetime import date, datetime, timedelta, timezone

import pytest

from research import lake, paths
from research.errors import LimitError
from research.sources import binance
from research.sources.binance import FileTask
from research.sources.binance_archive import read_member
from research.sources.limits import Limits
from research.sources.manifest import Manifest

from .archive_util import put
from .test_binance_formats import KLINE_HEADER, kline_rows

pytestmark = pytest.mark.network
UTC = timezone.utc
DAY = FileTask("klines", "um", "BTCUSDT", "daily", "2025-04-01", "1h")
T0 = datetime(2025, 4, 1, tzinfo=UTC)


def good_text(n=24):
    return KLINE_HEADER + kline_rows(T0, n, timedelta(hours=1))


def run(srv, data_dir, task=DAY, **kw):
    kw.setdefault("progress", False)
    d = task.first_day
    return binance.fetch(["BTCUSDT"], [task.dataset], interval=task.interval, start=d, end=task.last_day,
                         data_dir=data_dir, base=srv.url, backoff=0.001, retries=1, **kw)


def assert_refused_then_heals(tmp_path, serve, data_dir, text, *, expect, task=DAY, **kw):
    root = tmp_path / "arch"
    put(root, task, text)
    srv = serve(root)
    s = run(srv, data_dir, task, **kw)
    out = s.summary()
    assert s.exit_code == 1, out
    assert expect in out, out
    assert "re-run the same command to retry" not in out
    assert lake.read("bars", data_dir).height == 0  # nothing of the file is stored
    assert not (data_dir / task.raw_rel).exists()  # quarantined or never stored: the rerun fetches it anew
    rec = Manifest(data_dir).load()[task.raw_rel]
    assert rec.get("error") and rec.get("ingest") in ("rejected", None) or rec["status"] == "failed"
    put(root, task, good_text())  # the provider replaces the file
    s2 = run(srv, data_dir, task, **kw)
    assert s2.exit_code == 0, s2.summary()
    assert lake.read("bars", data_dir).height == 24
    return s


def test_conflicting_duplicates_are_refused_with_the_lines_named(tmp_path, serve, data_dir):
    rows = kline_rows(T0, 24, timedelta(hours=1)).splitlines()
    rows.insert(5, rows[3].replace(",10.5,", ",99.5,"))  # same open_time, other volume
    s = assert_refused_then_heals(tmp_path, serve, data_dir, KLINE_HEADER + "\n".join(rows) + "\n",
                                  expect="share a open_time with different values")
    assert "lines 5, 7" in s.summary() and "report it to binance/binance-public-data" in s.summary()


def test_exact_duplicates_are_dropped_and_counted(tmp_path, serve, data_dir):
    rows = kline_rows(T0, 24, timedelta(hours=1)).splitlines()
    put(tmp_path, DAY, KLINE_HEADER + "\n".join(rows + rows[:5]) + "\n")
    s = run(serve(tmp_path), data_dir)
    assert s.exit_code == 0, s.summary()
    assert lake.read("bars", data_dir).height == 24
    assert any("5 exact duplicate row(s) of 29 dropped" in w for w in s.warnings), s.warnings


def test_rows_outside_the_files_own_day_are_refused(tmp_path, serve, data_dir):
    text = KLINE_HEADER + kline_rows(T0 + timedelta(hours=1), 24, timedelta(hours=1))  # last bar is 04-02 00:00
    s = assert_refused_then_heals(tmp_path, serve, data_dir, text, expect="outside the file's own period")
    assert "line 25" in s.summary()


def test_rows_outside_a_monthly_file_are_refused_in_a_batch_and_the_other_files_stored(tmp_path, serve, data_dir):
    mar = FileTask("fundingRate", "um", "BTCUSDT", "monthly", "2025-03")
    apr = FileTask("fundingRate", "um", "BTCUSDT", "monthly", "2025-04")
    hdr = "calc_time,funding_interval_hours,last_funding_rate\n"
    rows = lambda t0, n: "".join(f"{int((t0 + timedelta(hours=8 * i)).timestamp() * 1000) + 3},8,0.0001\n" for i in range(n))
    put(tmp_path, mar, hdr + rows(datetime(2025, 3, 1, tzinfo=UTC), 93))
    put(tmp_path, apr, hdr + rows(datetime(2025, 3, 31, tzinfo=UTC), 91))  # starts a day early
    srv = serve(tmp_path)
    s = binance.fetch(["BTCUSDT"], ["fundingRate"], start=date(2025, 3, 1), end=date(2025, 4, 30), data_dir=data_dir,
                      base=srv.url, progress=False, backoff=0.001)
    assert s.exit_code == 1 and "BTCUSDT-fundingRate-2025-04.zip, line 2" in s.summary()
    f = lake.read("funding", data_dir)
    assert f.height == 93 and f["ts"].max() < datetime(2025, 4, 1, tzinfo=UTC)  # March stored, April not at all


@pytest.mark.parametrize("bad,expect", [
    (lambda r: r.replace(",101.00,103.00,100.00,", ",101.00,99.00,100.00,", 1), "high below low"),
    (lambda r: r.replace(",10.5,", ",-10.5,", 1), "negative volume"),
], ids=["high<low", "negative-volume"])
def test_row_invariants(tmp_path, serve, data_dir, bad, expect):
    assert_refused_then_heals(tmp_path, serve, data_dir, bad(good_text()), expect=expect)


def test_bad_header_is_refused(tmp_path, serve, data_dir):
    text = good_text().replace("open_time,open,high,low", "open_time,open,low,high", 1)
    s = assert_refused_then_heals(tmp_path, serve, data_dir, text, expect="header names differ from the documented")
    assert "3: 'low' (documented 'high')" in s.summary()


def test_oversize_line_is_refused_while_streaming(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("RESEARCH_MAX_LINE_BYTES", "4096")
    text = good_text().replace(",0\n", "," + "9" * 10_000 + "\n", 1)
    assert_refused_then_heals(tmp_path, serve, data_dir, text, expect="RESEARCH_MAX_LINE_BYTES")


def test_too_many_rows_are_refused_and_the_override_heals(tmp_path, serve, data_dir):
    put(tmp_path, DAY, good_text())
    srv = serve(tmp_path)
    s = run(srv, data_dir, limits=Limits(max_rows=20))
    assert s.exit_code == 1 and "max_rows" in s.summary() and "RESEARCH_MAX_ROWS" in s.summary()
    assert lake.read("bars", data_dir).height == 0 and not (data_dir / DAY.raw_rel).exists()
    assert run(srv, data_dir, limits=Limits(max_rows=100)).exit_code == 0  # the override
    assert lake.read("bars", data_dir).height == 24


def test_two_members_are_refused_before_anything_is_stored(tmp_path, serve, data_dir):
    root = tmp_path / "arch"
    p = root / DAY.archive_path
    p.parent.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("BTCUSDT-1h-2025-04-01.csv", good_text())
        zf.writestr("../evil.csv", good_text())
    p.write_bytes(buf.getvalue())
    (p.parent / (p.name + ".CHECKSUM")).write_text(f"{hashlib.sha256(buf.getvalue()).hexdigest()}  {p.name}\n")
    srv = serve(root)
    s = run(srv, data_dir)
    assert s.exit_code == 1 and "expected exactly one CSV member" in s.summary()
    assert not (data_dir / DAY.raw_rel).exists() and lake.read("bars", data_dir).height == 0
    put(root, DAY, good_text())
    assert run(srv, data_dir).exit_code == 0 and lake.read("bars", data_dir).height == 24


def _write_bomb(path, name="BTCUSDT-1h-2025-04-01.csv", mib=2048):
    """A zip whose one member inflates to ``mib`` MiB of zeros, built without compressing them.

    After a full flush deflate restarts from an empty history, so every 1 MiB block of zeros
    compresses to the same bytes: the member is that block repeated (bounded: ``mib`` steps).
    """
    zero = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zero, crc)
    size, csize, fn = mib << 20, len(block) * mib + len(tail), name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, csize, size, len(fn), 0) + fn
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, csize, size, len(fn),
                          0, 0, 0, 0, 0, 0) + fn
    with open(path, "wb") as fh:
        fh.write(local)
        for _ in range(mib):
            fh.write(block)
        fh.write(tail)
        cd_at = fh.tell()
        fh.write(central)
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), cd_at, 0))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A ~2 MB zip whose one member expands to 2 GiB of zeros."""
    return _write_bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip")


@pytest.mark.slow
def test_decompression_bomb_is_refused_without_reading_it(tmp_path, serve, data_dir, bomb):
    assert bomb.stat().st_size < 3 << 20  # a "2 MB zip"
    with pytest.raises(LimitError, match="declares 2,147,483,648 bytes uncompressed"):
        read_member(bomb)  # default cap: refused from the zip directory, nothing decompressed
    with pytest.raises(LimitError, match="expands past the cap"):
        _stream_cap(bomb)
    root = tmp_path / "arch"
    p = root / DAY.archive_path
    p.parent.mkdir(parents=True)
    p.write_bytes(bomb.read_bytes())
    (p.parent / (p.name + ".CHECKSUM")).write_text(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n")
    srv = serve(root)
    s = run(srv, data_dir)
    assert s.exit_code == 1 and "RESEARCH_MAX_MEMBER_BYTES" in s.summary()
    assert not (data_dir / DAY.raw_rel).exists() and lake.read("bars", data_dir).height == 0
    put(root, DAY, good_text())
    assert run(srv, data_dir).exit_code == 0 and lake.read("bars", data_dir).height == 24


def _stream_cap(bomb):
    """The running count stops a member at the cap even when its declared size were within it."""
    from research.sources import binance_archive

    lim = Limits(max_member_bytes=8 << 20, max_line_bytes=1 << 30)
    with zipfile.ZipFile(bomb) as zf:
        binance_archive._read_bounded(zf, zf.infolist()[0], lim, "bomb")


def test_monthly_checksum_404_is_reported_as_such(tmp_path, serve, data_dir):
    month = FileTask("klines", "um", "BTCUSDT", "monthly", "2025-04", "1h")
    text = KLINE_HEADER + kline_rows(datetime(2025, 4, 1, tzinfo=UTC), 720, timedelta(hours=1))
    p = put(tmp_path, month, text)
    ck = p.with_name(p.name + ".CHECKSUM")
    saved = ck.read_bytes()
    ck.unlink()
    srv = serve(tmp_path)
    s = run(srv, data_dir, month)
    out = s.summary()
    assert s.exit_code == 1 and "its .CHECKSUM answers 404" in out and "MISSING" not in out, out
    assert not srv.requests_for("2025-04-01.zip.CHECKSUM")  # no fall-back to 30 daily files
    assert not (data_dir / month.raw_rel).exists() and lake.read("bars", data_dir).height == 0
    ck.write_bytes(saved)
    assert run(srv, data_dir, month).exit_code == 0 and lake.read("bars", data_dir).height == 720


def test_corrupt_manifest_line_does_not_stop_a_fetch(tmp_path, serve, data_dir):
    put(tmp_path, DAY, good_text())
    mp_ = paths.manifest_path(data_dir)
    mp_.parent.mkdir(parents=True, exist_ok=True)
    mp_.write_text("42\n")
    s = run(serve(tmp_path), data_dir)
    assert s.exit_code == 0, s.summary()
    assert any("line 1 is a JSON int" in w for w in s.warnings)
    assert lake.read("bars", data_dir).height == 24
    assert Manifest(data_dir).load()[DAY.raw_rel]["ingest"] == "ok"


DAYS = [FileTask("klines", "um", "BTCUSDT", "daily", f"2025-04-0{i}", "1h") for i in (1, 2, 3)]


def _fetch_in_child(args):
    url, data_dir = args
    s = binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 3),
                      data_dir=data_dir, base=url, progress=False, backoff=0.01, workers=3)
    return s.exit_code, s.summary()


@pytest.mark.slow
def test_nine_concurrent_fetches_of_the_same_files(tmp_path, serve, data_dir):
    for t in DAYS:
        put(tmp_path, t, KLINE_HEADER + kline_rows(datetime.fromisoformat(t.period).replace(tzinfo=UTC), 24,
                                                   timedelta(hours=1)))
    srv = serve(tmp_path)
    with mp.get_context("spawn").Pool(9) as pool:  # fork would copy polars' thread pool locks
        results = pool.map_async(_fetch_in_child, [(srv.url, str(data_dir))] * 9).get(timeout=100)
    for code, out in results:
        assert code == 0, out
        assert "FileNotFoundError" not in out
    recs = Manifest(data_dir).load()
    for t in DAYS:
        assert recs[t.raw_rel]["status"] == "ok" and recs[t.raw_rel]["ingest"] == "ok"
    lines = paths.manifest_path(data_dir).read_text().splitlines()
    assert not any('"failed"' in line for line in lines)
    assert lake.read("bars", data_dir).height == 72
    assert not list((data_dir / ".partial").rglob("*.part"))


def test_batch_parse_accepts_crlf_and_a_missing_final_newline(tmp_path, serve, data_dir):
    days = [FileTask("klines", "um", "BTCUSDT", "daily", f"2025-04-0{i}", "1h") for i in (1, 2, 3)]
    texts = [good_text(), good_text(), good_text()]
    for i, t in enumerate(days):
        text = KLINE_HEADER + kline_rows(datetime.fromisoformat(t.period).replace(tzinfo=UTC), 24, timedelta(hours=1))
        texts[i] = [text.replace("\n", "\r\n"), text.rstrip("\n"), text + "\n"][i]
        put(tmp_path, t, texts[i])
    s = binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 3),
                      data_dir=data_dir, base=serve(tmp_path).url, progress=False, backoff=0.001)
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", data_dir)
    assert bars.height == 72 and bars["close"].null_count() == 0 and bars["trades"].min() == 7
