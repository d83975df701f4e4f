"""Hyperliquid info client against a local POST /info server shaped as the official API docs show."""
from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from research import lake
from research.sources import base, hyperliquid
from tests.sources.venue_server import FAST, json_answer, venue_server

H = 3600_000
START, END = date(2025, 3, 1), date(2025, 3, 31)


def route(method, path, q, body, cap=500):
    assert method == "POST" and path == "/info"
    req = json.loads(body)
    if req["type"] == "fundingHistory":
        a, b = req["startTime"], req.get("endTime")
        ts = [t for t in range((a + H - 1) // H * H, b + 1, H)][:cap]
        return json_answer([{"coin": req["coin"], "fundingRate": "0.0000125", "premium": "0.0001", "time": t} for t in ts])
    if req["type"] == "candleSnapshot":
        r = req["req"]
        step = {"1h": H, "4h": 4 * H}[r["interval"]]
        ts = range((r["startTime"] + step - 1) // step * step, r["endTime"] + 1, step)
        return json_answer([{"t": t, "T": t + step - 1, "s": r["coin"], "i": r["interval"], "o": "95000.0",
                             "c": "95010.0", "h": "95100.0", "l": "94900.0", "v": "3.25", "n": 120} for t in ts])
    if req["type"] == "metaAndAssetCtxs":
        return json_answer([{"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
                                          {"name": "ETH", "szDecimals": 4, "maxLeverage": 25}]},
                            [{"funding": "0.0000125", "openInterest": "30000.5", "markPx": "100000.0", "oraclePx": "1"},
                             {"funding": "0.00001", "openInterest": "500000", "markPx": "3500.0", "oraclePx": "1"}]])
    return 422, {}, b"Failed to deserialize the JSON body"


def _fetch(srv, d, datasets, **kw):
    return base.fetch("hyperliquid", datasets, ["BTC"], start=START, end=END, data_dir=d, base=srv.url, **{**FAST, **kw})


def test_funding_candles_posts_and_rerun(tmp_path, venue_server):
    srv = venue_server(lambda *a: route(*a, cap=300))  # answers shorter than the window: followed by startTime
    s = _fetch(srv, tmp_path, ["funding", "candles"])
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", tmp_path)
    assert f.height == 31 * 24 and f["interval_hours"].unique().to_list() == [1]
    bars = lake.read("bars", tmp_path)
    assert bars.height == 31 * 24 and bars["trades"].unique().to_list() == [120]
    assert all(r["method"] == "POST" and r["headers"].get("Content-Type") == "application/json" for r in srv.log)
    # funding: window 1 (500 h) = 300 rows + a continuation of 200, window 2 (244 h) = 1; candles: 1
    assert len(srv.log) == 4
    n = len(srv.log)
    assert _fetch(srv, tmp_path, ["funding", "candles"]).downloaded == 0 and len(srv.log) == n


def test_full_window_needs_one_request(tmp_path, venue_server):
    calls = []

    def r(*a):
        calls.append(json.loads(a[3]))
        return route(*a)

    srv = venue_server(r)
    s = base.fetch(hyperliquid.PROVIDER, ["funding"], ["BTC"], start=START, end=date(2025, 3, 20),
                   data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 0
    assert lake.read("funding", tmp_path).height == 20 * 24 and len(calls) == 1  # 480 h < the 500-row page


def test_open_interest_snapshot_has_observation_time(tmp_path, venue_server):
    srv = venue_server(route)
    s = _fetch(srv, tmp_path, ["open_interest"])
    assert s.exit_code == 0, s.summary()
    oi = lake.read("open_interest", tmp_path)
    assert oi.height == 1 and oi["oi_base"][0] == 30000.5 and oi["oi_usd"][0] == 30000.5 * 100000.0
    import datetime as dt

    age = dt.datetime.now(dt.timezone.utc) - oi["ts"][0]
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)


def test_faults_heal(tmp_path, venue_server):
    srv = venue_server(route)
    srv.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 500, {}), "drop", ("body", b"[{\"coin\":")])
    s = _fetch(srv, tmp_path, ["candles"])
    assert s.exit_code == 0, s.summary()
    assert lake.read("bars", tmp_path).height == 31 * 24


def test_bad_request_reported(tmp_path, venue_server):
    srv = venue_server(lambda *a: (422, {}, b"Failed to deserialize the JSON body"))
    s = _fetch(srv, tmp_path, ["funding"])
    assert s.exit_code == 1 and "422" in s.summary()


def test_cli(tmp_path, venue_server):
    from research.cli import app

    srv = venue_server(route)
    r = CliRunner().invoke(app, ["fetch", "hyperliquid", "-d", "candles", "--interval", "4h", "--start", "2025-03-01",
                                 "--end", "2025-03-02", "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert lake.read("bars", tmp_path).height == 12
