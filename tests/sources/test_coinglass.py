"""CoinGlass v4 client: a local server replays the real pack's CoinGlass exports in the documented
JSON shape, and the downloaded series must equal the imported exports of the same period."""
from __future__ import annotations

import datetime as dt
import json
from datetime import date

import polars as pl
from typer.testing import CliRunner

from research import lake
from research.sources import base, importer
from research.sources.importer import presets
from tests.conftest import shared_path
from tests.sources.venue_server import FAST, assert_no_secret, json_answer, venue_server

KEY = "cg-9f8e7d6c5b4a-secret"
START, END = date(2025, 11, 1), date(2025, 12, 31)
FILES = {"/api/futures/liquidation/aggregated-history": ("coinglass_liquidation_4h.csv", "4h"),
         "/api/futures/open-interest/aggregated-history": ("coinglass_oi_4h.csv", "4h"),
         "/api/futures/funding-rate/oi-weight-history": ("coinglass_funding_4h.csv", "4h"),
         "/api/futures/top-long-short-position-ratio/history": ("coinglass_top_ls_1d.csv", "1d")}


def _load(name):
    df = pl.read_csv(shared_path(f"data/real/{presets._CG}/{name}"), infer_schema_length=0)
    ms = (df["timestamp"].str.to_datetime("%Y-%m-%dT%H:%M:%S", time_zone="UTC").dt.epoch("ms"))
    return df.with_columns(ms.alias("time"))


def replay_route():
    data = {path: _load(f) for path, (f, _) in FILES.items()}

    def route(method, path, q, body):
        if path not in data:
            return 404, {}, b"not found"
        assert q["interval"] == FILES[path][1]
        a, b = int(q["start_time"]), int(q["end_time"])
        d = data[path].filter((pl.col("time") >= a) & (pl.col("time") <= b)).head(int(q["limit"]))
        if path.endswith("liquidation/aggregated-history"):
            assert q["exchange_list"] == "Binance" and q["symbol"] == "BTC"
            rows = [{"time": r["time"], "aggregated_long_liquidation_usd": float(r["long_usd"]),
                     "aggregated_short_liquidation_usd": float(r["short_usd"])} for r in d.iter_rows(named=True)]
        elif path.endswith("position-ratio/history"):
            assert q["exchange"] == "Binance" and q["symbol"] == "BTCUSDT"
            rows = [{"time": r["time"], "top_position_long_percent": float(r["long_percent"]),
                     "top_position_short_percent": float(r["short_percent"]),
                     "top_position_long_short_ratio": float(r["ratio"])} for r in d.iter_rows(named=True)]
        else:  # OHLC histories (OI in USD, funding in percent), numbers sent as strings as the v4 pages show
            rows = [{"time": r["time"], "open": r["open"], "high": r["high"], "low": r["low"], "close": r["close"]}
                    for r in d.iter_rows(named=True)]
        return json_answer({"code": "0", "msg": "success", "data": rows})
    return route


def _window(df, t0, t1):
    return df.filter((pl.col("ts") >= t0) & (pl.col("ts") < t1)).sort("ts")


def test_download_equals_import_of_the_real_pack(tmp_path, venue_server, monkeypatch):
    monkeypatch.setenv("COINGLASS_API_KEY", KEY)
    srv = venue_server(replay_route())
    dl_dir, imp_dir = tmp_path / "dl", tmp_path / "imp"
    s = base.fetch("coinglass", ["liquidations", "open_interest", "funding"], ["BTC"], start=START, end=END,
                   data_dir=dl_dir, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    s = base.fetch("coinglass", ["top_long_short"], ["BTC"], start=START, end=END, data_dir=dl_dir, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    for p in ("coinglass_liquidations_4h", "coinglass_oi_4h", "coinglass_funding_4h", "coinglass_top_ls_1d"):
        importer.import_file(None, shared_path(f"data/real/{importer.PRESETS[p]['file']}"), p, imp_dir)
    t0 = dt.datetime(2025, 11, 2, tzinfo=dt.timezone.utc)
    t1 = dt.datetime(2025, 12, 31, tzinfo=dt.timezone.utc)
    for table in ("liquidations", "open_interest", "funding", "positioning"):
        a, b = _window(lake.read(table, dl_dir), t0, t1), _window(lake.read(table, imp_dir), t0, t1)
        assert a.height > 50, table
        assert a.equals(b), f"{table}: download and import differ"
    # header names are case-insensitive (urllib sends "Cg-api-key")
    assert all({k.lower(): v for k, v in r["headers"].items()}.get("cg-api-key") == KEY for r in srv.log)
    assert_no_secret(dl_dir, KEY)


def test_needs_key_and_rerun(tmp_path, venue_server, monkeypatch):
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    from research.cli import app

    srv = venue_server(replay_route())
    r = CliRunner().invoke(app, ["fetch", "coinglass", "--start", "2025-11-01", "--end", "2025-11-30",
                                 "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "COINGLASS_API_KEY" in r.output and not srv.log
    monkeypatch.setenv("COINGLASS_API_KEY", KEY)
    r = CliRunner().invoke(app, ["fetch", "coinglass", "-d", "liquidations", "--start", "2025-11-01", "--end",
                                 "2025-11-30", "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert KEY not in r.output and lake.read("liquidations", tmp_path).height == 30 * 6
    n = len(srv.log)
    r = CliRunner().invoke(app, ["fetch", "coinglass", "-d", "liquidations", "--start", "2025-11-01", "--end",
                                 "2025-11-30", "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and len(srv.log) == n


def test_errors_and_faults(tmp_path, venue_server, monkeypatch):
    monkeypatch.setenv("COINGLASS_API_KEY", KEY)
    srv = venue_server(replay_route())
    srv.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 500, {}), "drop",
                       ("body", json.dumps({"code": "429", "msg": "Too Many Requests"}).encode()), ("body", b"{")])
    s = base.fetch("coinglass", ["open_interest"], ["BTC"], start=START, end=START, data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    assert lake.read("open_interest", tmp_path).height == 6
    bad = venue_server(lambda *a: json_answer({"code": "40001", "msg": "API key missing or invalid"}))
    s = base.fetch("coinglass", ["funding"], ["BTC"], start=START, end=START, data_dir=tmp_path, base=bad.url, **FAST)
    assert s.exit_code == 1 and "40001" in s.summary() and KEY not in s.summary()
