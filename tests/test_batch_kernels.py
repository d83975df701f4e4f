"""research.batch.kernels: runs of one worker share a kept kernel, and nothing else.

One grid of four runs in this process (workers=1): runs 1-2 share a kernel, run 3 fails and
discards it, run 4 gets a fresh one. Every run checks, in its own cells, that no name of an earlier
run is visible, that it starts in its run directory and that its cells are numbered from 1.
"""
from __future__ import annotations

import json
from pathlib import Path

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
cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "cpus": cpus}, open(os.path.join(output_dir, "kernel.json"), "w"))
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


def test_runs_on_a_kept_kernel_share_one_connected_client(tmp_path):
    nb = _notebook(tmp_path)
    kept = kernels.KeptKernel(batch.KERNEL_NAME)
    try:
        specs = [batch.make_spec(nb, {"x": x, "fail": x == 3}, data_dir=tmp_path / "data", out_root=tmp_path / "runs")
                 for x in (1, 2, 3)]
        assert batch.execute(specs[0], kernel=kept).status == "ok"
        kc = kept.kc
        assert kc is not None and kc.channels_running and not kc.hb_channel.is_alive()
        kc.execute("print('left unread by nobody')")  # a reply and outputs no run asked for
        assert batch.execute(specs[1], kernel=kept).status == "ok"
        assert kept.kc is kc, "the second run should reuse the kept client"
        out = nbformat.read(specs[1].run_dir / batch.EXECUTED, as_version=4)
        assert "left unread" not in json.dumps(out.cells[-1].outputs)
        assert batch.execute(specs[2], kernel=kept).status == "failed"
        assert kept.kc is None and not kc.channels_running, "a discarded kernel's client is stopped"
    finally:
        kept.close()


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


def test_a_kept_kernel_that_dies_or_overruns_fails_its_run_and_the_end_state_is_written_once(tmp_path, monkeypatch):
    # nbclient watches the kernel and the timeout between its reads: on the kept (blocking) client
    # a kernel dying mid-cell, or a cell past the timeout, used to hang the run for good.
    # papermill writes the notebook when the engine returns, so the engine's own last save is
    # skipped; when the engine raises (a dead kernel, a timeout) that save is the only one.
    import threading
    import time

    import papermill.engines
    import papermill.execute

    writes = []
    real = papermill.execute.write_ipynb

    def counting(nb, path):
        writes.append((Path(path).parent.name, bool(nb.metadata.papermill.get("end_time"))))
        real(nb, path)

    monkeypatch.setattr(papermill.execute, "write_ipynb", counting)
    monkeypatch.setattr(papermill.engines, "write_ipynb", counting)
    nb = _notebook(tmp_path)
    edited = nbformat.read(nb, as_version=4)
    edited.cells.insert(2, nbformat.v4.new_code_cell("import time\nif x == 3:\n    os._exit(1)\nif x == 4:\n    time.sleep(120)"))
    nbformat.write(edited, nb)
    kept, runner = kernels.KeptKernel(batch.KERNEL_NAME), None
    try:
        specs = [batch.make_spec(nb, {"x": x, "fail": x == 2}, data_dir=tmp_path / "data", out_root=tmp_path / "runs",
                                 timeout=3 if x == 4 else None) for x in (1, 2, 3, 4)]
        t0 = time.monotonic()
        results = []
        # in a daemon thread: a hang (blocked in a zmq poll, which no pytest timeout interrupts)
        # fails this test instead of stalling the suite
        runner = threading.Thread(target=lambda: results.extend(batch.execute(s, kernel=kept) for s in specs), daemon=True)
        runner.start()
        runner.join(timeout=120)
        took = time.monotonic() - t0
        assert not runner.is_alive(), f"still running after {took:.0f} s: a dead kernel or an overrun cell hangs the run"
    finally:
        if runner is None or not runner.is_alive():
            kept.close()
    assert [r.status for r in results] == ["ok", "failed", "failed", "failed"], [r.error for r in results]
    assert results[2].error.startswith("DeadKernelError") and results[3].error.startswith("CellTimeoutError"), \
        [r.error for r in results]
    assert took < 60, f"the dead kernel and the 3-s timeout took {took:.0f} s to be noticed"
    assert "failed in cell 3" in batch.describe_failure(results[2]) and "see run.log" in batch.describe_failure(results[2])
    for s in specs:
        ends = [w for w in writes if w[0] == s.run_dir.name and w[1]]
        assert len(ends) == 1, f"run x={s.parameters['x']}: the end state was written {len(ends)} times"
    for r in results[2:]:
        partial = nbformat.read(r.executed, as_version=4)
        assert r.executed.endswith("executed.FAILED.ipynb") and partial.metadata.papermill["end_time"]
        states = [c.metadata.papermill["status"] for c in partial.cells]  # parameters, injected, body, stuck, last
        assert states == ["completed", "completed", "completed", "failed", "pending"], states
        assert r.cell == 3, "the stuck cell, numbered in the source notebook"


class _FakeClient:
    """A kernel client whose IOPub misses the first status messages, as a slow-joining SUB socket does."""

    def __init__(self, lost: int, alive: bool = True):
        from queue import Queue

        self.lost, self.alive, self.sent, self.handled = lost, alive, [], None
        self.shell, self.iopub = Queue(), Queue()

    def kernel_info(self):
        msg_id = f"info-{len(self.sent)}"
        self.sent.append(msg_id)
        if self.alive:
            self.shell.put({"parent_header": {"msg_id": msg_id}, "msg_type": "kernel_info_reply", "content": {}})
            if len(self.sent) > self.lost:  # connected by now: busy, then idle, for this request
                for state in ("busy", "idle"):
                    self.iopub.put({"parent_header": {"msg_id": msg_id}, "msg_type": "status",
                                    "content": {"execution_state": state}})
        return msg_id

    def get_shell_msg(self, timeout):
        return self.shell.get(timeout=timeout)

    def get_iopub_msg(self, timeout):
        return self.iopub.get(timeout=timeout)

    def is_alive(self):
        return self.alive

    def _handle_kernel_info_reply(self, msg):
        self.handled = msg


def test_connecting_to_a_kept_kernel_waits_for_iopub_but_not_for_silence():
    import time

    from research.batch.kernels import _wait_ready

    kc = _FakeClient(lost=0)
    t0 = time.perf_counter()
    _wait_ready(kc, timeout=5, iopub_wait=0.2)
    assert time.perf_counter() - t0 < 0.1, "a connected kernel should not cost the 0.2 s idle wait"
    assert kc.sent == ["info-0"] and kc.handled["parent_header"]["msg_id"] == "info-0"

    kc = _FakeClient(lost=2)  # IOPub not connected for two requests: asked again until it is
    _wait_ready(kc, timeout=5, iopub_wait=0.05)
    assert kc.sent == ["info-0", "info-1", "info-2"] and kc.handled["parent_header"]["msg_id"] == "info-2"


def test_connecting_to_a_dead_kept_kernel_says_so():
    from research.batch.kernels import _wait_ready

    with pytest.raises(RuntimeError, match="died"):
        _wait_ready(_FakeClient(lost=0, alive=False), timeout=5, iopub_wait=0.01)


def test_partial_notebook_saves_are_throttled_but_the_last_always_happens(monkeypatch):
    from research.batch import kept_engine

    clock = iter([0.0, 0.2, 0.5, 1.1, 1.3])
    monkeypatch.setattr(kept_engine.time, "monotonic", lambda: next(clock))
    saved = []
    save = kept_engine._throttled(lambda **kw: saved.append(kw), every=1.0)
    for i in range(5):
        save(i=i)
    assert saved == [{"i": 0}, {"i": 3}], "saves within a second of the last one are skipped"


def test_a_failed_run_on_a_kept_kernel_keeps_its_traceback(grid_runs):
    # the end state is written after the throttled saves: the failed cell, its error and timing
    specs, res = grid_runs
    failed = res.results[2]
    nb = nbformat.read(failed.executed, as_version=4)
    body = [c for c in nb.cells if c.cell_type == "code"][2]  # parameters, injected parameters, body
    assert body.metadata.papermill["exception"] is True and body.metadata.papermill["status"] == "failed"
    assert any(o.get("ename") == "RuntimeError" for o in body.outputs)
    assert nb.metadata.papermill["end_time"] and nb.metadata.papermill["duration"] > 0
