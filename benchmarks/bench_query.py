"""Panel queries against hand-written DuckDB queries that return the same frames, on lakes of growing size.

Lakes of 1/3/6 years x 1/5/20 symbols are built with the package's own write path
(:func:`research.lake.write`) from the simulated market: hourly perp and spot bars, 8 h funding,
5-minute OI and positioning (the simulator's hourly values, observed every 5 minutes), hourly
liquidations, from four venues, plus ETF flows and sentiment. They are cached under ``--cache``
(default ``$TMPDIR/treadmill-bench-query``).

For the last week, month, quarter and year of each lake, every round times, in shuffled order,

* ``hourly_panel``, ``panel_4h`` (``panel`` at interval 4h) and ``daily_panel`` via
  :func:`research.db.query`, each opening its own connection like a notebook does;
* their lower bounds ``lower_1h``, ``lower_4h``, ``lower_1d`` (``bench_lower.py``): hand-written
  DuckDB queries that return **the same frame** (same rows, every column, same types), written
  directly by an analyst who already knows which series to read: the binance/synthetic series of
  the asked symbol, globbed from the lake's layout for the years the span needs, the as-of series
  from a day before the first bar; one ``read_parquet`` per series, one plain or ASOF join per
  series, one ``GROUP BY`` per market for 4h and 1d bars, the panel's rules for staleness (per
  series interval; funding by its median spacing), liquidation coverage, incomplete bars, ETF
  as-of. Columns that only restate the analyst's choice (``symbol``, ``interval``,
  ``price_market``, ``oi/liq_interval_hours``, ``synthetic``, ``inputs``) are typed-in literals;
* ``floor`` (informational only): the old 9-column hourly query (prices, returns, spot share,
  funding, OI, long liquidations, top-trader ratio; no staleness rule per series, no coverage span,
  no aggregation): a floor on reading the files, not the same answer.

Why the ratio to ``lower_*`` is fair: both sides read the same files of the same series with the
same connection policy as the query layer (a new connection to one open in-memory DuckDB database
per process, :data:`research.dbconn.SETTINGS`, the SQL parsed once per process, ``execute()`` and
one Arrow fetch) and return equal frames, so what the panel costs over its lower bound is its own
overhead: choosing the series from the table logs (every venue's and the coin-level candidates),
building and binding the file lists, and its generic SQL (series tables, bound lists, any interval).
The bench lakes are complete (no gaps), so the staleness and coverage rules are computed by both
sides but their null branches are not exercised here; ``tests/test_query_panel.py`` covers those.

It prints min and median seconds of each arm and of each arm's ratio to its lower bound in the same
round (``floor``: to ``lower_1h``), both wall-clock and CPU (``time.process_time``: every thread of
the process, so a shared machine's load inflates it far less than wall time), and the 1-minute
load average. ``--quick`` builds two tiny lakes and asserts that each panel equals its lower bound on
every column (floats to a relative 1e-9), then times them.

Usage::

    python benchmarks/bench_query.py                  # full grid (builds the lakes once, ~minutes)
    python benchmarks/bench_query.py --years 1 --symbols 1,20 --rounds 5
    python benchmarks/bench_query.py --quick
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import polars as pl

from research import db, lake, simulate

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


def _bench_lower():
    # the hand-written queries live next to this script (it is also loaded by path, from the tests)
    spec = importlib.util.spec_from_file_location("bench_lower", Path(__file__).with_name("bench_lower.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bl = _bench_lower()

#: the informational read floor: 9 of the hourly panel's columns, fixed staleness, no coverage span
FLOOR_SQL = """
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


def floor(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> pl.DataFrame:
    """The read floor (:data:`FLOOR_SQL`): the same files as ``lower_1h``, 9 columns."""
    years = range((t0 - dt.timedelta(days=8)).year, (t1 - dt.timedelta(microseconds=1)).year + 1)
    return bl.run_sql(FLOOR_SQL, dict(bl.series_files(d, symbol, years), t0=t0, t1=t1))


#: panel arm -> (its same-answer lower bound, query name, extra parameters)
PANELS = {"hourly_panel": ("lower_1h", "hourly_panel", {}), "panel_4h": ("lower_4h", "panel", {"interval": "4h"}),
          "daily_panel": ("lower_1d", "daily_panel", {})}
#: every arm -> the arm its ratio is taken to
BASE = {**{k: v[0] for k, v in PANELS.items()}, **{k: k for k in bl.ARMS}, "floor": "lower_1h"}


def arms(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> dict:
    kw = dict(symbol=symbol, start=t0.isoformat(), end=t1.isoformat())
    out = {"floor": lambda: floor(d, symbol, t0, t1)}
    out |= {k: (lambda k=k: bl.lower(k, d, symbol, t0, t1)) for k in bl.ARMS}
    out |= {k: (lambda q=q, extra=extra: db.query(q, d, **kw, **extra)) for k, (_, q, extra) in PANELS.items()}
    return out


REL_TOL = 1e-9  # sums of 4 or 24 sub-bars may be added in another order


def check_equal(d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> dict[str, int]:
    """Assert each panel equals its lower bound: same columns, types, rows, every value (floats to
    a relative :data:`REL_TOL`); return each panel's row count."""
    out = {}
    for arm, (low, q, extra) in PANELS.items():
        want = bl.lower(low, d, symbol, t0, t1)
        got = db.query(q, d, symbol=symbol, start=t0.isoformat(), end=t1.isoformat(), **extra)
        if got.schema != want.schema:
            raise AssertionError(f"{arm}: schema {got.schema} differs from {low}'s {want.schema}")
        if got.height != want.height:
            raise AssertionError(f"{arm} has {got.height} rows, {low} {want.height}")
        for c in got.columns:
            a, b = got[c], want[c]
            same = (a == b) if not a.dtype.is_float() else ((a - b).abs() <= REL_TOL * (1 + b.abs()))
            same = same.fill_null(False) | (a.is_null() & b.is_null())
            if not same.all():
                i = int((~same).arg_max())
                raise AssertionError(f"{arm}: column {c!r} differs at row {i}: panel {a[i]!r}, {low} {b[i]!r}")
        out[arm] = got.height
    return out


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
                    ratios = [x / y for x, y in zip(times[k], times[BASE[k]])]
                    cratios = [x / y for x, y in zip(cpus[k], cpus[BASE[k]])]
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
            n = check_equal(d, symbol_name(0), t0, END)
            print(f"quick: {n_sym} symbol(s): " + ", ".join(
                f"{k} equals {PANELS[k][0]} on all columns of {v} rows" for k, v in n.items()))
        rows = run(args.cache, [1], [1, 3], ["week", "month"], rounds=2, days=days)
    else:
        rows = run(args.cache, [int(x) for x in args.years.split(",")], [int(x) for x in args.symbols.split(",")],
                   args.periods.split(","), args.rounds)
    fixed_cost(args.rounds)
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3):
        print(table.select("years", "symbols", "period", "arm", "cpu_median_s", "cpu_ratio_min", "cpu_ratio_median",
                           "median_s", "ratio_min", "ratio_median", "load"))
        floor_cpu = table.filter(pl.col("arm") == "floor").select("years", "symbols", "period",
                                                                  pl.col("cpu_median_s").alias("floor_cpu_s"))
        panels = table.filter(pl.col("arm").is_in(list(PANELS))).join(floor_cpu, on=["years", "symbols", "period"])
        print("ratios to the same-answer lower bounds (floor_x: panel CPU / the 9-column read floor's, informational)")
        print(panels.group_by("arm", maintain_order=True).agg(
            pl.col("cpu_ratio_median").min().alias("cpu_ratio_median_lo"),
            pl.col("cpu_ratio_median").max().alias("cpu_ratio_median_hi"),
            pl.col("ratio_median").min().alias("wall_ratio_median_lo"),
            pl.col("ratio_median").max().alias("wall_ratio_median_hi"),
            ((pl.col("cpu_ratio_median") <= 2) & (pl.col("ratio_median") <= 2)).sum().alias("cells_within_2x"),
            (pl.col("cpu_ratio_median") <= 2).sum().alias("cells_cpu_within_2x"),
            pl.len().alias("cells"),
            (pl.col("cpu_median_s") / pl.col("floor_cpu_s")).min().alias("floor_x_lo"),
            (pl.col("cpu_median_s") / pl.col("floor_cpu_s")).max().alias("floor_x_hi")))
    return table


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    main()
