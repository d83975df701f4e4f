"""End to end against the local mirror of data.binance.vision in ../shared (served on 127.0.0.1)."""
from __future__ import annotations

import zipfile
from datetime import date

import polars as pl
import pytest

from research import lake
from research.sources import binance
from tests.conftest import shared_path

pytestmark = pytest.mark.network


def _csv_rows(zip_path) -> list[list[str]]:
    with zipfile.ZipFile(zip_path) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    rows = [r.split(",") for r in text.splitlines() if r]
    return rows[1:] if not rows[0][0].isdigit() else rows


def test_fetch_funding_and_klines_matches_files_and_rerun_downloads_nothing(serve, data_dir):
    mirror = shared_path("data/binance-vision")
    srv = serve(mirror)
    kw = dict(start=date(2025, 9, 1), end=date(2025, 12, 31), data_dir=data_dir, base=srv.url, progress=False,
              backoff=0.001)
    s = binance.fetch(["BTCUSDT"], ["fundingRate", "klines"], interval="1h", **kw)
    assert s.exit_code == 0, s.summary()
    assert s.downloaded == 8 and s.skipped == 0  # 4 monthly funding + 4 monthly kline files

    funding = lake.read("funding", data_dir).sort("ts")
    bars = lake.read("bars", data_dir).sort("ts")
    f_rows, k_rows = [], []
    for m in ("2025-09", "2025-10", "2025-11", "2025-12"):
        f_rows += _csv_rows(mirror / f"data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-{m}.zip")
        k_rows += _csv_rows(mirror / f"data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-{m}.zip")
    assert funding.height == len(f_rows) and bars.height == len(k_rows) == (30 + 31 + 30 + 31) * 24
    # values, row by row (calc_time keeps its ms jitter; E-notation rates parse exactly)
    assert [int(r[0]) for r in f_rows] == (funding["ts"].dt.epoch("ms")).to_list()
    assert [float(r[2]) for r in f_rows] == funding["rate"].to_list()
    assert [int(r[1]) for r in f_rows] == funding["interval_hours"].to_list()
    assert [int(r[0]) for r in k_rows] == bars["ts"].dt.epoch("ms").to_list()
    for i, col in [(1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"), (7, "quote_volume"),
                   (9, "taker_buy_volume"), (10, "taker_buy_quote_volume")]:
        assert [float(r[i]) for r in k_rows] == bars[col].to_list(), col
    assert [int(r[8]) for r in k_rows] == bars["trades"].to_list()
    assert set(bars["market"]) == {"perp"} and set(bars["source"]) == {"binance_vision"}
    # the Oct-10 crash bar (documented in the mirror README)
    crash = bars.filter(pl.col("ts") == pl.datetime(2025, 10, 10, 21, time_zone="UTC"))
    assert crash["low"].item() == 101516.50
    # raw zips are kept untouched, beside their checksum
    raw = data_dir / "raw/binance/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-10.zip"
    assert raw.read_bytes() == (mirror / "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-10.zip").read_bytes()
    assert raw.with_name(raw.name + ".CHECKSUM").exists()

    n_zip_requests = len(srv.requests_for(".zip"))
    s2 = binance.fetch(["BTCUSDT"], ["fundingRate", "klines"], interval="1h", **kw)
    assert s2.exit_code == 0 and s2.downloaded == 0 and s2.skipped == 8
    assert len(srv.requests_for(".zip")) == n_zip_requests  # nothing downloaded again
    assert len(srv.requests_for(".CHECKSUM")) == 8
    assert lake.read("funding", data_dir).height == funding.height


def test_partial_months_use_daily_files(serve, data_dir):
    mirror = shared_path("data/binance-vision")
    srv = serve(mirror)
    s = binance.fetch(["BTCUSDT"], ["klines"], interval="1h", start=date(2025, 10, 25), end=date(2025, 12, 3),
                      data_dir=data_dir, base=srv.url, progress=False)
    assert s.exit_code == 0, s.summary()
    daily = [p for p in srv.requests_for(".zip") if "/daily/" in p]
    monthly = [p for p in srv.requests_for(".zip") if "/monthly/" in p]
    assert len(daily) == 7 + 3 and len(monthly) == 1  # Oct 25-31, Nov (whole month), Dec 1-3
    bars = lake.read("bars", data_dir)
    assert bars.height == (7 + 30 + 3) * 24
    assert str(bars["ts"].min()) == "2025-10-25 00:00:00+00:00" and str(bars["ts"].max()) == "2025-12-03 23:00:00+00:00"
    assert bars["ts"].is_unique().all()


def test_dry_run_lists_urls_without_downloading(serve, data_dir):
    srv = serve(shared_path("data/binance-vision"))
    s = binance.fetch(["BTCUSDT", "ETHUSDT"], ["fundingRate"], start=date(2024, 1, 1), end=date(2024, 3, 31),
                      data_dir=data_dir, base=srv.url, dry_run=True, progress=False)
    assert len(s.urls) == 6 and s.urls[0] == srv.url + "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip"
    assert srv.log == [] and not (data_dir / "raw").exists()
