"""benchmarks/bench_query.py --quick keeps working, and each panel equals its hand-written lower bound on every column."""
import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_bench_query_quick_runs_and_matches_the_lower_bounds(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_query", PROJECT_ROOT / "benchmarks" / "bench_query.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.main(["--quick", "--cache", str(tmp_path)])  # raises if a panel and its lower bound differ
    out = capsys.readouterr().out
    assert "hourly_panel equals lower_1h on all columns of 168 rows" in out
    assert "panel_4h equals lower_4h on all columns of 42 rows" in out
    assert "daily_panel equals lower_1d on all columns of 7 rows" in out
    assert set(table["arm"]) == {"floor", "lower_1h", "lower_4h", "lower_1d", "hourly_panel", "panel_4h", "daily_panel"}
    assert table.height == 4 * 7 and (table["min_s"] > 0).all()
