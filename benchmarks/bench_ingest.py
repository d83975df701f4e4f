"""Ingest throughput: archive zips -> validated lake, beside DuckDB read_csv -> Parquet.

Input: the USD-M monthly zips of the local archive mirror (``../shared/data/binance-vision``:
BTCUSDT fundingRate, 1h and 4h klines), copied read-only into a temp archive and replicated under
``--symbols`` symbol names (``S000USDT``, ...) so the run has many files. Both sides get the same
rows: ours reads the zips (unzip + parse + map + validate + partitioned lake write, streamed in
batches of ``--batch-files`` files); DuckDB reads the same CSVs already unzipped
(``read_csv`` of all files -> one zstd Parquet file per dataset).

Prints rows/s of both, the ratio (target >= 0.8 of DuckDB), and peak RSS after each batch
(``resource.getrusage``): with streaming it must not grow with the number of files.

Usage: ``python benchmarks/bench_ingest.py [--symbols 24] [--batch-files 64]``
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
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
from research.sources.http import FetchSummary, Manifest  # noqa: E402

MIRROR = Path(os.environ.get("TREADMILL_SHARED", ROOT.parent / "shared")) / "data" / "binance-vision"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def build_input(tmp: Path, n_symbols: int) -> list[tuple[FileTask, Path]]:
    """Copy the mirror's monthly USD-M zips under ``n_symbols`` names (bytes unchanged)."""
    src = []
    for p in sorted((MIRROR / "data/futures/um/monthly").rglob("*.zip")):
        parts = p.relative_to(MIRROR / "data/futures/um/monthly").parts  # dataset/SYMBOL/[iv/]name
        if parts[1] != "BTCUSDT":
            continue
        ds = parts[0]
        iv = parts[2] if len(parts) == 4 else None
        period = p.stem.rsplit("-", 2)[-2] + "-" + p.stem.rsplit("-", 1)[-1]
        src.append((ds, iv, period, p))
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
    for i in range(0, len(tasks), batch_files):
        binance.ingest_batch(tasks[i:i + batch_files], data_dir, summary, manifest)
        peaks.append(rss_mb())
    dt = time.perf_counter() - t0
    if summary.ingest_errors:
        raise SystemExit(f"ingest failed: {summary.ingest_errors[:3]}")
    return dt, sum(summary.rows_in.values()), peaks


def run_parse_only(tasks, batch_files: int) -> float:
    """Our unzip + parse + map, without validation and the lake write (where the time goes)."""
    warnings: list[str] = []
    t0 = time.perf_counter()
    for i in range(0, len(tasks), batch_files):
        batch = tasks[i:i + batch_files]
        datas = binance._read_members(batch)
        groups: dict = {}
        for (t, _), d in zip(batch, datas):
            groups.setdefault((t.dataset, t.interval), []).append((t, d))
        for items in groups.values():
            binance._parse_group_fast(items, warnings)
    return time.perf_counter() - t0


def unzip_for_duckdb(tasks, tmp: Path) -> dict[str, list[str]]:
    csv_dir = tmp / "csv"
    groups: dict[str, list[str]] = {}
    for t, z in tasks:  # unzip outside the timing: DuckDB gets plain CSV files
        with zipfile.ZipFile(z) as zf:
            name = zf.namelist()[0]
            out = csv_dir / t.dataset / (t.interval or "") / t.symbol / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(name))
        groups.setdefault(f"{t.dataset}_{t.interval or ''}", []).append(str(out))
    return groups


def run_duckdb(groups: dict[str, list[str]], tmp: Path) -> tuple[float, int]:
    con = duckdb.connect()
    rows = 0
    t0 = time.perf_counter()
    for g, files in groups.items():
        target = tmp / f"duck_{g}.parquet"
        con.execute("COPY (SELECT * FROM read_csv(?, header = true)) TO '" + str(target).replace("'", "''")
                    + "' (FORMAT parquet, COMPRESSION zstd)", [files])
        rows += con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()[0]
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=24)
    ap.add_argument("--batch-files", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for both sides")
    a = ap.parse_args()
    if not MIRROR.exists():
        raise SystemExit(f"{MIRROR} is missing (set TREADMILL_SHARED)")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        tasks = build_input(tmp, a.symbols)
        groups = unzip_for_duckdb(tasks, tmp)
        os.sync()  # flush the unzipped CSVs so neither side pays for the other's writes
        ours = [run_ours(tasks, tmp / f"data{r}", a.batch_files) for r in range(a.repeat)]
        ours_s, ours_rows, peaks = min(ours, key=lambda x: x[0])
        duck_s, duck_rows = min((run_duckdb(groups, tmp) for _ in range(a.repeat)), key=lambda x: x[0])
        parse_s = min(run_parse_only(tasks, a.batch_files) for _ in range(a.repeat))
        print(f"files: {len(tasks)} zips ({a.symbols} symbols x {len(tasks) // a.symbols}), batch {a.batch_files} files, "
              f"best of {a.repeat}")
        print(f"ours   (zip -> validated lake): {ours_rows:>10,} rows in {ours_s:7.3f} s = {ours_rows / ours_s:>12,.0f} rows/s")
        print(f"duckdb (csv -> parquet)       : {duck_rows:>10,} rows in {duck_s:7.3f} s = {duck_rows / duck_s:>12,.0f} rows/s")
        print(f"  of which unzip + parse + map: {parse_s:.3f} s; validate + partitioned lake write: {ours_s - parse_s:.3f} s "
              f"({len(list((tmp / 'data0' / 'lake').rglob('part.parquet')))} partition files)")
        if ours_rows != duck_rows:
            print(f"WARNING: row counts differ ({ours_rows} vs {duck_rows})")
        print(f"  parse-only ratio (ours unzip+parse+map vs duckdb csv->parquet): {duck_s / parse_s:.2f}")
        ratio = (ours_rows / ours_s) / (duck_rows / duck_s)
        print(f"ratio ours/duckdb throughput: {ratio:.2f} (target >= 0.8) -> {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
        n = len(peaks)
        marks = sorted({0, n // 4, n // 2, 3 * n // 4, n - 1})
        print("peak RSS (MiB) after batch " + ", ".join(f"{i + 1}/{n}: {peaks[i]:.0f}" for i in marks))
        growth = peaks[-1] - peaks[max(0, n // 4)]
        print(f"peak RSS growth from the first quarter to the end: {growth:+.0f} MiB "
              f"({'flat: streaming' if growth < 0.25 * peaks[-1] else 'GROWS with the number of files'})")


if __name__ == "__main__":
    main()
