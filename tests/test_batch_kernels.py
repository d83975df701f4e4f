"""research.batch.kernels: runs of one worker share a kept kernel, and nothing else.

One grid of four runs in this process (workers=1): runs 1-2 share a kernel, run 3 fails and
discards it, run 4 gets a fresh one. Every run checks, in its own cells, that no name of an earlier
run is visible, that it starts in its run directory and that its cells are numbered from 1.
"""
from __future__ import annotations

import json

import nbformat
import pytest

from research import batch
from research.batch import kernels
from research.records import load as load_record

PARAMS = "x = 1\nfail = False\ndata_dir = None\noutput_dir = \".\""
BODY = """\
import os, json
assert "leaked" not in globals(), "a name from an earlier run survived the reset"
leaked = x
json.dump({"pid": os.getpid(), "cwd": os.getcwd()}, open(os.path.join(output_dir, "kernel.json"), "w"))
if fail:
    raise RuntimeError("asked to fail")
"""


def _notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cell = nbformat.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(BODY), nbformat.v4.new_code_cell("x * 2")]
    path = tmp_path / "kept.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kept")
    nb = _notebook(tmp)
    specs = [batch.make_spec(nb, {"x": x, "fail": x == 3}, data_dir=tmp / "data", out_root=tmp / "runs")
             for x in (1, 2, 3, 4)]
    res = batch.run_grid(specs, workers=1, progress=False)
    return specs, res


def _kernel(spec):
    return json.loads((spec.run_dir / "kernel.json").read_text())


def test_runs_share_a_kernel_until_one_fails(grid_runs):
    specs, res = grid_runs
    assert [r.status for r in res.results] == ["ok", "ok", "failed", "ok"], [r.error for r in res.results]
    pids = [_kernel(s)["pid"] for s in specs]
    assert pids[0] == pids[1] == pids[2], "runs 1-3 should reuse one kernel"
    assert pids[3] != pids[2], "a failed run must discard its kernel"


def test_every_run_starts_clean_in_its_directory(grid_runs):
    specs, res = grid_runs
    for s in specs:
        assert _kernel(s)["cwd"] == str(s.run_dir)
    ok = [s for s, r in zip(specs, res.results) if r.status == "ok"]
    for s in ok:
        nb = nbformat.read(s.run_dir / batch.EXECUTED, as_version=4)
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1)), counts
        out = nb.cells[-1].outputs[0]["data"]["text/plain"]
        assert out == str(2 * s.parameters["x"])  # this run's x, not an earlier run's


def test_a_kept_kernel_is_recycled_after_max_runs(tmp_path):
    nb = _notebook(tmp_path)
    kept = kernels.KeptKernel(batch.KERNEL_NAME, max_runs=2)
    try:
        pids = []
        for x in (1, 2, 3):
            spec = batch.make_spec(nb, {"x": x}, data_dir=tmp_path / "data", out_root=tmp_path / "runs")
            assert batch.execute(spec, kernel=kept).status == "ok"
            pids.append(_kernel(spec)["pid"])
    finally:
        kept.close()
    assert pids[0] == pids[1] != pids[2]


def test_a_kept_kernel_gives_the_fresh_kernels_record(tmp_path):
    # the fixture effect notebook on a kept kernel after another run equals a fresh kernel's run
    from research import simulate
    from tests.test_batch import FIXTURES

    data = tmp_path / "data"
    simulate.write_sample(data_dir=data)
    nb = FIXTURES / "10-fixture-effect.ipynb"
    specs = [batch.make_spec(nb, {"threshold": t}, data_dir=data, out_root=tmp_path / "kept") for t in (1.5, 2.5)]
    assert batch.run_grid(specs, workers=1, progress=False).ok
    fresh = batch.make_spec(nb, {"threshold": 2.5}, data_dir=data, out_root=tmp_path / "fresh")
    assert batch.execute(fresh).status == "ok"
    got, want = load_record(specs[1].run_dir).verdicts, load_record(fresh.run_dir).verdicts
    assert [(v.hypothesis, v.effect, v.pvalue, v.n_events) for v in got] == [(v.hypothesis, v.effect, v.pvalue, v.n_events) for v in want]
