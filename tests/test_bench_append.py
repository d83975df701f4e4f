"""benchmarks/bench_append.py --quick keeps working (its numbers are printed, never asserted here)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_bench_append_quick_runs_and_checks_dedupe():
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    r = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "bench_append.py"), "--quick"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "lake         / alone" in r.stdout and "target: lake append" in r.stdout
