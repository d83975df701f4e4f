"""Each preset on its real file in ../shared/data/real: rows checked by hand, with explicit tolerances."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from research.sources import importer
from research.sources.importer import PRESETS
from tests.conftest import shared_path

from .util import utc


def parse(name: str, **kw) -> pl.DataFrame:
    return importer.parse_file(shared_path("data/real") / PRESETS[name]["file"], importer.preset(name), **kw)


def row(df: pl.DataFrame, ts) -> dict:
    col = "date" if "date" in df.columns else "ts"
    r = df.filter(pl.col(col) == ts)
    assert r.height == 1, f"{ts}: {r.height} rows"
    return r.row(0, named=True)


def test_every_preset_file_exists_and_parses():
    for name in PRESETS:
        assert (shared_path("data/real") / PRESETS[name]["file"]).is_file(), name
        importer.preset(name)  # the mapping itself is valid


def test_coinglass_daily_oi_and_percent_funding():
    oi = parse("coinglass_oi_1d")
    # file: 2020-02-27 close 3527345802.0 -> known at the day's end; open last day (2026-04-04) dropped
    assert oi.height == 2229 - 1 and row(oi, utc(2020, 2, 28))["oi_usd"] == pytest.approx(3_527_345_802.0, abs=0.5)
    assert oi["ts"].max() == utc(2026, 4, 4) and set(oi["venue"]) == {"all"} and set(oi["interval"]) == {"1d"}
    fu = parse("coinglass_funding_1d")
    # file: 2020-04-01 close -0.03637457 (percent) -> -0.0003637457 decimal at 2020-04-02 00:00
    assert row(fu, utc(2020, 4, 2))["rate"] == pytest.approx(-0.0003637457, rel=1e-12)
    assert fu["ts"].min() == utc(2020, 4, 1) and fu.height == 2196 - 1 and set(fu["source"]) == {"coinglass_1d"}
    assert fu["rate"].abs().max() < 0.002  # max |close| in the file is 0.164 %: clearly percent


def test_coinalyze_daily_oi_usd():
    oi = parse("coinalyze_oi_1d")
    # file: 2021-03-19 close_oi 1877387174.1099; last kept day 2025-04-28 close 7776752429.537
    assert row(oi, utc(2021, 3, 20))["oi_usd"] == pytest.approx(1_877_387_174.1099, rel=1e-12)
    assert row(oi, utc(2025, 4, 29))["oi_usd"] == pytest.approx(7_776_752_429.537, rel=1e-12)
    assert oi.height == 1503 - 1 and set(oi["symbol"]) == {"BTCUSDT"} and set(oi["venue"]) == {"binance"}


def test_coinalyze_liquidations_in_btc_priced_by_daily_bars():
    real = shared_path("data/real")
    bars = pl.concat([parse("binance_spot_1d"), parse("binance_perp_1d_btc_rest")], how="diagonal_relaxed")
    p = importer.parse_export(real / PRESETS["coinalyze_liquidations_1d"]["file"],
                              importer.preset("coinalyze_liquidations_1d"), bars=bars)
    liq = p.frame
    assert liq.height == 1841 - 1 and liq["ts"].max() == utc(2025, 4, 28)  # incomplete last day dropped
    # hand-computed: BTC amount (liquidation file) x that day's close (spot 1d file; perp 1d file from 2024-01-10)
    assert row(liq, utc(2020, 4, 15))["long_usd"] == pytest.approx(2124.2729999999983 * 6621.24, rel=1e-12)
    assert row(liq, utc(2020, 4, 15))["short_usd"] == pytest.approx(279.8729999999998 * 6621.24, rel=1e-12)
    r = row(liq, utc(2021, 5, 19))  # PROVENANCE: long 1883.4 BTC = ~US$75M
    assert r["long_usd"] == pytest.approx(1883.3999999999794 * 36690.09, rel=1e-12) and 60e6 < r["long_usd"] < 80e6
    assert row(liq, utc(2024, 3, 5))["long_usd"] == pytest.approx(484.06099999999856 * 63747.40, rel=1e-12)  # perp close
    c = {x.column: x for x in p.conversions}["long_usd"]
    assert dict(c.rows_by_market) == {"perp:binance_api": 475, "spot:binance_api": 1365}


def test_binance_rest_funding_equals_archive_and_supervik_is_utc_plus_3():
    rest = parse("binance_funding_8h_rest")
    assert rest.height == 7452 and rest["ts"].min() == utc(2019, 9, 10, 8)
    assert row(rest, utc(2019, 9, 10, 8))["rate"] == pytest.approx(0.0001, rel=1e-12)
    arch = parse("binance_funding_8h")
    j = rest.join(arch, on="ts", suffix="_a")
    assert j.height == 1633 and (j["rate"] == j["rate_a"]).all()  # PROVENANCE: 1633/1633 identical
    sv = parse("supervik_binance_funding_eth")
    # file: "2023-01-01 03:00:00.000" local (UTC+3) = 2023-01-01 00:00 UTC, the pakchu settlement instant
    pk = parse("binance_funding_8h_eth_2023_2024").filter(pl.col("ts").dt.year() == 2023)
    j = sv.join(pk, on="ts", suffix="_p")
    assert sv.height == 4383 and pk.height == 1095 and j.height == 1095 and (j["rate"] == j["rate_p"]).all()
    assert sv["ts"].min() == utc(2020, 1, 1)


def test_sol_funding_keeps_its_real_extreme_under_a_stated_bound():
    sol = parse("binance_funding_8h_sol_2023_2024")
    assert sol["rate"].min() == pytest.approx(-0.00927078, rel=1e-12)
    with pytest.raises(importer.ImportMappingError, match="beyond the plausible"):  # the default bound would refuse it
        importer.parse_file(shared_path("data/real") / PRESETS["binance_funding_8h_sol_2023_2024"]["file"],
                            importer.Mapping.from_dict({**{k: v for k, v in PRESETS["binance_funding_8h_sol_2023_2024"].items()
                                                           if k not in ("file", "bounds")}}))


def test_long_bars_spot_perp_8h_basis_and_archive_4h():
    s1d = parse("binance_spot_1d")
    assert s1d.height == 2191 and row(s1d, utc(2020, 4, 5))["close"] == 6772.78 and s1d["ts"].max() == utc(2026, 4, 4)
    s4h = parse("binance_spot_4h")
    assert s4h.height == 13146 and row(s4h, utc(2020, 4, 5, 4))["close"] == 6773.22
    p8, s8 = parse("binance_perp_8h"), parse("binance_spot_8h")
    assert p8["ts"].min() == utc(2019, 9, 8, 16) and s8["ts"].min() == utc(2019, 9, 8)
    j = p8.join(s8, on="ts", suffix="_s")
    basis_bp = ((j["close"] / j["close_s"] - 1) * 1e4).median()
    assert j.height == 7456 and basis_bp == pytest.approx(-3.7, abs=0.05)  # PROVENANCE: median -3.7 bp
    # PROVENANCE: the archive 4h rows equal its 1h rows aggregated, on all 3462 bars
    h1, h4 = parse("binance_perp_1h"), parse("binance_perp_4h")
    agg = (h1.sort("ts").group_by_dynamic("ts", every="4h")
           .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                pl.col("trades").sum()))
    j = h4.join(agg, on="ts", suffix="_1h")
    assert h4.height == j.height == 3462
    for c in ("open", "high", "low", "close", "trades"):
        assert (j[c] == j[f"{c}_1h"]).all(), c


def test_eth_sol_perp_rest_bars():
    eth = parse("binance_perp_1d_eth_rest")
    # file: 1704844800000 (2024-01-10) close 2585.82, quote_volume 18922026567.58447; open last bar dropped
    r = row(eth, utc(2024, 1, 10))
    assert r["close"] == 2585.82 and r["quote_volume"] == pytest.approx(18_922_026_567.58447, rel=1e-12)
    assert eth.height == 799 and set(eth["symbol"]) == {"ETHUSDT"} and set(eth["market"]) == {"perp"}
    for sym in ("btc", "eth", "sol"):
        for iv, n in (("1h", 4499), ("4h", 4499), ("1d", 799)):
            assert parse(f"binance_perp_{iv}_{sym}_rest").height == n, (sym, iv)


def test_fear_greed_history_from_2018_agrees_with_second_source():
    a, b = parse("fear_greed_history"), parse("fear_greed_csv")
    assert a["date"].min() == date(2018, 2, 1) and row(a, date(2018, 2, 1))["value"] == 30.0
    assert row(a, date(2018, 2, 1))["label"] == "Fear" and a.height == 2641
    j = a.join(b, on="date", suffix="_b")
    assert j.height == 308 and (j["value"] == j["value_b"]).all() and (j["label"] == j["label_b"]).all()


def test_etf_preset_reads_footer_and_quoted_numbers():
    df = parse("farside_etf_flows")
    assert df.height == 512 and set(df["product"]) == {"TOTAL"} and df["date"].min() == date(2024, 1, 11)
    # the file's own footer rows: Total "56,594.20", Maximum "1,373.80", Minimum "-1,113.70" (US$ millions)
    assert df["flow_usd"].sum() == pytest.approx(56_594.20e6, rel=1e-9)
    assert df["flow_usd"].max() == pytest.approx(1_373.80e6) and df["flow_usd"].min() == pytest.approx(-1_113.70e6)
