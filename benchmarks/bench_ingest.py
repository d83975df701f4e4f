"""Ingest throughput: archive zips -> validated lake, against DuckDB given the same zips and schema.

Input: the USD-M monthly zips of the local archive mirror (``../shared/data/binance-vision``:
BTCUSDT fundingRate, 1h and 4h klines), replicated byte for byte under ``--symbols`` symbol
names (``S000USDT``, ...) so a run has thousands of files.

Arms, interleaved over ``--rounds`` rounds (the order alternates every round so machine noise
hits both alike), each into a fresh output directory:

* **ours**: :class:`research.sources.binance.BatchIngester` (what ``fetch`` uses) in batches of
  ``--batch-files``, two batches read and prepared on threads while one is stored: unzip
  (within the caps), header check, one CSV parse per batch with the known schema, row checks
  (period, invariants, duplicates), mapping to the canonical tables, lake validation, and the
  partitioned lake write (one Parquet file per table partition and year, fsynced, committed
  to the table log).
* **duckdb**: the strongest fair baseline we know. It is given everything we know and it does
  not have to find out: the zips are unzipped to CSV files (timed, since our arm unzips too;
  on one thread, which is fastest for these small zips, into ``--scratch``, memory by default, so DuckDB does not pay for
  creating thousands of files on disk, which we never do), then one
  ``read_csv`` per dataset with the schema given (``auto_detect=false``, ``header=true``), the
  same mapping (epoch ms -> timestamp, symbol from the file name) and ``COPY ... (FORMAT
  parquet, PARTITION_BY (symbol, year))``, so its output is split by symbol and year like the
  lake. It does not check rows, validate or merge with existing data: it is an upper bound on
  what a plain CSV -> Parquet conversion of the same zips costs, not a like-for-like pipeline.

Prints per arm the min and median seconds and rows/s, the min and median of the per-round
ratio ``duckdb seconds / our seconds`` (= our throughput relative to DuckDB's; target >= 1.0 at
the median), and peak RSS after our batches (streaming: it must not grow with the file count).

Usage: ``python benchmarks/bench_ingest.py [--symbols 24] [--rounds 5] [--batch-files 512]``
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from research.sources import binance  # noqa: E402
from research.sources.binance import FileTask  # noqa: E402
from research.sources.manifest import Manifest  # noqa: E402
from research.sources.results import FetchSummary  # noqa: E402

MIRROR = Path(os.environ.get("TREADMILL_SHARED", ROOT.parent / "shared")) / "data" / "binance-vision"
KLINE_COLS = {"open_time": "BIGINT", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE", "close": "DOUBLE",
              "volume": "DOUBLE", "close_time": "BIGINT", "quote_volume": "DOUBLE", "count": "BIGINT",
              "taker_buy_volume": "DOUBLE", "taker_buy_quote_volume": "DOUBLE", "ignore": "VARCHAR"}
FUNDING_COLS = {"calc_time": "BIGINT", "funding_interval_hours": "INTEGER", "last_funding_rate": "DOUBLE"}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def build_input(tmp: Path, n_symbols: int) -> list[tuple[FileTask, Path]]:
    """Copy the mirror's monthly USD-M zips under ``n_symbols`` names (bytes unchanged)."""
    src = []
    for p in sorted((MIRROR / "data/futures/um/monthly").rglob("*.zip")):
        parts = p.relative_to(MIRROR / "data/futures/um/monthly").parts  # dataset/SYMBOL/[iv/]name
        if parts[1] != "BTCUSDT":
            continue
        iv = parts[2] if len(parts) == 4 else None
        src.append((parts[0], iv, p.stem[-7:], p))
    tasks = []
    for k in range(n_symbols):
        sym = f"S{k:03d}USDT"
        for ds, iv, period, p in src:
            t = FileTask(ds, "um", sym, "monthly", period, iv)
            dest = tmp / "archive" / t.archive_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
            tasks.append((t, dest))
    return tasks


def run_ours(tasks, data_dir: Path, batch_files: int) -> tuple[float, int, list[float]]:
    summary = FetchSummary()
    manifest = Manifest(data_dir)
    peaks = []
    t0 = time.perf_counter()
    with binance.BatchIngester(data_dir, summary, manifest) as ingester:
        for i in range(0, len(tasks), batch_files):
            ingester.submit(tasks[i:i + batch_files])
            peaks.append(rss_mb())
    dt = time.perf_counter() - t0
    if summary.ingest_errors:
        raise SystemExit(f"ingest failed: {summary.ingest_errors[:3]}")
    return dt, sum(summary.rows_in.values()), peaks


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _unzip(job: tuple[Path, Path]) -> None:
    z, dest = job
    with zipfile.ZipFile(z) as zf:
        name = zf.namelist()[0]
        with zf.open(name) as src, open(dest / (z.stem + ".csv"), "wb") as fh:
            shutil.copyfileobj(src, fh)


def run_duckdb(tasks, out: Path, scratch: Path) -> tuple[float, int]:
    """Unzip (timed, one thread, into ``scratch``) and convert with DuckDB, schema given, split by symbol/year."""
    t0 = time.perf_counter()
    csv_dir = Path(tempfile.mkdtemp(dir=scratch))
    groups: dict[str, list[str]] = {}
    jobs = []
    for t, z in tasks:
        dest = csv_dir / t.dataset / (t.interval or "-") / t.symbol
        if not jobs or jobs[-1][1] != dest:
            dest.mkdir(parents=True, exist_ok=True)
        jobs.append((z, dest))
        groups.setdefault(f"{t.dataset}_{t.interval or ''}", []).append(str(dest / (z.stem + ".csv")))
    for job in jobs:  # one thread: measured fastest (0.43 s here against 0.6 s on 2 threads, 0.76 s on 4)
        _unzip(job)
    con = duckdb.connect()
    rows = 0
    for g, files in groups.items():
        funding = g.startswith("fundingRate")
        cols = FUNDING_COLS if funding else KLINE_COLS
        spec = "{" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in cols.items()) + "}"
        tcol = "calc_time" if funding else "open_time"
        target = out / "parquet" / g
        target.parent.mkdir(parents=True, exist_ok=True)
        sel = (f"SELECT epoch_ms({tcol}) AS ts, regexp_extract(filename, '/([A-Z0-9]+)/[^/]+$', 1) AS symbol, "
               f"year(epoch_ms({tcol})) AS year, * EXCLUDE ({tcol}, filename) "
               f"FROM read_csv(?, header = true, auto_detect = false, columns = {spec}, filename = true)")
        con.execute(f"COPY ({sel}) TO {_sql_str(str(target))} (FORMAT parquet, PARTITION_BY (symbol, year), "
                    "COMPRESSION zstd)", [files])
        rows += con.execute("SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                            [str(target / "**" / "*.parquet")]).fetchone()[0]
    con.close()
    dt = time.perf_counter() - t0
    shutil.rmtree(csv_dir, ignore_errors=True)
    return dt, rows


def _stats(xs: list[float]) -> str:
    return f"min {min(xs):7.3f}  median {statistics.median(xs):7.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=24)
    ap.add_argument("--batch-files", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (order alternates)")
    ap.add_argument("--scratch", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
                    help="where DuckDB's unzipped CSVs go [/dev/shm: memory, the fastest place we have]")
    a = ap.parse_args()
    if not MIRROR.exists():
        raise SystemExit(f"{MIRROR} is missing (set TREADMILL_SHARED)")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        tasks = build_input(tmp, a.symbols)
        os.sync()
        ours_s, duck_s, ratios, peaks = [], [], [], []
        rows = {}
        for r in range(a.rounds):
            order = ("ours", "duckdb") if r % 2 == 0 else ("duckdb", "ours")
            took = {}
            for arm in order:
                out = tmp / f"{arm}{r}"
                os.sync()  # the last arm's dirty pages must not land in this arm's fsyncs
                if arm == "ours":
                    took[arm], rows[arm], peaks = run_ours(tasks, out, a.batch_files)
                else:
                    took[arm], rows[arm] = run_duckdb(tasks, out, a.scratch or tmp)
                shutil.rmtree(out, ignore_errors=True)
            ours_s.append(took["ours"])
            duck_s.append(took["duckdb"])
            ratios.append(took["duckdb"] / took["ours"])
        n = rows["ours"]
        print(f"files: {len(tasks)} zips ({a.symbols} symbols x {len(tasks) // a.symbols}), batch {a.batch_files} "
              f"files, {a.rounds} interleaved rounds, {n:,} rows")
        print(f"ours   (zip -> checked, validated lake)        s: {_stats(ours_s)}  "
              f"(median {n / statistics.median(ours_s):,.0f} rows/s)")
        print(f"duckdb (unzip + read_csv schema -> parquet/sym/yr) s: {_stats(duck_s)}  "
              f"(median {rows['duckdb'] / statistics.median(duck_s):,.0f} rows/s)")
        if rows["ours"] != rows["duckdb"]:
            print(f"WARNING: row counts differ ({rows['ours']} vs {rows['duckdb']})")
        med = statistics.median(ratios)
        print(f"ratio ours/duckdb throughput: min {min(ratios):.2f}  median {med:.2f}  "
              f"(target >= 1.0 at the median) -> {'OK' if med >= 1.0 else 'BELOW TARGET'}")
        print(f"peak RSS (MiB) after our batches in the last round: {', '.join(f'{p:.0f}' for p in peaks)}")


if __name__ == "__main__":
    main()
