import datetime as dt

import numpy as np
import polars as pl
import pytest

from research import db, lake
from research.errors import QueryError
from research.schema import TABLES

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)


def hours(n, start=T0, step="1h"):
    return pl.datetime_range(start, start + dt.timedelta(hours=n - 1) * (4 if step == "4h" else 1), step,
                             time_zone="UTC", eager=True)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lake")
    ts = hours(48)
    close = 100 * np.exp(np.linspace(0, 0.47, 48))  # +1 % per hour
    for market, vol in (("perp", 300.0), ("spot", 100.0)):
        lake.write("bars", pl.DataFrame(dict(
            ts=ts, venue="binance", market=market, symbol="BTCUSDT", interval="1h", open=close, high=close * 1.01,
            low=close * 0.99, close=close, volume=vol, taker_buy_volume=vol * 0.75, source="t")), d)
    settle = [T0 + dt.timedelta(hours=h, milliseconds=3) for h in (0, 8, 16, 24, 32, 40)]
    lake.write("funding", pl.DataFrame(dict(ts=settle, venue="binance", symbol="BTCUSDT",
                                            rate=[1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4], interval_hours=8, source="t")), d)
    # CoinGlass-style 4h OI: observation instant = bucket end
    oi_ts = hours(12, T0 + dt.timedelta(hours=4), "4h")
    lake.write("open_interest", pl.DataFrame(dict(ts=oi_ts, venue="all", symbol="BTC", interval="4h",
                                                  oi_usd=[7e10 + i * 1e9 for i in range(12)], source="cg")), d)
    liq_ts = hours(12, T0, "4h")
    lake.write("liquidations", pl.DataFrame(dict(ts=liq_ts, venue="binance", symbol="BTC", interval="4h",
                                                 long_usd=[float(i) * 1e6 for i in range(12)], short_usd=1.0,
                                                 source="cg")), d)
    lake.write("etf_flows", pl.DataFrame(dict(date=[dt.date(2025, 1, 1), dt.date(2025, 1, 2)], product="TOTAL",
                                              flow_usd=[1e8, -2e8], source="t")), d)
    lake.write("sentiment", pl.DataFrame(dict(date=[dt.date(2025, 1, 1), dt.date(2025, 1, 2)], index="fear_greed",
                                              value=[20.0, 80.0], label=["Extreme Fear", "Extreme Greed"],
                                              source="t")), d)
    return d


@pytest.fixture(scope="module")
def panel(lake_dir):
    return db.query("hourly_panel", lake_dir, symbol="BTCUSDT")


def at(df, hour):
    return df.filter(pl.col("ts") == T0 + dt.timedelta(hours=hour)).row(0, named=True)


def test_empty_lake_still_has_every_view(tmp_path):
    con = db.connect(tmp_path)
    for name, t in TABLES.items():
        assert con.sql(f"SELECT * FROM {name}").columns == t.names
    assert db.query("hourly_panel", tmp_path, symbol="BTCUSDT").is_empty()
    assert db.query("daily_panel", tmp_path, symbol="BTCUSDT").is_empty()


def test_panel_prices_returns_and_volume_shares(panel):
    assert panel.height == 48
    row = at(panel, 5)
    assert row["perp_ret"] == pytest.approx(0.01, abs=1e-9)
    assert row["spot_share"] == pytest.approx(0.25)
    assert row["taker_imbalance"] == pytest.approx(0.5)
    assert at(panel, 0)["perp_ret"] is None  # no earlier bar


def test_funding_in_force_and_at_settlement_without_look_ahead(panel):
    # settlement at 08:00:00.003 is known within the 08:00 bar, not before
    assert at(panel, 7)["funding_rate"] == pytest.approx(1e-4)
    assert at(panel, 8)["funding_rate"] == pytest.approx(2e-4)
    assert at(panel, 8)["funding_settled"] == pytest.approx(2e-4)
    assert at(panel, 9)["funding_settled"] is None


def test_slow_series_are_used_only_once_known(panel):
    # the 4h OI observed at 04:00 is known at the close of the 03:00 bar, not at 02:00
    assert at(panel, 2)["oi_usd"] is None and at(panel, 3)["oi_usd"] == pytest.approx(7e10)
    assert at(panel, 6)["oi_usd"] == pytest.approx(7e10) and at(panel, 7)["oi_usd"] == pytest.approx(7.1e10)
    assert at(panel, 7)["oi_change_pct"] == pytest.approx(100 * (7.1 / 7.0 - 1))
    # the 4h liquidation bucket 04:00-08:00 is complete only at 08:00: it lands in the 07:00 bar
    assert at(panel, 7)["liq_long_usd"] == pytest.approx(1e6) and at(panel, 6)["liq_long_usd"] is None
    assert at(panel, 7)["has_liq"] and at(panel, 7)["has_oi"]
    # coin-level aggregates were chosen (no BTCUSDT series), and the choice is reported
    assert "oi=cg/all/BTC/4h" in panel["inputs"][0] and not panel["synthetic"][0]


def test_window_parameters(lake_dir):
    df = db.query("hourly_panel", lake_dir, symbol="BTCUSDT", start="2025-01-01 10:00", end="2025-01-01 12:00")
    assert df["ts"].to_list() == [T0 + dt.timedelta(hours=10), T0 + dt.timedelta(hours=11)]
    assert df["perp_ret"][0] == pytest.approx(0.01)  # first row's return uses the bar before the window


def test_daily_panel_adds_etf_flows_and_sentiment_without_look_ahead(lake_dir):
    d = db.query("daily_panel", lake_dir, symbol="BTCUSDT")
    assert d["date"].to_list() == [dt.date(2025, 1, 1), dt.date(2025, 1, 2)]
    assert d["etf_flow_usd"].to_list() == [None, 1e8]  # the flow dated Jan 1 is known on Jan 2
    assert d["fear_greed"].to_list() == [20.0, 80.0]
    assert d["perp_ret"][1] == pytest.approx(0.24, abs=1e-9)  # 24 hourly log returns of 1 %
    assert d["hours"].to_list() == [24, 24]


def test_funding_settlements(lake_dir):
    f = db.query("funding_settlements", lake_dir, symbol="BTCUSDT")
    assert f.height == 6
    assert f["settle_hour"][1] == T0 + dt.timedelta(hours=8)
    assert f["rate_annualised"][0] == pytest.approx(1e-4 * 3 * 365)
    assert f["perp_close_before"][0] is None and f["perp_close_before"][1] is not None


def test_injection_string_is_bound_as_a_value(lake_dir):
    before = lake.read("bars", lake_dir)
    evil = "BTCUSDT' OR '1'='1'; DROP VIEW bars; --"
    assert db.query("hourly_panel", lake_dir, symbol=evil).is_empty()
    assert db.query("funding_settlements", lake_dir, symbol=evil).is_empty()
    assert lake.read("bars", lake_dir).equals(before)


def test_errors_list_what_exists_or_is_needed(lake_dir):
    with pytest.raises(QueryError, match="available queries: .*hourly_panel"):
        db.query("no_such_query", lake_dir)
    with pytest.raises(QueryError, match=r"needs parameter\(s\) \['symbol'\]"):
        db.query("hourly_panel", lake_dir)
    with pytest.raises(QueryError, match=r"no parameter\(s\) \['sym'\]"):
        db.query("hourly_panel", lake_dir, symbol="BTCUSDT", sym="x")


def test_query_files_declare_every_parameter(tmp_path):
    (tmp_path / "bad.sql").write_text("-- x\nSELECT $undeclared")
    with pytest.raises(QueryError, match="not declared"):
        db.load_query("bad", tmp_path)
    for name in db.available():
        db.load_query(name)  # every shipped query parses


def test_save_frame(tmp_path):
    df = pl.DataFrame({"a": [1, 2]})
    assert pl.read_csv(db.save_frame(df, tmp_path / "x.csv")).equals(df)
    assert pl.read_parquet(db.save_frame(df, tmp_path / "x.parquet")).equals(df)
    with pytest.raises(QueryError, match=".csv or .parquet"):
        db.save_frame(df, tmp_path / "x.xlsx")



def test_as_of_values_expire_after_two_intervals(tmp_path):
    # bars run 30 h past the last 4h OI observation and the last 8h settlement
    ts = hours(60)
    lake.write("bars", pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                                         open=1.0, high=1.0, low=1.0, close=1.0, source="t")), tmp_path)
    lake.write("open_interest", pl.DataFrame(dict(ts=hours(7, T0 + dt.timedelta(hours=4), "4h"), venue="all",
                                                  symbol="BTC", interval="4h", oi_usd=7e10, source="t")), tmp_path)
    lake.write("funding", pl.DataFrame(dict(ts=[T0, T0 + dt.timedelta(hours=8), T0 + dt.timedelta(hours=16),
                                                T0 + dt.timedelta(hours=24)], venue="binance", symbol="BTCUSDT",
                                            rate=1e-4, interval_hours=8, source="t")), tmp_path)
    p = db.query("hourly_panel", tmp_path, symbol="BTCUSDT")
    # last OI observed at 28:00 -> still usable while known_at - 28:00 <= 8 h, i.e. through the 35:00 bar
    assert at(p, 35)["oi_usd"] == pytest.approx(7e10) and at(p, 35)["has_oi"]
    assert at(p, 36)["oi_usd"] is None and not at(p, 36)["has_oi"]
    # last settlement at 24:00 -> usable through the 39:00 bar (known at 40:00 = 16 h later)
    assert at(p, 39)["funding_rate"] == pytest.approx(1e-4) and at(p, 40)["funding_rate"] is None
    assert not at(p, 40)["has_funding"]


def test_connections_share_one_database_but_not_their_views(lake_dir, tmp_path):
    a, b = db.connect(lake_dir), db.connect(tmp_path)  # tmp_path: an empty lake
    try:
        assert a.execute("SELECT count(*) FROM bars").fetchone()[0] == 96
        assert b.execute("SELECT count(*) FROM bars").fetchone()[0] == 0  # its own (empty) view
        a.close()
        assert b.execute("SELECT count(*) FROM funding").fetchone()[0] == 0
    finally:
        b.close()


def test_panels_on_threads_and_in_a_forked_child_match_the_sequential_ones(lake_dir):
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    want = db.query("hourly_panel", lake_dir, symbol="BTCUSDT")
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda _: db.query("hourly_panel", lake_dir, symbol="BTCUSDT"), range(8)))
    assert all(g.equals(want) for g in got)
    # a forked child opens its own database (the parent's, with its threads, is not used there); the
    # child stays with DuckDB alone: polars' thread pool does not survive a fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        rows = pool.apply(_child_rows, (str(lake_dir),))
    assert rows == 96 and db.query("hourly_panel", lake_dir, symbol="BTCUSDT").height == want.height


def _child_rows(d):
    con = db.connect(d)
    try:
        return con.execute("SELECT count(*) FROM bars").fetchone()[0]
    finally:
        con.close()


def test_a_commit_to_the_lake_is_seen_by_the_next_query(tmp_path):
    lake.write("bars", pl.DataFrame(dict(ts=hours(5), venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                                         open=1.0, high=1.0, low=1.0, close=1.0, source="t")), tmp_path)
    assert db.query("hourly_panel", tmp_path, symbol="BTCUSDT").height == 5
    lake.write("bars", pl.DataFrame(dict(ts=hours(3, T0 + dt.timedelta(hours=5)), venue="binance", market="perp",
                                         symbol="BTCUSDT", interval="1h", open=2.0, high=2.0, low=2.0, close=2.0,
                                         source="t")), tmp_path)
    p = db.query("hourly_panel", tmp_path, symbol="BTCUSDT")
    assert p.height == 8 and p["perp_close"][-1] == 2.0
