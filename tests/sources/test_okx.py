"""OKX v5 client against a local server that answers as www.okx.com/docs-v5 shows."""
from __future__ import annotations

import json
from datetime import date

import polars as pl
from typer.testing import CliRunner

from research import lake
from research.sources import base
from tests.sources.venue_server import FAST, json_answer, venue_server

H = 3600_000
START, END = date(2025, 2, 1), date(2025, 2, 28)


def _ok(data):
    return json_answer({"code": "0", "msg": "", "data": data})


def _in(after, before, step, limit):
    """Records with before < ts < after, newest first, at most limit (the documented cursor semantics)."""
    first = (before // step + 1) * step
    return [t for t in range(first, after, step) if before < t < after][::-1][:limit]


def route(method, path, q, body):
    if path == "/api/v5/public/funding-rate-history":
        ts = _in(int(q["after"]), int(q["before"]), 8 * H, min(int(q["limit"]), 400))
        return _ok([{"instType": "SWAP", "instId": q["instId"], "formulaType": "withRate", "fundingRate": "0.00012",
                     "realizedRate": "0.0001", "fundingTime": str(t), "method": "current_period"} for t in ts])
    if path == "/api/v5/market/history-candles":
        step = {"1H": H, "4H": 4 * H, "1Dutc": 24 * H}[q["bar"]]
        ts = _in(int(q["after"]), int(q["before"]), step, min(int(q["limit"]), 100))
        swap = q["instId"].endswith("SWAP")
        return _ok([[str(t), "95000", "95100", "94900", "95050", "1000" if swap else "10", "10" if swap else "950500",
                     "950500", "1"] for t in ts])
    if path == "/api/v5/rubik/stat/contracts/open-interest-volume":
        a, b = int(q["begin"]), int(q["end"])
        return _ok([[str(t), str(4.1e9 + t // H % 9), "1.2e9"] for t in range(a, b + 1, H)][::-1])
    return 404, {}, b"not found"


def _fetch(srv, d, datasets, symbols=("BTC-USDT-SWAP",), **kw):
    return base.fetch("okx", datasets, list(symbols), start=START, end=END, data_dir=d, base=srv.url, **{**FAST, **kw})


def test_download_verify_ingest_and_rerun(tmp_path, venue_server):
    srv = venue_server(route)
    s = _fetch(srv, tmp_path, ["funding", "candles"])
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", tmp_path)
    assert f.height == 28 * 3 and f["rate"].unique().to_list() == [0.0001]  # realizedRate, not the predicted rate
    bars = lake.read("bars", tmp_path)
    assert bars.height == 28 * 24 and bars["volume"].unique().to_list() == [10.0]  # volCcy (BTC), not contracts
    assert bars["ts"].min().isoformat() == "2025-02-01T00:00:00+00:00"
    s2 = _fetch(srv, tmp_path, ["open_interest"], symbols=("BTC",))
    assert s2.exit_code == 0, s2.summary()
    oi = lake.read("open_interest", tmp_path)
    assert oi.height == 28 * 24 and oi["symbol"].unique().to_list() == ["BTC"] and oi["oi_usd"].min() > 4e9
    n = len(srv.log)
    again = _fetch(srv, tmp_path, ["funding", "candles"])
    assert len(srv.log) == n and again.downloaded == 0


def test_spot_candles_volume_is_base(tmp_path, venue_server):
    srv = venue_server(route)
    s = _fetch(srv, tmp_path, ["spot_candles"], symbols=("BTC-USDT",), interval="4h")
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", tmp_path)
    assert bars["market"].unique().to_list() == ["spot"] and bars["volume"].unique().to_list() == [10.0]
    assert bars.height == 28 * 6


def test_unconfirmed_bar_dropped_and_faults_heal(tmp_path, venue_server):
    def r(method, path, q, body):
        code, h, data = route(method, path, q, body)
        doc = json.loads(data)
        if doc["data"] and path.endswith("history-candles"):
            doc["data"][0][8] = "0"  # the newest bar of each page is still open
        return code, h, json.dumps(doc).encode()

    srv = venue_server(r)
    srv.faults.extend([("status", 429, {"Retry-After": "0"}),
                       ("body", json.dumps({"code": "50011", "msg": "Too Many Requests", "data": []}).encode()),
                       ("status", 503, {}), "drop", ("body", b"<html>gateway</html>")])
    s = _fetch(srv, tmp_path, ["candles"])
    assert s.exit_code == 0, s.summary()
    assert lake.read("bars", tmp_path).height == 28 * 24 - 7  # 7 pages of 100 h, one open bar each


def test_error_code_reported(tmp_path, venue_server):
    srv = venue_server(lambda *a: json_answer({"code": "51001", "msg": "Instrument ID does not exist", "data": []}))
    s = _fetch(srv, tmp_path, ["funding"])
    assert s.exit_code == 1 and "51001" in s.summary()
    assert lake.read("funding", tmp_path).height == 0


def test_cli(tmp_path, venue_server):
    from research.cli import app

    srv = venue_server(route)
    r = CliRunner().invoke(app, ["fetch", "okx", "-d", "funding", "--start", "2025-02-01", "--end", "2025-02-28",
                                 "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert lake.read("funding", tmp_path).filter(pl.col("venue") == "okx").height == 84
