"""Append cost: a one-day append to a lake holding most of a year, against writing the day alone.

Issue #17's target: a one-day append costs <= 5x writing the day's rows as their own Parquet file,
while dedupe on the key still holds. The lake holds ``--symbols`` symbols of 5-minute perp bars
from 1 January to 30 November (one yearly partition per symbol, ~96k rows each); each round
appends the next December day (288 rows per symbol) through every arm, interleaved:

* ``alone``   - the day written as its own files, one per symbol (the lake's partition), the project's
  one way, ``research.fileio.atomic_path`` (zstd ``write_parquet`` to a temp file, fsync, rename,
  fsync of the folder); no validation;
* ``plain``   - the same files with ``DataFrame.write_parquet`` and no fsync at all (a floor, not durable);
* ``lake``    - ``research.lake.write`` (validate, dedupe against stored keys, fsync, commit the log);
* ``empty``   - the same lake write of the day into an empty lake (what the stored year costs: lake/empty);
* ``validate``- ``research.schema.validate`` of the day alone (part of every lake write; not the lake's);
* ``again``   - the same day written again through the lake (dedupe finds nothing new: no file);
* ``rewrite`` - what the lake did before the table log: read the year, merge the day, write the year;
* ``delta``   - ``deltalake.write_deltalake(mode="append")`` of the day (no dedupe at all) and
  ``delta-merge``, a key merge inserting only new rows (when the ``deltalake`` package is installed).

Every timed call starts after ``os.sync()`` (outside the timing), so no arm pays for the dirty pages of
the arm before it.

Once a partition holds more than :data:`research.lake.COMPACT_AT` files, the write that crossed the
threshold merges all but its largest file; that merge is timed after the rounds and reported
amortised per append.

Then the ingest-shaped write: ``--symbols`` symbols x 3 years of 1-hour bars in 6 batches, through
the lake and as plain per-partition ``write_parquet`` (and Delta), so the lake write's own cost
is measured apart from the archive parsing of ``bench_ingest.py``.

Usage: ``python benchmarks/bench_append.py [--symbols 5] [--rounds 15] [--quick]``
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from research import lake  # noqa: E402
from research.fileio import atomic_path  # noqa: E402
from research.schema import validate  # noqa: E402

try:
    import deltalake  # noqa: E402
except ImportError:  # optional: only for the comparison arms
    deltalake = None

KEY = ["source", "venue", "market", "symbol", "interval", "ts"]
DELTA_PARTS = ["source", "venue", "market", "symbol", "interval", "year"]


def bars(symbols: int, start: dt.datetime, end: dt.datetime, every: str, seed: int = 0) -> pl.DataFrame:
    ts = pl.datetime_range(start, end, every, time_zone="UTC", eager=True, closed="left")
    out = []
    for k in range(symbols):
        r = np.random.default_rng(seed + k).random(ts.len()) + 100.0
        out.append(pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol=f"S{k:02d}USDT", interval=every,
                                     open=r, high=r + 1, low=r - 1, close=r + 0.5, volume=r / 10,
                                     source="bench")))
    return pl.concat(out)


def timed(fn) -> float:
    # every arm starts with nothing dirty in the page cache: an fsync (a journal commit on ext4) would
    # otherwise also write out what the arm before it left unsynced (``plain``, ``rewrite``), and an
    # arm's time would depend on its neighbour in the round
    os.sync()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stats(xs: list[float]) -> str:
    return f"min {min(xs) * 1e3:8.2f} ms  median {statistics.median(xs) * 1e3:8.2f} ms"


def ratio_line(name: str, arm: list[float], base: list[float]) -> str:
    r = [a / b for a, b in zip(arm, base)]
    return f"  {name:<12} / alone: min {min(r):6.1f}x  median {statistics.median(r):6.1f}x"


def write_alone(dest: Path, day: pl.DataFrame, durable: bool = True) -> None:
    for (sym,), part in day.group_by(["symbol"]):
        if durable:
            with atomic_path(dest / f"{sym}.parquet") as tmp:
                part.write_parquet(tmp, compression="zstd", statistics=True)
        else:
            (dest / sym).mkdir(parents=True, exist_ok=True)
            part.write_parquet(dest / sym / "day.parquet", compression="zstd", statistics=True)


def rewrite_year(d: Path, day: pl.DataFrame) -> None:
    """The pre-log write: merge the day into each symbol's yearly file and rewrite it whole."""
    for (sym,), part in day.group_by(["symbol"]):
        f = d / f"{sym}.parquet"
        old = pl.read_parquet(f)
        merged = pl.concat([old, part]).unique(subset=KEY, keep="last").sort(KEY)
        tmp = f.with_suffix(".tmp")
        merged.write_parquet(tmp, compression="zstd", statistics=True)
        tmp.replace(f)


def delta_merge(path: str, day: pl.DataFrame) -> None:
    pred = " AND ".join(f"t.{c} = s.{c}" for c in (*KEY, "year"))
    (deltalake.DeltaTable(path).merge(day.to_arrow(), predicate=pred, source_alias="s", target_alias="t")
     .when_not_matched_insert_all().execute())


def append_section(tmp: Path, symbols: int, rounds: int) -> None:
    year = bars(symbols, dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 1), "5m")
    d = tmp / "lake"
    lake.write("bars", year, d)
    old = tmp / "old"
    old.mkdir()
    for (sym,), part in year.group_by(["symbol"]):
        part.sort(KEY).write_parquet(old / f"{sym}.parquet", compression="zstd", statistics=True)
    arms: dict[str, list[float]] = {"alone": [], "plain": [], "lake": [], "empty": [], "validate": [], "again": [],
                                    "rewrite": []}
    dpath = str(tmp / "delta")
    if deltalake is not None:
        arms.update({"delta": [], "delta-merge": []})
        deltalake.write_deltalake(dpath, year.with_columns(year=pl.col("ts").dt.year()).to_arrow(),
                                  partition_by=DELTA_PARTS)
    added = 0
    for r in range(rounds):
        day = bars(symbols, dt.datetime(2024, 12, 1) + dt.timedelta(days=r), dt.datetime(2024, 12, 2)
                   + dt.timedelta(days=r), "5m", seed=100 + r)
        dday = day.with_columns(year=pl.col("ts").dt.year())
        arms["alone"].append(timed(lambda: write_alone(tmp / f"day{r}", day)))
        arms["plain"].append(timed(lambda: write_alone(tmp / f"plain{r}", day, durable=False)))
        arms["empty"].append(timed(lambda: lake.write("bars", day, tmp / f"empty{r}")))
        arms["validate"].append(timed(lambda: validate("bars", day)))
        res = {}
        arms["lake"].append(timed(lambda: res.setdefault("w", lake.write("bars", day, d))))
        added += res["w"].rows_added
        arms["again"].append(timed(lambda: res.setdefault("a", lake.write("bars", day, d))))
        assert res["a"].rows_added == 0 and res["a"].files_written == 0, "dedupe on the key failed"
        arms["rewrite"].append(timed(lambda: rewrite_year(old, day)))
        if deltalake is not None:
            if r % 2 == 0:
                arms["delta"].append(timed(lambda: deltalake.write_deltalake(dpath, dday.to_arrow(), mode="append",
                                                                             partition_by=DELTA_PARTS)))
                arms["delta-merge"].append(float("nan"))
            else:
                arms["delta-merge"].append(timed(lambda: delta_merge(dpath, dday)))
                arms["delta"].append(float("nan"))
    got = lake.read("bars", d)
    assert got.height == year.height + added == year.height + rounds * 288 * symbols and got["ts"].len() == got.height
    assert got.select(pl.struct(KEY).is_unique().all()).item(), "a key is stored twice"
    files = len(lake.table_files("bars", d))
    compact_s = timed(lambda: lake.compact("bars", d, keep_largest=True))
    print(f"one-day append: {symbols} symbol(s) x 288 5-minute bars onto {year.height:,} stored rows "
          f"({year.height // symbols:,} per yearly partition), {rounds} interleaved rounds")
    for name, xs in arms.items():
        xs = [x for x in xs if x == x]
        print(f"  {name:<12} {stats(xs)}")
    base = arms["alone"]
    for name in ("plain", "lake", "empty", "again", "rewrite", "delta", "delta-merge"):
        if name in arms:
            pairs = [(a, b) for a, b in zip(arms[name], base) if a == a]
            print(ratio_line(name, [a for a, _ in pairs], [b for _, b in pairs]))
    r = [a / b for a, b in zip(arms["lake"], base)]
    rp = [a / b for a, b in zip(arms["lake"], arms["plain"])]
    re_ = [a / b for a, b in zip(arms["lake"], arms["empty"])]
    med = {k: statistics.median([x for x in v if x == x]) for k, v in arms.items()}
    print(f"  (median lake - median validate) / median alone: {(med['lake'] - med['validate']) / med['alone']:.1f}x "
          "(the table machinery itself)")
    print(f"  lake / plain (no fsync): min {min(rp):6.1f}x  median {statistics.median(rp):6.1f}x;  "
          f"lake / empty lake: min {min(re_):6.2f}x  median {statistics.median(re_):6.2f}x")
    print(f"  lake files before compaction: {files}; merging all but the year's file took {compact_s * 1e3:.0f} ms, "
          f"{compact_s / lake.COMPACT_AT * 1e3:.1f} ms per append amortised over {lake.COMPACT_AT} appends")
    verdict = "OK" if statistics.median(r) <= 5 else "ABOVE TARGET"
    print(f"  target: lake append <= 5x writing the day alone (median) -> {verdict}")


def ingest_section(tmp: Path, symbols: int, rounds: int) -> None:
    full = bars(symbols, dt.datetime(2021, 1, 1), dt.datetime(2024, 1, 1), "1h")
    edges = pl.datetime_range(dt.datetime(2021, 1, 1), dt.datetime(2024, 1, 1), "6mo", time_zone="UTC", eager=True)
    batches = [full.filter((pl.col("ts") >= a) & (pl.col("ts") < b)) for a, b in zip(edges[:-1], edges[1:])]
    arms: dict[str, list[float]] = {"plain": [], "lake": [], "validate": []}
    if deltalake is not None:
        arms["delta"] = []

    def plain(root: Path):
        for i, b in enumerate(batches):
            for (sym, y), part in b.group_by(["symbol", pl.col("ts").dt.year()]):
                p = root / sym / str(y)
                p.mkdir(parents=True, exist_ok=True)
                part.write_parquet(p / f"b{i}.parquet", compression="zstd", statistics=True)

    for r in range(rounds):
        arms["plain"].append(timed(lambda: plain(tmp / f"plain{r}")))
        arms["lake"].append(timed(lambda: [lake.write("bars", b, tmp / f"ing{r}") for b in batches]))
        arms["validate"].append(timed(lambda: [validate("bars", b) for b in batches]))
        if deltalake is not None:
            arms["delta"].append(timed(lambda: [deltalake.write_deltalake(
                str(tmp / f"dl{r}"), b.with_columns(year=pl.col("ts").dt.year()).to_arrow(), mode="append",
                partition_by=DELTA_PARTS) for b in batches]))
    assert lake.read("bars", tmp / "ing0").height == full.height
    print(f"ingest-shaped writes: {full.height:,} 1-hour bars ({symbols} symbol(s) x 3 years) in {len(batches)} batches, "
          f"{rounds} interleaved rounds")
    for name, xs in arms.items():
        print(f"  {name:<12} {stats(xs)}  = {full.height / min(xs):>12,.0f} rows/s (best)")
    for name in ("lake", "delta"):
        if name in arms:
            r = [a / b for a, b in zip(arms[name], arms["plain"])]
            print(f"  {name:<12} / plain: min {min(r):6.2f}x  median {statistics.median(r):6.2f}x")
    med = {k: statistics.median(v) for k, v in arms.items()}
    print(f"  (median lake - median validate) / median plain: {(med['lake'] - med['validate']) / med['plain']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="1 symbol, 3 rounds (the test runs this)")
    a = ap.parse_args()
    symbols, rounds = (1, 3) if a.quick else (a.symbols, a.rounds)
    rounds = min(rounds, lake.COMPACT_AT)  # stay below auto-compaction; its cost is reported amortised
    print(f"deltalake {'%s' % deltalake.__version__ if deltalake else 'not installed: Delta arms skipped'}")
    with tempfile.TemporaryDirectory() as td:
        append_section(Path(td) / "append", symbols, rounds)
        ingest_section(Path(td) / "ingest", symbols, max(2, rounds // 3))


if __name__ == "__main__":
    main()
