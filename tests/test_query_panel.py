"""queries/panel.sql at 1h/4h/1d: alignment without look-ahead, staleness per interval, price choice,
venue lists, pruning and the ASOF plan."""
import datetime as dt
import re

import duckdb
import numpy as np
import polars as pl
import pytest

from research import coverage, db, lake, scan
from research.errors import QueryError

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
H = dt.timedelta(hours=1)


def hourly(n, start=T0, step=H):
    return [start + i * step for i in range(n)]


def bars(ts, market="perp", interval="1h", close=None, source="t", symbol="BTCUSDT", volume=10.0):
    close = np.asarray(close if close is not None else 100 * np.exp(0.01 * np.arange(len(ts))), dtype=float)
    return pl.DataFrame(dict(ts=ts, venue="binance", market=market, symbol=symbol, interval=interval,
                             open=close, high=close * 1.01, low=close * 0.99, close=close, volume=volume,
                             taker_buy_volume=volume / 2, source=source))


def oi(ts, venue, values, interval="1d", symbol="BTC", source="cg"):
    return pl.DataFrame(dict(ts=ts, venue=venue, symbol=symbol, interval=interval, oi_usd=values, source=source))


@pytest.fixture(scope="module")
def lake3(tmp_path_factory):
    """Three days of 1h perp bars, daily OI stamped at the end of each day, 8h funding."""
    d = tmp_path_factory.mktemp("lake3")
    lake.write("bars", bars(hourly(72)), d)
    # a daily OI value is observed at the END of its day (00:00 of the next day)
    lake.write("open_interest", oi(hourly(3, T0 + 24 * H, 24 * H), "all", [1e9, 2e9, 3e9]), d)
    lake.write("funding", pl.DataFrame(dict(ts=hourly(9, T0, 8 * H), venue="binance", symbol="BTCUSDT",
                                            rate=[1e-4 * (i + 1) for i in range(9)], interval_hours=8,
                                            source="t")), d)
    return d


def at(df, t):
    return df.filter(pl.col("ts") == t).row(0, named=True)


def test_a_value_stamped_at_the_end_of_its_bucket_never_reaches_an_earlier_row(lake3):
    p1 = db.query("hourly_panel", lake3, symbol="BTCUSDT")
    # OI of day 1 is stamped 2025-01-02 00:00: first seen by the hour that closes then (23:00), not by 22:00
    assert at(p1, T0 + 22 * H)["oi_usd"] is None and at(p1, T0 + 23 * H)["oi_usd"] == 1e9
    pd = db.query("panel", lake3, symbol="BTCUSDT", interval="1d")
    assert pd["ts"].to_list() == hourly(3, T0, 24 * H)
    assert pd["oi_usd"].to_list() == [1e9, 2e9, 3e9]  # each day's row is known at its own close
    p4 = db.query("panel", lake3, symbol="BTCUSDT", interval="4h")
    assert at(p4, T0 + 16 * H)["oi_usd"] is None and at(p4, T0 + 20 * H)["oi_usd"] == 1e9
    # funding settled at 08:00 is in force from the 4h bar 08:00-12:00 on, never in the 04:00 bar
    assert at(p4, T0 + 4 * H)["funding_rate"] == pytest.approx(2e-4)
    assert at(p4, T0 + 8 * H)["funding_settled"] == pytest.approx(2e-4) and at(p4, T0 + 8 * H)["funding_settlements"] == 1
    assert pd["funding_settlements"].to_list()[:2] == [3, 3]


def test_every_as_of_value_is_the_last_one_known_at_the_row_close(sim_lake):
    # the panel's default OI venue is Binance (the simulated market also has Bybit, OKX, Hyperliquid)
    raw = (lake.read("open_interest", sim_lake).filter(pl.col("venue") == "binance")
           .select("ts", pl.col("oi_usd").alias("want")).sort("ts"))
    for interval, step in (("1h", H), ("4h", 4 * H), ("1d", 24 * H)):
        p = db.query("panel", sim_lake, symbol="BTCUSDT", interval=interval)
        assert p.height > 100 and (p["oi_age_hours"].drop_nulls() >= 0).all()
        want = (p.select("ts", "oi_usd").with_columns(known=pl.col("ts") + step).sort("known")
                .join_asof(raw, left_on="known", right_on="ts", strategy="backward"))
        assert want["oi_usd"].to_list() == want["want"].to_list(), interval


def test_staleness_comes_from_each_series_interval_and_is_overridable(tmp_path):
    lake.write("bars", bars(hourly(24 * 6)), tmp_path)
    lake.write("open_interest", oi(hourly(2, T0 + 24 * H, 24 * H), "all", [1e9, 2e9]), tmp_path)  # daily, stops
    p = db.query("hourly_panel", tmp_path, symbol="BTCUSDT")
    last_obs = T0 + 48 * H
    # usable while its age is <= 2 days: through the row known at last_obs + 48 h
    assert at(p, last_obs + 47 * H)["oi_usd"] == 2e9 and at(p, last_obs + 48 * H)["oi_usd"] is None
    p1 = db.query("hourly_panel", tmp_path, symbol="BTCUSDT", stale_after=1)
    assert at(p1, last_obs + 23 * H)["oi_usd"] == 2e9 and at(p1, last_obs + 24 * H)["oi_usd"] is None
    assert p["oi_interval_hours"].drop_nulls().unique().to_list() == [24.0]
    with pytest.raises(QueryError, match="stale_after"):
        db.query("hourly_panel", tmp_path, symbol="BTCUSDT", stale_after=0)


def test_daily_funding_rows_are_stale_after_two_days_not_sixteen_hours(tmp_path):
    # a CoinGlass-style daily funding series keeps interval_hours = 8 but is observed once a day
    lake.write("bars", bars(hourly(24 * 4)), tmp_path)
    lake.write("funding", pl.DataFrame(dict(ts=hourly(4, T0, 24 * H), venue="all", symbol="BTC", rate=1e-4,
                                            interval_hours=8, source="cg")), tmp_path)
    p = db.query("hourly_panel", tmp_path, symbol="BTCUSDT")
    assert p["has_funding"].all()


def test_frequency_panels_aggregate_finer_bars_and_prefer_native_ones(sim_lake, tmp_path):
    h = db.query("hourly_panel", sim_lake, symbol="BTCUSDT", start="2026-02-01", end="2026-02-03")
    p4 = db.query("panel", sim_lake, symbol="BTCUSDT", interval="4h", start="2026-02-01", end="2026-02-03")
    d = db.query("panel", sim_lake, symbol="BTCUSDT", interval="1d", start="2026-02-01", end="2026-02-03")
    assert p4.height == 12 and d.height == 2 and set(p4["interval"]) == {"4h"}
    h4 = h.with_columns(b=pl.col("ts").dt.truncate("4h")).group_by("b", maintain_order=True).agg(
        pl.col("perp_close").last(), pl.col("perp_volume").sum(), pl.col("perp_ret").sum(), pl.col("perp_high").max())
    assert np.allclose(p4["perp_close"], h4["perp_close"]) and np.allclose(p4["perp_volume"], h4["perp_volume"])
    assert np.allclose(p4["perp_high"], h4["perp_high"])
    assert np.allclose(p4["perp_ret"][1:], h4["perp_ret"][1:])  # the first 4h return uses the bar before the window
    assert d["perp_ret"][1] == pytest.approx(h.filter(pl.col("ts") >= dt.datetime(2026, 2, 2, tzinfo=UTC))["perp_ret"].sum())
    assert d["bar_hours"].to_list() == [24.0, 24.0]
    # native 4h bars beat aggregated hourly ones; an incomplete aggregated bar has no price
    lake.write("bars", bars(hourly(23)), tmp_path)
    lake.write("bars", bars(hourly(6, T0, 4 * H), interval="4h", close=[7.0] * 6, source="n"), tmp_path)
    p = db.query("panel", tmp_path, symbol="BTCUSDT", interval="4h")
    assert "perp=n/4h" in p["inputs"][0] and p["perp_close"].to_list() == [7.0] * 6
    day = db.query("panel", tmp_path, symbol="BTCUSDT", interval="1d", source="t")
    assert day["perp_close"].to_list() == [None] and not day["has_perp"][0]


def test_price_falls_back_perp_spot_index_and_is_recorded(tmp_path):
    spot_only, index_only, both = (tmp_path / n for n in ("s", "i", "b"))
    lake.write("bars", bars(hourly(5), market="spot", close=[2.0] * 5), spot_only)
    lake.write("bars", bars(hourly(5), market="index", close=[3.0] * 5), index_only)
    lake.write("bars", pl.concat([bars(hourly(5), close=[1.0] * 5), bars(hourly(5), market="spot", close=[2.0] * 5)]), both)
    cases = [(spot_only, None, "spot", 2.0), (index_only, None, "index", 3.0), (both, None, "perp", 1.0), (both, "spot", "spot", 2.0)]
    for d, price, market, close in cases:
        p = db.query("hourly_panel", d, symbol="BTCUSDT", price=price)
        assert p.height == 5 and set(p["price_market"]) == {market} and set(p["close"]) == {close}
        assert p["ret"].to_list() == [None] + [0.0] * 4  # the chosen series' log return
        assert f"price={market}" in p["inputs"][0]
        assert coverage.panel_coverage(p, ["price"])["covered"].to_list() == [True]
    with pytest.raises(QueryError, match="price"):
        db.query("hourly_panel", both, symbol="BTCUSDT", price="mark")


@pytest.fixture(scope="module")
def venues(tmp_path_factory):
    d = tmp_path_factory.mktemp("venues")
    lake.write("bars", bars(hourly(48)), d)
    days = hourly(3, T0, 24 * H)
    lake.write("open_interest", pl.concat([oi(days, "binance", [1e9] * 3), oi(days, "bybit", [2e9] * 3)]), d)
    lake.write("liquidations", pl.DataFrame(dict(ts=hourly(48), venue="binance", symbol="BTC", interval="1h",
                                                 long_usd=1.0, short_usd=0.0, source="cg")), d)
    lake.write("liquidations", pl.DataFrame(dict(ts=hourly(48), venue="okx", symbol="BTC", interval="1h",
                                                 long_usd=10.0, short_usd=0.0, source="cg")), d)
    return d


def test_venue_lists_and_all_sum_venues_without_double_counting(venues, tmp_path):
    q = lambda **kw: db.query("panel", venues, symbol="BTCUSDT", interval="1d", **kw)  # noqa: E731
    assert q(oi_venue="binance")["oi_usd"].to_list() == [1e9, 1e9]
    assert q(oi_venue="binance, bybit")["oi_usd"].to_list() == [3e9, 3e9]
    assert q(oi_venue="all")["oi_usd"].to_list() == [3e9, 3e9]  # no aggregate series: the venues' sum
    assert q(liq_venue="all")["liq_long_usd"].to_list() == [264.0, 264.0]
    assert "liquidations=cg/binance/BTC/1h+cg/okx/BTC/1h" in q(liq_venue="all")["inputs"][0]
    with pytest.raises(QueryError, match="twice"):
        q(oi_venue="all,binance")
    # with an aggregate series, `all` is that series alone (it already contains every venue)
    d = tmp_path / "agg"
    lake.write("bars", bars(hourly(48)), d)
    days = hourly(3, T0, 24 * H)
    lake.write("open_interest", pl.concat([oi(days, "binance", [1e9] * 3), oi(days, "all", [5e9] * 3)]), d)
    assert db.query("panel", d, symbol="BTCUSDT", interval="1d", oi_venue="all")["oi_usd"].to_list() == [5e9, 5e9]


def _asof_operators(plan: str) -> int:
    return len(re.findall(r"─ Asof Join ─", plan))


@pytest.mark.parametrize("name,extra", [("hourly_panel", {}), ("panel", {"interval": "4h"}), ("daily_panel", {})])
def test_plans_keep_every_asof_join_an_asof_join(sim_lake, name, extra, monkeypatch):
    # DuckDB turns an ASOF join with a small estimated left side into a nested loop (~100x slower
    # on panels); db.SETTINGS turns that off, and this fails if a panel's plan regresses
    kw = dict(symbol="BTCUSDT", start="2025-03-01", end="2025-03-08", **extra)
    n_asof = len(re.findall(r"\bASOF\b", db.load_query(name).sql))
    assert n_asof >= 3 and _asof_operators(db.explain(name, sim_lake, **kw)) == n_asof
    con = duckdb.connect()
    has_setting = con.execute("SELECT count(*) FROM duckdb_settings() WHERE name = 'asof_loop_join_threshold'").fetchone()[0]
    if has_setting:  # the check can see a regression: with DuckDB's default the joins become loops
        monkeypatch.setitem(db.SETTINGS, "asof_loop_join_threshold", "64")
        assert _asof_operators(db.explain(name, sim_lake, **kw)) < n_asof


def test_panels_read_only_the_symbol_and_years_they_need(tmp_path):
    for year in (2023, 2024, 2025):
        for sym in ("BTCUSDT", "ETHUSDT"):
            lake.write("bars", bars(hourly(3, dt.datetime(year, 6, 1, tzinfo=UTC)), symbol=sym), tmp_path)
    files = scan.panel_files(dict(symbol="BTCUSDT", start="2025-02-01", end="2026-01-01", venue="binance"), tmp_path)
    assert [f.parts[-2] for f in files["bars"]] == ["year=2025"] and all("BTCUSDT" in str(f) for f in files["bars"])
    wide = scan.panel_files(dict(symbol="BTCUSDT", start="2024-01-03", end="2025-02-01", venue="binance"), tmp_path)
    assert sorted(f.parts[-2] for f in wide["bars"]) == ["year=2023", "year=2024", "year=2025"]  # days of lookback for as-of values
    assert scan.table_files("bars", tmp_path, years=[2024], symbol="ETHUSDT")[0].parts[-2] == "year=2024"
    p = db.query("hourly_panel", tmp_path, symbol="BTCUSDT", start="2025-01-01")
    assert p.height == 3 and p["ts"].min() == dt.datetime(2025, 6, 1, tzinfo=UTC)


def test_panel_coverage_states_the_span_used_and_flags_what_is_missing(lake3):
    p = db.query("hourly_panel", lake3, symbol="BTCUSDT")
    cov = coverage.panel_coverage(p, ["price", "oi", "funding"], start="2025-01-01", end="2025-01-04")
    row = {r["input"]: r for r in cov.to_dicts()}
    assert row["price"]["covered"] and row["price"]["first"] == T0 and row["price"]["last"] == T0 + 71 * H
    assert row["oi"]["first"] == T0 + 23 * H and not row["oi"]["covered"]  # no OI known before day 1's close
    assert row["oi"]["series"] == "cg/all/BTC/1d"
    assert not coverage.panel_coverage(p, ["price"], start="2024-12-01")["covered"][0]
    with pytest.raises(ValueError, match="unknown input"):
        coverage.panel_coverage(p, ["vibes"])


def test_unknown_interval_is_a_one_line_error(lake3):
    with pytest.raises(QueryError, match="parameter interval: '7h' is not an interval"):
        db.query("panel", lake3, symbol="BTCUSDT", interval="7h")
