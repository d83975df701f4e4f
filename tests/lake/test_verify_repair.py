"""``research verify`` / ``research repair`` on the command line, older-layout lakes, raw files, duplicate keys."""
from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from research import lake
from research.cli import app
from research.errors import LakeCorruptError
from research.lake import table as tbl
from research.lake.repair import binance_task, repair
from research.lake.verify import verify

runner = CliRunner()


def test_cli_verify_is_0_on_a_clean_lake_and_1_naming_the_file_on_a_damaged_one(raw_lake):
    d, clean = raw_lake
    ok = runner.invoke(app, ["verify", "--data-dir", str(d)])
    assert ok.exit_code == 0 and "all good" in ok.output
    f = lake.table_files("bars", d)[0]
    f.unlink()
    bad = runner.invoke(app, ["verify", "--data-dir", str(d)])
    assert bad.exit_code == 1 and f"MISSING {f}" in bad.output and "research repair" in bad.output
    fixed = runner.invoke(app, ["repair", "--data-dir", str(d)])
    assert fixed.exit_code == 0, fixed.output
    assert "rebuilt" in fixed.output and lake.read("bars", d).equals(clean)
    assert runner.invoke(app, ["verify", "--data-dir", str(d)]).exit_code == 0


def test_info_lists_files_no_log_lists(raw_lake):
    d, _ = raw_lake
    f = lake.table_files("bars", d)[0]
    (f.parent / "old").mkdir()
    (f.parent / "old" / "part.parquet").write_bytes(f.read_bytes())
    out = runner.invoke(app, ["info", "--data-dir", str(d)])
    assert out.exit_code == 0 and "never read" in out.output and "part.parquet" in out.output


def test_a_changed_raw_file_is_named_and_not_used_to_rebuild(raw_lake):
    d, clean = raw_lake
    raw = sorted((d / "raw" / "binance").rglob("*.zip"))[0]
    raw.write_bytes(raw.read_bytes()[:-3] + b"xyz")
    rep = verify(d)
    assert [(p.kind, p.path) for p in rep.problems] == [("raw-hash", raw)]
    assert lake.read("bars", d).equals(clean)  # the lake is still right; verify still fails
    assert not repair(d).ok


def test_a_raw_file_without_a_manifest_record_is_named(raw_lake):
    d, _ = raw_lake
    extra = d / "raw" / "binance" / "stray.zip"
    extra.write_bytes(b"PK")
    assert [(p.kind, p.path) for p in verify(d).problems] == [("raw-unlisted", extra)]


def test_rows_without_a_raw_copy_are_reported_not_invented(tmp_path):
    from tests.lake.test_table import bars

    lake.write("bars", bars(), tmp_path)
    f = lake.table_files("bars", tmp_path)[0]
    f.unlink()
    rep = repair(tmp_path)
    assert not rep.ok and "source 'test'" in rep.summary()
    assert lake.read("bars", tmp_path).height == 4  # the other year; nothing wrong is read


def test_an_older_layout_is_refused_then_adopted_by_repair(tmp_path):
    from tests.lake.test_table import bars

    from research.schema import get_table, validate

    df = validate(get_table("bars"), bars())  # the older layout stored validated frames too
    for year, part in df.group_by(pl.col("ts").dt.year()):
        d = tmp_path / "lake" / "bars" / "source=test/venue=binance/market=perp/symbol=BTCUSDT/interval=1h" / f"year={year[0]}"
        d.mkdir(parents=True)
        part.write_parquet(d / "part.parquet")
    with pytest.raises(LakeCorruptError, match="no table log.*research repair"):
        lake.read("bars", tmp_path)
    assert {p.kind for p in verify(tmp_path).problems} == {"legacy"}
    rep = repair(tmp_path)
    assert rep.ok, rep.summary()
    assert len(rep.adopted) == 2 and lake.read("bars", tmp_path).equals(df.sort("ts"))


def test_keys_stored_twice_are_named_and_collapsed_newest_first(tmp_path):
    from research.schema import validate
    from tests.lake.test_table import bars

    lake.write("bars", bars(hours=3), tmp_path)
    tdir = lake.table_dir("bars", tmp_path)
    log = lake.load_log(tdir, "bars")
    # a second file with the same keys and other values, listed behind the API's back
    e = log.files[0]
    dup = validate(tbl.get_table("bars"), bars(hours=3, close=111.0))
    stage = tbl._Staging(tbl.get_table("bars"), tdir, log.version + 1, "test")
    stage.add(e.partition, dup)
    stage.commit(log, log.files)
    probs = verify(tmp_path).problems
    assert [p.kind for p in probs] == ["duplicate-keys"] and "3 key(s)" in probs[0].detail
    assert repair(tmp_path).ok
    assert lake.read("bars", tmp_path)["close"].to_list() == [111.0] * 3


def test_an_unreadable_log_is_named(tmp_path):
    from tests.lake.test_table import bars

    lake.write("bars", bars(), tmp_path)
    (lake.table_dir("bars", tmp_path) / "_log.json").write_text("{not json")
    with pytest.raises(LakeCorruptError, match="_log.json is unreadable"):
        lake.read("bars", tmp_path)
    assert [p.kind for p in verify(tmp_path).problems][0] == "log"


def test_raw_archive_paths_map_back_to_their_tasks():
    t = binance_task("raw/binance/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12.zip")
    assert (t.dataset, t.market, t.symbol, t.freq, t.period, t.interval) == ("klines", "um", "BTCUSDT", "monthly",
                                                                            "2024-12", "1h")
    assert t.raw_rel == "raw/binance/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12.zip"
    f = binance_task("raw/binance/data/futures/um/daily/fundingRate/ETHUSDT/ETHUSDT-fundingRate-2024-03-01.zip")
    assert (f.dataset, f.period, f.interval) == ("fundingRate", "2024-03-01", None)
    assert binance_task("raw/coinalyze/x.json") is None
    json.dumps(str(t))


@pytest.mark.parametrize("cmd", [["info"], ["query", "hourly_panel", "-p", "symbol=BTCUSDT"]])
def test_cli_refuses_a_damaged_table_in_one_line_naming_the_file(raw_lake, cmd):
    d, _ = raw_lake
    f = lake.table_files("bars", d, symbol="BTCUSDT")[0]
    f.unlink()
    r = runner.invoke(app, [*cmd, "--data-dir", str(d)])
    assert r.exit_code == 1
    assert f"error: {f}: listed in the table log but missing; run `research repair`" in r.output
    assert "Traceback" not in r.output


def test_a_damaged_sentiment_file_is_rebuilt_from_its_raw_downloads(tmp_path):
    import datetime as dt

    from research.sources import feargreed

    def payload(values):
        return json.dumps({"name": "Fear and Greed Index", "metadata": {"error": None}, "data": [
            {"value": str(v), "value_classification": "Fear", "timestamp":
             str(int(dt.datetime(2025, 10, day, tzinfo=dt.timezone.utc).timestamp()))} for day, v in values]})

    raw = tmp_path / "raw" / "alternative_me" / "fng"
    raw.mkdir(parents=True)
    for name, values in (("fng-limit0-20251011T000000Z.json", [(10, 64), (11, 27)]),
                         ("fng-limit0-20251013T000000Z.json", [(11, 30), (12, 41)])):  # a revised value
        (raw / name).write_text(payload(values))
        lake.write("sentiment", feargreed.parse((raw / name).read_bytes(), origin=name), tmp_path)
    clean = lake.read("sentiment", tmp_path)
    assert clean["value"].to_list() == [64, 30, 41]
    lake.table_files("sentiment", tmp_path)[0].unlink()
    rep = repair(tmp_path)
    assert "restored" in rep.summary()
    assert lake.read("sentiment", tmp_path).equals(clean)
