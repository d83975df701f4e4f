"""Batch speed: a 16-run grid on 1 and 2 workers against plain papermill, the dask executor against
local workers, and the report end to end on the embedded default split into its parts.

Targets (2-core machine, at the median over rounds): a second worker gives >= 1.8x on the 16-run
grid once the workers are up (``kept w=1 / kept w=2``; the cold ``grid w=1 / grid w=2`` is printed
beside its Amdahl bound); the grid on 2 workers is at least as fast as the best plain baseline;
``dask / grid w=2`` <= 1.2 on a local 2-worker cluster; the report under 30 s.

    python benchmarks/bench_batch.py                       # 3 rounds of everything
    python benchmarks/bench_batch.py --rounds 5 --skip-report
    python benchmarks/bench_batch.py --quick               # 2 runs, 1 round: a smoke test

Arms, run interleaved in every round (one arm after the other, the order rotated per round, so
machine load hits every arm alike; min and median are printed per arm and per ratio):

``seq``
    a plain loop of ``papermill.execute_notebook`` in this process, with the SAME kernel shutdown
    and transport (IPC sockets) as the runner (``shutdown_kernel="immediate"``: every cell has run and saved its outputs, so a
    graceful shutdown only waits). It is what a user writes without our runner; same shutdown, so
    the comparison measures the runner, not a slower kernel exit.
``pool2``
    ``concurrent.futures.ProcessPoolExecutor(2)`` over the same ``papermill.execute_notebook``
    call and shutdown, with the same thread caps as our workers (1 thread per pool on 2 cores) and
    the same CPU shares (each pool process, and the kernels it starts, on its own CPU), its
    processes spawned and papermill imported before the timing: the strongest two-process
    alternative a user can write in ten lines.
``grid w=1`` / ``grid w=2``
    ``research.batch.run_grid`` with one and two workers (one worker: this process; two: long-lived
    worker processes, each with its kernel on its own CPU; each keeps one kernel for its runs, reset
    before every run).
``kept w=1`` / ``kept w=2``
    ``run_grid(workers=pool)`` on a ``research.batch.LocalWorkers`` pool of 1 and 2 worker
    processes made for the arm and warmed by one run per worker, both outside the timing (as the
    pool2 processes and the dask cluster are): a grid on warm workers, what a session that runs
    grid after grid gets from its second grid on. A fresh pool per timing, so no kernel reaches
    ``MAX_RUNS`` (24) inside a timing and gets replaced there in one arm and not in the other.
    These arms take 2-4 s, short enough for machine noise to move one timing by 20 %, so each round
    times them ``--kept-reps`` times (3), the order rotated every time; the ratio's min and median
    are over those pairs.
``kept w=2 unpinned``
    the same with ``TREADMILL_PIN_WORKERS=0``: the OS places the workers and kernels anywhere
    instead of each pair on its own CPU, which shows what the CPU shares are worth.
``dask``
    ``run_grid(executor="dask")`` on a ``LocalCluster`` of 2 single-threaded worker processes,
    made before the arm's timing and closed after it, so its worker processes and kernels start
    cold as the local arms' do; on a long-lived cluster a second grid would find them warm.

Every arm's processes (pool, cluster, kept workers) exist only during that arm: an idle cluster's
heartbeats beside a timed arm would slow the arm that uses both cores most.

Each grid arm also prints the time until every worker has its first result: the workers' and
kernels' start and the first run, which a second worker cannot share. On a 16-run grid of a
sub-second notebook that serial part bounds the cold ``w=1 / w=2`` well below 2 (Amdahl); the
bench prints the bound from the w=1 arm's own start S and run time r, ``T1 / (S + 7 r)``: what
two workers would take if each started as fast as the single worker and they then scaled
perfectly. ``kept w=1 / kept w=2`` is the scaling once that start is paid.
``bench_grid_cold.py`` times the cold grid on a study notebook, whose runs outlast the start.

All arms run the same 16 parameter sets of ``tests/fixtures_nb/10-fixture-effect.ipynb`` (imports
polars/altair/scipy/research, reads the simulated lake, vectorised event paths, a t-test, one chart,
a results record) against the same data, and their verdicts are checked equal.

The report arm runs ``research report`` on the embedded default (empty lake: the simulated market,
the real ``notebooks/``) and splits the time from what the runs record: per notebook, kernel start
(papermill's start to the first cell: on a worker's first run the kept kernel's boot and warm-up
imports, on later runs its reset), the inputs cell (the import line, free on a kept kernel, and the
queries), statistics (result and display cells), figure export (the record cell, plus the worker's
SVG render from ``status.json``). Parts are seconds summed over notebooks (divide by the workers
for a wall estimate). It also prints what the import line costs in a fresh interpreter, which a
fresh kernel per run would pay for every notebook.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tests" / "fixtures_nb" / "10-fixture-effect.ipynb"
SHUTDOWN = "immediate"  # the runner's kernel shutdown, used by every baseline too
IMPORT_LINE = "from research import hypotheses as H, panel, records"


THREAD_VARS = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _caps(workers: int) -> dict[str, str]:
    """The runner's thread caps (research.batch.executors._worker_env), for the baselines."""
    from research.batch.executors import _usable_cpus

    n = str(max(1, _usable_cpus() // workers))
    return {v: n for v in THREAD_VARS}


def _pm_run(nb: str, out: str, params: dict) -> None:
    import papermill as pm

    from research.batch.execute import _kernel_manager_class

    Path(out).mkdir(parents=True, exist_ok=True)
    # the runner's kernel transport too (IPC sockets): over TCP, two processes starting kernels at
    # once can race for a port ("Address already in use"), which would crash the baseline, not time it
    km = _kernel_manager_class()
    pm.execute_notebook(nb, str(Path(out) / "executed.ipynb"), parameters={**params, "output_dir": out},
                        kernel_name="python3", progress_bar=False, cwd=out, shutdown_kernel=SHUTDOWN,
                        **({"kernel_manager_class": km} if km else {}))


def _pool_init(env: dict[str, str], shares: list[list[int]] | None = None) -> None:
    os.environ.update(env)
    if shares:  # our workers' CPU shares too (research.batch.executors.cpu_shares), by pool process number
        os.sched_setaffinity(0, shares[(mp.current_process()._identity[0] - 1) % len(shares)])
    import papermill  # noqa: F401  (imported before the timing, as by a warm pool)

    from research.batch import execute  # noqa: F401


def _verdicts(dirs) -> list[tuple]:
    from research.records import load

    return [(v.effect, v.n_events) for d in dirs for v in load(d).verdicts]


class GridArms:
    """The grid arms on one simulated lake; every call returns wall seconds and checks results."""

    def __init__(self, tmp: Path, runs: int):
        from research import batch, simulate

        self.tmp, self.data = tmp, tmp / "data"
        simulate.write_sample(data_dir=self.data)
        grid = [dict(threshold=t, horizon=h) for t, h in itertools.product([1.5, 2.0, 2.5, 3.0], [6, 12, 24, 48])]
        self.params = [{**p, "data_dir": str(self.data)} for p in grid[:runs]]
        batch.ensure_kernel()
        self.expected = None
        self.n = 0
        self.startup: dict[str, list[float]] = {}
        # warm the file system cache and the kernelspec lookup once, outside every timing
        _pm_run(str(NOTEBOOK), str(tmp / "warm"), self.params[0])

    def _out(self, arm: str) -> Path:
        self.n += 1
        return self.tmp / f"{arm}-{self.n}"

    def _check(self, arm: str, dirs) -> None:
        got = _verdicts(dirs)
        if self.expected is None:
            self.expected = got
        assert got == self.expected, f"{arm}: results differ from the first arm's"

    def seq(self) -> float:
        out = self._out("seq")
        t0 = time.perf_counter()
        for i, p in enumerate(self.params):
            _pm_run(str(NOTEBOOK), str(out / str(i)), p)
        t = time.perf_counter() - t0
        self._check("seq", [out / str(i) for i in range(len(self.params))])
        return t

    def pool2(self) -> float:
        out = self._out("pool2")
        # spawned: forking this process after it has driven kernels (threads, event loops) can hang
        from research.batch.executors import cpu_shares

        with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=_pool_init,
                                    initargs=(_caps(2), cpu_shares(2))) as pool:
            list(pool.map(int, range(4)))  # start the pool processes outside the timing
            t0 = time.perf_counter()
            list(pool.map(_pm_run, itertools.repeat(str(NOTEBOOK)), [str(out / str(i)) for i in range(len(self.params))],
                          self.params))
            t = time.perf_counter() - t0
        self._check("pool2", [out / str(i) for i in range(len(self.params))])
        return t

    def kept(self, workers: int, pin: bool = True) -> float:
        from research import batch
        from research.batch.executors import PIN_ENV

        out = self._out(f"kept{workers}{'' if pin else 'u'}")
        warm = [batch.make_spec(NOTEBOOK, {k: v for k, v in p.items() if k != "data_dir"}, data_dir=self.data,
                                out_root=self.tmp / f"warm-{self.n}") for p in self.params[:workers]]
        specs = [batch.make_spec(NOTEBOOK, {k: v for k, v in p.items() if k != "data_dir"}, data_dir=self.data,
                                 out_root=out) for p in self.params]
        saved = os.environ.get(PIN_ENV)
        if not pin:  # read when the pool is made: its workers are placed by the OS
            os.environ[PIN_ENV] = "0"
        try:
            pool = batch.LocalWorkers(workers)
        finally:
            if saved is None:
                os.environ.pop(PIN_ENV, None)
            else:
                os.environ[PIN_ENV] = saved
        with pool:
            assert batch.run_grid(warm, workers=pool, progress=False).ok  # outside the timing
            t0 = time.perf_counter()
            res = batch.run_grid(specs, workers=pool, progress=False)
            t = time.perf_counter() - t0
        assert res.ok, [r.error for r in res.failed]
        self._check(f"kept w={workers}", [s.run_dir for s in specs])
        return t

    def grid(self, workers: int, executor: str = "process") -> float:
        from research import batch

        out = self._out(f"grid{workers}{executor}")
        specs = [batch.make_spec(NOTEBOOK, {k: v for k, v in p.items() if k != "data_dir"}, data_dir=self.data,
                                 out_root=out) for p in self.params]
        firsts: list[float] = []
        with contextlib.ExitStack() as stack:
            sched = None
            if executor == "dask":
                # a fresh cluster per round, made outside the timing: its worker processes (and so
                # their kept kernels) start cold like the local arms', and no arm runs beside it
                from distributed import LocalCluster

                cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                           dashboard_address=None))
                sched = cluster.scheduler_address
            t0 = time.perf_counter()
            res = batch.run_grid(specs, workers=workers, executor=executor, scheduler=sched, progress=False,
                                 on_result=lambda r: firsts.append(time.perf_counter() - t0))
            t = time.perf_counter() - t0
        # until every worker has a result: worker and kernel start plus the first run, which a
        # second worker cannot share (the grid's serial part)
        self.startup.setdefault(f"grid {executor} w={workers}", []).append(firsts[min(workers, len(firsts)) - 1])
        assert res.ok, [r.error for r in res.failed]
        self._check(f"grid {executor} w={workers}", [s.run_dir for s in specs])
        return t


def _summary(name: str, xs: list[float], unit: str = "s") -> str:
    return f"{name:<16} min {min(xs):7.2f} {unit}  median {statistics.median(xs):7.2f} {unit}  (n={len(xs)})"


def bench_grid(tmp: Path, runs: int, rounds: int, dask: bool, kept_reps: int = 3) -> dict[str, list[float]]:
    arms = GridArms(tmp, runs)
    times: dict[str, list[float]] = {k: [] for k in ("seq", "pool2", "grid w=1", "grid w=2", "kept w=1", "kept w=2",
                                                     "kept w=2 unpinned")}
    kept_arms = {"kept w=1": lambda: arms.kept(1), "kept w=2": lambda: arms.kept(2),
                 "kept w=2 unpinned": lambda: arms.kept(2, pin=False)}

    def kept_pairs() -> None:
        # the short warm arms (2-4 s) are timed kept_reps times a round, the order rotated every
        # time, so their medians rest on as many pairs as the long arms' on rounds
        names = list(kept_arms)
        for i in range(kept_reps):
            for name in names[i % 3:] + names[:i % 3]:
                times[name].append(kept_arms[name]())

    calls = {"seq": lambda: times["seq"].append(arms.seq()), "pool2": lambda: times["pool2"].append(arms.pool2()),
             "grid w=1": lambda: times["grid w=1"].append(arms.grid(1)),
             "grid w=2": lambda: times["grid w=2"].append(arms.grid(2)), "kept": kept_pairs}
    if dask:
        times["dask"] = []
        calls["dask"] = lambda: times["dask"].append(arms.grid(2, "dask"))
    names = list(calls)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            calls[name]()
        print(f"  round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.1f} s" for k in times), flush=True)
    names = list(times)
    print(f"grid: {len(arms.params)} runs of {NOTEBOOK.name}, {rounds} interleaved round(s), "
          f"the kept arms {kept_reps} times a round")
    for k in names:
        print("  " + _summary(k, times[k]))
    ratios = {"w=1 / w=2 (cold start)": ("grid w=1", "grid w=2"),
              "kept w=1 / kept w=2 (target >= 1.8)": ("kept w=1", "kept w=2"),
              "kept w=1 / kept w=2 unpinned": ("kept w=1", "kept w=2 unpinned"),
              "kept w=2 unpinned / kept w=2 (the CPU shares' gain)": ("kept w=2 unpinned", "kept w=2"),
              "seq / w=2": ("seq", "grid w=2"),
              "pool2 / w=2 (>= 1)": ("pool2", "grid w=2")}
    if dask:
        ratios["dask / w=2 (target <= 1.2)"] = ("dask", "grid w=2")
    for label, (a, b) in ratios.items():
        rs = [x / y for x, y in zip(times[a], times[b])]
        print("  " + _summary(label, rs, "x"))
    for label, xs in arms.startup.items():
        print("  " + _summary(f"{label} until every worker's first result", xs))
    s1, s2 = arms.startup.get("grid process w=1"), arms.startup.get("grid process w=2")
    n = len(arms.params)
    if s1 and n > 2:  # Amdahl: two workers each starting in S, then perfect scaling of the runs left
        bound = [t1 / (s + (-(-n // 2) - 1) * (t1 - s) / (n - 1)) for t1, s in zip(times["grid w=1"], s1)]
        print("  " + _summary("w=1 / w=2 bound from w=1's start", bound, "x"))
    if s1 and s2:  # the part a second worker can share: the grid after every worker's first result
        rs = [(a - x) / (b - y) for a, x, b, y in zip(times["grid w=1"], s1, times["grid w=2"], s2) if b > y]
        if rs:
            print("  " + _summary("w=1 / w=2 after every worker's first result", rs, "x"))
    return times


def import_seconds(n: int) -> list[float]:
    """Wall time of the thin notebooks' import line in fresh interpreters (the kernel's cost)."""
    code = f"import time; t = time.perf_counter(); {IMPORT_LINE}; print(time.perf_counter() - t)"
    env = {**os.environ, **_caps(2)}
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env=env).stdout) for _ in range(n)]


def _ts(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def split_runs(report_json: Path) -> dict[str, float]:
    """Seconds per part summed over the report's notebooks, from the executed notebooks' metadata."""
    parts = dict.fromkeys(("kernel", "inputs", "statistics", "figures", "other"), 0.0)
    for run in json.loads(report_json.read_text())["runs"]:
        if not run.get("executed"):
            continue
        nb = json.loads(Path(run["executed"]).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        starts = [c["metadata"].get("papermill", {}).get("start_time") for c in code]
        if starts and starts[0]:
            parts["kernel"] += _ts(starts[0]) - _ts(nb["metadata"]["papermill"]["start_time"])
        for c in code:
            src = "".join(c["source"])
            sec = c["metadata"].get("papermill", {}).get("duration") or 0.0
            key = ("inputs" if "panel." in src else "figures" if "write_result" in src or ".save()" in src
                   else "statistics" if "H.run" in src or src.strip() == "res" else "other")
            parts[key] += sec
        status = Path(run["run_dir"]) / "status.json"
        if status.exists():
            parts["figures"] += json.loads(status.read_text()).get("figures_seconds", 0.0)
    return parts


def bench_report(tmp: Path, workers: int, rounds: int) -> list[float]:
    from research import batch, paths, report

    nbs = batch.numbered_notebooks(paths.NOTEBOOKS_DIR)
    if not nbs:
        print(f"report: skipped, {paths.NOTEBOOKS_DIR} has no numbered notebooks")
        return []
    walls, splits, imports = [], [], []
    for r in range(rounds):
        imports += import_seconds(1)
        out = tmp / f"report-{r}"
        t0 = time.perf_counter()
        rep = report.build_report(out=out, data_dir=tmp / "empty-data", workers=workers, progress=False)
        walls.append(time.perf_counter() - t0)
        splits.append(split_runs(out / "report.json"))
        failed = ", ".join(e.stem for e in rep.failed) or "none"
        print(f"  round {r + 1}: report {walls[-1]:.1f} s, {len(rep.entries)} notebooks, failed: {failed}", flush=True)
    print(f"report: `research report` on the embedded default, {len(nbs)} notebooks, {workers} workers, "
          f"{os.cpu_count()} cores")
    print("  " + _summary("end to end", walls) + "   (target < 30 s)")
    med = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    parts = {"kernel start": med["kernel"], "inputs cell": med["inputs"], "statistics": med["statistics"],
             "figure export": med["figures"], "other cells": med["other"]}
    total = sum(parts.values())
    print(f"  split (median over rounds, seconds summed over notebooks; / {workers} workers ~ wall):")
    for k, v in parts.items():
        print(f"    {k:<14} {v:7.1f} s  {100 * v / total:5.1f} %")
    print(f"  the import line in a fresh interpreter: {statistics.median(imports):.2f} s (a kernel per run would pay "
          f"it {len(nbs)} times, {statistics.median(imports) * len(nbs):.1f} s; kept kernels pay it once per worker)")
    return walls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kept-reps", type=int, default=3, help="timings of each kept arm per round")
    ap.add_argument("--workers", type=int, default=2, help="workers of the report arm")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 runs, 1 round, no report: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.rounds, args.kept_reps, args.skip_report = 2, 1, 1, True
    load = os.getloadavg()
    print(f"load average before start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as d:
        tmp = Path(d)
        if not args.skip_grid:
            try:
                import distributed  # noqa: F401
                dask = not args.skip_dask
            except ImportError:
                print("dask arm skipped: distributed is not installed")
                dask = False
            out["grid"] = bench_grid(tmp, args.runs, args.rounds, dask, args.kept_reps)
        if not args.skip_report:
            out["report"] = bench_report(tmp, args.workers, args.rounds)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
