import datetime as dt

import polars as pl

from research import coverage, lake


def test_coverage_reports_span_rows_and_gaps(tmp_path):
    ts = pl.datetime_range(dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 2, 23), "1h", time_zone="UTC", eager=True)
    df = pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                           open=1.0, high=1.0, low=1.0, close=1.0, source="t"))
    df = df.filter(~pl.col("ts").dt.hour().is_in([5, 6, 7]) | (pl.col("ts").dt.day() == 2))  # 3-hour hole
    lake.write("bars", df, tmp_path)
    jitter = [dt.datetime(2025, 1, 1, h, 0, 0, 5000, tzinfo=dt.timezone.utc) for h in (0, 8, 16)]
    lake.write("funding", pl.DataFrame(dict(ts=jitter, venue="binance", symbol="BTCUSDT", rate=1e-4,
                                            interval_hours=8, source="t")), tmp_path)
    cov = coverage.coverage(tmp_path)
    bars = cov.filter(pl.col("table") == "bars").row(0, named=True)
    assert bars["rows"] == 45 and bars["expected"] == 48 and bars["missing"] == 3 and bars["gaps"] == 1
    assert "2025-01-01 05:00:00+00:00 .. 2025-01-01 07:00:00+00:00 (3)" in bars["largest_gaps"]
    funding = cov.filter(pl.col("table") == "funding").row(0, named=True)
    assert funding["interval"] == "8h" and funding["missing"] == 0  # ms jitter is not a gap


def test_empty_lake(tmp_path):
    assert coverage.coverage(tmp_path).is_empty()


def test_interval_is_detected_from_timestamps(tmp_path):
    # a daily funding series (CoinGlass style) keeps interval_hours = 8: it is still a 1d series
    days = [dt.datetime(2025, 1, d, tzinfo=dt.timezone.utc) for d in range(1, 11)]
    lake.write("funding", pl.DataFrame(dict(ts=days, venue="all", symbol="BTC", rate=1e-4, interval_hours=8,
                                            source="cg")), tmp_path)
    # an OI series labelled 1h whose rows are 4 h apart
    four = [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=4 * i) for i in range(6)]
    lake.write("open_interest", pl.DataFrame(dict(ts=four, venue="all", symbol="BTC", interval="1h", oi_usd=1.0,
                                                  source="cg")), tmp_path)
    cov = {r["table"]: r for r in coverage.coverage(tmp_path).to_dicts()}
    assert cov["funding"]["interval"] == "1d" and cov["funding"]["missing"] == 0 and cov["funding"]["expected"] == 10
    assert cov["open_interest"]["interval"] == "4h" and cov["open_interest"]["missing"] == 0
    assert coverage.interval_name(5400) == "5400s"
