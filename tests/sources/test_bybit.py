"""Bybit v5 client against a local server that answers as bybit-exchange.github.io/docs/v5 shows."""
from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from research import lake
from research.sources import base, bybit
from tests.sources.venue_server import FAST, json_answer, venue_server

H = 3600_000
START, END = date(2025, 1, 1), date(2025, 3, 10)


def _ok(lst, cursor=None):
    res = {"category": "linear", "list": lst}
    if cursor is not None:
        res["nextPageCursor"] = cursor
    return json_answer({"retCode": 0, "retMsg": "OK", "result": res, "retExtInfo": {}, "time": 1})


def route(method, path, q, body, page_cap=None):
    assert method == "GET"
    if path == "/v5/market/funding/history":
        a, b = int(q["startTime"]), int(q["endTime"])
        ts = [t for t in range(a - a % (8 * H), b + 1, 8 * H) if a <= t <= b][::-1][: int(q["limit"])]
        return _ok([{"symbol": q["symbol"], "fundingRate": f"{0.0001 + (t // H % 7) * 1e-6:.8f}",
                     "fundingRateTimestamp": str(t)} for t in ts])
    if path == "/v5/market/kline":
        a, b = int(q["start"]), int(q["end"])
        step = {"60": H, "240": 4 * H, "D": 24 * H}[q["interval"]]
        ts = [t for t in range(a - a % step, b + 1, step) if a <= t <= b][::-1][: int(q["limit"])]
        p = lambda t: 90000 + (t // H) % 100
        return _ok([[str(t), str(p(t)), str(p(t) + 5), str(p(t) - 5), str(p(t) + 1), "12.5", str(12.5 * p(t))]
                    for t in ts])
    if path in ("/v5/market/open-interest", "/v5/market/account-ratio"):
        a, b = int(q["startTime"]), int(q["endTime"])
        ts = [t for t in range(a - a % H, b + 1, H) if a <= t <= b][::-1]
        off = int(q.get("cursor", "0"))
        cap = min(int(q["limit"]), page_cap or 10**9)
        chunk = ts[off: off + cap]
        cur = str(off + cap) if off + cap < len(ts) else ""
        if path.endswith("open-interest"):
            return _ok([{"openInterest": f"{50000 + t // H % 50}.5", "timestamp": str(t)} for t in chunk], cur)
        return _ok([{"symbol": q["symbol"], "buyRatio": "0.6", "sellRatio": "0.4", "timestamp": str(t)} for t in chunk], cur)
    return 404, {}, b"not found"


def _fetch(srv, d, datasets, **kw):
    return base.fetch("bybit", datasets, ["BTCUSDT"], start=kw.pop("start", START), end=kw.pop("end", END),
                      data_dir=d, base=srv.url, **{**FAST, **kw})


def test_download_verify_ingest_and_rerun(tmp_path, venue_server):
    srv = venue_server(route)
    s = _fetch(srv, tmp_path, ["funding", "open_interest", "klines", "spot_klines"])
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", tmp_path)
    assert f.height == 69 * 3 and f["venue"].unique().to_list() == ["bybit"] and f["interval_hours"].unique().to_list() == [8]
    assert f["ts"].min().isoformat() == "2025-01-01T00:00:00+00:00"
    oi = lake.read("open_interest", tmp_path)
    assert oi.height == 69 * 24 and oi["oi_usd"].null_count() == oi.height and oi["oi_base"].min() >= 50000
    bars = lake.read("bars", tmp_path)
    assert sorted(bars["market"].unique().to_list()) == ["perp", "spot"]
    assert bars.filter(pl.col("market") == "perp").height == 69 * 24
    # the server got documented parameters only
    q = [r["query"] for r in srv.log if r["path"] == "/v5/market/open-interest"][0]
    assert q["category"] == "linear" and q["intervalTime"] == "1h" and int(q["limit"]) <= 200
    from research.sources.http import Manifest

    recs = Manifest(tmp_path).load()
    assert len(recs) == s.planned and all(r["status"] == "ok" and r["ingest"] == "ok" for r in recs.values())
    assert all(r["path"].startswith("raw/bybit/") for r in recs.values())
    n = len(srv.log)
    again = _fetch(srv, tmp_path, ["funding", "open_interest", "klines", "spot_klines"])
    assert len(srv.log) == n, "a rerun must download nothing"
    assert again.downloaded == 0 and again.skipped == s.planned and sum(again.rows_added.values()) == 0


def test_cursor_pagination(tmp_path, venue_server):
    srv = venue_server(lambda *a: route(*a, page_cap=50))  # the server pages by 50 with nextPageCursor
    s = _fetch(srv, tmp_path, ["long_short"], end=date(2025, 1, 10))
    assert s.exit_code == 0, s.summary()
    pos = lake.read("positioning", tmp_path)
    assert pos.height == 10 * 24
    assert pos["account_ls_ratio"].to_list()[0] == pytest.approx(1.5, abs=1e-12)
    assert any("cursor" in r["query"] for r in srv.log)


def test_faults_heal_like_binance(tmp_path, venue_server):
    clean = tmp_path / "clean"
    srv = venue_server(route)
    _fetch(srv, clean, ["funding", "klines"])
    srv.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 502, {}), "drop",
                       ("body", b'{"retCode": 0, "result": {"li'),
                       ("body", json.dumps({"retCode": 10006, "retMsg": "Too many visits!", "result": {}}).encode())])
    d = tmp_path / "faulty"
    s = _fetch(srv, d, ["funding", "klines"])
    assert s.exit_code == 0, s.summary()
    for t in ("funding", "bars"):
        a, b = lake.read(t, clean).sort("ts"), lake.read(t, d).sort("ts")
        assert a.equals(b)


def test_provider_error_is_reported_not_ingested(tmp_path, venue_server):
    srv = venue_server(lambda *a: json_answer({"retCode": 10001, "retMsg": "params error: symbol invalid",
                                               "result": {}}))
    s = _fetch(srv, tmp_path, ["funding"])
    assert s.exit_code == 1 and "10001" in s.summary()
    assert lake.read("funding", tmp_path).height == 0
    assert not list((tmp_path / "raw" / "bybit").rglob("*.json"))


def test_cli_fetch_and_help(tmp_path, venue_server):
    from research.cli import app

    srv = venue_server(route)
    runner = CliRunner()
    r = runner.invoke(app, ["fetch", "bybit", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "open_interest" in r.output and "600 requests per 5 s" in r.output
    r = runner.invoke(app, ["fetch", "bybit", "-d", "funding", "--start", "2025-01-01", "--end", "2025-01-31",
                            "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert lake.read("funding", tmp_path).height == 31 * 3
    r = runner.invoke(app, ["fetch", "bybit", "-d", "nope", "--start", "2025-01-01", "--end", "2025-01-02",
                            "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "unknown dataset" in r.output and "Traceback" not in r.output


def test_declaration_is_consistent():
    p = bybit.PROVIDER
    assert set(p.default_datasets) <= set(p.datasets)
    assert all(d.page_limit and d.page_limit <= 1000 for d in p.datasets.values())
