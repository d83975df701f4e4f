"""Shared test fixtures.

``shared_path`` finds ``../shared`` beside the project. Tests that need it skip with a clear reason
when it is absent, and fail instead when the environment variable ``CI`` is set (CI always has it).
"""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TREADMILL_SHARED", PROJECT_ROOT.parent / "shared"))


def unavailable(msg: str, ci_hint: str):
    """Skip with ``msg``; under ``CI`` fail instead, saying what CI should have provided."""
    if os.environ.get("CI"):
        pytest.fail(f"{msg} {ci_hint}")
    pytest.skip(msg)


def shared_path(rel: str) -> Path:
    """Return ``../shared/<rel>``; skip (or fail under CI) when it is missing."""
    p = SHARED / rel
    if not p.exists():
        unavailable(f"{p} is missing: these tests read the reference data in ../shared beside the project "
                    "(set TREADMILL_SHARED to point elsewhere).", "CI must have ../shared.")
    return p


def require_module(name: str, extra: str):
    """Import ``name`` (an optional extra's package); skip without it, or fail under ``CI``
    (``.ci/run`` installs every extra the tests use)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"could not import {name!r} ({exc}): pip install -e '.[{extra}]'",
                    "(CI must run this test: .ci/run installs the extra)")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh, empty data directory set as RESEARCH_DATA_DIR for the test."""
    d = tmp_path / "data"
    monkeypatch.setenv("RESEARCH_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def sim_lake(tmp_path_factory):
    """A lake holding the simulated market (seed 7, 180 days). Shared by the session: read it only."""
    from research import simulate

    d = tmp_path_factory.mktemp("sim_lake")
    simulate.write_sample(d, seed=7, days=180)
    return d


@pytest.fixture(scope="session")
def real_lake(tmp_path_factory):
    """A lake holding the real Oct 2025 - Apr 2026 pack from ../shared. Shared by the session: read it only."""
    from research.sources.importer import import_real_pack

    d = tmp_path_factory.mktemp("real_lake")
    import_real_pack(shared_path("data/real"), d)
    return d


@pytest.fixture(scope="session")
def default_report(tmp_path_factory):
    """The report of every numbered notebook on an empty lake (so on the simulated market), built once:
    the report tests and the browser test read it. Read it only."""
    from research import report
    from research.sources.locks import file_lock

    out = tmp_path_factory.mktemp("default-report")
    empty = tmp_path_factory.mktemp("empty-lake")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return report.build_report(out=out / "rep", data_dir=empty / "data", workers=2, progress=False)
    # parallel test workers share one run of the notebooks: the first builds it under the lock; a
    # later one copies the finished report into its own folder and resumes it (no notebook runs again)
    shared = tmp_path_factory.getbasetemp().parent / "default-report"
    with file_lock(shared.with_suffix(".lock"), "the default report", report=lambda msg: None):
        if (shared / "index.html").exists():
            shutil.copytree(shared, out / "rep")
            return report.build_report(out=out / "rep", data_dir=empty / "data", workers=2, progress=False,
                                       resume=True)
        return report.build_report(out=shared, data_dir=empty / "data", workers=2, progress=False)


#: the longest test files, started first so that no worker is left with one of them at the end
#: (``--dist loadfile`` hands files out in collection order)
SLOW_FIRST = ("tests/test_readme.py", "tests/test_report.py", "tests/test_bench_batch.py", "tests/test_era_real.py",
              "tests/test_notebooks.py", "tests/test_notebooks_hypotheses.py", "tests/test_era_readme.py",
              "tests/hypotheses/test_calibration.py", "tests/eventstudy/test_sizes.py", "tests/test_batch.py")


def pytest_collection_modifyitems(config, items):
    rank = {f: i for i, f in enumerate(SLOW_FIRST)}

    def key(item):
        rel = Path(str(item.fspath)).resolve().relative_to(PROJECT_ROOT).as_posix()
        return rank.get(rel, len(rank))

    items.sort(key=key)   # stable: the order inside a file and among the rest is kept
