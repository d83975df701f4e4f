import datetime as dt

import polars as pl
from typer.testing import CliRunner

from research import lake
from research.cli import app

runner = CliRunner()


def _bars(d):
    ts = pl.datetime_range(dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 1, 5), "1h", time_zone="UTC", eager=True)
    lake.write("bars", pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                                         open=1.0, high=1.0, low=1.0, close=1.0, source="t")), d)


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("sample", "info", "query", "schema"):
        assert cmd in r.output


def test_info_on_empty_and_filled_lake(tmp_path):
    r = runner.invoke(app, ["info", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and "empty" in r.output and "research sample" in r.output
    _bars(tmp_path)
    r = runner.invoke(app, ["info", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and "BTCUSDT" in r.output and "bars" in r.output


def test_query_to_file_and_errors(tmp_path):
    _bars(tmp_path)
    out = tmp_path / "p.parquet"
    r = runner.invoke(app, ["query", "hourly_panel", "-p", "symbol=BTCUSDT", "--out", str(out),
                            "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out).height == 6
    r = runner.invoke(app, ["query", "hourly_panel", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "symbol" in r.output
    r = runner.invoke(app, ["query", "hourly_panel", "-p", "oops", "--data-dir", str(tmp_path)])
    assert r.exit_code != 0


def test_schema_prints_the_data_model():
    r = runner.invoke(app, ["schema"])
    assert r.exit_code == 0 and "`funding`" in r.output and "interval_hours" in r.output


def test_help_keeps_bracketed_text_and_shows_flags_as_flags():
    from typer.testing import CliRunner

    from research.cli import app

    out = CliRunner().invoke(app, ["fetch", "binance", "--help"], env={"COLUMNS": "200"}).output
    assert "[BTCUSDT]" in out and "https://" in out  # rich markup used to eat these
    assert "--dry-run " in out and "<bool>" not in out
    assert "[default: 4]" in out


def test_query_refuses_unknown_out_format_before_running(tmp_path):
    from typer.testing import CliRunner

    from research.cli import app

    r = CliRunner().invoke(app, ["query", "hourly_panel", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.xlsx")])
    assert r.exit_code == 2 and "unsupported format '.xlsx'" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.xlsx").exists()


def test_empty_query_says_what_the_lake_holds(sim_lake):
    from typer.testing import CliRunner

    from research.cli import app

    r = CliRunner().invoke(app, ["query", "hourly_panel", "--data-dir", str(sim_lake), "-p", "symbol=ETHUSDT"])
    assert r.exit_code == 0
    assert "0 rows" in r.output and "no data for symbol 'ETHUSDT'" in r.output and "BTCUSDT" in r.output


def test_info_shows_whole_names(sim_lake):
    from typer.testing import CliRunner

    from research.cli import app

    r = CliRunner().invoke(app, ["info", "--data-dir", str(sim_lake)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "liquidation_orders" in r.output
