"""Tardis.dev dataset client against a local server serving gzip CSVs as docs.tardis.dev describes."""
from __future__ import annotations

import datetime as dt
import gzip
from datetime import date

import polars as pl
from typer.testing import CliRunner

from research import lake
from research.sources import base
from tests.sources.venue_server import FAST, assert_no_secret, venue_server

KEY = "TD.s3cr3t-key-value"
HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"


def route(method, path, q, body, headers_seen):
    # /v1/{exchange}/liquidations/{YYYY}/{MM}/{DD}/{symbol}.csv.gz
    parts = path.strip("/").split("/")
    if len(parts) != 7 or parts[0] != "v1" or parts[2] != "liquidations":
        return 404, {}, b"not found"
    exch, y, m, d, sym = parts[1], parts[3], parts[4], parts[5], parts[6][: -len(".csv.gz")]
    if d != "01" and headers_seen[-1].get("Authorization") != f"Bearer {KEY}":
        return 401, {}, b'{"code":401,"message":"API key required for this date"}'
    if d == "15":
        return 200, {}, gzip.compress(b"")  # documented: an empty gzip file when there is no data
    t0 = int(dt.datetime(int(y), int(m), int(d), tzinfo=dt.timezone.utc).timestamp() * 1_000_000)
    rows = [f"{exch},{sym},{t0 + 1_000_000 * i},{t0 + 1_000_000 * i + 500},,{'sell' if i % 2 else 'buy'},"
            f"{90000 + i},{0.01 * (i + 1)}\n" for i in range(4)]
    return 200, {}, gzip.compress((HEADER + "".join(rows)).encode())


def _server(venue_server):
    seen = []

    def r(method, path, q, body):
        seen.append(srv.log[-1]["headers"])
        return route(method, path, q, body, seen)

    srv = venue_server(r)
    return srv


def test_free_days_only_without_key(tmp_path, venue_server, monkeypatch):
    monkeypatch.delenv("TARDIS_API_KEY", raising=False)
    srv = _server(venue_server)
    s = base.fetch("tardis", None, ["binance-futures:BTCUSDT"], start=date(2025, 1, 1), end=date(2025, 3, 31),
                   data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    assert [r["path"].split("/")[6] for r in srv.log] == ["01", "01", "01"]
    lo = lake.read("liquidation_orders", tmp_path)
    assert lo.height == 12 and lo["venue"].unique().to_list() == ["binance"]
    first = lo.sort("ts").row(0, named=True)
    assert first["side"] == "short" and first["qty"] == 0.01 and abs(first["usd"] - 900.0) < 1e-9  # buy = short liquidated
    assert lo.sort("ts").row(1, named=True)["side"] == "long"


def test_key_any_day_empty_file_rerun_and_no_secret(tmp_path, venue_server, monkeypatch):
    monkeypatch.setenv("TARDIS_API_KEY", KEY)
    srv = _server(venue_server)
    s = base.fetch("tardis", None, ["bybit:BTCUSDT"], start=date(2025, 2, 13), end=date(2025, 2, 16),
                   data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    lo = lake.read("liquidation_orders", tmp_path)
    assert lo.height == 12 and lo["venue"].unique().to_list() == ["bybit"]  # the 15th is an empty file
    n = len(srv.log)
    assert base.fetch("tardis", None, ["bybit:BTCUSDT"], start=date(2025, 2, 13), end=date(2025, 2, 16),
                      data_dir=tmp_path, base=srv.url, **FAST).downloaded == 0 and len(srv.log) == n
    assert_no_secret(tmp_path, KEY)
    assert all(KEY not in r["url"] for r in srv.log)  # the key travels in the Authorization header only


def test_faults_heal_and_unknown_unit_refused(tmp_path, venue_server, monkeypatch):
    monkeypatch.setenv("TARDIS_API_KEY", KEY)
    srv = _server(venue_server)
    srv.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 500, {}), "drop", ("body", b"\x1f\x8b\x08junk")])
    s = base.fetch("tardis", None, ["binance-futures:BTCUSDT"], start=date(2025, 2, 1), end=date(2025, 2, 2),
                   data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 0, s.summary()
    assert lake.read("liquidation_orders", tmp_path).height == 8
    s = base.fetch("tardis", None, ["okex-swap:BTC-USDT-SWAP"], start=date(2025, 2, 1), end=date(2025, 2, 1),
                   data_dir=tmp_path, base=srv.url, **FAST)
    assert s.exit_code == 1 and "amount_unit" in s.summary()
    s = base.fetch("tardis", None, ["okex-swap:BTC-USDT-SWAP"], start=date(2025, 2, 1), end=date(2025, 2, 1),
                   data_dir=tmp_path, base=srv.url, extra={"amount_unit": "contract:0.01"}, **FAST)
    assert s.exit_code == 0
    okx = lake.read("liquidation_orders", tmp_path).filter(pl.col("venue") == "okx").sort("ts")
    assert okx["qty"].to_list()[0] == 0.0001


def test_cli(tmp_path, venue_server, monkeypatch):
    from research.cli import app

    monkeypatch.setenv("TARDIS_API_KEY", KEY)
    srv = _server(venue_server)
    r = CliRunner().invoke(app, ["fetch", "tardis", "-s", "binance-futures:BTCUSDT", "--start", "2025-02-03",
                                 "--end", "2025-02-03", "--base-url", srv.url, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert KEY not in r.output
    assert lake.read("liquidation_orders", tmp_path).height == 4
