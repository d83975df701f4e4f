import datetime as dt
import os

import polars as pl
import pytest

from research import fileio, lake
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
    assert f.parts[5] == "year=2024" and f.parts[6].startswith("part-000001-") and f.parts[6].endswith(".parquet")


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


def test_of_duplicate_keys_the_last_given_wins_in_any_order_across_partitions(tmp_path):
    # unsorted input over two symbols and a year boundary; each key given twice, the later value wins
    a = bars(close=1.0)
    b = bars(close=2.0).with_columns(symbol=pl.lit("ETHUSDT"))
    frame = pl.concat([a.reverse(), b, a.with_columns(close=pl.lit(3.0)), b.with_columns(close=pl.lit(4.0)).reverse()])
    r = lake.write("bars", frame, tmp_path)
    assert (r.rows_in, r.rows_added, r.files_written) == (32, 16, 4)  # 2 symbols x {2024, 2025}
    got = lake.read("bars", tmp_path)
    assert got.group_by("symbol").agg(pl.col("close").unique()).sort("symbol").rows() == [("BTCUSDT", [3.0]),
                                                                                          ("ETHUSDT", [4.0])]
    for f in lake.table_files("bars", tmp_path):  # every file in key order, one year, one symbol
        df = pl.read_parquet(f)
        assert df["ts"].is_sorted() and df["ts"].dt.year().n_unique() == 1 and df["symbol"].n_unique() == 1


def test_bad_frame_writes_nothing(tmp_path):
    lake.write("bars", bars(), tmp_path)
    before = snapshot(tmp_path)
    bad = bars(hours=40).with_columns(low=pl.when(pl.col("ts").dt.hour() == 5).then(300.0).otherwise(50.0))
    with pytest.raises(SchemaError):
        lake.write("bars", bad, tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fail_at", ["encode", "disk", "commit"])
def test_a_write_that_fails_half_way_leaves_the_lake_as_it_was(tmp_path, monkeypatch, fail_at):
    lake.write("bars", bars(), tmp_path)
    before = snapshot(tmp_path)
    calls = {"n": 0}
    if fail_at == "disk":  # the second data file of the commit cannot be written
        real_write = os.write

        def short(fd, data):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", short)
    elif fail_at == "encode":
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
            raise OSError("device went away")

        monkeypatch.setattr(fileio.os, "replace", flaky)
    # changes both existing partitions (2024, 2025) and adds a new one (2026)
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


def day(d: dt.date, close=100.0, symbol="BTCUSDT"):
    return bars(start=dt.datetime(d.year, d.month, d.day), hours=24, close=close).with_columns(symbol=pl.lit(symbol))


def test_a_day_appended_to_a_year_writes_only_the_day(tmp_path):
    year = bars(start=dt.datetime(2024, 1, 1), hours=24 * 200)
    lake.write("bars", year, tmp_path)
    first = {p: p.stat().st_mtime_ns for p in lake.table_files("bars", tmp_path)}
    r = lake.write("bars", day(dt.date(2024, 9, 1)), tmp_path)
    assert (r.rows_added, r.files_written, r.version) == (24, 1, 2)
    files = lake.table_files("bars", tmp_path)
    assert len(files) == 2 and all(first[p] == p.stat().st_mtime_ns for p in first)  # the year was not rewritten
    assert lake.read("bars", tmp_path).height == 24 * 201


def test_reappending_a_day_adds_nothing_and_a_changed_day_rewrites_only_its_file(tmp_path):
    lake.write("bars", bars(start=dt.datetime(2024, 1, 1), hours=24 * 30), tmp_path)
    lake.write("bars", day(dt.date(2024, 3, 1)), tmp_path)
    year_file = lake.table_files("bars", tmp_path)
    r = lake.write("bars", day(dt.date(2024, 3, 1)), tmp_path)
    assert (r.rows_added, r.files_written, r.version) == (0, 0, 2)
    r = lake.write("bars", day(dt.date(2024, 3, 1), close=150.0).head(3), tmp_path)
    assert (r.rows_added, r.files_written) == (0, 1)
    df = lake.read("bars", tmp_path)
    assert df.height == 24 * 31 and df["ts"].is_unique().all()
    assert df.filter(pl.col("close") == 150.0).height == 3
    kept = set(year_file) & set(lake.table_files("bars", tmp_path))
    assert len(kept) == 1  # the 30-day file is untouched; only the day's file was rewritten


def test_many_appends_are_compacted_without_rewriting_the_biggest_file(tmp_path):
    lake.write("bars", bars(start=dt.datetime(2024, 1, 1), hours=24 * 60), tmp_path)
    big = lake.table_files("bars", tmp_path)
    days = [dt.date(2024, 6, 1) + dt.timedelta(days=i) for i in range(lake.COMPACT_AT)]
    for d in days:
        lake.write("bars", day(d), tmp_path)
    files = lake.table_files("bars", tmp_path)
    assert len(files) == 2 and big[0] in files  # the days were merged; the 60-day file was left alone
    df = lake.read("bars", tmp_path)
    assert df.height == 24 * (60 + len(days)) and df["ts"].is_sorted() and df["ts"].is_unique().all()
    orphan = files[0].parent / ".part-000099-0123456789ab.parquet.1.tmp"  # a killed writer's leftover
    orphan.write_bytes(b"x")
    assert lake.compact("bars", tmp_path) == {"bars": lake.versions(tmp_path)["bars"]}
    assert len(lake.table_files("bars", tmp_path)) == 1 and lake.read("bars", tmp_path).equals(df)
    assert not orphan.exists()


def test_table_files_prune_by_partition_values_and_years(tmp_path):
    lake.write("bars", pl.concat([bars(), day(dt.date(2024, 5, 1), symbol="ETHUSDT")]), tmp_path)
    assert len(lake.table_files("bars", tmp_path)) == 3
    assert len(lake.table_files("bars", tmp_path, symbol="BTCUSDT")) == 2
    assert len(lake.table_files("bars", tmp_path, symbol="BTCUSDT", years=[2025])) == 1
    assert len(lake.table_files("bars", tmp_path, symbol=["BTCUSDT", "ETHUSDT"], years=range(2024, 2025))) == 2
    assert len(lake.table_files("bars", tmp_path, close=1.0)) == 3  # not a partition column: no pruning
    with pytest.raises(LakeError, match="no column"):
        lake.table_files("bars", tmp_path, colour="red")
    assert lake.read("bars", tmp_path, symbol="ETHUSDT", years=[2024]).height == 24


def test_versions_name_each_tables_committed_version(tmp_path):
    assert set(lake.versions(tmp_path).values()) == {0}
    lake.write("bars", bars(), tmp_path)
    lake.write("bars", bars(close=5.0), tmp_path)
    v = lake.versions(tmp_path)
    assert v["bars"] == 2 and v["funding"] == 0


def test_duckdb_and_polars_read_the_committed_file_list(tmp_path):
    import duckdb

    lake.write("bars", bars(), tmp_path)
    lake.write("bars", day(dt.date(2025, 1, 2)), tmp_path)
    files = [str(p) for p in lake.table_files("bars", tmp_path)]
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet($f, hive_partitioning = false)", {"f": files}).fetchall()[0][0]
    assert n == 8 + 24 == pl.scan_parquet(files).select(pl.len()).collect().item()


def test_a_waiting_writer_names_the_lock_holder_and_times_out(tmp_path, monkeypatch, caplog):
    import socket
    import threading

    from research.errors import LakeLockTimeout
    from research.lake import log as lakelog

    lake.write("bars", bars(), tmp_path)
    monkeypatch.setattr(lakelog, "REPORT_AFTER", 0.2)
    monkeypatch.setenv(lakelog.LOCK_TIMEOUT_ENV, "0.6")
    held, release = threading.Event(), threading.Event()

    def hold():
        with lakelog.table_lock(lake.table_dir("bars", tmp_path), "a long backfill"):
            held.set()
            release.wait(5)

    th = threading.Thread(target=hold)
    th.start()
    held.wait(5)
    try:
        with caplog.at_level("WARNING", logger="research.lake"):
            with pytest.raises(LakeLockTimeout, match=f"pid {os.getpid()} on host {socket.gethostname()} since"):
                lake.write("bars", bars(close=3.0), tmp_path)
        assert "held by pid" in caplog.text and "a long backfill" in caplog.text
    finally:
        release.set()
        th.join()
    assert lake.write("bars", bars(close=3.0), tmp_path).version == 2


def test_a_replaced_file_outlives_its_commit_for_readers_of_the_old_list(tmp_path, monkeypatch):
    import duckdb

    from research.lake import log as lakelog
    from research.lake.verify import verify

    lake.write("bars", bars(), tmp_path)
    old = [str(p) for p in lake.table_files("bars", tmp_path)]
    con = duckdb.connect()
    con.read_parquet(old, hive_partitioning=False).create_view("v")  # a view built on version 1
    lake.write("bars", bars(close=5.0), tmp_path)  # rewrites both files
    assert set(old).isdisjoint(map(str, lake.table_files("bars", tmp_path)))
    assert con.execute("SELECT count(*), max(close) FROM v").fetchall() == [(8, 100.0)]  # still readable
    assert verify(tmp_path, raw=False).ok  # retired files are not orphans
    monkeypatch.setattr(lakelog, "RETAIN_SECONDS", 0.0)
    lake.write("bars", bars(start=dt.datetime(2026, 1, 1)), tmp_path)  # a later commit deletes them
    assert not any(os.path.exists(p) for p in old)
    assert lake.read("bars", tmp_path).height == 16 and verify(tmp_path, raw=False).ok


def test_a_copied_lake_is_read_after_one_hash_check_and_repair_records_the_new_mtimes(tmp_path):
    import shutil

    from research.lake import table as tbl
    from research.lake.repair import repair

    lake.write("bars", bars(), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copyfile)  # new mtimes, same bytes
    tbl._hash_ok.clear()
    assert lake.read("bars", tmp_path / "b").equals(lake.read("bars", tmp_path / "a"))
    assert len(tbl._hash_ok) == 2  # hashed once each, then trusted in this process
    assert repair(tmp_path / "b").ok
    log = lake.load_log(lake.table_dir("bars", tmp_path / "b"), "bars")
    assert all((lake.table_dir("bars", tmp_path / "b") / e.path).stat().st_mtime_ns == e.mtime_ns for e in log.files)
