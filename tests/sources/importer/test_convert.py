"""Coin amounts -> USD with the matching bar's close (perp, else spot), or a price column; never a NaN."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from research import lake
from research.errors import ImportMappingError
from research.sources import importer
from research.sources.importer import Mapping

from .util import utc, write

LIQ_COINS = {"table": "liquidations", "time": {"column": "day", "timezone": "UTC", "label": "start"},
             "values": {"long_usd": "long:base", "short_usd": "short:base"},
             "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "export"}}


def _bars(rows):
    """rows: (day, market, close) -> a bars frame of BTCUSDT 1d."""
    return pl.DataFrame({
        "ts": [utc(2025, 1, d) for d, _, _ in rows], "venue": "binance", "market": [m for _, m, _ in rows],
        "symbol": "BTCUSDT", "interval": "1d", "open": [c for *_, c in rows], "high": [c for *_, c in rows],
        "low": [c for *_, c in rows], "close": [c for *_, c in rows], "source": "test",
    })


def test_liquidations_in_coins_priced_by_the_same_days_bar(tmp_path, data_dir):
    # day 1: perp and spot bars (perp wins); day 2: spot only (fallback); hand-computed USD below
    lake.write("bars", _bars([(1, "perp", 100_000.0), (1, "spot", 99_950.0), (2, "spot", 98_000.0)]), data_dir)
    f = write(tmp_path, "liq.csv", "day,long,short\n2025-01-01,2.5,0.1\n2025-01-02,1.25,4\n")
    res = importer.import_file("liquidations", f, LIQ_COINS, data_dir)
    got = lake.read("liquidations", data_dir).sort("ts")
    assert got["long_usd"].to_list() == pytest.approx([250_000.0, 122_500.0], rel=1e-12)  # 2.5 x 100,000; 1.25 x 98,000
    assert got["short_usd"].to_list() == pytest.approx([10_000.0, 392_000.0], rel=1e-12)  # 0.1 x 100,000; 4 x 98,000
    c = res.conversions[0]
    assert c.column == "long_usd" and c.source_column == "long" and "bars close BTCUSDT 1d (perp/spot)" in c.price
    assert dict(c.rows_by_market) == {"perp:test": 1, "spot:test": 1}
    assert "long_usd = long (coins) x bars close BTCUSDT 1d" in str(res)


def test_a_bucket_without_price_is_a_one_line_error_and_stores_nothing(tmp_path, data_dir):
    lake.write("bars", _bars([(1, "spot", 98_000.0)]), data_dir)
    f = write(tmp_path, "liq.csv", "day,long,short\n2025-01-01,1,1\n2025-01-03,1,1\n")
    with pytest.raises(ImportMappingError, match=r"liq.csv, line 3: no price to convert coins to USD for 2025-01-03 00:00 UTC "
                                                 r"\(no bars close BTCUSDT 1d \(perp/spot\) bar in the lake\)") as ei:
        importer.import_file("liquidations", f, LIQ_COINS, data_dir)
    assert "\n" not in str(ei.value)
    assert lake.read("liquidations", data_dir).height == 0
    # rows outside the requested window need no price
    res = importer.import_file("liquidations", f, LIQ_COINS, data_dir, end=date(2025, 1, 2))
    assert res.rows_in == 1 and lake.read("liquidations", data_dir)["long_usd"].to_list() == [98_000.0]


def test_price_column_in_the_same_file(tmp_path):
    f = write(tmp_path, "liq.csv", "day,long,short,px\n2025-01-01,2,3,\"50,000\"\n2025-01-02,1,0,-\n")
    m = Mapping.from_dict({**LIQ_COINS, "price": {"column": "px"}})
    with pytest.raises(ImportMappingError, match=r"liq.csv, line 3: no price .* \(column 'px'\)"):
        importer.parse_file(f, m)
    f = write(tmp_path, "liq.csv", "day,long,short,px\n2025-01-01,2,3,\"50,000\"\n")
    df = importer.parse_file(f, m)
    assert df["long_usd"].to_list() == [100_000.0] and df["short_usd"].to_list() == [150_000.0]


def test_open_interest_in_coins_keeps_coins_beside_usd(tmp_path):
    # a snapshot at the end of the 2025-01-01 bucket is priced by the bar that ENDS then (starts 2025-01-01)
    bars = _bars([(1, "perp", 90_000.0), (2, "perp", 91_000.0)])
    f = write(tmp_path, "oi.csv", "day,oi\n2025-01-01,10\n")
    m = Mapping.from_dict({"table": "open_interest", "time": {"column": "day", "timezone": "UTC", "label": "start"},
                           "values": {"oi_usd": "oi:base"},
                           "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "export"}})
    p = importer.parse_export(f, m, bars=bars)
    assert p.frame["ts"].to_list() == [utc(2025, 1, 2)]
    assert p.frame["oi_usd"].to_list() == [900_000.0] and p.frame["oi_base"].to_list() == [10.0]
