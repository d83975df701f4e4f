import datetime as dt
import os

import polars as pl
import pytest

from research import lake
from research.errors import LakeError, SchemaError


def bars(start=dt.datetime(2024, 12, 31, 20), hours=8, close=100.0, source="test"):
    ts = pl.datetime_range(start, start + dt.timedelta(hours=hours - 1), "1h", time_zone="UTC", eager=True)
    return pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                             open=100.0, high=200.0, low=50.0, close=close, volume=1.0, source=source))


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_data_dir_is_created_on_first_write_only(tmp_path):
    d = tmp_path / "d"
    assert lake.read("bars", d).is_empty() and not d.exists()
    lake.write("bars", bars(), d)
    assert (d / "lake" / "bars").is_dir()


def test_env_var_sets_the_data_dir(data_dir):
    lake.write("bars", bars())
    assert lake.table_files("bars") and str(lake.table_files("bars")[0]).startswith(str(data_dir))


def test_hive_layout_and_month_partitions(tmp_path):
    r = lake.write("bars", bars(start=dt.datetime(2024, 12, 31, 20)), tmp_path)
    assert r.partitions == 2  # 2024 and 2025
    f = lake.table_files("bars", tmp_path)[0].relative_to(tmp_path / "lake" / "bars")
    assert f.parts[:5] == ("source=test", "venue=binance", "market=perp", "symbol=BTCUSDT", "interval=1h")
    assert f.parts[5] == "year=2024" and f.parts[6] == "part.parquet"


def test_ingesting_twice_leaves_the_same_rows_and_new_values_win(tmp_path):
    lake.write("bars", bars(), tmp_path)
    before = lake.read("bars", tmp_path)
    r = lake.write("bars", bars(), tmp_path)
    assert r.rows_added == 0
    assert lake.read("bars", tmp_path).equals(before)
    lake.write("bars", bars(close=123.0, hours=2), tmp_path)
    after = lake.read("bars", tmp_path)
    assert after.height == before.height and after["close"].to_list()[:2] == [123.0, 123.0]


def test_duplicates_inside_one_frame_collapse(tmp_path):
    r = lake.write("bars", pl.concat([bars(), bars()]), tmp_path)
    assert r.rows_added == 8


def test_bad_frame_writes_nothing(tmp_path):
    lake.write("bars", bars(), tmp_path)
    before = snapshot(tmp_path)
    bad = bars(hours=40).with_columns(low=pl.when(pl.col("ts").dt.hour() == 5).then(300.0).otherwise(50.0))
    with pytest.raises(SchemaError):
        lake.write("bars", bad, tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fail_at", ["write", "swap"])
def test_a_write_that_fails_half_way_leaves_the_lake_as_it_was(tmp_path, monkeypatch, fail_at):
    lake.write("bars", bars(), tmp_path)
    before = snapshot(tmp_path)
    calls = {"n": 0}
    if fail_at == "write":
        real = pl.DataFrame.write_parquet

        def flaky(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full")
            return real(self, *a, **k)

        monkeypatch.setattr(pl.DataFrame, "write_parquet", flaky)
    else:
        real = os.replace

        def flaky(src, dst):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("device went away")
            return real(src, dst)

        monkeypatch.setattr(lake.os, "replace", flaky)
    # touches both existing partitions (2024, 2025) plus a new one (2026)
    new = pl.concat([bars(close=7.0), bars(start=dt.datetime(2026, 3, 1), close=7.0)])
    with pytest.raises(LakeError, match="unchanged"):
        lake.write("bars", new, tmp_path)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert lake.read("bars", tmp_path)["close"].unique().to_list() == [100.0]


def test_delete_by_partition(tmp_path):
    lake.write("bars", bars(source="synthetic"), tmp_path)
    lake.write("bars", bars(source="real"), tmp_path)
    assert lake.delete("bars", tmp_path, source="synthetic") == 2
    assert lake.read("bars", tmp_path)["source"].unique().to_list() == ["real"]
    with pytest.raises(LakeError, match="partition"):
        lake.delete("bars", tmp_path, close="1")


def test_is_empty(tmp_path):
    assert lake.is_empty(tmp_path)
    lake.write("bars", bars(), tmp_path)
    assert not lake.is_empty(tmp_path)
