"""Fault injection against the shared HTTP layer, with servers on 127.0.0.1 only.

Each test asserts that nothing wrong is stored and that a rerun against a sane server heals:
credentials and redirects, a trickling server, size caps, per-file locks, a corrupt manifest
line, a 200-OK error body.
"""
from __future__ import annotations

import http.server
import json
import os
import threading
import time
import urllib.request
from datetime import date, datetime, timezone

import pytest

from research import lake, paths
from research.errors import LimitError, LockTimeout, RedirectRefused
from research.sources import coinalyze
from research.sources.http import Downloader
from research.sources.limits import Limits
from research.sources.locks import file_lock
from research.sources.manifest import Manifest
from research.sources.redirects import RedirectGuard

pytestmark = pytest.mark.network
UTC = timezone.utc
KEY = "SECRET-KEY-42"


def _doc(root, rel="api/x.json", body=b"[]"):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(body)
    return p


def _heads(srv):
    return [{k.lower(): v for k, v in h.items()} for _, _, h in srv.log]


def test_keyed_redirect_to_another_origin_is_refused_and_the_other_origin_sees_nothing(tmp_path, serve, data_dir):
    a, b = serve(_doc(tmp_path / "a").parents[1]), serve(_doc(tmp_path / "b").parents[1])
    assert a.url != b.url  # same host, different port = different origin
    a.faults["/api/x.json"].append(("status", 302, {"Location": b.url + "api/x.json"}))
    dl = Downloader(data_dir, headers={"api_key": KEY}, secrets=[KEY], retries=0)
    res = dl.download(a.url + "api/x.json", data_dir / "raw/x.json")
    assert res.status == "failed" and "another origin" in res.error and KEY not in res.error
    assert b.log == [] and not (data_dir / "raw/x.json").exists()
    assert _heads(a)[0]["api_key"] == KEY
    # a rerun against the right origin heals
    assert dl.download(a.url + "api/x.json", data_dir / "raw/x.json").ok


def test_followed_redirect_strips_key_header_and_query_on_origin_change(tmp_path, serve, data_dir):
    a, b = serve(_doc(tmp_path / "a").parents[1]), serve(_doc(tmp_path / "b").parents[1])
    a.faults["/api/x.json"].append(("status", 307, {"Location": b.url + f"api/x.json?api_key={KEY}&keep=1"}))
    dl = Downloader(data_dir, headers={"api_key": KEY, "Authorization": "Bearer " + KEY}, secrets=[KEY],
                    redirects="follow")
    res = dl.download(a.url + "api/x.json?api_key=" + KEY, data_dir / "raw/x.json")
    assert res.ok, res.error
    (path_b,) = [p for _, p, _ in b.log]
    hb = _heads(b)[0]
    assert KEY not in path_b and "keep=1" in path_b
    assert "api_key" not in hb and "authorization" not in hb and not any(KEY in v for v in hb.values())
    assert "user-agent" in hb  # harmless headers still go


def test_same_origin_redirect_keeps_the_key(tmp_path, serve, data_dir):
    a = serve(_doc(tmp_path / "a", "api/y.json").parents[1])
    a.faults["/api/x.json"].append(("status", 301, {"Location": a.url + "api/y.json"}))
    res = Downloader(data_dir, headers={"api_key": KEY}, secrets=[KEY]).download(a.url + "api/x.json",
                                                                                 data_dir / "raw/x.json")
    assert res.ok and _heads(a)[1]["api_key"] == KEY


def test_https_to_http_downgrade_and_non_http_schemes_are_refused():
    guard = RedirectGuard([KEY], "follow")
    req = urllib.request.Request("https://api.example/v1/x", headers={"api_key": KEY})
    with pytest.raises(RedirectRefused, match="downgrades https"):
        guard.redirect_request(req, None, 302, "Found", {}, "http://api.example/v1/x")
    with pytest.raises(RedirectRefused, match="only http/https"):
        guard.redirect_request(req, None, 302, "Found", {}, "file:///etc/passwd")
    with pytest.raises(RedirectRefused, match="not followed"):
        RedirectGuard((), "never").redirect_request(urllib.request.Request("http://h/x"), None, 302, "", {}, "http://h/y")


def test_coinalyze_redirect_never_carries_the_key_and_rerun_heals(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("COINALYZE_API_KEY", KEY)
    good = json.dumps([{"symbol": "BTCUSDT_PERP.A", "history": [{"t": 1760054400, "l": 1.0, "s": 2.0}]}]).encode()
    a, b = serve(tmp_path), serve(tmp_path)
    a.json_routes["/v1/liquidation-history"] = good
    b.json_routes["/v1/liquidation-history"] = good
    a.faults["/v1/liquidation-history"].append(("status", 302, {"Location": b.url + "v1/liquidation-history"}))
    kw = dict(start=date(2025, 10, 10), end=date(2025, 10, 10), data_dir=data_dir, base=a.url + "v1", backoff=0.001)
    s = coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], **kw)
    assert s.exit_code == 1 and "another origin" in s.summary() and b.log == []
    assert lake.read("liquidations", data_dir).height == 0
    assert KEY not in paths.manifest_path(data_dir).read_text() and KEY not in s.summary()
    assert coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], **kw).exit_code == 0
    assert lake.read("liquidations", data_dir).height == 1


def test_coinalyze_200_ok_error_body_never_replaces_the_good_raw_file(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("COINALYZE_API_KEY", KEY)
    good = json.dumps([{"symbol": "BTCUSDT_PERP.A", "history": [{"t": 1760054400, "l": 1.0, "s": 2.0}]}]).encode()
    srv = serve(tmp_path)
    srv.json_routes["/v1/liquidation-history"] = good
    kw = dict(start=date(2025, 10, 10), end=date(2025, 10, 10), data_dir=data_dir, base=srv.url + "v1", backoff=0.001)
    assert coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], **kw).exit_code == 0
    (raw,) = (data_dir / "raw" / "coinalyze").rglob("*.json")
    before = raw.read_bytes()
    srv.json_routes["/v1/liquidation-history"] = b'{"error": "Too many requests, slow down"}'
    s = coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], **kw)
    assert s.exit_code == 1 and "Too many requests" in s.summary()
    assert raw.read_bytes() == before and lake.read("liquidations", data_dir).height == 1
    rec = Manifest(data_dir).load()[raw.relative_to(data_dir).as_posix()]
    assert rec["status"] == "failed" and "quarantine" in rec["quarantined"]
    srv.json_routes["/v1/liquidation-history"] = good
    assert coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], **kw).exit_code == 0  # rerun heals


class _Trickle:
    """A server that promises ``n`` bytes and sends one every ``gap`` seconds (bounded: ``n`` bytes)."""

    def __init__(self, n=40, gap=0.25):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(n))
                self.end_headers()
                try:
                    for _ in range(n):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(gap)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_trickling_server_is_cut_off_at_the_deadline_retried_and_reported(tmp_path, serve, data_dir):
    slow = _Trickle()
    try:
        dl = Downloader(data_dir, deadline=0.6, retries=1, backoff=0.0, sleep=lambda s: None)
        t0 = time.monotonic()
        res = dl.download(slow.url + "f.bin", data_dir / "raw/f.bin")
        took = time.monotonic() - t0
    finally:
        slow.close()
    assert res.status == "failed" and "deadline of 0.6 s" in res.error and "--timeout" in res.error
    assert "gave up after 2 attempts" in res.error
    assert took < 8  # two attempts of 0.6 s, never the 10 s the whole body would take
    assert not (data_dir / "raw/f.bin").exists()
    srv = serve(_doc(tmp_path / "ok", "f.bin", b"x" * 40).parent)
    assert dl.download(srv.url + "f.bin", data_dir / "raw/f.bin").ok  # a sane server heals it
    assert (data_dir / "raw/f.bin").read_bytes() == b"x" * 40


def test_download_size_cap_by_content_length_and_by_count(tmp_path, serve, data_dir):
    srv = serve(_doc(tmp_path / "a", "big.bin", b"y" * 5000).parent)
    dl = Downloader(data_dir, limits=Limits(max_download_bytes=1000), retries=0)
    res = dl.download(srv.url + "big.bin", data_dir / "raw/big.bin")
    assert res.status == "failed" and "max_download_bytes" in res.error and "RESEARCH_MAX_DOWNLOAD_BYTES" in res.error
    assert not (data_dir / "raw/big.bin").exists() and not list((data_dir / ".partial").rglob("*.part"))
    st, body, meta = Downloader(data_dir, limits=Limits(max_document_bytes=100)).get_bytes(srv.url + "big.bin")
    assert st == "failed" and body is None and "max_document_bytes" in meta["error"]
    assert Downloader(data_dir).download(srv.url + "big.bin", data_dir / "raw/big.bin").ok  # default cap: heals


def test_limits_from_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("RESEARCH_MAX_ROWS", "1000")
    assert Limits().max_rows == 1000
    monkeypatch.setenv("RESEARCH_MAX_ROWS", "lots")
    with pytest.raises(LimitError, match="RESEARCH_MAX_ROWS"):
        Limits()
    monkeypatch.delenv("RESEARCH_MAX_ROWS")
    with pytest.raises(LimitError, match="deadline"):
        Limits(deadline=0)


def test_lock_wait_reports_the_holder_then_times_out(tmp_path):
    lock = tmp_path / "x.lock"
    msgs = []
    with file_lock(lock, "raw/x.zip"):
        def other():
            with pytest.raises(LockTimeout, match=f"pid {os.getpid()}"):
                with file_lock(lock, "raw/x.zip", wait=0.6, report_after=0.2, report=msgs.append):
                    pass
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
    assert len(msgs) == 1 and f"pid {os.getpid()}" in msgs[0] and "raw/x.zip" in msgs[0]
    with file_lock(lock, "raw/x.zip", wait=0.5):  # released: free again
        pass


def test_download_waits_for_the_lock_and_reuses_the_holders_file(tmp_path, serve, data_dir):
    body = b"z" * 100
    srv = serve(_doc(tmp_path / "a", "f.bin", body).parent)
    import hashlib
    digest = hashlib.sha256(body).hexdigest()
    dl = Downloader(data_dir, lock_report_after=0.1, report=(msgs := []).append)
    dest = data_dir / "raw/f.bin"
    out = {}
    with file_lock(dl.lock_path(dest), "raw/f.bin"):
        t = threading.Thread(target=lambda: out.setdefault("r", dl.download(srv.url + "f.bin", dest,
                                                                            expected_sha256=digest)))
        t.start()
        time.sleep(0.4)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(body)  # what the holder would have put in place
    t.join(10)
    assert out["r"].ok and out["r"].skipped and msgs and srv.log == []


def test_corrupt_manifest_lines_are_skipped_with_a_warning_naming_the_line(data_dir):
    m = Manifest(data_dir)
    m.append({"path": "raw/a.zip", "status": "ok", "size": 1})
    with open(m.path, "a") as fh:
        fh.write('42\n"text"\nnot json\n{"no_path": 1}\n{"path": "raw/b.zip", "status": "ok"')  # torn last line
    m2 = Manifest(data_dir)
    recs = m2.load()
    assert set(recs) == {"raw/a.zip"}
    assert [w.split("line ")[1].split(" ")[0] for w in m2.warnings] == ["2", "3", "4", "5", "6"]
    m2.append({"path": "raw/c.zip", "status": "ok"})  # starts a fresh line after the torn one
    assert set(Manifest(data_dir).load()) == {"raw/a.zip", "raw/c.zip"}


def test_missing_daily_files_are_one_line_per_folder_not_31():
    from research.sources.results import FetchResult, FetchSummary

    s = FetchSummary(missing=[FetchResult(f"http://h/d/X-{i:02d}.zip", f"p{i}", "missing", error="HTTP 404")
                              for i in range(31, 0, -1)])
    lines = [line for line in s.summary().splitlines() if "MISSING" in line]
    assert lines == ["  MISSING 31 files in http://h/d/ (X-01.zip .. X-31.zip): HTTP 404"]
    assert s.to_frame().height == 31 and s.exit_code == 2


def test_feargreed_error_body_is_not_stored_as_raw_and_rerun_heals(tmp_path, serve, data_dir):
    from research.sources import feargreed

    srv = serve(tmp_path)
    srv.json_routes["/fng/"] = b'{"data": [], "metadata": {"error": "rate limited"}}'
    s = feargreed.fetch(data_dir=data_dir, base=srv.url, backoff=0.001)
    assert s.exit_code == 1 and "rate limited" in s.summary()
    raw = data_dir / "raw" / "alternative_me"
    assert not raw.exists() or not list(raw.rglob("*.json"))  # the error document went to quarantine
    srv.json_routes["/fng/"] = json.dumps({"data": [{"value": "47", "value_classification": "Neutral",
                                                     "timestamp": "1760054400"}], "metadata": {"error": None}}).encode()
    assert feargreed.fetch(data_dir=data_dir, base=srv.url, backoff=0.001).exit_code == 0
    assert lake.read("sentiment", data_dir).height == 1 and len(list(raw.rglob("*.json"))) == 1


@pytest.mark.slow
def test_cli_timeout_cuts_off_a_trickling_server_with_a_one_line_reason(data_dir):
    from typer.testing import CliRunner

    from research.cli import app

    slow = _Trickle(n=400, gap=0.05)
    try:
        r = CliRunner().invoke(app, ["fetch", "feargreed", "--base-url", slow.url.rstrip("/"), "--timeout", "0.4",
                                     "--data-dir", str(data_dir)])
    finally:
        slow.close()
    assert r.exit_code == 1, r.output
    assert "deadline of 0.4 s" in r.output and "Traceback" not in r.output
    assert lake.read("sentiment", data_dir).height == 0
