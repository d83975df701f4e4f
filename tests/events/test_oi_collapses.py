"""OI collapses: OI in coins, known answers, no look-ahead, the simulated and the real market."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.events import detect_oi_collapses
from tests.events.util import REQUIRED, assert_truncation_invariant, at, frame

KNOWN_LATER = {"trough_detected_ts": ["trough_ts", "oi_trough", "oi_change_pct", "price_trough", "price_change_pct",
                                      "oi_usd_change_pct", "funding_after", "liq_long_usd", "liq_short_usd",
                                      "complete"]}


def oi_panel(n: int = 400) -> pl.DataFrame:
    oi = np.full(n, 1000.0)
    oi[200:206] = np.linspace(1000, 880, 6)     # -12 % in 5 h
    oi[206:] = 880.0
    oi[300:] = 920.0                            # +4.5 %: the trough is confirmed at 300
    px = np.full(n, 100.0)
    px[200:206] = np.linspace(100, 95, 6)
    px[206:] = 95.0
    liq = [None] * n
    for h in range(3, n, 4):
        liq[h] = 1e6
    liq[203] = 5e7
    return frame(perp_close=px, oi_base=oi, oi_usd=oi * px, funding_rate_8h=np.where(np.arange(n) < 203, 3e-4, 1e-4),
                 liq_long_usd=liq, liq_short_usd=[None if v is None else 1e5 for v in liq])


def test_oi_collapse_known_answer():
    ev = detect_oi_collapses(oi_panel(), drop_pct=5, within_hours=24, rebound_pct=2)
    assert ev.columns[:6] == REQUIRED and ev.height == 1
    e = ev.row(0, named=True)
    assert e["ts"] == e["detected_ts"] == at(203)      # 1000 -> 928 (-7.2 %) is the first close below -5 %
    assert e["peak_ts"] == at(200) and e["trough_ts"] == at(205) and e["trough_detected_ts"] == at(300)
    assert e["oi_change_at_detect_pct"] == pytest.approx(-7.2) and e["oi_change_pct"] == pytest.approx(-12.0)
    assert e["price_change_pct"] == pytest.approx(-5.0)
    assert e["oi_usd_change_pct"] == pytest.approx(100 * (880 * 95 / 100000 - 1))
    assert e["funding_before"] == pytest.approx(3e-4) and e["funding_after"] == pytest.approx(1e-4)
    assert e["liq_long_usd"] == pytest.approx(5e7)      # buckets in (200, 205]: the 203 one only
    assert e["oi_measure"] == "coins" and e["oi_method"] == "oi_base" and not e["oi_approximate"]
    assert detect_oi_collapses(oi_panel(), drop_pct=15).height == 0


def test_a_price_fall_alone_is_not_an_oi_collapse():
    n = 200
    px = np.r_[np.full(100, 100.0), np.linspace(100, 88, 10), np.full(n - 110, 88.0)]
    coins = np.full(n, 1000.0)
    usd_only = frame(perp_close=px, oi_usd=coins * px, oi_age_hours=np.zeros(n))
    # USD OI falls 12 % with the price; OI in coins is flat
    assert detect_oi_collapses(usd_only).height == 0
    coins[150:155] = np.linspace(1000, 900, 5)
    coins[155:] = 900.0
    fell = frame(perp_close=px, oi_usd=coins * px, oi_age_hours=np.zeros(n))
    ev = detect_oi_collapses(fell)
    assert ev.height == 1 and ev["oi_method"][0] == "oi_usd/price" and ev["oi_approximate"][0]
    assert ev["oi_change_pct"][0] == pytest.approx(-10.0)


def test_oi_collapse_zscore_rule_stale_oi_and_4h_bars():
    rng = np.random.default_rng(1)
    df = oi_panel().with_columns(pl.col("oi_base") * pl.Series(1 + 0.002 * rng.standard_normal(400)))
    ev = detect_oi_collapses(df, zscore=4, zscore_window_hours=168, zscore_min_hours=100)
    assert ev.height == 1 and ev["zscore"][0] <= -4 and at(200) < ev["ts"][0] <= at(206)
    stale = oi_panel().with_columns(pl.lit(30.0).alias("oi_age_hours"))
    assert detect_oi_collapses(stale, max_oi_age_hours=12).height == 0
    assert detect_oi_collapses(stale, max_oi_age_hours=None).height == 1
    four = oi_panel().group_by_dynamic("ts", every="4h").agg(pl.all().exclude("ts").last())
    e4 = detect_oi_collapses(four)
    assert e4.height == 1 and e4["ts"][0] == at(200) and e4["oi_change_pct"][0] == pytest.approx(-12.0)


@settings(max_examples=30, deadline=None)
@given(r=st.lists(st.floats(-0.02, 0.02, allow_nan=False), min_size=30, max_size=300), frac=st.floats(0, 1))
def test_oi_collapse_truncation_random_walks(r, frac):
    n = len(r)
    o = 1000 * np.exp(np.cumsum(r))
    px = 100 * np.exp(np.cumsum(np.roll(r, 3)))
    panel = frame(perp_close=px, oi_usd=o * px, oi_age_hours=np.arange(n) % 4 * 1.0)
    t = panel["ts"][int(frac * (n - 1))]
    assert_truncation_invariant(lambda p: detect_oi_collapses(p, drop_pct=3, within_hours=12), panel, t,
                                known_later=KNOWN_LATER)
    assert_truncation_invariant(lambda p: detect_oi_collapses(p, zscore=2, zscore_window_hours=48,
                                                              zscore_min_hours=24, within_hours=4),
                                panel, t, known_later=KNOWN_LATER)


def test_simulated_flushes_are_oi_collapses_and_exoduses_are_not(sim):
    panel, truth = sim
    ev = detect_oi_collapses(panel)
    for row in truth.iter_rows(named=True):
        near = ev.filter((pl.col("ts") - row["trough_ts"]).abs() <= pl.duration(hours=24))
        if row["kind"] == "flush":
            assert near.height >= 1, row
            # the detector sees at least the part of the planted OI drop that precedes the trough
            assert near["oi_change_pct"][0] < -5 and near["oi_change_pct"][0] >= row["oi_change_pct"] - 10
        else:
            assert near.height == 0, row      # spot-led: OI in coins holds while the price falls


@pytest.mark.slow
def test_real_oi_collapse_october_10_in_coins(real_panel):
    ev = detect_oi_collapses(real_panel)
    assert set(ev["oi_method"]) == {"oi_usd/price"} and ev["oi_approximate"].all()   # the pack has USD OI only
    hit = ev.filter(pl.col("ts").is_between(dt.datetime(2025, 10, 10, tzinfo=dt.timezone.utc),
                                            dt.datetime(2025, 10, 12, tzinfo=dt.timezone.utc)))
    assert hit.height == 1
    e = hit.row(0, named=True)
    assert e["oi_usd_change_pct"] < -20                   # USD OI: -22 %, of which the price fall is part
    assert -20 < e["oi_change_pct"] < -12                 # in coins
    assert (ev["oi_change_at_detect_pct"] <= -5 + 1e-9).all()


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frac=st.floats(0, 1))
def test_real_oi_collapse_truncation(real_panel, frac):
    t = real_panel["ts"][int(frac * (real_panel.height - 1))]
    assert_truncation_invariant(detect_oi_collapses, real_panel, t, known_later=KNOWN_LATER)
