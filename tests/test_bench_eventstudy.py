"""``benchmarks/bench_eventstudy.py --quick`` runs, and this engine's CARs equal the PyPI
``eventstudy`` package's on the same events (no timing is asserted: speed lives in the script).

The package is the ``bench`` extra; ``.ci/run`` installs it. Without it the comparison skips with a
reason, and fails instead under ``CI``.
"""
from __future__ import annotations

import importlib.util

from tests.conftest import PROJECT_ROOT, unavailable


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_eventstudy", PROJECT_ROOT / "benchmarks" / "bench_eventstudy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_benchmark_runs_and_matches_the_pypi_package(capsys):
    out = _load_bench().main(["--quick"])
    printed = capsys.readouterr().out
    p1, p2 = out["part1"], out["part2"]
    assert 290 <= p1["n_events"] <= 300 and len(p1["tests"]) == 15  # same-bar duplicates are merged
    assert p2["n_events"] == 60 and p2["ours_s"] > 0 and p2["rounds"] == 2
    assert set(p2["times"]) >= {"ours_grid_like", "ours_e2e_like", "ours_e2e_default", "numpy_grid", "numpy_e2e"}
    assert "numpy baseline / ours" in printed
    p3 = out["part3"]  # fresh processes: CPU seconds and peak RSS per size, and their ratio
    assert len(p3["cpu_ratio"]) == 1 and p3[600]["gib"][0] > 0 and "CPU time ratio" in printed
    if p2["package"] is None or p2["package"].startswith("failed"):
        unavailable(f"PyPI eventstudy 0.1a12 is not usable here ({p2['package'] or 'not installed'}): "
                    "pip install -e '.[bench]'", "(.ci/run installs it)")
    assert p2["package_events"] == 60
    assert p2["max_car_diff"] < 1e-10
    assert "PyPI package / ours, like for like" in printed
