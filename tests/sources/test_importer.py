"""`research import`: mappings, presets and the real pack in ../shared/data/real."""
from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from research import lake
from research.cli import app
from research.errors import ImportMappingError, SchemaError
from research.sources import importer
from research.sources.importer import Mapping
from tests.conftest import shared_path

UTC = timezone.utc


def utc(*a):
    return datetime(*a, tzinfo=UTC)


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory):
    real = shared_path("data/real")
    d = tmp_path_factory.mktemp("reallake")
    results = importer.import_real_pack(real, d)
    return d, results


def span(df: pl.DataFrame, col: str = "ts"):
    return df[col].min(), df[col].max()


def test_real_pack_covers_oct_2025_to_apr_2026(real_lake):
    d, results = real_lake
    assert set(results) == set(importer.REAL_PACK)
    perp = lake.read("bars", d, market="perp")
    spot = lake.read("bars", d, market="spot")
    assert span(perp) == (utc(2025, 10, 1), utc(2026, 4, 30, 23)) and perp.height == 212 * 24
    # the spot export ends at its capture (2026-04-04 00:00 was an open bar and is dropped)
    assert span(spot) == (utc(2025, 10, 1), utc(2026, 4, 3, 23)) and spot.height == (212 - 27) * 24
    fb = lake.read("funding", d, source="binance_vision")
    assert span(fb)[0] == utc(2025, 10, 1) and span(fb)[1].date() == date(2026, 4, 30) and fb.height == 212 * 3
    # CoinGlass 4h exports span 2025-10-06 12:00 .. 2026-04-04 08:00 (bar starts)
    liq = lake.read("liquidations", d)
    assert span(liq) == (utc(2025, 10, 6, 12), utc(2026, 4, 4, 8)) and liq.height == 1080
    oi = lake.read("open_interest", d)
    assert span(oi) == (utc(2025, 10, 6, 16), utc(2026, 4, 4, 12))  # bar ends: the close is known then
    fc = lake.read("funding", d, source="coinglass")
    assert span(fc) == (utc(2025, 10, 6, 16), utc(2026, 4, 4, 12))
    senti = lake.read("sentiment", d)
    assert span(senti, "date") == (date(2025, 10, 1), date(2026, 4, 30)) and senti.height == 212
    etf = lake.read("etf_flows", d)
    assert span(etf, "date") == (date(2025, 10, 1), date(2026, 1, 2))  # the Farside export ends there
    # together the lake covers the whole window
    starts = [span(x)[0] for x in (perp, fb, liq, oi)]
    assert min(starts) == utc(2025, 10, 1)


def test_real_pack_published_reference_values(real_lake):
    """Numbers quoted in ../shared/data/real/PROVENANCE.md for the Oct 10 2025 crash."""
    d, _ = real_lake
    liq = lake.read("liquidations", d).filter(pl.col("ts") == utc(2025, 10, 10, 20))
    assert liq["long_usd"].item() == pytest.approx(235_601_013, abs=1) and liq["short_usd"].item() == pytest.approx(107_461_506, abs=1)
    assert liq["venue"].item() == "binance" and liq["symbol"].item() == "BTC"
    oi = lake.read("open_interest", d).filter(pl.col("ts") == utc(2025, 10, 11))  # close of the 20:00 bar
    assert oi["oi_usd"].item() == pytest.approx(70.51e9, rel=1e-3) and oi["venue"].item() == "all"
    bar = lake.read("bars", d, market="perp").filter(pl.col("ts") == utc(2025, 10, 10, 21))
    assert bar["low"].item() == 101516.50
    fg = lake.read("sentiment", d).filter(pl.col("date").is_in([date(2025, 10, 10), date(2025, 10, 11)])).sort("date")
    assert fg["value"].to_list() == [64.0, 27.0]
    fc = lake.read("funding", d, source="coinglass")
    assert fc["rate"].abs().max() < 0.005  # percent converted to decimal


def test_etf_preset_reads_footer_and_quoted_numbers():
    f = shared_path("data/real") / importer.PRESETS["farside_etf_flows"]["file"]
    df = importer.parse_file(f, importer.preset("farside_etf_flows"))
    assert df.height == 512 and set(df["product"]) == {"TOTAL"}
    # the file's own footer rows: Total "56,594.20", Maximum "1,373.80", Minimum "-1,113.70" (US$ millions)
    assert df["flow_usd"].sum() == pytest.approx(56_594.20e6, rel=1e-9)
    assert df["flow_usd"].max() == pytest.approx(1_373.80e6) and df["flow_usd"].min() == pytest.approx(-1_113.70e6)


def test_fear_greed_preset_agrees_with_second_source():
    real = shared_path("data/real")
    a = importer.parse_file(real / importer.PRESETS["fear_greed_csv"]["file"], importer.preset("fear_greed_csv"))
    m = Mapping.from_dict({"table": "sentiment", "time": {"column": "date"},
                           "values": {"value": "fear_greed_index:index", "label": "fear_greed_label:text"},
                           "constants": {"index": "fear_greed", "source": "movahed"}})
    b = importer.parse_file(real / "movahed-abdolahi+Bitcoin-project/Bitcoin_sentiments/outputs/fear_greed_index.csv", m)
    j = a.join(b, on="date", suffix="_b")
    assert j.height == 308  # PROVENANCE: equal on all 308 common days
    assert (j["value"] == j["value_b"]).all() and (j["label"] == j["label_b"]).all()


# ----------------------------------------------------------------------------- mapping rules
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


LIQ = {"table": "liquidations", "time": {"column": "time", "timezone": "UTC", "label": "start"},
       "values": {"long_usd": "long:usd_millions", "short_usd": "short:usd_millions"},
       "constants": {"venue": "bybit", "symbol": "BTC", "interval": "1h", "source": "export"}}


def test_units_labels_and_timezones(tmp_path, data_dir):
    f = write(tmp_path, "x.csv", 'time,long,short\n2025-10-10 21:00,"1,200.5",(0.5)\n2025-10-10 22:00,3,-\n')
    with pytest.raises(ImportMappingError, match=r"x.csv, column 'short', line 3: no value"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "x.csv", 'time,long,short\n2025-10-10 21:00,"1,200.5",0.5\n2025-10-10 22:00,3,0\n')
    # end-labelled buckets in UTC+3 -> bucket starts in UTC
    m = Mapping.from_dict({**LIQ, "time": {"column": "time", "timezone": "+03:00", "label": "end"}})
    df = importer.parse_file(f, m)
    assert df["ts"].to_list() == [utc(2025, 10, 10, 17), utc(2025, 10, 10, 18)]
    assert df["long_usd"].to_list() == [1200.5e6, 3e6]
    # IANA zones; an hour that does not exist (DST) is rejected
    m = Mapping.from_dict({**LIQ, "time": {"column": "time", "timezone": "Europe/London", "label": "start"}})
    assert importer.parse_file(f, m)["ts"][0] == utc(2025, 10, 10, 20)
    g = write(tmp_path, "dst.csv", "time,long,short\n2025-03-30 01:30,1,1\n")
    with pytest.raises(ImportMappingError, match="Europe/London"):
        importer.parse_file(g, m)


def test_ambiguous_inputs_are_rejected_with_file_column_line(tmp_path):
    f = write(tmp_path, "x.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    with pytest.raises(ImportMappingError, match="no time zone"):
        importer.parse_file(f, Mapping.from_dict({**LIQ, "time": {"column": "time"}}))
    f = write(tmp_path, "y.csv", "time,long,short\n2025-10-10 21:00,1,2\nnot a time,1,2\n")
    with pytest.raises(ImportMappingError, match=r"y.csv, column 'time', line 3: 'not a time'"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "z.csv", "time,long,short\n2025-10-10 21:00,1,2\n2025-10-10 21:00,5,2\n")
    with pytest.raises(ImportMappingError, match="lines 2 and 3 give different values"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "r.csv", "t,close\n2025-10-10 00:00,0.01\n")
    with pytest.raises(ImportMappingError, match="needs a unit"):
        importer.parse_file(f, Mapping.from_dict({"table": "funding", "time": {"column": "t", "timezone": "UTC", "label": "instant"},
                                                  "values": {"rate": "close"},
                                                  "constants": {"venue": "x", "symbol": "BTC", "interval_hours": 8, "source": "s"}}))
    with pytest.raises(ImportMappingError, match="cannot take unit"):
        importer.parse_file(f, Mapping.from_dict({"table": "open_interest", "time": {"column": "t", "timezone": "UTC", "label": "end"},
                                                  "values": {"oi_usd": "close:percent"},
                                                  "constants": {"venue": "x", "symbol": "BTC", "interval": "4h", "source": "s"}}))
    f = write(tmp_path, "x.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    with pytest.raises(ImportMappingError, match=r"column\(s\) \['nope'\] not in the file"):
        importer.parse_file(f, Mapping.from_dict({**LIQ, "time": {"column": "nope", "timezone": "UTC"}}))


def test_percent_funding_outside_decimal_range_is_caught(tmp_path):
    f = write(tmp_path, "f.csv", "t,close\n2025-10-10 00:00,0.01\n2025-10-10 08:00,7.5\n")
    m = {"table": "funding", "time": {"column": "t", "timezone": "UTC", "label": "instant"},
         "values": {"rate": "close:decimal"}, "constants": {"venue": "x", "symbol": "BTC", "interval_hours": 8, "source": "s"}}
    with pytest.raises(SchemaError, match="is it in percent"):
        importer.parse_file(f, Mapping.from_dict(m))


def test_nothing_half_imported(tmp_path, data_dir):
    ok = write(tmp_path, "ok.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    importer.import_file("liquidations", ok, LIQ, data_dir)
    before = lake.read("liquidations", data_dir)
    bad = write(tmp_path, "bad.csv", "time,long,short\n2025-10-11 21:00,1,2\n" * 1 + "2025-10-12 21:00,x,2\n")
    with pytest.raises(ImportMappingError, match="line 3"):
        importer.import_file("liquidations", bad, LIQ, data_dir)
    assert lake.read("liquidations", data_dir).equals(before)


def test_yaml_mapping_and_parquet_input(tmp_path, data_dir):
    pq = tmp_path / "oi.parquet"
    pl.DataFrame({"ts": [1760054400000, 1760068800000], "c": [9.0e10, 8.5e10]}).write_parquet(pq)
    mf = tmp_path / "m.yaml"
    mf.write_text(yaml.safe_dump({"table": "open_interest", "time": {"column": "ts", "format": "epoch_ms", "label": "start"},
                                  "values": {"oi_usd": {"column": "c", "unit": "usd"}},
                                  "constants": {"venue": "all", "symbol": "BTC", "interval": "4h", "source": "coinglass"}}))
    res = importer.import_file("open_interest", pq, mf, data_dir)
    assert res.rows_added == 2
    oi = lake.read("open_interest", data_dir).sort("ts")
    assert oi["ts"].to_list() == [utc(2025, 10, 10, 4), utc(2025, 10, 10, 8)]  # start label + 4h = observation
    with pytest.raises(ImportMappingError, match="mapping is for 'open_interest'"):
        importer.import_file("bars", pq, mf, data_dir)


# ----------------------------------------------------------------------------- CLI
def test_cli_import_with_preset_and_flags(tmp_path, data_dir):
    real = shared_path("data/real")
    runner = CliRunner()
    r = runner.invoke(app, ["import", "liquidations", str(real / importer.PRESETS["coinglass_liquidations_4h"]["file"]),
                            "--preset", "coinglass_liquidations_4h", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "1080 rows valid" in r.output and lake.read("liquidations", data_dir).height == 1080
    f = write(tmp_path, "fund.csv", "when,fr\n2025-10-10T00:00:00Z,0.01\n2025-10-10T08:00:00Z,-0.005\n")
    r = runner.invoke(app, ["import", "funding", str(f), "--time-col", "when", "--label", "instant",
                            "-v", "rate=fr:percent", "-c", "venue=okx", "-c", "symbol=BTCUSDT", "-c", "interval_hours=8",
                            "-c", "source=export", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    fo = lake.read("funding", data_dir, venue="okx").sort("ts")
    assert fo["rate"].to_list() == pytest.approx([0.0001, -0.00005])
    r = runner.invoke(app, ["import", "funding", str(f), "--time-col", "when", "--label", "instant", "-v", "rate=fr",
                            "-c", "venue=okx", "-c", "symbol=BTCUSDT", "-c", "interval_hours=8", "-c", "source=export",
                            "--data-dir", str(data_dir)])
    assert r.exit_code == 1 and "needs a unit" in r.output


@pytest.mark.network
def test_cli_fetch_binance_summary_and_exit_codes(tmp_path, serve, data_dir):
    srv = serve(shared_path("data/binance-vision"))
    runner = CliRunner()
    args = ["fetch", "binance", "--start", "2026-06", "--end", "2026-08", "-d", "fundingRate", "--base-url", srv.url,
            "--quiet", "--data-dir", str(data_dir)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output  # 2026-08 is not published: missing, reported
    assert "MISSING" in r.output and "BTCUSDT-fundingRate-2026-08.zip" in r.output
    assert lake.read("funding", data_dir).height > 0
    r = runner.invoke(app, ["fetch", "binance", "--start", "2025-01-01", "--end", "2025-01-31", "--dry-run",
                            "--base-url", srv.url, "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and r.output.count(srv.url) == 2  # fundingRate + klines monthly
    r = runner.invoke(app, ["fetch", "binance", "--start", "2025-10-01", "-d", "liquidationSnapshot",
                            "--base-url", srv.url, "--data-dir", str(data_dir)])
    assert r.exit_code == 1 and "not published for USD-M futures after 2024-03-31" in r.output
