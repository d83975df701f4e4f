"""Truthful coverage (#13): the report flags a requested span a required input does not cover, and
the long-horizon benchmark refuses a missing real pack in one line."""
from __future__ import annotations

import subprocess
import sys

from research.batch import RunResult
from research.records import ResultsRecord
from research.report.build import Entry
from research.report.render import _coverage_html
from tests.conftest import PROJECT_ROOT


def _entry(stem: str, coverage: dict) -> Entry:
    run = RunResult(notebook=f"notebooks/{stem}.ipynb", parameters={}, run_dir="x", status="ok")
    return Entry(run=run, record=ResultsRecord(notebook=stem, title=stem, coverage=coverage))


def test_report_flags_uncovered_inputs():
    line = "oi (coinalyze/binance/BTCUSDT/1d): usable 2021-03-19 .. 2025-04-30; requested 2020-01-01 .. 2026-04-01"
    html = _coverage_html([_entry("11-oi-collapses", {"start": "2021-03-19", "uncovered": [line]}),
                           _entry("10-funding-resets", {"start": "2020-01-01", "uncovered": []})], [], "")
    assert "Requested span not covered" in html and "11-oi-collapses: oi (coinalyze" in html
    assert "10-funding-resets: " not in html.split("Per notebook")[0]
    clean = _coverage_html([_entry("10-funding-resets", {"start": "2020-01-01", "uncovered": []})], [], "")
    assert "Requested span not covered" not in clean


def test_bench_longhorizon_names_a_missing_pack(tmp_path):
    r = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "bench_longhorizon.py"), "--quick",
                        "--real", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1 and "nope: no such directory" in r.stderr and "Traceback" not in r.stderr
