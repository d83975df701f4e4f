"""The two-phase panel (series chosen first, research.panel_series) equals the panel that chose inside its SQL."""
import datetime as dt
import itertools
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from research import db, lake, panel_series, scan
from research.schema import TABLES

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 12, 20, tzinfo=UTC)
REFERENCE = Path(__file__).parent / "reference_queries"


def ts(start_h, n, step_h=1.0):
    return [T0 + dt.timedelta(hours=start_h + i * step_h) for i in range(n)]


def bars(t, market="perp", interval="1h", source="t", venue="binance", symbol="BTCUSDT", close=1.0):
    return pl.DataFrame(dict(ts=t, venue=venue, market=market, symbol=symbol, interval=interval, open=close,
                             high=close, low=close, close=[close * (1 + 0.001 * i) for i in range(len(t))],
                             volume=2.0, taker_buy_volume=1.0, source=source))


def series(table, t, venue, symbol, interval, source, **cols):
    base = dict(ts=t, venue=venue, symbol=symbol, source=source)
    if table != "funding":
        base["interval"] = interval
    return pl.DataFrame(base | {k: v if isinstance(v, int) else [v * (1 + 0.01 * i) for i in range(len(t))]
                                for k, v in cols.items()})


@pytest.fixture(scope="module")
def tricky(tmp_path_factory):
    """Competing series of every input: venues, coin-level aggregates, sources, intervals, gaps, a year
    boundary (2024 -> 2025, so files of two years), and a partition written in several batches."""
    d = tmp_path_factory.mktemp("tricky")
    w = lambda name, df: lake.write(name, df, d)
    w("bars", bars(ts(0, 200)))                                    # perp 1h, t
    w("bars", bars(ts(200, 100)))                                  # ... appended (a second file)
    w("bars", bars(ts(0, 40, 4), interval="4h", source="n", close=5.0))  # native 4h, fewer clock hours
    w("bars", bars(ts(100, 150), market="spot", close=2.0))
    w("bars", bars(ts(0, 60), market="spot", source="u", close=3.0))
    w("bars", bars(ts(0, 300), market="index", close=4.0))
    w("bars", bars(ts(0, 300), venue="bybit", close=9.0))
    w("funding", series("funding", ts(0, 30, 8), "binance", "BTCUSDT", None, "t", rate=1e-4, interval_hours=8))
    w("funding", series("funding", ts(0, 300), "okx", "BTCUSDT", None, "t", rate=2e-4, interval_hours=1))
    w("funding", series("funding", ts(150, 150), "binance", "BTC", None, "cg", rate=3e-4, interval_hours=1))
    w("open_interest", series("open_interest", ts(0, 1000, 1 / 12), "binance", "BTCUSDT", "5m", "t", oi_base=10.0))
    w("open_interest", series("open_interest", ts(0, 300), "bybit", "BTCUSDT", "1h", "t", oi_base=20.0))
    w("open_interest", series("open_interest", ts(4, 70, 4), "all", "BTC", "4h", "cg", oi_usd=7e9))
    w("open_interest", series("open_interest", ts(24, 12, 24), "binance", "BTC", "1d", "cg", oi_usd=1e9))
    w("liquidations", series("liquidations", ts(0, 300), "binance", "BTC", "1h", "cg", long_usd=1.0, short_usd=2.0))
    w("liquidations", series("liquidations", ts(50, 250), "okx", "BTC", "1h", "cg", long_usd=3.0, short_usd=4.0))
    w("liquidations", series("liquidations", ts(0, 75, 4), "all", "BTC", "4h", "cg", long_usd=5.0, short_usd=6.0))
    pos = dict(top_trader_ls_ratio=1.1, account_ls_ratio=1.2, taker_buy_sell_ratio=1.3)
    w("positioning", series("positioning", ts(0, 600, 1 / 12) + ts(200, 300, 1 / 12), "binance", "BTCUSDT", "5m", "t", **pos))
    w("positioning", series("positioning", ts(0, 300), "bybit", "BTCUSDT", "1h", "t", **pos))
    return d


def same(got, want, what):
    # floats to 1e-12: DuckDB's parallel sums add in any order, so even two runs of one query differ
    # in the last bits; everything else (rows, columns, dtypes, inputs) exactly
    try:
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-12, abs_tol=0)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def foreign(d):
    """A caller's own connection: views over every file, no data directory recorded."""
    con = duckdb.connect()
    db._configure(con)
    db._create_views(con, {t: lake.table_files(t, d) for t in TABLES})
    return con


SPANS = [(None, None), ("2024-12-20", "2024-12-23"), ("2024-12-28T05:00", "2025-01-02"), ("2024-12-26", "2024-12-27"),
         ("2025-01-01", "2025-03-01")]
OPTIONS = [{}, {"oi_venue": "binance"}, {"oi_venue": "binance, bybit", "liq_venue": "okx"}, {"oi_venue": "all"},
           {"liq_venue": "all"}, {"oi_venue": "okx", "liq_venue": "binance,okx"}, {"source": "t"}, {"source": "cg"},
           {"price": "spot"}, {"price": "INDEX"}, {"venue": "bybit"}, {"stale_after": 5}]


@pytest.mark.parametrize("interval", [pytest.param("1h", marks=pytest.mark.slow), "4h", "1d"])
def test_two_phase_panel_equals_the_panel_that_chose_in_sql(tricky, interval):
    con = foreign(tricky)
    try:
        n = 0
        # every span with every option at 1h; at 4h and 1d each option once, spans in turn
        cases = (itertools.product(SPANS, OPTIONS) if interval == "1h"
                 else zip(itertools.cycle(SPANS), OPTIONS))
        for (start, end), opts in cases:
            kw = dict(symbol="BTCUSDT", interval=interval, **opts)
            kw |= {k: v for k, v in (("start", start), ("end", end)) if v is not None}
            want = db.query("panel", con=con, queries_dir=REFERENCE, **kw)
            got = db.query("panel", tricky, **kw)  # series from the table logs, views over their files
            via_views = db.query("panel", con=con, **kw)  # series counted on the caller's views
            for g in (got, via_views):
                same(g, want, kw)
            n += want.height > 0
        assert n > len(OPTIONS) // 2  # most cases have rows
    finally:
        con.close()


@pytest.mark.parametrize("name", ["hourly_panel", "daily_panel"])
def test_daily_and_hourly_wrappers_match_too(tricky, name):
    con = foreign(tricky)
    try:
        for kw in ({}, {"start": "2024-12-21", "end": "2025-01-02", "oi_venue": "all"}):
            want = db.query(name, con=con, queries_dir=REFERENCE, symbol="BTCUSDT", **kw)
            got = db.query(name, tricky, symbol="BTCUSDT", **kw)
            assert want.height > 0
            same(got, want, kw)
    finally:
        con.close()


def test_only_files_the_window_cuts_are_counted(tricky):
    # a week inside one year: every file inside the window counts its logged rows, without reading it
    w = panel_series.Window(T0 - dt.timedelta(days=30), T0 - dt.timedelta(days=30), T0 + dt.timedelta(days=30))
    entries = panel_series.panel_entries(dict(symbol="BTCUSDT", venue="binance"), tricky)
    counts = panel_series.LogCounts(entries, None, w)  # no connection: counting a file would fail
    assert counts.candidates("bars") == [("index", "t", "1h"), ("perp", "n", "4h"), ("perp", "t", "1h"),
                                         ("spot", "t", "1h"), ("spot", "u", "1h")]
    assert counts.rows("bars", [("perp", "t", "1h")]) == {("perp", "t", "1h"): 300}  # two files, both inside
    # a window inside a file: its first or last row in the window proves a row without reading it
    cut = panel_series.Window(T0 + dt.timedelta(hours=250), T0 + dt.timedelta(hours=250), T0 + dt.timedelta(days=30))
    assert panel_series.LogCounts(entries, None, cut).exists("bars", ("perp", "t", "1h"))


@pytest.mark.parametrize("kw", [dict(symbol="BTCUSDT"), dict(symbol="BTCUSDT", start="2025-01-01", source="cg"),
                                dict(symbol="BTCUSDT", venue="bybit", end="2024-12-25"), dict(symbol="BTC", venue=None)])
def test_panel_entries_select_what_scan_panel_files_selects(tricky, kw):
    values = {"venue": "binance", "stale_after": 2} | kw
    got = panel_series.panel_entries(values, tricky)
    assert {t: [p for _, p in es] for t, es in got.items()} == scan.panel_files(values, tricky)
    assert all(p == tricky / "lake" / t / e.path for t, es in got.items() for e, p in es)


def test_a_commit_after_a_panel_is_seen_by_the_next_panel(tmp_path):
    # the matched log entries are kept per log version: a new commit must never be served from them
    lake.write("bars", bars(ts(0, 24)), tmp_path)
    kw = dict(symbol="BTCUSDT", start="2024-12-20", end="2024-12-23")
    assert db.query("hourly_panel", tmp_path, **kw).height == 24
    lake.write("bars", bars(ts(24, 24)), tmp_path)
    assert db.query("hourly_panel", tmp_path, **kw).height == 48


def test_a_span_ending_at_new_year_reads_the_observation_at_its_end(tmp_path):
    # the last row (Dec 31 23:00) is known at 00:00 on Jan 1; the OI observed at that instant lives in
    # the next year's file and must count, as it does for the same row of a longer span
    ny = dt.datetime(2025, 1, 1, tzinfo=UTC)
    lake.write("bars", bars([ny - dt.timedelta(hours=48 - i) for i in range(96)]), tmp_path)
    obs = [ny - dt.timedelta(minutes=5 * (12 * 48 - i)) for i in range(12 * 96)]
    lake.write("open_interest", series("open_interest", obs, "binance", "BTCUSDT", "5m", "t", oi_usd=1e9), tmp_path)
    assert {p.parent.name for p in scan.table_files("open_interest", tmp_path)} == {"year=2024", "year=2025"}
    kw = dict(symbol="BTCUSDT", start="2024-12-31")
    short = db.query("hourly_panel", tmp_path, end="2025-01-01", **kw)
    longer = db.query("hourly_panel", tmp_path, end="2025-01-02", **kw).filter(pl.col("ts") < ny)
    assert short.height == longer.height == 24
    assert_frame_equal(short.select("ts", "oi_usd"), longer.select("ts", "oi_usd"))
    at_new_year = 1e9 * (1 + 0.01 * (12 * 48))
    assert short["oi_usd"][-1] == pytest.approx(at_new_year, rel=1e-12)
