import datetime as dt

import polars as pl
import pytest

from research import schema
from research.errors import SchemaError


def bars(n=3, **over):
    ts = pl.datetime_range(dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 1, n - 1), "1h", time_zone="UTC", eager=True)
    base = dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                open=100.0, high=101.0, low=99.0, close=100.5, volume=10.0, source="test")
    base.update(over)
    return pl.DataFrame(base)


def test_good_frame_is_cast_to_canonical_types_and_order():
    out = schema.validate("bars", bars().select(pl.all().reverse()))
    assert out.columns == schema.BARS.names
    assert out.schema["ts"] == schema.UTC_TS
    assert out["trades"].dtype == pl.Int64 and out["trades"].null_count() == 3  # nullable column added


def test_naive_datetimes_are_taken_as_utc():
    df = bars().with_columns(pl.col("ts").dt.replace_time_zone(None))
    assert schema.validate("bars", df)["ts"].dtype.time_zone == "UTC"


@pytest.mark.parametrize(
    "frame, column, row",
    [
        (bars().with_columns(high=pl.Series([101.0, 98.0, 101.0])), "high", 1),
        (bars().with_columns(market=pl.Series(["perp", "perp", "future"])), "market", 2),
        (bars().with_columns(close=pl.Series([1.0, None, 1.0])), "close", 1),
        (bars().with_columns(close=pl.Series([1.0, float("nan"), 1.0])), "close", 1),
        (bars().with_columns(symbol=pl.Series(["BTCUSDT", "../etc", "BTCUSDT"])), "symbol", 1),
        (bars().with_columns(volume=pl.Series([1.0, 2.0, -3.0])), "volume", 2),
    ],
)
def test_bad_frame_names_table_column_and_row(frame, column, row):
    with pytest.raises(SchemaError) as e:
        schema.validate("bars", frame, origin="x.csv")
    msg = str(e.value)
    assert "'bars'" in msg and f"'{column}'" in msg and f"row {row}" in msg and "x.csv" in msg


def test_unparseable_value_is_named():
    df = pl.DataFrame({"ts": [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)], "venue": ["binance"],
                       "symbol": ["BTCUSDT"], "rate": ["1,2"], "interval_hours": [8], "source": ["t"]})
    with pytest.raises(SchemaError, match=r"column 'rate'.*'1,2'.*row 0"):
        schema.validate("funding", df)


def test_funding_rate_in_percent_is_rejected_with_a_hint():
    df = pl.DataFrame({"ts": [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)], "venue": ["binance"],
                       "symbol": ["BTCUSDT"], "rate": [0.1], "interval_hours": [8], "source": ["t"]})
    with pytest.raises(SchemaError, match="percent"):
        schema.validate("funding", df)


def test_missing_and_extra_columns():
    with pytest.raises(SchemaError, match="missing required column"):
        schema.validate("bars", bars().drop("close"))
    with pytest.raises(SchemaError, match="unexpected column"):
        schema.validate("bars", bars().with_columns(extra=1))
    with pytest.raises(SchemaError, match="unknown table"):
        schema.validate("nope", bars())


def test_every_table_documents_its_columns():
    md = schema.describe()
    for t in schema.TABLES.values():
        assert f"`{t.name}`" in md
        for c in t.columns:
            assert c.doc, f"{t.name}.{c.name} has no description"
        assert set(t.key) <= set(t.names) and set(t.partition) <= set(t.names)
        assert schema.validate(t, t.empty()).is_empty()
