"""`research import`: presets, flags, packs; bad input is one line on stderr and exit 2, nothing stored."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from research import lake
from research.cli import app
from research.sources import importer
from tests.conftest import shared_path

from .util import write

runner = CliRunner()


def one_line_error(r) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit))
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_cli_import_with_preset_and_flags(tmp_path, data_dir):
    real = shared_path("data/real")
    r = runner.invoke(app, ["import", "liquidations", str(real / importer.PRESETS["coinglass_liquidations_4h"]["file"]),
                            "--preset", "coinglass_liquidations_4h", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "1080 rows valid" in r.output and lake.read("liquidations", data_dir).height == 1080
    f = write(tmp_path, "fund.csv", "when,fr\n2025-10-10T00:00:00Z,0.01\n2025-10-10T08:00:00Z,-0.005\n")
    args = ["import", "funding", str(f), "--time-col", "when", "--label", "instant", "-c", "venue=okx",
            "-c", "symbol=BTCUSDT", "-c", "interval_hours=8", "-c", "source=export", "--data-dir", str(data_dir)]
    r = runner.invoke(app, [*args, "-v", "rate=fr:percent"])
    assert r.exit_code == 0, r.output
    assert lake.read("funding", data_dir, venue="okx").sort("ts")["rate"].to_list() == pytest.approx([0.0001, -0.00005])
    assert "needs a unit" in one_line_error(runner.invoke(app, [*args, "-v", "rate=fr"]))
    msg = one_line_error(runner.invoke(app, [*args, "-v", "rate=fr:decimal"]))
    assert "fund.csv, column 'fr', line 2" in msg and "is the file in percent?" in msg
    r = runner.invoke(app, [*args, "-v", "rate=fr:decimal", "--max-funding-8h", "0.02", "--dry-run"])
    assert r.exit_code == 0 and "2 rows valid (dry run" in r.output


def test_cli_bad_files_are_one_line_errors_and_store_nothing(tmp_path, data_dir):
    flags = ["--time-col", "t", "--tz", "UTC", "-v", "long_usd=l:usd", "-v", "short_usd=s:usd", "-c", "venue=x",
             "-c", "symbol=BTC", "-c", "interval=1h", "-c", "source=s", "--data-dir", str(data_dir)]
    cases = {
        "tz.csv": ("t,l,s\n2025-01-01 00:00:00 PST,1,2\n", "tz.csv, column 't', line 2: '2025-01-01 00:00:00 PST'"),
        "feb.csv": ("t,l,s\n2025-02-01,1,2\n2025-02-30,1,2\n", "feb.csv, column 't', line 3: '2025-02-30'"),
        "dmy.csv": ("t,l,s\n01/02/2025,1,2\n", "day/month order is ambiguous"),
        "num.csv": ("t,l,s\n2025-02-01,1,2\n2025-02-02,1,lots\n", "num.csv, column 's', line 3: 'lots' is not a number"),
        "col.csv": ("t,l\n2025-02-01,1\n", "col.csv: column(s) ['s'] not in the file"),
        "neg.csv": ("t,l,s\n2025-02-01,1,-2\n", "neg.csv, column 's', line 2: '-2' is negative"),
        "old.csv": ("t,l,s\n1900-02-01,1,2\n", "old.csv, column 't', line 2: 1900-02-01 is outside 2009-01-03.."),
    }
    for name, (body, expect) in cases.items():
        f = write(tmp_path, name, body)
        assert expect in one_line_error(runner.invoke(app, ["import", "liquidations", str(f), *flags])), name
    # a one-line file over the (lowered) line cap; the same file passes the cap with an override
    big = write(tmp_path, "big.csv", "t,l,s," + "x" * 5000 + "\n2025-02-01,1,2,\n")
    assert "big.csv, line 1: longer than the 2,048-byte line cap" in one_line_error(
        runner.invoke(app, ["import", "liquidations", str(big), *flags, "--max-line-kb", "2"]))
    bad_map = write(tmp_path, "m.yaml", b"\xff\xfe\x00b\x00i\x00n")
    f = write(tmp_path, "ok.csv", "t,l,s\n2025-02-01,1,2\n")
    assert "m.yaml: binary file" in one_line_error(runner.invoke(app, ["import", "liquidations", str(f), "-m", str(bad_map),
                                                                       "--data-dir", str(data_dir)]))
    assert "no such file" in one_line_error(runner.invoke(app, ["import", "liquidations", str(tmp_path / "nope.csv"), *flags]))
    assert lake.read("liquidations", data_dir).height == 0


def test_cli_coinalyze_liquidations_in_btc_with_a_mapping_file(tmp_path, data_dir):
    """The issue's case: `research import liquidations bitcoin_liquidation_history.csv -m liq.yaml` (BTC units)."""
    real = shared_path("data/real")
    liq = real / importer.PRESETS["coinalyze_liquidations_1d"]["file"]
    m = write(tmp_path, "liq.yaml", "table: liquidations\ntime: {column: timestamp, timezone: UTC, label: start}\n"
                                    "values: {long_usd: 'long_liq:base', short_usd: 'short_liq:base'}\n"
                                    "constants: {venue: binance, symbol: BTCUSDT, interval: 1d, source: coinalyze}\n"
                                    "drop_last_rows: 1\n")
    msg = one_line_error(runner.invoke(app, ["import", "liquidations", str(liq), "-m", str(m), "--data-dir", str(data_dir)]))
    assert "bitcoin_liquidation_history.csv, line 2: no price to convert coins to USD for 2020-04-15" in msg
    r = runner.invoke(app, ["import", "bars", str(real / importer.PRESETS["binance_spot_1d"]["file"]),
                            "--preset", "binance_spot_1d", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["import", "liquidations", str(liq), "-m", str(m), "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "long_usd = long_liq (coins) x bars close BTCUSDT 1d (perp/spot) [spot:binance_api 1840 rows]" in r.output
    assert lake.read("liquidations", data_dir).height == 1840


def test_cli_pack_long_in_one_command(data_dir):
    r = runner.invoke(app, ["import", "--pack", "long", "--real-dir", str(shared_path("data/real")), "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert all(f"{name}:" in r.output for name in importer.LONG_PACK)
    assert lake.read("liquidations", data_dir)["ts"].min().year == 2020
    assert "unknown pack 'nope'" in one_line_error(runner.invoke(app, ["import", "--pack", "nope", "--data-dir", str(data_dir)]))
    r = runner.invoke(app, ["import", "--pack", "long", "bars", "--data-dir", str(data_dir)])
    assert r.exit_code == 2 and "--pack imports a whole pack" in r.output


@pytest.mark.network
def test_cli_fetch_binance_summary_and_exit_codes(tmp_path, serve, data_dir):
    srv = serve(shared_path("data/binance-vision"))
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
