"""Deribit client against a local server answering as docs.deribit.com shows (JSON-RPC over GET)."""
from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from research import db, lake
from research.sources import base
from tests.sources.venue_server import FAST, json_answer, venue_server

H = 3600_000
START, END = date(2025, 4, 1), date(2025, 4, 30)


def _rpc(result):
    return json_answer({"jsonrpc": "2.0", "result": result, "usIn": 1, "usOut": 2, "usDiff": 1, "testnet": False})


def route(method, path, q, body, cap=10**9):
    if path == "/api/v2/public/get_volatility_index_data":
        a, b = int(q["start_timestamp"]), int(q["end_timestamp"])
        step = {"3600": H, "1D": 24 * H}[q["resolution"]]
        ts = [t for t in range((a + step - 1) // step * step, b + 1, step)]
        # newest candles first in pages of `cap`; continuation = end_timestamp of the next (older) page
        page = ts[-cap:]
        cont = page[0] - 1 if len(ts) > cap else None
        return _rpc({"data": [[t, 50.0, 51.5, 49.0, 50.5 + (t // H) % 3] for t in page], "continuation": cont})
    if path == "/api/v2/public/get_funding_rate_history":
        a, b = int(q["start_timestamp"]), int(q["end_timestamp"])
        ts = range((a + H - 1) // H * H, b + 1, H)
        return _rpc([{"timestamp": t, "index_price": 84000.0, "prev_index_price": 83990.0,
                      "interest_1h": 1.2e-6, "interest_8h": 9.6e-6} for t in ts])
    return 400, {}, json.dumps({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}}).encode()


def _fetch(srv, d, datasets, symbols=("BTC",), **kw):
    return base.fetch("deribit", datasets, list(symbols), start=START, end=END, data_dir=d, base=srv.url, **{**FAST, **kw})


def test_dvol_table_with_continuation_and_rerun(tmp_path, venue_server):
    srv = venue_server(lambda *a: route(*a, cap=300))
    s = _fetch(srv, tmp_path, ["dvol"])
    assert s.exit_code == 0, s.summary()
    dv = lake.read("dvol", tmp_path)
    assert dv.height == 30 * 24 and dv["currency"].unique().to_list() == ["BTC"]
    assert dv["interval"].unique().to_list() == ["1h"] and (dv["high"] >= dv["low"]).all()
    assert any(int(r["query"]["end_timestamp"]) % H == H - 1 and "continuation" not in r["query"] for r in srv.log)
    assert len(srv.log) == 3  # 720 candles in pages of 300
    con = db.connect(tmp_path)
    assert con.execute("SELECT count(*) FROM dvol WHERE currency = ?", ["BTC"]).fetchone()[0] == 720
    n = len(srv.log)
    assert _fetch(srv, tmp_path, ["dvol"]).downloaded == 0 and len(srv.log) == n


def test_funding_hourly(tmp_path, venue_server):
    srv = venue_server(route)
    s = _fetch(srv, tmp_path, ["funding"], symbols=("BTC-PERPETUAL",))
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", tmp_path)
    assert f.height == 30 * 24 and f["rate"].unique().to_list() == [1.2e-6] and f["venue"].unique().to_list() == ["deribit"]


def test_rate_limit_error_and_faults_heal(tmp_path, venue_server):
    srv = venue_server(route)
    srv.faults.extend([("body", json.dumps({"jsonrpc": "2.0", "error": {"code": 10028, "message": "too_many_requests"}}).encode()),
                       ("status", 429, {"Retry-After": "0"}), ("status", 502, {}), "drop", ("body", b'{"jsonrpc": "2.0", "res')])
    s = _fetch(srv, tmp_path, ["dvol"], interval="1d")
    assert s.exit_code == 0, s.summary()
    assert lake.read("dvol", tmp_path).height == 30


def test_error_reported(tmp_path, venue_server):
    srv = venue_server(lambda *a: json_answer({"jsonrpc": "2.0", "error": {"code": 11050, "message": "bad_request"}}))
    s = _fetch(srv, tmp_path, ["dvol"])
    assert s.exit_code == 1 and "11050" in s.summary()


def test_cli(tmp_path, venue_server):
    from research.cli import app

    srv = venue_server(route)
    r = CliRunner().invoke(app, ["fetch", "deribit", "--start", "2025-04-01", "--end", "2025-04-02", "--interval", "1d",
                                 "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert lake.read("dvol", tmp_path).height == 2
