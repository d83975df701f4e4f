"""Batch speed: a 16-run grid on 2 workers vs the same runs in a sequential papermill loop, and the
report end to end on the embedded default (simulated market, the real notebooks/ set).

Targets (2-core machine): grid >= 1.7x faster than the sequential loop; report under 90 s.

    python benchmarks/bench_batch.py                 # both
    python benchmarks/bench_batch.py --skip-report   # only the grid ratio

The grid notebook is ``tests/fixtures_nb/10-fixture-effect.ipynb``: a small but realistic event study
(imports polars/altair/scipy/research, reads the simulated lake, vectorised event paths, t-test,
one chart exported to PNG/SVG/PDF, a results record). Both arms run the same 16 parameter sets
against the same data in fresh kernels; the baseline is plain ``papermill.execute_notebook`` in a loop.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tests" / "fixtures_nb" / "10-fixture-effect.ipynb"


def bench_grid(tmp: Path, runs: int, workers: int) -> float:
    import papermill as pm

    from research import batch, simulate
    from research.records import load

    data = tmp / "data"
    simulate.write_sample(data_dir=data)
    grid = [dict(threshold=t, horizon=h) for t, h in itertools.product([1.5, 2.0, 2.5, 3.0], [6, 12, 24, 48, 72])][:runs]
    specs = [batch.make_spec(NOTEBOOK, p, data_dir=data, out_root=tmp / "grid") for p in grid]
    batch.ensure_kernel()

    # warm the file system cache and the kernelspec lookup once, outside both timings
    pm.execute_notebook(str(NOTEBOOK), str(tmp / "warm.ipynb"), parameters={"data_dir": str(data), "output_dir": str(tmp / "warm")},
                        kernel_name="python3", progress_bar=False)

    t0 = time.perf_counter()
    for i, p in enumerate(grid):
        out = tmp / "seq" / str(i)
        out.mkdir(parents=True)
        pm.execute_notebook(str(NOTEBOOK), str(out / "executed.ipynb"),
                            parameters={**p, "data_dir": str(data), "output_dir": str(out)},
                            kernel_name="python3", progress_bar=False, cwd=str(out))
    sequential = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = batch.run_grid(specs, workers=workers, progress=False)
    parallel = time.perf_counter() - t0

    assert res.ok, [r.error for r in res.failed]
    # same work: identical verdicts from both arms
    for i, s in enumerate(specs):
        a, b = load(tmp / "seq" / str(i)).verdicts[0], load(s.run_dir).verdicts[0]
        assert (a.effect, a.n_events) == (b.effect, b.n_events), (i, a, b)
    ratio = sequential / parallel
    print(f"grid: {len(specs)} runs of {NOTEBOOK.name}: sequential papermill loop {sequential:.1f} s "
          f"({sequential / len(specs):.1f} s/run), grid on {workers} workers {parallel:.1f} s -> "
          f"{ratio:.2f}x faster (target >= 1.7x)")
    return ratio


def bench_report(tmp: Path, workers: int) -> float:
    from research import batch, paths, report

    nbs = batch.numbered_notebooks(paths.NOTEBOOKS_DIR)
    if not nbs:
        print(f"report: skipped, {paths.NOTEBOOKS_DIR} has no numbered notebooks")
        return float("nan")
    t0 = time.perf_counter()
    rep = report.build_report(out=tmp / "report", data_dir=tmp / "empty-data", workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    slowest = sorted(rep.entries, key=lambda e: -e.run.seconds)[:3]
    print(f"report: {len(rep.entries)} notebooks on the simulated market, {len(rep.failed)} failed, "
          f"end to end {seconds:.1f} s on {os.cpu_count()} cores with {workers} workers (target < 90 s); slowest: "
          + ", ".join(f"{e.stem} {e.run.seconds:.1f} s" for e in slowest))
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-report", action="store_true")
    args = ap.parse_args(argv)
    try:
        load = os.getloadavg()[0]
        print(f"load average before start: {load:.2f} on {os.cpu_count()} cores")
    except OSError:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as d:
        tmp = Path(d)
        if not args.skip_grid:
            bench_grid(tmp, args.runs, args.workers)
        if not args.skip_report:
            bench_report(tmp, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
