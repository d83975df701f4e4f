"""The README's own report and grid examples run on a fresh machine (#13): the simulated market
(2024-10-01 .. 2026-03-31) covers their Oct 2025 - Mar 2026 spans, so they exit 0 with results.

The commands are parsed from the README, not retyped; only the output directory is redirected to a
temporary one, and the grid is cut (first value of each ``product`` list, the ``zip`` windows on its
first notebook) to keep the run short.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from research.records import load
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

SECTION = "## Notebooks, batches and the report"


def _section() -> str:
    return (PROJECT_ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]


def readme_report_example() -> list[str]:
    """The ``research report -n ... -p ... --name ...`` line of the README, as argv."""
    block = re.search(r"```bash\n(.*?)```", _section(), re.DOTALL).group(1)
    line = next(ln for ln in block.splitlines() if ln.startswith("research report -n"))
    return shlex.split(line.split("#", 1)[0])


def readme_grid_example() -> dict:
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), re.DOTALL).group(1))


def _research(args, cwd, env=None):
    return subprocess.run([sys.executable, "-c", "from research.cli import main; main()", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, check=False)


def test_readme_report_example_runs_on_a_fresh_machine(tmp_path):
    argv = readme_report_example()
    assert argv[:2] == ["research", "report"] and "-n" in argv and "--name" in argv
    i = argv.index("--name")
    out = tmp_path / "report"
    args = argv[1:i] + ["--out", str(out)] + argv[i + 2:] + ["--workers", "2", "--quiet"]
    # an empty lake: the report writes the simulated market into the report directory itself
    r = _research(args + ["--data-dir", str(tmp_path / "empty")], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (out / "index.html").exists()
    records = [load(p.parent) for p in out.rglob("record.json")]
    assert {rec.notebook.split("-")[0] for rec in records} == {"10", "20"}
    for rec in records:
        assert rec.parameters["start"] == "2025-10-01" and rec.verdicts
        assert rec.coverage["start"] >= "2025-10-01" and rec.coverage["interval"] == "1h"


def test_readme_grid_example_runs_on_a_fresh_machine(tmp_path):
    grid = readme_grid_example()
    runs = []
    for run in grid["runs"]:
        run = dict(run)
        if "product" in run:
            run["product"] = {k: v[:1] for k, v in run["product"].items()}
        if "zip" in run and isinstance(run["notebook"], list):
            run["notebook"] = run["notebook"][0]
        runs.append(run)
    zipped = next(r for r in runs if "zip" in r)
    assert [str(d) for d in zipped["zip"]["start"]] == ["2025-10-01", "2026-01-01"]   # Oct 2025 - Mar 2026 windows
    data = tmp_path / grid["data_dir"]
    assert _research(["sample", "--data-dir", str(data)], cwd=tmp_path).returncode == 0
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({**grid, "runs": runs}))
    r = _research(["grid", "grid.yaml", "--workers", "2"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    records = [load(p.parent) for p in (tmp_path / grid["out"]).rglob("record.json")]
    assert len(records) == 3 and all(rec.verdicts for rec in records)
    starts = sorted(rec.parameters["start"] for rec in records if rec.notebook.startswith("11"))
    assert starts == ["2025-10-01", "2026-01-01"]
    assert all(rec.coverage["start"] is not None for rec in records)
