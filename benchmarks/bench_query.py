"""Panel queries against a hand-written DuckDB lower bound, on lakes of growing size.

Lakes of 1/3/6 years x 1/5/20 symbols are built with the package's own write path
(:func:`research.lake.write`) from the simulated market: hourly perp and spot bars, 8 h funding,
5-minute OI and positioning (the simulator's hourly values, observed every 5 minutes), hourly
liquidations. They are cached under ``--cache`` (default ``$TMPDIR/treadmill-bench-query``).

For the last week, month, quarter and year of each lake, every round times, in shuffled order,

* ``lower``: a hand-written query that reads only the asked symbol's partition files of the years
  the period needs, and of its as-of series only the day before the period onwards, and joins them
  the way the hourly panel does, with the query layer's connection policy (a new connection to one
  open DuckDB database per process, the same settings, its SQL parsed once per process, ``execute()``
  and one Arrow fetch), so what it saves over the panels is the panels' own work;
* ``hourly_panel``, ``panel_4h`` (``panel`` at interval 4h) and ``daily_panel`` via
  :func:`research.db.query`, each opening its own connection like a notebook does.

It prints min and median seconds of each arm and of each arm's ratio to ``lower`` in the same round,
both wall-clock and CPU (``time.process_time``: every thread of the process, so a shared machine's
load inflates it far less than wall time), and the 1-minute load average.

What the lower bound leaves out, so its ratio is an upper bound on the panel's overhead rather than a
like-for-like race: it knows which series to read (binance OI, positioning and funding of the symbol;
the panel chooses among every venue's and the coin-level series from the table logs, reading a file
only when the span cuts it and its first and last rows do not settle whether it has rows there), it
computes 9 of the panel's ~45 columns, no staleness per series interval, no liquidation coverage
span, no ``inputs`` record, and it builds no views. It reads the same files with the same connection settings, and ``--quick``
checks that the columns both compute are equal.
``--quick`` builds two tiny lakes and checks that the hourly panel equals the lower bound's rows.

Usage::

    python benchmarks/bench_query.py                  # full grid (builds the lakes once, ~minutes)
    python benchmarks/bench_query.py --years 1 --symbols 1,20 --rounds 5
    python benchmarks/bench_query.py --quick
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import duckdb
import polars as pl

from research import db, lake, paths, simulate

END = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
PERIODS = {"week": 7, "month": 30, "quarter": 91, "year": 365}
TABLES = ("bars", "funding", "open_interest", "liquidations", "positioning")


def symbol_name(i: int) -> str:
    return "BTCUSDT" if i == 0 else f"S{i:02d}USDT"


def build_lake(root: Path, years: int, n_symbols: int, days: int | None = None) -> Path:
    """Build (or reuse) a lake of ``years`` x ``n_symbols`` under ``root``."""
    days = days or 365 * years
    d = root / f"y{years}_s{n_symbols}_d{days}"
    done = d / "BUILT"
    if done.exists():
        return d
    start = (END - dt.timedelta(days=days)).date().isoformat()
    episodes = max(1, min(4, days // 40))  # the simulator needs room for its episodes
    market = simulate.simulate(seed=11, start=start, days=days, n_flush=episodes, n_exodus=episodes).tables()
    five = pl.DataFrame({"k": list(range(12))})
    for i in range(n_symbols):
        sym = symbol_name(i)
        for name in TABLES:
            df = market[name].with_columns(pl.lit(sym).alias("symbol"))
            if name in ("open_interest", "positioning"):
                # observed every 5 minutes: the hourly value, repeated until the next one
                df = (df.join(five, how="cross")
                      .with_columns(pl.col("ts") + pl.duration(minutes=5) * pl.col("k"),
                                    pl.lit("5m").alias("interval")).drop("k"))
            lake.write(name, df, d)
    for name in ("etf_flows", "sentiment"):
        lake.write(name, market[name], d)
    done.write_text("ok")
    return d


def _files(d: Path, table: str, parts: str, years) -> list[str]:
    # the lower bound is hand-written: it knows the lake's layout and globs the partitions it needs
    out = []
    for y in years:
        out += [str(p) for p in (paths.lake_dir(d) / table).glob(f"{parts}/year={y}/*.parquet")]
    return sorted(out)


LOWER_SQL = """
WITH
perp AS (SELECT ts, close, volume FROM read_parquet($perp) WHERE ts >= $t0 - INTERVAL 1 HOUR AND ts < $t1),
spot AS (SELECT ts, close, volume FROM read_parquet($spot) WHERE ts >= $t0 - INTERVAL 1 HOUR AND ts < $t1),
grid AS (SELECT ts, ts + INTERVAL 1 HOUR AS known_at FROM perp),
fund AS (SELECT ts, rate FROM read_parquet($funding) WHERE ts >= $t0 - INTERVAL 1 DAY AND ts < $t1 + INTERVAL 1 HOUR),
oi AS (SELECT ts, oi_usd FROM read_parquet($oi) WHERE ts >= $t0 - INTERVAL 1 DAY AND ts < $t1 + INTERVAL 1 HOUR),
pos AS (SELECT ts, top_trader_ls_ratio FROM read_parquet($pos)
        WHERE ts >= $t0 - INTERVAL 1 DAY AND ts < $t1 + INTERVAL 1 HOUR),
liq AS (SELECT date_trunc('hour', ts + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND) AS ts, sum(long_usd) AS long_usd
        FROM read_parquet($liq) WHERE ts < $t1 GROUP BY 1)
SELECT g.ts, pe.close AS perp_close, ln(pe.close / lag(pe.close) OVER (ORDER BY g.ts)) AS perp_ret,
       sp.close AS spot_close, sp.volume / (sp.volume + pe.volume) AS spot_share,
       CASE WHEN g.known_at - f.ts <= INTERVAL 16 HOUR THEN f.rate END AS funding_rate,
       CASE WHEN g.known_at - o.ts <= INTERVAL 10 MINUTE THEN o.oi_usd END AS oi_usd,
       l.long_usd AS liq_long_usd,
       CASE WHEN g.known_at - x.ts <= INTERVAL 10 MINUTE THEN x.top_trader_ls_ratio END AS top_trader_ls_ratio
FROM grid g
LEFT JOIN spot sp ON sp.ts = g.ts
LEFT JOIN perp pe ON pe.ts = g.ts
ASOF LEFT JOIN fund f ON g.known_at >= f.ts
ASOF LEFT JOIN oi o ON g.known_at >= o.ts
LEFT JOIN liq l ON l.ts = g.ts
ASOF LEFT JOIN pos x ON g.known_at >= x.ts
QUALIFY g.ts >= $t0
ORDER BY g.ts
"""
COMPARED = ["ts", "perp_close", "perp_ret", "spot_close", "spot_share", "funding_rate", "oi_usd",
            "liq_long_usd", "top_trader_ls_ratio"]


def lower_bound(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> pl.DataFrame:
    """The hand-written hourly panel: only ``symbol``'s files of the years ``[t0 - 8 days, t1)`` touches."""
    years = range((t0 - dt.timedelta(days=8)).year, (t1 - dt.timedelta(microseconds=1)).year + 1)
    s = f"source=synthetic/venue=binance"
    files = {
        "perp": _files(d, "bars", f"{s}/market=perp/symbol={symbol}/interval=1h", years),
        "spot": _files(d, "bars", f"{s}/market=spot/symbol={symbol}/interval=1h", years),
        "funding": _files(d, "funding", f"{s}/symbol={symbol}", years),
        "oi": _files(d, "open_interest", f"{s}/symbol={symbol}/interval=5m", years),
        "pos": _files(d, "positioning", f"{s}/symbol={symbol}/interval=5m", years),
        "liq": _files(d, "liquidations", f"{s}/symbol={symbol}/interval=1h", years),
    }
    # the same connection policy as the query layer (a connection to one open database per process,
    # its settings, its SQL parsed once, execute() and one Arrow fetch), so the ratio is the panels' own cost
    con = _lower_cursor()
    try:
        db._configure(con)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            return pl.from_arrow(con.execute(_lower_statement(con), dict(files, t0=t0, t1=t1)).to_arrow_table())
    finally:
        con.close()


_LOWER_DB: list = []


def _lower_statement(con):
    # parsed once per process, as the query layer keeps its parse of a panel's SQL
    if len(_LOWER_DB) < 2:
        _LOWER_DB.append(con.extract_statements(LOWER_SQL)[0])
    return _LOWER_DB[1]


def _lower_cursor() -> duckdb.DuckDBPyConnection:
    if not _LOWER_DB:
        _LOWER_DB.append(duckdb.connect(":memory:"))
    return _LOWER_DB[0].cursor()


def arms(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> dict:
    kw = dict(symbol=symbol, start=t0.isoformat(), end=t1.isoformat())
    return {
        "lower": lambda: lower_bound(d, symbol, t0, t1),
        "hourly_panel": lambda: db.query("hourly_panel", d, **kw),
        "panel_4h": lambda: db.query("panel", d, interval="4h", **kw),
        "daily_panel": lambda: db.query("daily_panel", d, **kw),
    }


def check_equal(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> int:
    """Assert the hourly panel's rows equal the lower bound's (compared columns); return the row count."""
    want = lower_bound(d, symbol, t0, t1).select(COMPARED)
    got = db.query("hourly_panel", d, symbol=symbol, start=t0.isoformat(), end=t1.isoformat()).select(COMPARED)
    if got.shape != want.shape:
        raise AssertionError(f"hourly_panel has {got.shape} rows/cols, the lower bound {want.shape}")
    for c in COMPARED:
        a, b = got[c], want[c]
        same = (a == b) if not a.dtype.is_float() else ((a - b).abs() <= 1e-9 * (1 + b.abs()))
        same = same.fill_null(False) | (a.is_null() & b.is_null())
        if not same.all():
            i = int((~same).arg_max())
            raise AssertionError(f"column {c!r} differs at row {i}: panel {a[i]!r}, lower bound {b[i]!r}")
    return got.height


def run(cache: Path, years_list, symbols_list, periods, rounds: int, days: int | None = None) -> list[dict]:
    rows = []
    for years in years_list:
        for n_sym in symbols_list:
            t = time.perf_counter()
            d = build_lake(cache, years, n_sym, days)
            built = time.perf_counter() - t
            span_days = days or 365 * years
            for pname in periods:
                length = min(PERIODS[pname], span_days)
                t0, t1 = END - dt.timedelta(days=length), END
                a = arms(d, symbol_name(0), t0, t1)
                times, cpus = {k: [] for k in a}, {k: [] for k in a}
                for _ in range(rounds):
                    order = list(a)
                    random.shuffle(order)
                    for k in order:
                        s, c = time.perf_counter(), time.process_time()
                        a[k]()
                        times[k].append(time.perf_counter() - s)
                        cpus[k].append(time.process_time() - c)  # every thread of this process
                for k in a:
                    ratios = [x / y for x, y in zip(times[k], times["lower"])]
                    cratios = [x / y for x, y in zip(cpus[k], cpus["lower"])]
                    rows.append(dict(years=years, symbols=n_sym, period=pname, arm=k,
                                     min_s=min(times[k]), median_s=statistics.median(times[k]),
                                     ratio_min=min(ratios), ratio_median=statistics.median(ratios),
                                     cpu_min_s=min(cpus[k]), cpu_median_s=statistics.median(cpus[k]),
                                     cpu_ratio_min=min(cratios), cpu_ratio_median=statistics.median(cratios),
                                     load=os.getloadavg()[0]))
                print(f"lake {years}y x {n_sym} sym (built/loaded in {built:.1f}s, load {os.getloadavg()[0]:.1f}), "
                      f"{pname}: " + ", ".join(
                          f"{r['arm']} {r['min_s']:.3f}/{r['median_s']:.3f}s x{r['ratio_median']:.2f} "
                          f"cpu {r['cpu_min_s']:.3f}/{r['cpu_median_s']:.3f}s x{r['cpu_ratio_median']:.2f}"
                          for r in rows[-len(a):]), flush=True)
    return rows


def fixed_cost(rounds: int) -> None:
    """Print what ``hourly_panel`` costs with no file to read (an empty lake): its SQL's own overhead."""
    with tempfile.TemporaryDirectory(prefix="treadmill-empty-") as d:
        kw = dict(symbol=symbol_name(0), start=(END - dt.timedelta(days=7)).isoformat(), end=END.isoformat())
        db.query("hourly_panel", d, **kw)
        cpus = []
        for _ in range(max(rounds, 3) * 3):
            c = time.process_time()
            db.query("hourly_panel", d, **kw)
            cpus.append(time.process_time() - c)
    print(f"empty lake: hourly_panel for a week costs {min(cpus):.3f}/{statistics.median(cpus):.3f} s CPU (min/median)")


def main(argv=None) -> pl.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny lakes, 2 rounds, and an equality check")
    ap.add_argument("--years", default="1,3,6")
    ap.add_argument("--symbols", default="1,5,20")
    ap.add_argument("--periods", default=",".join(PERIODS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "treadmill-bench-query")
    args = ap.parse_args(argv)
    if args.quick:
        rows, days = [], 40
        for n_sym in (1, 3):
            d = build_lake(args.cache, 1, n_sym, days)
            t0 = END - dt.timedelta(days=7)
            print(f"quick: {n_sym} symbol(s): hourly_panel equals the lower bound on {check_equal(d, symbol_name(0), t0, END)} rows")
        rows = run(args.cache, [1], [1, 3], ["week", "month"], rounds=2, days=days)
    else:
        rows = run(args.cache, [int(x) for x in args.years.split(",")], [int(x) for x in args.symbols.split(",")],
                   args.periods.split(","), args.rounds)
    fixed_cost(args.rounds)
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3):
        print(table.select("years", "symbols", "period", "arm", "cpu_median_s", "cpu_ratio_min", "cpu_ratio_median",
                           "median_s", "ratio_min", "ratio_median", "load"))
        panels = table.filter(pl.col("arm") != "lower")
        print(panels.group_by("arm", maintain_order=True).agg(
            pl.col("cpu_ratio_median").min().alias("cpu_ratio_median_lo"),
            pl.col("cpu_ratio_median").max().alias("cpu_ratio_median_hi"),
            pl.col("ratio_median").min().alias("wall_ratio_median_lo"),
            pl.col("ratio_median").max().alias("wall_ratio_median_hi"),
            ((pl.col("cpu_ratio_median") <= 2) & (pl.col("ratio_median") <= 2)).sum().alias("cells_within_2x"),
            pl.len().alias("cells")))
    return table


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    main()
