"""Venue shares of liquidations and OI around selloffs: planted truth, two-venue lakes, errors."""
from __future__ import annotations

import datetime as dt

import altair as alt
import polars as pl
import pytest

from research import lake, simulate, venues

UTC = dt.timezone.utc


def test_recovers_planted_venue_shares(sim_lake):
    truth = simulate.read_truth(sim_lake)
    vt = simulate.read_venue_truth(sim_lake)
    sel = truth.select(pl.col("episode_id").alias("event_id"), "peak_ts", "trough_ts", "drawdown_pct")
    r = venues.venue_shares(sim_lake, selloffs=sel, post_hours=6)
    assert r.venues == ["binance", "bybit", "hyperliquid", "okx"]
    got = r.liquidations.join(vt.rename({"episode_id": "event_id"}).with_columns(pl.col("event_id").cast(pl.Int64)),
                              on=["event_id", "venue"])
    assert got.height == 4 * truth.height
    assert ((got["long_share"] - got["long_liq_share"]).abs() < 1e-12).all()
    # OI shares: every venue's OI falls in a flush, so each venue takes part of the drop
    flush_ids = truth.filter(pl.col("kind") == "flush")["episode_id"].cast(pl.Int64)
    oi = r.open_interest.filter(pl.col("event_id").is_in(flush_ids.implode()))
    assert (oi["oi_change_usd"] < 0).all() and ((oi.group_by("event_id").agg(pl.col("share_of_drop").sum())
                                                 ["share_of_drop"] - 1).abs() < 1e-9).all()


def test_detects_selloffs_on_the_simulated_market(sim_lake):
    r = venues.venue_shares(sim_lake, drawdown_pct=6.0)
    assert r.selloffs.height >= 4
    top = r.top_venues(2)
    assert top.height == r.selloffs.height and top["top_share"].is_between(0.3, 1.0).all()
    assert "of long liquidations" in r.summary()
    for m in ("liquidations", "oi_before", "oi_drop"):
        assert isinstance(r.plot(m), alt.Chart)
    with pytest.raises(venues.VenueShareError, match="measure"):
        r.plot("nope")
    assert set(r.inputs["table"]) == {"liquidations", "open_interest"}


def _two_venue_lake(d, *, with_second=True):
    ts = pl.datetime_range(dt.datetime(2025, 5, 1, tzinfo=UTC), dt.datetime(2025, 5, 3, 23, tzinfo=UTC), "1h", eager=True)
    n = ts.len()
    close = [100.0] * 30 + [90.0] * (n - 30)
    lake.write("bars", pl.DataFrame(dict(ts=ts, venue="binance", market="perp", symbol="BTCUSDT", interval="1h",
                                         open=close, high=close, low=close, close=close, source="t")), d)
    lake.write("liquidations", pl.DataFrame(dict(ts=ts, venue="binance", symbol="BTCUSDT", interval="1h",
                                                 long_usd=[3.0] * n, short_usd=[1.0] * n, source="binance_x")), d)
    # a cross-venue aggregate must not be counted
    lake.write("liquidations", pl.DataFrame(dict(ts=ts, venue="all", symbol="BTC", interval="1h",
                                                 long_usd=[100.0] * n, short_usd=[1.0] * n, source="cg")), d)
    lake.write("open_interest", pl.DataFrame(dict(ts=ts, venue="binance", symbol="BTCUSDT", interval="1h",
                                                  oi_usd=[1000.0] * 30 + [800.0] * (n - 30), source="binance_x")), d)
    if with_second:
        lake.write("liquidations", pl.DataFrame(dict(ts=ts, venue="bybit", symbol="BTCUSDT", interval="1h",
                                                     long_usd=[1.0] * n, short_usd=[1.0] * n, source="bybit")), d)
        # Bybit's OI history is in coins: valued with the perp close
        lake.write("open_interest", pl.DataFrame(dict(ts=ts, venue="bybit", symbol="BTCUSDT", interval="1h",
                                                      oi_base=[5.0] * 30 + [4.0] * (n - 30), source="bybit")), d)


def test_any_lake_with_two_venues(tmp_path):
    _two_venue_lake(tmp_path)
    sel = pl.DataFrame({"peak_ts": [dt.datetime(2025, 5, 1, 20, tzinfo=UTC)],
                        "trough_ts": [dt.datetime(2025, 5, 2, 8, tzinfo=UTC)], "drawdown_pct": [10.0]})
    r = venues.venue_shares(tmp_path, selloffs=sel, post_hours=0)
    liq = {x["venue"]: x for x in r.liquidations.iter_rows(named=True)}
    assert set(liq) == {"binance", "bybit"}  # 'all' left out
    assert liq["binance"]["long_usd"] == 3.0 * 13 and liq["binance"]["long_share"] == pytest.approx(0.75)
    oi = {x["venue"]: x for x in r.open_interest.iter_rows(named=True)}
    assert oi["binance"]["oi_before"] == 1000.0 and oi["binance"]["oi_after"] == 800.0
    assert oi["bybit"]["oi_before"] == pytest.approx(5.0 * 100.0) and oi["bybit"]["oi_after"] == pytest.approx(4.0 * 90.0)
    drop = 200.0 + (500.0 - 360.0)
    assert oi["binance"]["share_of_drop"] == pytest.approx(200.0 / drop)


def test_one_venue_is_an_error(tmp_path):
    _two_venue_lake(tmp_path, with_second=False)
    sel = pl.DataFrame({"peak_ts": [dt.datetime(2025, 5, 1, 20, tzinfo=UTC)],
                        "trough_ts": [dt.datetime(2025, 5, 2, 8, tzinfo=UTC)]})
    with pytest.raises(venues.VenueShareError, match="two or more"):
        venues.venue_shares(tmp_path, selloffs=sel)
    with pytest.raises(venues.VenueShareError, match="no selloffs"):
        venues.venue_shares(tmp_path, selloffs=sel.clear())


def test_coin_matching():
    df = pl.DataFrame({"symbol": ["BTCUSDT", "BTC-USDT-SWAP", "BTC-PERPETUAL", "BTC", "ETHUSDT", "btcusdc"]})
    assert df.select(venues.coin_expr())["symbol"].to_list() == ["BTC", "BTC", "BTC", "BTC", "ETH", "BTC"]


@pytest.mark.slow
def test_notebook_runs_on_the_simulated_market(sim_lake, tmp_path):
    import papermill as pm

    from research import paths
    from research.records import load

    out = tmp_path / "26"
    pm.execute_notebook(str(paths.NOTEBOOKS_DIR / "26-venue-shares.ipynb"), str(tmp_path / "executed.ipynb"),
                        parameters={"data_dir": str(sim_lake), "output_dir": str(out)}, kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    rec = load(out)
    assert rec.notebook == "26-venue-shares" and {"selloffs", "venue_shares", "inputs"} <= set(rec.tables)
    shares = pl.read_parquet(out / rec.tables["venue_shares"])
    assert shares["venue"].n_unique() == 4 and shares.height >= 8
