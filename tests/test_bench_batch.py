"""benchmarks/bench_batch.py --quick keeps working: every arm runs and gives the same results."""
import importlib

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_bench_batch_quick_runs_every_arm(capsys, monkeypatch):
    # imported by name from a folder on sys.path, so the process-pool arm's workers (which unpickle
    # its functions by module name) can import it too
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "benchmarks"))
    bench = importlib.import_module("bench_batch")
    out = bench.main(["--quick", "--skip-dask"])  # raises if an arm's verdicts differ from the others'
    text = capsys.readouterr().out
    assert set(out["grid"]) == {"seq", "pool2", "grid w=1", "grid w=2", "kept w=1", "kept w=2", "kept w=2 unpinned"}
    assert all(len(v) == 1 for v in out["grid"].values())
    assert "w=1 / w=2" in text and "pool2 / w=2" in text and "kept w=1 / kept w=2" in text
