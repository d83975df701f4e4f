"""benchmarks/bench_batch.py --quick keeps working: every arm runs and gives the same results."""
import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_bench_batch_quick_runs_every_arm(capsys):
    spec = importlib.util.spec_from_file_location("bench_batch", PROJECT_ROOT / "benchmarks" / "bench_batch.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--quick", "--skip-dask"])  # raises if an arm's verdicts differ from the others'
    text = capsys.readouterr().out
    assert set(out["grid"]) == {"seq", "pool2", "grid w=1", "grid w=2"}
    assert all(len(v) == 1 for v in out["grid"].values())
    assert "w=1 / w=2" in text and "pool2 / w=2" in text
