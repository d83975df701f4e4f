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
