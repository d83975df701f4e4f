"""Long-horizon report speed (#13): the report of the 10 hypothesis/event notebooks on the long real
pack at ``interval=1d`` over 2020-2026 vs the same report on the standard pack (BTC, 1h, Oct 2025 -
Apr 2026, each notebook's defaults).

Target: the long-horizon report within 2x the standard-pack report. Both arms build a full report
(papermill runs on 2 workers, records, figures, index.html) into a fresh directory each round;
rounds interleave the arms, and min and median of each arm and of the per-round ratio are printed.

    python benchmarks/bench_longhorizon.py            # 3 rounds, the 10 notebooks
    python benchmarks/bench_longhorizon.py --quick    # 1 round, notebooks 00, 10, 20
    python benchmarks/bench_longhorizon.py --real ../shared/data/real --rounds 5

Needs the real pack (``../shared/data/real``); both lakes are imported once, outside the timings.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEN = ["00", "10", "11", "12", "20", "21", "22", "23", "24", "25"]
QUICK = ["00", "10", "20"]
LONG_PARAMS = {"interval": "1d", "start": "2020-01-01", "end": "2026-04-01"}


def _report(out: Path, data_dir: Path, notebooks: list[str], params: dict[str, str], workers: int) -> float:
    from research.report.build import build_report

    t0 = time.perf_counter()
    rep = build_report(out=out, data_dir=data_dir, notebooks=notebooks, parameters=params, workers=workers,
                       progress=False)
    secs = time.perf_counter() - t0
    if rep.failed:
        sys.exit(f"report in {out} has failed notebooks: {rep.failed}")
    return secs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "real"), help="the real pack directory")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one round of notebooks 00, 10, 20")
    a = ap.parse_args(argv)
    real = Path(a.real)
    if not real.is_dir():
        sys.exit(f"--real {real}: no such directory (the real pack, e.g. ../shared/data/real)")
    rounds = a.rounds or (1 if a.quick else 3)
    notebooks = QUICK if a.quick else TEN

    from research.sources.importer import import_pack

    with tempfile.TemporaryDirectory(prefix="bench-longhorizon-") as tmp:
        tmp = Path(tmp)
        import_pack("standard", real, tmp / "standard")
        import_pack("long", real, tmp / "long")
        arms = {"standard (1h, Oct 2025 - Apr 2026)": (tmp / "standard", {}),
                "long (1d, 2020 - 2026)": (tmp / "long", LONG_PARAMS)}
        times: dict[str, list[float]] = {k: [] for k in arms}
        for i in range(rounds):
            # alternate which arm goes first, so neither always runs on a warmer cache
            order = list(arms) if i % 2 == 0 else list(arms)[::-1]
            for k in order:
                data_dir, params = arms[k]
                times[k].append(_report(tmp / f"r{i}-{len(times[k])}-{k.split()[0]}", data_dir, notebooks, params,
                                        a.workers))
                print(f"round {i + 1}/{rounds} {k}: {times[k][-1]:.1f} s", flush=True)
    std, lng = times.values()
    ratios = [b / s for s, b in zip(std, lng)]
    print(f"\n{len(notebooks)} notebooks, {a.workers} workers, {rounds} round(s)")
    for k, v in times.items():
        print(f"  {k:<36} min {min(v):7.1f} s  median {statistics.median(v):7.1f} s")
    print(f"  ratio long / standard                min {min(ratios):7.2f}x  median {statistics.median(ratios):7.2f}x"
          f"  (target <= 2x: {'met' if statistics.median(ratios) <= 2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
