"""benchmarks/bench_grid_cold.py --quick keeps working: both arms run from the CLI and agree."""
import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_bench_grid_cold_quick_runs_both_arms(capsys):
    spec = importlib.util.spec_from_file_location("bench_grid_cold", PROJECT_ROOT / "benchmarks" / "bench_grid_cold.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--quick"])  # raises if a command fails or the arms' verdicts differ
    text = capsys.readouterr().out
    assert [len(v) for v in out["wall"].values()] == [1, 1] and all(c > 0 for v in out["cores"].values() for c in v)
    assert "w=1 / w=2 (target >= 1.8)" in text and "ceiling w=1 wall / (w=2 CPU / 2)" in text
