"""A second worker on a cold grid of a study notebook: ``research grid -w 1`` against ``-w 2``.

``bench_batch.py`` times a light fixture notebook (about 0.2 s a run): on that grid each worker's
start (its process, kernel and imports, about 2.5 s) is longer than all of its runs, so a cold
second worker is bounded near 1.4x by Amdahl and only warm workers show the scaling. This script
times the grid a researcher runs: 16 parameter sets of ``notebooks/10-funding-resets.ipynb`` (its
defaults: 200 placebo studies, figures exported) on the embedded simulated market, each run of the
grid a fresh ``research grid`` command from a fresh output folder, as typed at the shell, so
every worker and kernel starts cold and the command's own start is inside the timing.

Why it is fair: both arms are the same command on the same lake and notebook, differing only in
``--workers``; the arms take turns, the order alternating per round, so machine load hits both
alike; the results are checked equal. Printed per arm: wall seconds and CPU cores used (user + sys
of the command and everything it waited for, over wall). The single worker's kernel already runs
part of each study on the second core (its polars and BLAS threads), so a second worker cannot
double its speed; the ratio is printed beside its ceiling, what w=2 would give with both cores busy
from its start to its end doing the CPU work it did (``w=1 wall / (w=2 CPU / 2)``: on 2 cores
w=2 cannot take less wall time than half its CPU time). The gap between the two is all a runner
could still win.

    python benchmarks/bench_grid_cold.py               # 3 rounds (about 4 minutes on 2 cores)
    python benchmarks/bench_grid_cold.py --quick       # 2 runs, 1 round: a smoke test

The target (2-core machine) is ``w=1 / w=2`` >= 1.8 at the median; on this grid the ceiling is
itself only 1.8 (1.79-1.84 in three runs), so the target reads at the edge of what is possible.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = "10-funding-resets"
GRID = {"elevated_k": [1.5, 2.0, 2.5, 3.0], "min_spacing_hours": [12, 24, 36, 48]}
CLI = [sys.executable, "-c", "from research.cli import app; app()"]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def write_grid(tmp: Path, runs: int) -> Path:
    """A grid file of ``runs`` parameter sets (the first of the 4 x 4 product) over the whole market."""
    import itertools

    sets = [dict(zip(GRID, vals)) for vals in itertools.product(*GRID.values())][:runs]
    # a zip over explicit lists: any prefix of the product; the notebook by its stem, which the
    # grid finds in the project's notebooks/ (the grid file lives outside the project)
    spec = {"data_dir": str(tmp / "data"),
            "runs": [{"notebook": NOTEBOOK, "parameters": {"start": "2024-10-01", "end": "2026-04-01"},
                      "zip": {k: [s[k] for s in sets] for k in GRID}}]}
    path = tmp / "grid.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def run_arm(grid: Path, workers: int, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one ``research grid`` command."""
    c0, t0 = _children_cpu(), time.perf_counter()
    p = subprocess.run([*CLI, "grid", str(grid), "--workers", str(workers), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, cwd=grid.parent)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if p.returncode:
        raise RuntimeError(f"research grid -w {workers} failed (exit {p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return wall, cpu


def verdicts(out: Path) -> list[tuple]:
    from research.records import load

    dirs = sorted(d for d in (out / NOTEBOOK).iterdir() if d.is_dir())
    return [(d.name, v.effect, v.n_events, v.pvalue) for d in dirs for v in load(d).verdicts]


def _summary(name: str, xs: list[float], unit: str) -> str:
    return f"{name:<34} min {min(xs):7.2f} {unit}  median {statistics.median(xs):7.2f} {unit}  (n={len(xs)})"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 runs, 1 round: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.rounds = 2, 1
    from research import simulate

    load = os.getloadavg()
    print(f"load average before start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    wall: dict[str, list[float]] = {"w=1": [], "w=2": []}
    cores: dict[str, list[float]] = {"w=1": [], "w=2": []}
    with tempfile.TemporaryDirectory(prefix="bench-grid-cold-") as d:
        tmp = Path(d)
        simulate.write_sample(data_dir=tmp / "data")
        grid = write_grid(tmp, args.runs)
        expected, n = None, 0
        for r in range(args.rounds):
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                n += 1
                out = tmp / f"out-{n}"
                secs, cpu = run_arm(grid, w, out)
                wall[f"w={w}"].append(secs)
                cores[f"w={w}"].append(cpu / secs)
                got = verdicts(out)
                expected = got if expected is None else expected
                assert got == expected, f"w={w}: results differ from the first arm's"
            print(f"  round {r + 1}: w=1 {wall['w=1'][-1]:.1f} s, w=2 {wall['w=2'][-1]:.1f} s", flush=True)
    print(f"cold grid: {args.runs} runs of {NOTEBOOK}.ipynb (defaults) on the simulated market, "
          f"a fresh `research grid` command per timing, {args.rounds} interleaved round(s)")
    for k in wall:
        print("  " + _summary(f"grid {k} wall", wall[k], "s"))
        print("  " + _summary(f"grid {k} CPU cores used", cores[k], " "))
    ratio = [a / b for a, b in zip(wall["w=1"], wall["w=2"])]
    # what w=2 would give with both cores busy from start to end, doing the CPU work it did
    ceiling = [a / (b * c / 2) for a, b, c in zip(wall["w=1"], wall["w=2"], cores["w=2"])]
    print("  " + _summary("w=1 / w=2 (target >= 1.8)", ratio, "x"))
    print("  " + _summary("ceiling w=1 wall / (w=2 CPU / 2)", ceiling, "x"))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return {"wall": wall, "cores": cores, "ratio": ratio}


if __name__ == "__main__":
    main()
