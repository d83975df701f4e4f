"""The two real packs, each imported in one call: the standard Oct 2025 - Apr 2026 pack and the long pack."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from research import lake
from research.sources import importer
from tests.conftest import shared_path

from .util import utc


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    d = tmp_path_factory.mktemp("standard")
    return d, importer.import_pack("standard", shared_path("data/real"), d)


@pytest.fixture(scope="module")
def long_lake(tmp_path_factory):
    # measured: about 2 s and 160 MB RSS on the 2-core machine (so not marked slow)
    d = tmp_path_factory.mktemp("long")
    return d, importer.import_pack("long", shared_path("data/real"), d)


def span(df: pl.DataFrame, col: str = "ts"):
    return df[col].min(), df[col].max()


def test_standard_pack_covers_oct_2025_to_apr_2026(standard):
    d, results = standard
    assert set(results) == set(importer.REAL_PACK)
    perp = lake.read("bars", d, market="perp")
    spot = lake.read("bars", d, market="spot")
    assert span(perp) == (utc(2025, 10, 1), utc(2026, 4, 30, 23)) and perp.height == 212 * 24
    # the spot export ends at its capture (2026-04-04 00:00 was an open bar and is dropped)
    assert span(spot) == (utc(2025, 10, 1), utc(2026, 4, 3, 23)) and spot.height == (212 - 27) * 24
    fb = lake.read("funding", d, source="binance_vision")
    assert span(fb)[0] == utc(2025, 10, 1) and span(fb)[1].date() == date(2026, 4, 30) and fb.height == 212 * 3
    liq = lake.read("liquidations", d)
    assert span(liq) == (utc(2025, 10, 6, 12), utc(2026, 4, 4, 8)) and liq.height == 1080
    oi = lake.read("open_interest", d)
    assert span(oi) == (utc(2025, 10, 6, 16), utc(2026, 4, 4, 12))  # bar ends: the close is known then
    fc = lake.read("funding", d, source="coinglass")
    assert span(fc) == (utc(2025, 10, 6, 16), utc(2026, 4, 4, 12)) and fc["rate"].abs().max() < 0.005
    senti = lake.read("sentiment", d)
    assert span(senti, "date") == (date(2025, 10, 1), date(2026, 4, 30)) and senti.height == 212
    etf = lake.read("etf_flows", d)
    assert span(etf, "date") == (date(2025, 10, 1), date(2026, 1, 2))  # the Farside export ends there


def test_standard_pack_published_reference_values(standard):
    """Numbers quoted in ../shared/data/real/PROVENANCE.md for the Oct 10 2025 crash."""
    d, _ = standard
    liq = lake.read("liquidations", d).filter(pl.col("ts") == utc(2025, 10, 10, 20))
    assert liq["long_usd"].item() == pytest.approx(235_601_013, abs=1) and liq["short_usd"].item() == pytest.approx(107_461_506, abs=1)
    oi = lake.read("open_interest", d).filter(pl.col("ts") == utc(2025, 10, 11))  # close of the 20:00 bar
    assert oi["oi_usd"].item() == pytest.approx(70.51e9, rel=1e-3) and oi["venue"].item() == "all"
    bar = lake.read("bars", d, market="perp").filter(pl.col("ts") == utc(2025, 10, 10, 21))
    assert bar["low"].item() == 101516.50
    fg = lake.read("sentiment", d).filter(pl.col("date").is_in([date(2025, 10, 10), date(2025, 10, 11)])).sort("date")
    assert fg["value"].to_list() == [64.0, 27.0]


def test_long_pack_in_one_call(long_lake):
    d, results = long_lake
    assert list(results) == list(importer.LONG_PACK)
    bars = lake.read("bars", d)
    first = {(r[0], r[1], r[2]): r[3] for r in bars.group_by("symbol", "market", "interval").agg(pl.col("ts").min()).iter_rows()}
    assert first[("BTCUSDT", "spot", "1d")] == utc(2020, 4, 5) and first[("BTCUSDT", "spot", "4h")] == utc(2020, 4, 5)
    assert first[("BTCUSDT", "spot", "1h")] == utc(2021, 4, 3) and first[("BTCUSDT", "perp", "8h")] == utc(2019, 9, 8, 16)
    assert {("ETHUSDT", "perp", iv) for iv in ("1h", "4h", "1d")} <= set(first)
    assert {("SOLUSDT", "perp", iv) for iv in ("1h", "4h", "1d")} <= set(first)
    f = lake.read("funding", d)
    fmin = {r[0]: r[1] for r in f.group_by("symbol").agg(pl.col("ts").min()).iter_rows()}
    assert fmin["BTCUSDT"] == utc(2019, 9, 10, 8) and fmin["ETHUSDT"] == utc(2020, 1, 1) and fmin["SOLUSDT"] == utc(2023, 1, 1)
    # ETH 2023 from supervik (UTC+3 shifted) and pakchu merge exactly: one row per settlement
    eth = f.filter((pl.col("symbol") == "ETHUSDT") & (pl.col("ts").dt.year() == 2023))
    assert eth.height == 1095
    oi = lake.read("open_interest", d)
    assert {(r[0], r[1]) for r in oi.select("source", "interval").unique().iter_rows()} == {("coinglass", "1d"), ("coinalyze", "1d")}
    assert oi["ts"].min() == utc(2020, 2, 28)
    liq = lake.read("liquidations", d)
    assert liq.height == 1840 and liq["ts"].min() == utc(2020, 4, 15) and liq["long_usd"].is_finite().all()
    conv = results["coinalyze_liquidations_1d"].conversions
    assert {c.column for c in conv} == {"long_usd", "short_usd"}
    senti = lake.read("sentiment", d)
    assert senti["date"].min() == date(2018, 2, 1) and senti["date"].max() == date(2026, 6, 25)
    assert senti.height == 2641 + 730 - 308  # two alternative.me files, equal on their 308 common days
    assert lake.read("etf_flows", d)["date"].min() == date(2024, 1, 11)
    assert lake.read("positioning", d)["ts"].min() == utc(2020, 5, 17)


def test_unknown_pack_named():
    with pytest.raises(importer.ImportMappingError, match="unknown pack 'huge'; packs: standard, long"):
        importer.import_pack("huge", shared_path("data/real"))
