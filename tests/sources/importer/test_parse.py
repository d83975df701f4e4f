"""Parsing rules: units, labels, zones, and every hostile cell refused with file, column and line."""
from __future__ import annotations

import polars as pl
import pytest

from research import lake
from research.errors import ImportMappingError, SchemaError
from research.sources import importer
from research.sources.importer import Mapping

from .util import FUND, LIQ, utc, write


def test_units_labels_and_timezones(tmp_path):
    f = write(tmp_path, "x.csv", 'time,long,short\n2025-10-10 21:00,"1,200.5",(0.5)\n2025-10-10 22:00,3,0\n')
    with pytest.raises(ImportMappingError, match=r"x.csv, column 'short', line 2: '\(0.5\)' is negative"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "x.csv", 'time,long,short\n2025-10-10 21:00,"1,200.5",0.5\n2025-10-10 22:00,3,-\n')
    with pytest.raises(ImportMappingError, match=r"x.csv, column 'short', line 3: no value"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "x.csv", 'time,long,short\n2025-10-10 21:00,"1,200.5",0.5\n2025-10-10 22:00,3,0\n')
    # end-labelled buckets in UTC+3 -> bucket starts in UTC
    m = Mapping.from_dict({**LIQ, "time": {"column": "time", "timezone": "+03:00", "label": "end"}})
    df = importer.parse_file(f, m)
    assert df["ts"].to_list() == [utc(2025, 10, 10, 17), utc(2025, 10, 10, 18)]
    assert df["long_usd"].to_list() == [1200.5e6, 3e6]
    m = Mapping.from_dict({**LIQ, "time": {"column": "time", "timezone": "Europe/London", "label": "start"}})
    assert importer.parse_file(f, m)["ts"][0] == utc(2025, 10, 10, 20)
    g = write(tmp_path, "dst.csv", "time,long,short\n2025-03-30 01:30,1,1\n")  # does not exist in London
    with pytest.raises(ImportMappingError, match="Europe/London"):
        importer.parse_file(g, m)


@pytest.mark.parametrize("cell, match", [
    ("2025-01-01 00:00:00 PST", r"line 3: '2025-01-01 00:00:00 PST' cannot be read as a time \(the zone abbreviation 'PST' is ambiguous"),
    ("2025-02-30", r"line 3: '2025-02-30' cannot be read as a time \(not a valid calendar date"),
    ("2025-02-30 10:00", r"line 3: '2025-02-30 10:00' cannot be read as a time \(not a valid calendar date"),
    ("not a time", r"line 3: 'not a time' cannot be read as a time"),
    ("", r"line 3: empty time cell"),
])
def test_bad_time_cells_name_file_column_line(tmp_path, cell, match):
    f = write(tmp_path, "t.csv", f"time,long,short\n2025-01-01 01:00,1,2\n{cell},1,2\n")
    with pytest.raises(ImportMappingError, match=r"t.csv, column 'time', " + match) as ei:
        importer.parse_file(f, Mapping.from_dict(LIQ))
    assert "\n" not in str(ei.value)


def test_day_month_order_must_be_stated(tmp_path):
    f = write(tmp_path, "d.csv", "time,long,short\n01/02/2025,1,2\n13/02/2025,1,2\n")
    daily = {**LIQ, "constants": {**LIQ["constants"], "interval": "1d"}}
    with pytest.raises(ImportMappingError, match=r"d.csv, column 'time', line 2: '01/02/2025': day/month order is ambiguous"):
        importer.parse_file(f, Mapping.from_dict(daily))
    df = importer.parse_file(f, Mapping.from_dict({**daily, "time": {**daily["time"], "dayfirst": True}}))
    assert df["ts"].to_list() == [utc(2025, 2, 1), utc(2025, 2, 13)]
    with pytest.raises(ImportMappingError, match=r"line 3: '13/02/2025' cannot be read"):  # month 13
        importer.parse_file(f, Mapping.from_dict({**daily, "time": {**daily["time"], "dayfirst": False}}))
    df = importer.parse_file(f, Mapping.from_dict({**daily, "time": {**daily["time"], "format": "%d/%m/%Y"}}))
    assert df["ts"][0] == utc(2025, 2, 1)
    s = write(tmp_path, "s.csv", "date,v\n01/02/2025,5\n")  # date tables too
    sent = {"table": "sentiment", "time": {"column": "date"}, "values": {"value": "v:index"},
            "constants": {"index": "fg", "source": "x"}}
    with pytest.raises(ImportMappingError, match="day/month order is ambiguous"):
        importer.parse_file(s, Mapping.from_dict(sent))
    assert str(importer.parse_file(s, Mapping.from_dict({**sent, "time": {"column": "date", "dayfirst": False}}))["date"][0]) == "2025-01-02"


def test_dates_outside_bitcoin_era_refused_and_overridable(tmp_path):
    for first, cell, shown in (("2025-01-01", "1900-01-01", True), ("2025-01-01", "2099-06-01", True),
                               ("1735689600000000", "1262304000000", False)):  # ms read as us: 1970
        f = write(tmp_path, "old.csv", f"time,long,short\n{first},1,2\n{cell},1,2\n")
        mp = LIQ if shown else {**LIQ, "time": {"column": "time", "format": "epoch_us", "label": "start"}}
        with pytest.raises(ImportMappingError, match=r"old.csv, column 'time', line 3: (1900|2099|1970)-.* is outside 2009-01-03\.\."):
            importer.parse_file(f, Mapping.from_dict(mp))
    f = write(tmp_path, "old.csv", "time,long,short\n2008-06-01,1,2\n")
    df = importer.parse_file(f, Mapping.from_dict(LIQ), bounds={"min_date": "2008-01-01"})
    assert df["ts"][0] == utc(2008, 6, 1)


def test_funding_bounds_scale_per_interval_and_hint_percent(tmp_path):
    f = write(tmp_path, "f.csv", "t,close\n2025-10-10 00:00,0.0001\n2025-10-10 08:00,0.01\n")
    with pytest.raises(ImportMappingError, match=r"f.csv, column 'close', line 3: funding rate 0.01 \(1 % per 8 h\) is "
                                                 r"beyond the plausible \+/-0.5 % per 8 h; labelled decimal this is 100x .*"
                                                 r"is the file in percent\?"):
        importer.parse_file(f, Mapping.from_dict(FUND))
    # the same number in percent is an ordinary rate
    assert importer.parse_file(f, Mapping.from_dict({**FUND, "values": {"rate": "close:percent"}}))["rate"][1] == pytest.approx(1e-4)
    # named override, from the call or the mapping
    assert importer.parse_file(f, Mapping.from_dict(FUND), bounds={"funding_max_8h": 0.02}).height == 2
    assert importer.parse_file(f, Mapping.from_dict({**FUND, "bounds": {"funding_max_8h": 0.02}})).height == 2
    with pytest.raises(ImportMappingError, match="unknown bound 'funding_max'"):
        importer.parse_file(f, Mapping.from_dict(FUND), bounds={"funding_max": 0.02})
    # scaled per interval: 0.3 % per 4 h is beyond 0.25 %, but within 0.5 % at 8 h
    g = write(tmp_path, "g.csv", "t,close\n2025-10-10 00:00,0.003\n")
    four = {**FUND, "constants": {**FUND["constants"], "interval_hours": 4}}
    with pytest.raises(ImportMappingError, match=r"beyond the plausible \+/-0.25 % per 4 h"):
        importer.parse_file(g, Mapping.from_dict(four))
    assert importer.parse_file(g, Mapping.from_dict(FUND)).height == 1


def test_missing_columns_non_numbers_and_negatives(tmp_path):
    f = write(tmp_path, "x.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    with pytest.raises(ImportMappingError, match=r"x.csv: column\(s\) \['nope'\] not in the file"):
        importer.parse_file(f, Mapping.from_dict({**LIQ, "time": {"column": "nope", "timezone": "UTC"}}))
    f = write(tmp_path, "n.csv", "time,long,short\n2025-10-10 21:00,1,2\n2025-10-10 22:00,1,abc\n2025-10-10 23:00,1,inf\n")
    with pytest.raises(ImportMappingError, match=r"n.csv, column 'short', line 3: 'abc' is not a number"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "n.csv", "time,long,short\n2025-10-10 21:00,1,2\n2025-10-10 23:00,1,inf\n")
    with pytest.raises(ImportMappingError, match=r"line 3: 'inf' is not a number"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    bars = {"table": "bars", "time": {"column": "t", "timezone": "UTC"},
            "values": {"open": "c", "high": "c", "low": "c", "close": "c", "volume": "v:base"},
            "constants": {"venue": "x", "market": "spot", "symbol": "BTCUSDT", "interval": "1h", "source": "s"}}
    f = write(tmp_path, "b.csv", "t,c,v\n2025-10-10 21:00,100,1\n2025-10-10 22:00,100,-0.5\n")
    with pytest.raises(ImportMappingError, match=r"b.csv, column 'v', line 3: '-0.5' is negative but volume cannot be"):
        importer.parse_file(f, Mapping.from_dict(bars))
    oi = {"table": "open_interest", "time": {"column": "t", "timezone": "UTC", "label": "end"}, "values": {"oi_usd": "c:usd"},
          "constants": {"venue": "x", "symbol": "BTC", "interval": "1d", "source": "s"}}
    f = write(tmp_path, "o.csv", "t,c\n2025-10-10,-5\n")
    with pytest.raises(ImportMappingError, match=r"o.csv, column 'c', line 2: '-5' is negative but oi_usd"):
        importer.parse_file(f, Mapping.from_dict(oi))


def test_ambiguous_mappings_rejected(tmp_path):
    f = write(tmp_path, "x.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    with pytest.raises(ImportMappingError, match="no time zone"):
        importer.parse_file(f, Mapping.from_dict({**LIQ, "time": {"column": "time"}}))
    f = write(tmp_path, "z.csv", "time,long,short\n2025-10-10 21:00,1,2\n2025-10-10 21:00,5,2\n")
    with pytest.raises(ImportMappingError, match="lines 2 and 3 give different values"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    f = write(tmp_path, "r.csv", "t,close\n2025-10-10 00:00,0.01\n")
    with pytest.raises(ImportMappingError, match="needs a unit"):
        importer.parse_file(f, Mapping.from_dict({**FUND, "values": {"rate": "close"}}))
    with pytest.raises(ImportMappingError, match="cannot take unit"):
        importer.parse_file(f, Mapping.from_dict({"table": "open_interest", "time": {"column": "t", "timezone": "UTC", "label": "end"},
                                                  "values": {"oi_usd": "close:percent"},
                                                  "constants": {"venue": "x", "symbol": "BTC", "interval": "4h", "source": "s"}}))
    g = write(tmp_path, "f.csv", "t,close\n2025-10-10 00:00,0.01\n2025-10-10 08:00,7.5\n")
    with pytest.raises(ImportMappingError, match=r"line 3: funding rate 0.075"):  # 7.5 % is implausible too
        importer.parse_file(g, Mapping.from_dict({**FUND, "values": {"rate": "close:percent"}}))
    with pytest.raises(SchemaError, match="is it in percent"):  # the table rule stays behind the bounds
        importer.parse_file(g, Mapping.from_dict({**FUND, "values": {"rate": "close:percent"}}), bounds={"funding_max_8h": 1.0})


def test_rejected_import_stores_nothing(tmp_path, data_dir):
    ok = write(tmp_path, "ok.csv", "time,long,short\n2025-10-10 21:00,1,2\n")
    importer.import_file("liquidations", ok, LIQ, data_dir)
    before = lake.read("liquidations", data_dir)
    for body in ("2025-10-11 21:00,1,2\n2025-10-12 21:00,x,2\n", "2025-10-11 21:00,1,2\n2025-02-30 21:00,1,2\n",
                 "2025-10-11 21:00,1,2\n2025-10-12 21:00,1,-2\n"):
        bad = write(tmp_path, "bad.csv", "time,long,short\n" + body)
        with pytest.raises(ImportMappingError, match="line 3"):
            importer.import_file("liquidations", bad, LIQ, data_dir)
        assert lake.read("liquidations", data_dir).equals(before)


def test_yaml_mapping_and_parquet_input(tmp_path, data_dir):
    pq = tmp_path / "oi.parquet"
    pl.DataFrame({"ts": [1760054400000, 1760068800000], "c": [9.0e10, 8.5e10]}).write_parquet(pq)
    mf = write(tmp_path, "m.yaml", "table: open_interest\ntime: {column: ts, format: epoch_ms, label: start}\n"
                                   "values: {oi_usd: {column: c, unit: usd}}\n"
                                   "constants: {venue: all, symbol: BTC, interval: 4h, source: coinglass}\n")
    res = importer.import_file("open_interest", pq, mf, data_dir)
    assert res.rows_added == 2
    oi = lake.read("open_interest", data_dir).sort("ts")
    assert oi["ts"].to_list() == [utc(2025, 10, 10, 4), utc(2025, 10, 10, 8)]  # start label + 4h = observation
    with pytest.raises(ImportMappingError, match="mapping is for 'open_interest'"):
        importer.import_file("bars", pq, mf, data_dir)
