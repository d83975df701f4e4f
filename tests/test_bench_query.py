"""benchmarks/bench_query.py --quick keeps working, and the hourly panel equals the lower bound's rows."""
import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_bench_query_quick_runs_and_matches_the_lower_bound(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_query", PROJECT_ROOT / "benchmarks" / "bench_query.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.main(["--quick", "--cache", str(tmp_path)])  # raises if the panel and the lower bound differ
    out = capsys.readouterr().out
    assert "hourly_panel equals the lower bound on 168 rows" in out
    assert set(table["arm"]) == {"lower", "hourly_panel", "panel_4h", "daily_panel"}
    assert table.height == 16 and (table["min_s"] > 0).all()
