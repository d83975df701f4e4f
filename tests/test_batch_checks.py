"""Every notebook parameter is checked before a run: types, dates, ranges, start before end, the span
against the lake; stems are accepted; every run directory has run.log; the kernel does not warn."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from research import batch, paths
from research.batch import ranges
from research.cli import app
from research.errors import NotebookError
from tests.test_batch import TINY, _nb

runner = CliRunner()
FLUSH = paths.NOTEBOOKS_DIR / "20-flush-vs-exodus.ipynb"


def test_parameters_cell_keeps_lines_whose_comment_papermill_cannot_parse(tmp_path):
    nb = _nb(tmp_path, 'data_dir = None\noutput_dir = "."\nband = 1.75  # flush if >= center x band, exodus if <= c / band\n'
                       'xs = [1.0, 2.0]  # "both"/"either"\nlong = dict(\n    a=1,\n)  # a call: any value\n')
    spec = batch.parameter_spec(nb)
    assert spec["band"].default == 1.75 and spec["band"].help.startswith("flush if >=")
    assert spec["xs"].default == [1.0, 2.0] and spec["long"].type_name == "any"


@pytest.mark.parametrize("raw, message", [
    ("start=notadate", "parameter 'start' 'notadate' is not a date"),
    ("drawdown_pct=-5", "'drawdown_pct' = -5.0 is out of range: a percentage (0, 100)"),
    ("drawdown_pct=150", "out of range"),
    ("horizons=[24, 0]", "(element 0) is out of range"),
    ("n_perm=0", "'n_perm' = 0 is out of range: a count >= 1"),
])
def test_bad_values_are_refused_before_anything_runs(raw, message):
    with pytest.raises(NotebookError, match=re.escape(message)):
        batch.check_parameters(FLUSH, batch.parse_assignments([raw]), from_strings=True)


def test_start_must_come_before_end():
    with pytest.raises(NotebookError, match="start '2026-03-01' is not before end '2026-02-01'"):
        batch.check_parameters(FLUSH, {"start": "2026-03-01", "end": "2026-02-01"})
    with pytest.raises(NotebookError, match="not before end"):  # against the other's default
        batch.check_parameters(FLUSH, {"start": "2027-01-01"})
    assert batch.check_parameters(FLUSH, {"start": "2025-06-01", "end": "2025-07"}) == {"start": "2025-06-01",
                                                                                          "end": "2025-07"}


def test_every_committed_default_is_in_range():
    for nb in batch.numbered_notebooks():
        for name, p in batch.parameter_spec(nb).items():
            assert ranges.range_error(name, p.default) is None, f"{nb.name}: {name} = {p.default!r}"


def test_ranges_are_declared_for_names_notebooks_use():
    used = {name for nb in batch.numbered_notebooks() for name in batch.parameter_spec(nb)}
    assert set(ranges.RANGES) <= used, set(ranges.RANGES) - used  # no entry for a name no notebook has


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory):
    from research import simulate

    d = tmp_path_factory.mktemp("lake")
    simulate.write_sample(d, days=40)
    return d


def test_span_is_checked_against_the_lake(small_lake, tmp_path):
    batch.check_span(FLUSH, {"start": "2026-03-05"}, small_lake)
    with pytest.raises(NotebookError, match=r"holds no bars for symbol 'ETHUSDT'; it holds BTCUSDT \(2026-02-20"):
        batch.check_span(FLUSH, {"symbol": "ETHUSDT"}, small_lake)
    with pytest.raises(NotebookError, match="selects no BTCUSDT bars: the lake .* holds BTCUSDT from 2026-02-20 to 2026-03-31"):
        batch.check_span(FLUSH, {"start": "2020-01-01", "end": "2021-01-01"}, small_lake)
    with pytest.raises(NotebookError, match="holds no bars; fill it"):
        batch.check_span(FLUSH, {}, tmp_path / "empty")


@pytest.mark.parametrize("args, message", [
    (["-p", "start=notadate"], "is not a date"),
    (["-p", "drawdown_pct=-5"], "out of range"),
    (["-p", "start=2026-03-20", "-p", "end=2026-03-10"], "not before end"),
    (["-p", "symbol=ETHUSDT"], "no bars for symbol 'ETHUSDT'"),
])
def test_cli_run_exits_2_with_one_line_before_any_cell(small_lake, tmp_path, args, message):
    out = tmp_path / "runs"
    res = runner.invoke(app, ["run", "20-flush-vs-exodus", *args, "--data-dir", str(small_lake), "--out", str(out), "-q"])
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1 and "Traceback" not in res.output
    assert not out.exists()


def test_cli_run_accepts_stems_and_numbers(tmp_path):
    for name in ("20-flush-vs-exodus", "20", "20-flush-vs-exodus.ipynb"):
        res = runner.invoke(app, ["run", name, "-p", "start=notadate", "--out", str(tmp_path)])
        assert res.exit_code == 2 and "20-flush-vs-exodus.ipynb: parameter 'start'" in res.output, res.output
    res = runner.invoke(app, ["run", "99-nothing", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "numbered notebooks there: 00-data-overview" in res.output


def test_run_log_in_every_run_directory_and_no_kernel_warning(tmp_path, capfd):
    out = tmp_path / "runs"
    res = runner.invoke(app, ["run", str(TINY), "-p", "x=3", "--out", str(out), "--data-dir", str(tmp_path / "d"), "-q"])
    assert res.exit_code == 0, res.output
    rd = next((out / "tiny").iterdir())
    log = (rd / batch.RUN_LOG).read_text()
    first, *_, last = log.strip().splitlines()
    assert "tiny.ipynb" in first and json.dumps({"x": 3}) in first
    assert last.startswith("ok after ")
    captured = capfd.readouterr()
    noise = captured.out + captured.err
    assert "without encryption" not in noise and "Unable to parse line" not in noise
