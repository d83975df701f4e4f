"""Frequency panels on the real Oct 2025 - Apr 2026 pack (../shared/data/real)."""
import datetime as dt

import numpy as np
import polars as pl

from research import coverage, db

UTC = dt.timezone.utc


def test_real_pack_panels_at_1h_4h_1d(real_lake):
    kw = dict(symbol="BTCUSDT", start="2025-11-01", end="2026-02-01")
    h = db.query("hourly_panel", real_lake, **kw)
    p4 = db.query("panel", real_lake, interval="4h", **kw)
    d = db.query("daily_panel", real_lake, **kw)
    assert h.height == 92 * 24 and p4.height == 92 * 6 and d.height == 92
    for p in (h, p4, d):
        assert p["has_perp"].all() and p["has_oi"].all() and p["has_funding"].all()
        assert "oi=coinglass/all/BTC/4h" in p["inputs"][0] and "funding=binance_vision/binance/BTCUSDT" in p["inputs"][0]
    # the 4h close is the last hourly close of its bar; a day's close the last of its 24 hours
    last_of_4h = h.group_by(pl.col("ts").dt.truncate("4h"), maintain_order=True).agg(pl.col("perp_close").last())
    assert p4["perp_close"].to_list() == last_of_4h["perp_close"].to_list()
    assert d["perp_close"].to_list() == h.filter(pl.col("ts").dt.hour() == 23)["perp_close"].to_list()
    # 4h CoinGlass liquidations land in the 4h bar whose close ends them: six buckets a day
    by_day = h.group_by(pl.col("ts").dt.date(), maintain_order=True).agg(pl.col("liq_long_usd").sum())
    assert np.allclose(d["liq_long_usd"].to_numpy(), by_day["liq_long_usd"].to_numpy(), rtol=1e-12)


def test_real_pack_coverage_flags_a_span_the_pack_does_not_hold(real_lake):
    d = db.query("daily_panel", real_lake, symbol="BTCUSDT", start="2020-01-01", end="2026-04-01")
    cov = {r["input"]: r for r in coverage.panel_coverage(d, ["price", "oi", "liquidations"], start="2020-01-01",
                                                         end="2026-04-01").to_dicts()}
    assert not cov["price"]["covered"] and cov["price"]["first"].year == 2025
    assert cov["oi"]["first"] >= cov["price"]["first"]
    assert cov["liquidations"]["first"] == dt.datetime(2025, 10, 7, tzinfo=UTC)  # first complete day of 4h buckets
