"""Fault injection against a local server: retries, resume, checksums, quarantine, manifest."""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from research import lake, paths
from research.sources import binance
from research.sources.binance import FileTask
from research.sources.http import Downloader, Manifest, parse_checksum, redact

from .archive_util import put
from .test_binance_formats import KLINE_HEADER, kline_rows

pytestmark = pytest.mark.network
UTC = timezone.utc


def make_days(root, days=("2025-04-01", "2025-04-02", "2025-04-03")):
    tasks = []
    for d in days:
        t = FileTask("klines", "um", "BTCUSDT", "daily", d, "1h")
        # large enough that a dropped connection happens mid-body
        put(root, t, KLINE_HEADER + kline_rows(datetime.fromisoformat(d).replace(tzinfo=UTC), 24, timedelta(hours=1)) * 1)
        tasks.append(t)
    return tasks


def run(srv, data_dir, **kw):
    kw.setdefault("progress", False)
    return binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 3),
                         data_dir=data_dir, base=srv.url, backoff=0.001, **kw)


def manifest(data_dir):
    return Manifest(data_dir).load()


def no_partials_in_raw(data_dir):
    raw = data_dir / "raw"
    return not raw.exists() or not [p for p in raw.rglob("*") if p.is_file() and not (p.name.endswith(".zip") or p.name.endswith(".CHECKSUM"))]


def test_dropped_connection_resumes_with_range(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a")
    srv = serve(tmp_path / "a")
    path = "/" + tasks[0].archive_path
    srv.faults[path].append("drop")
    s = run(srv, data_dir)
    assert s.exit_code == 0, s.summary()
    reqs = [h for _, p, h in srv.log if p == path]
    assert len(reqs) == 2 and "Range" not in reqs[0] and reqs[1]["Range"].startswith("bytes=")
    assert int(reqs[1]["Range"].split("=")[1].rstrip("-")) > 0
    rec = manifest(data_dir)[tasks[0].raw_rel]
    assert rec["status"] == "ok" and rec["attempts"] == 2 and rec["ingest"] == "ok"
    assert rec["sha256"] == hashlib.sha256((tmp_path / "a" / tasks[0].archive_path).read_bytes()).hexdigest()
    assert rec["etag"] and rec["last_modified"] and rec["size"] > 0
    assert lake.read("bars", data_dir).height == 72
    assert not list((data_dir / ".partial").rglob("*.part"))


def test_resume_is_verified_even_when_server_ignores_range(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a")
    srv = serve(tmp_path / "a")
    srv.ignore_range = True  # answers 200 with the whole file: the downloader must restart, not append
    srv.faults["/" + tasks[1].archive_path].append("drop")
    s = run(srv, data_dir)
    assert s.exit_code == 0, s.summary()
    assert (data_dir / tasks[1].raw_rel).read_bytes() == (tmp_path / "a" / tasks[1].archive_path).read_bytes()


def test_truncated_zip_is_retried_once_then_succeeds(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a")
    srv = serve(tmp_path / "a")
    srv.faults["/" + tasks[0].archive_path].append("truncate")  # a complete response of a truncated file
    s = run(srv, data_dir)
    assert s.exit_code == 0, s.summary()
    assert len(srv.requests_for(tasks[0].name)) == 2
    assert lake.read("bars", data_dir).height == 72


def test_persistent_checksum_mismatch_is_quarantined_never_ingested_and_rerun_heals(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a")
    srv = serve(tmp_path / "a")
    p = "/" + tasks[1].archive_path
    srv.faults[p].extend(["corrupt", "corrupt"])
    s = run(srv, data_dir)
    assert s.exit_code == 1 and len(s.corrupt) == 1 and "does not match" in s.corrupt[0].error
    assert "CORRUPT" in s.summary()
    assert not (data_dir / tasks[1].raw_rel).exists()
    assert (data_dir / "quarantine" / tasks[1].raw_rel).exists()
    assert manifest(data_dir)[tasks[1].raw_rel]["status"] == "corrupt"
    bars = lake.read("bars", data_dir)
    assert bars.height == 48 and not (bars["ts"].dt.date() == date(2025, 4, 2)).any()
    assert no_partials_in_raw(data_dir)
    # rerun: only the corrupt file is fetched again, and now it is fine
    n = len(srv.log)
    s2 = run(srv, data_dir)
    assert s2.exit_code == 0 and s2.downloaded == 1 and s2.skipped == 2
    assert {p.split("?")[0] for _, p, _ in srv.log[n:] if p.endswith(".zip")} == {p}
    assert lake.read("bars", data_dir).height == 72
    assert manifest(data_dir)[tasks[1].raw_rel]["status"] == "ok"


def test_wrong_published_checksum_is_corrupt(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a", days=("2025-04-01",))
    put(tmp_path / "a", tasks[0], "x", checksum="0" * 64)  # checksum does not belong to the zip
    srv = serve(tmp_path / "a")
    s = binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 1),
                      data_dir=data_dir, base=srv.url, backoff=0.001, progress=False)
    assert len(s.corrupt) == 1 and s.exit_code == 1
    assert len(srv.requests_for(tasks[0].name)) == 2  # retried once
    assert lake.read("bars", data_dir).height == 0


def test_429_retry_after_and_500_then_success(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a", days=("2025-04-01",))
    srv = serve(tmp_path / "a")
    url = srv.url + tasks[0].archive_path
    srv.faults["/" + tasks[0].archive_path].extend([("status", 429, {"Retry-After": "7"}), ("status", 500), ("status", 503)])
    slept = []
    dl = Downloader(data_dir, backoff=0.01, sleep=slept.append)
    res = dl.download(url, data_dir / tasks[0].raw_rel)
    assert res.ok and res.attempts == 4
    assert slept == [7.0, 0.02, 0.04]  # Retry-After honoured, then exponential backoff
    # a 500 that never heals gives up with a clear error, and nothing is left in place
    srv.faults["/" + tasks[0].archive_path].extend([("status", 500)] * 3)
    dest = data_dir / "raw/x.zip"
    res = Downloader(data_dir, retries=2, backoff=0.0, sleep=lambda s: None).download(url, dest)
    assert res.status == "failed" and "HTTP 500" in res.error and "3 attempts" in res.error
    assert not dest.exists()


def test_404_is_missing_and_the_run_goes_on(tmp_path, serve, data_dir):
    make_days(tmp_path / "a", days=("2025-04-01", "2025-04-03"))
    srv = serve(tmp_path / "a")
    s = run(srv, data_dir)
    assert s.exit_code == 2 and len(s.missing) == 1 and "2025-04-02" in s.missing[0].url
    assert "MISSING" in s.summary()
    assert lake.read("bars", data_dir).height == 48
    assert manifest(data_dir)["raw/binance/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-04-02.zip"]["status"] == "missing"
    # the day appears later: the rerun fetches only it
    make_days(tmp_path / "a", days=("2025-04-02",))
    s2 = run(srv, data_dir)
    assert s2.exit_code == 0 and s2.downloaded == 1 and s2.skipped == 2
    assert lake.read("bars", data_dir).height == 72


def test_missing_monthly_file_falls_back_to_daily_files(tmp_path, serve, data_dir):
    root = tmp_path / "a"
    for d in range(1, 31):
        t = FileTask("klines", "um", "BTCUSDT", "daily", f"2025-04-{d:02d}", "1h")
        put(root, t, KLINE_HEADER + kline_rows(datetime(2025, 4, d, tzinfo=UTC), 24, timedelta(hours=1)))
    srv = serve(root)
    s = binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 30),
                      data_dir=data_dir, base=srv.url, backoff=0.001, progress=False)
    assert s.exit_code == 0, s.summary()
    assert any("not in the archive" in n for n in s.notes)
    assert lake.read("bars", data_dir).height == 30 * 24


class _Kill(BaseException):
    pass


def test_killed_download_leaves_nothing_in_raw_or_lake_and_resumes(tmp_path, serve, data_dir):
    tasks = make_days(tmp_path / "a", days=("2025-04-01",))
    srv = serve(tmp_path / "a")
    url = srv.url + tasks[0].archive_path

    class KillAfterFirstChunk:
        def add_bytes_total(self, n): ...
        def file_done(self): ...
        def advance_bytes(self, n):
            raise _Kill()

    srv.faults["/" + tasks[0].archive_path].append("drop")  # first attempt stores half a file in .partial
    dl = Downloader(data_dir, backoff=0.0, sleep=lambda s: None)
    dl.progress = KillAfterFirstChunk()
    with pytest.raises(_Kill):
        dl.download(url, data_dir / tasks[0].raw_rel)
    assert not (data_dir / tasks[0].raw_rel).exists()
    assert not lake.table_files("bars", data_dir)
    parts = list((data_dir / ".partial").rglob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size
    # a new run resumes the kept .part with a Range request and verifies the whole file
    s = binance.fetch(
        ["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 1),
        data_dir=data_dir, base=srv.url, backoff=0.001, progress=False)
    assert s.exit_code == 0, s.summary()
    assert "Range" in srv.log[-1][2]
    assert lake.read("bars", data_dir).height == 24
    assert not list((data_dir / ".partial").rglob("*.part"))


def test_manifest_never_holds_secrets(tmp_path, serve, data_dir):
    root = tmp_path / "a"
    (root / "api").mkdir(parents=True)
    (root / "api" / "x.json").write_text("[]")
    srv = serve(root)
    dl = Downloader(data_dir, headers={"api_key": "SECRET123"}, secrets=["SECRET123"])
    res = dl.download(srv.url + "api/x.json?api_key=SECRET123&interval=daily", data_dir / "raw/x.json")
    assert res.ok and "SECRET123" not in res.url and "interval=daily" in res.url
    Manifest(data_dir).append(res.record())
    assert "SECRET123" not in paths.manifest_path(data_dir).read_text()
    sent = {k.lower(): v for k, v in srv.log[-1][2].items()}
    assert sent["api_key"] == "SECRET123"  # the key did go to the server, in a header
    assert "KEY9" not in redact("https://h/p?symbols=A&api_key=KEY9") and "symbols=A" in redact("https://h/p?symbols=A&api_key=KEY9")


def test_parse_checksum_formats():
    d = "ab" * 32
    assert parse_checksum(f"{d}  X.zip\n", "X.zip") == d
    assert parse_checksum(f"{d}  X.zip", "X.zip") == d  # no final newline
    assert parse_checksum(d.upper()) == d
    with pytest.raises(Exception, match="sha256"):
        parse_checksum("<html>not found</html>", "X.zip")


def test_manifest_records_are_json_lines_with_required_fields(tmp_path, serve, data_dir):
    make_days(tmp_path / "a", days=("2025-04-01",))
    srv = serve(tmp_path / "a")
    binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 4, 1), end=date(2025, 4, 1),
                  data_dir=data_dir, base=srv.url, progress=False)
    lines = [json.loads(l) for l in paths.manifest_path(data_dir).read_text().splitlines()]
    dl = [l for l in lines if l.get("event") == "download"][0]
    for k in ("url", "path", "size", "sha256", "status", "time", "etag", "last_modified"):
        assert k in dl, k
    assert dl["url"].startswith("http://127.0.0.1:")
