"""research.batch.pool: LocalWorkers keep worker processes and their kernels across grids.

One pool of two workers runs two grids: the second grid's runs find the first grid's kernels
(same kernel processes), still start clean, and the pool's workers stay up between the grids and
are gone after ``close``.
"""
from __future__ import annotations

import threading

import pytest

from research import batch
from research.errors import NotebookError
from tests.test_batch_kernels import _kernel, _notebook


@pytest.fixture(scope="module")
def two_grids(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool")
    nb = _notebook(tmp)

    def specs(xs, out):
        return [batch.make_spec(nb, {"x": x}, data_dir=tmp / "data", out_root=tmp / out) for x in xs]

    first, second = specs((1, 2, 3, 4), "first"), specs((5, 6, 7, 8), "second")
    with batch.LocalWorkers(2) as pool:
        r1 = batch.run_grid(first, workers=pool, progress=False)
        procs = [w.proc for w in pool.workers]
        between = [p.poll() for p in procs]
        r2 = batch.run_grid(second, workers=pool, progress=False)
    after = [p.wait(timeout=30) for p in procs]
    return first, second, r1, r2, between, after, pool


def test_the_second_grid_runs_on_the_first_grids_kernels(two_grids):
    first, second, r1, r2, *_ = two_grids
    assert r1.ok and r2.ok, [r.error for r in r1.failed + r2.failed]
    kernels_first = {_kernel(s)["pid"] for s in first}
    kernels_second = {_kernel(s)["pid"] for s in second}
    assert len(kernels_first) == 2, "two workers, one kept kernel each"
    assert kernels_second == kernels_first, "a pool's second grid should reuse its warm kernels"


def test_runs_on_a_pool_still_start_clean(two_grids):
    # the notebook asserts that no name of an earlier run survives; its last cell shows this run's x
    import nbformat

    first, second, *_ = two_grids
    for s in first + second:
        assert _kernel(s)["cwd"] == str(s.run_dir)
        nb = nbformat.read(s.run_dir / batch.EXECUTED, as_version=4)
        assert nb.cells[-1].outputs[0]["data"]["text/plain"] == str(2 * s.parameters["x"])


def test_each_worker_and_its_kernel_run_on_their_own_cpus(two_grids):
    from research.batch.executors import cpu_shares

    first, second, *_, pool = two_grids
    shares = cpu_shares(2)
    if shares is None:
        pytest.skip("fewer than 2 CPUs, or no CPU affinity on this OS: the OS places the workers")
    assert [w.cpus for w in pool.workers] == shares
    by_kernel = {_kernel(s)["pid"]: tuple(_kernel(s)["cpus"]) for s in first + second}
    assert sorted(by_kernel.values()) == sorted(tuple(c) for c in shares), by_kernel


@pytest.mark.parametrize(("cpus", "workers", "want"), [
    (range(8), 3, [[0, 1], [2, 3, 4], [5, 6, 7]]),
    (range(2), 2, [[0], [1]]),
    ((1, 3, 5, 7), 2, [[1, 3], [5, 7]]),  # the CPUs this process may use, not 0..n-1
    (range(2), 1, None),  # one worker: all CPUs, placed by the OS
    (range(2), 3, None),  # more workers than CPUs: no disjoint shares
])
def test_cpu_shares_split_this_processs_cpus(monkeypatch, cpus, workers, want):
    import os

    from research.batch import executors

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cpus), raising=False)
    monkeypatch.delenv(executors.PIN_ENV, raising=False)
    assert executors.cpu_shares(workers) == want
    monkeypatch.setenv(executors.PIN_ENV, "0")
    assert executors.cpu_shares(workers) is None


def test_workers_stay_up_between_grids_and_exit_cleanly_on_close(two_grids):
    *_, between, after, pool = two_grids
    assert between == [None, None], "the pool's workers should outlive a grid"
    assert after == [0, 0]
    assert "closed" in repr(pool)
    with pytest.raises(NotebookError, match="closed"):
        batch.run_grid([], workers=pool, progress=False)


def test_a_busy_pool_refuses_a_second_grid():
    pool = batch.LocalWorkers(1, start=False)
    pool.acquire()
    try:
        with pytest.raises(NotebookError, match="running another grid"):
            pool.acquire()
    finally:
        pool.release()
        pool.close()


def test_a_pool_grid_frees_the_pool_even_when_a_run_fails(tmp_path):
    nb = _notebook(tmp_path)
    specs = [batch.make_spec(nb, {"x": x, "fail": x == 1}, data_dir=tmp_path / "d", out_root=tmp_path / "r")
             for x in (1, 2)]
    with batch.LocalWorkers(1) as pool:
        res = batch.run_grid(specs, workers=pool, progress=False)
        assert [r.status for r in res.results] == ["failed", "ok"]
        assert _kernel(specs[0])["pid"] != _kernel(specs[1])["pid"], "a failed run must discard its kernel"
        t = threading.Thread(target=pool.acquire)  # free again: another grid may take it
        t.start()
        t.join(5)
        pool.release()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_pool_sizes_name_the_parameter(bad):
    with pytest.raises(NotebookError, match=r"LocalWorkers\(n\)"):
        batch.LocalWorkers(bad, start=False)


def test_a_pool_is_local_only():
    with batch.LocalWorkers(1, start=False) as pool:
        with pytest.raises(NotebookError, match="runs locally"):
            batch.run_grid([], workers=pool, executor="dask", scheduler="tcp://127.0.0.1:1", progress=False)


@pytest.mark.parametrize("bad", [0, "2", None])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(NotebookError, match="workers must be"):
        batch.run_grid([], workers=bad, progress=False)
