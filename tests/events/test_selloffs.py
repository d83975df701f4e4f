"""Sell-off legs: known answers, any bar length, no look-ahead, the simulated and the real market."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.events import EventDetectionError, detect_selloffs
from tests.events.util import REQUIRED, assert_truncation_invariant, at, frame

TROUGH_COLS = ["trough_ts", "trough_price", "drawdown_pct", "trough_detected_price", "hours_to_trough",
               "complete", "recovery_level"]
KNOWN_LATER = {"trough_detected_ts": TROUGH_COLS, "recovery_ts": ["recovery_price", "hours_to_recovery"]}


@pytest.fixture
def selloff_panel():
    p = np.full(600, 100.0)
    p[100:110] = np.linspace(100, 90, 10)     # -10 % in 9 h, trough at 109
    p[110:150] = np.linspace(90, 101, 40)     # regains 100 at 146
    p[150:] = 101.0
    p[300:305] = [99, 97, 95, 94, 96]         # -6.9 % from 101, trough at 303
    p[305:] = 101.0
    return frame(perp_close=p)


def test_selloffs_known_answer(selloff_panel):
    ev = detect_selloffs(selloff_panel, drawdown_pct=5, rebound_pct=3)
    assert ev.columns[:6] == REQUIRED
    assert ev.height == 2
    e0, e1 = ev.row(0, named=True), ev.row(1, named=True)
    assert e0["peak_ts"] == at(100) and e0["trough_ts"] == at(109)         # latest of the equal 100 highs
    assert e0["ts"] == e0["detected_ts"] == e0["cross_ts"] == at(105)      # 94.44 is the first close <= 95
    assert e0["drawdown_pct"] == pytest.approx(10.0, abs=1e-9)
    # 90 * 1.03 = 92.7: the first close at or above it confirms the trough
    p = selloff_panel["perp_close"].to_numpy()
    assert e0["trough_detected_ts"] == at(int(np.argmax((np.arange(600) > 109) & (p >= 92.7)))) and e0["complete"]
    assert e0["recovery_ts"] == at(146)                                    # first close >= 100
    assert e1["peak_ts"] == at(299) and e1["trough_ts"] == at(303) and e1["cross_ts"] == at(302)
    assert e1["trough_detected_ts"] == at(305)                             # 96 < 94 * 1.03; 101 is not
    assert e1["drawdown_pct"] == pytest.approx(100 * (1 - 94 / 101), abs=1e-9)
    assert e1["drawdown_at_detect_pct"] == pytest.approx(100 * (1 - 95 / 101), abs=1e-9)
    assert set(ev["kind"]) == {"selloff"} and not ev["lookahead"].any()


def test_selloffs_thresholds_speed_and_partial_recovery(selloff_panel):
    ev = detect_selloffs(selloff_panel, recovery_frac=0.5)
    p = selloff_panel["perp_close"].to_numpy()
    assert ev["recovery_ts"][0] == at(int(np.argmax((np.arange(600) > 109) & (p >= 95.0))))
    assert detect_selloffs(selloff_panel, drawdown_pct=12).height == 0
    assert detect_selloffs(selloff_panel, within_hours=2).height == 0        # neither fall is that fast
    fast = detect_selloffs(selloff_panel, within_hours=4)
    # only the second leg falls 5 % within 4 h (the first takes 5 h); detected at its cross
    assert fast["peak_ts"].to_list() == [at(299)] and fast["detected_ts"].to_list() == [at(302)]


def test_a_rebound_below_the_set_size_does_not_end_a_leg():
    # 100 -> 94 -> 96 (+2.1 %) -> 90: one leg at rebound 3 %, two at rebound 2 %
    p = np.r_[np.full(10, 100.0), 97, 94, 96, 93, 90, np.full(10, 100.0)]
    one = detect_selloffs(frame(perp_close=p), rebound_pct=3)
    assert one.height == 1 and one["trough_ts"][0] == at(14) and one["drawdown_pct"][0] == pytest.approx(10)
    two = detect_selloffs(frame(perp_close=p), rebound_pct=2, drawdown_pct=3)
    assert two["trough_ts"].to_list() == [at(11), at(14)]


def test_clusters_are_recorded_and_largest_is_lookahead():
    p = np.r_[np.full(10, 100.0), 94, 99, 99, 90, np.full(5, 100.0), np.full(200, 100.0), 93, 100.0]
    ev = detect_selloffs(frame(perp_close=p), rebound_pct=3, min_spacing_hours=72)
    assert ev.height == 3 and ev["cluster_id"].to_list() == [0, 0, 1] and ev["cluster_size"].to_list() == [2, 2, 1]
    big = detect_selloffs(frame(perp_close=p), rebound_pct=3, min_spacing_hours=72, keep="largest_lookahead")
    # leg 1: 100 -> 94 (6 %); leg 2 from the new peak 99 -> 90 (9.1 %): the larger one is kept
    assert big["drawdown_pct"].to_list() == pytest.approx([100 * (1 - 90 / 99), 7.0])
    e = big.row(0, named=True)
    assert e["lookahead"] and e["ts"] == at(13) and e["detected_ts"] == at(13 + 72)   # one spacing after leg 2
    assert big["detected_ts"][1] == at(219 + 72)                             # may lie past the panel's end


def test_selloffs_any_bar_length(selloff_panel):
    hourly = detect_selloffs(selloff_panel)
    four = selloff_panel.group_by_dynamic("ts", every="4h").agg(pl.col("perp_close").last(), pl.col("symbol").first())
    ev4 = detect_selloffs(four)
    assert ev4.height == hourly.height
    # the 4h bar 108-111 closes at hour 111's close
    assert ev4["drawdown_pct"][0] == pytest.approx(100 * (1 - selloff_panel["perp_close"][111] / 100))
    daily = frame(step="1d", perp_close=[100.0, 102.0, 97.0, 95.0, 96.0, 99.0, 100.0])
    d = detect_selloffs(daily)
    assert d["peak_ts"][0] == dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc)
    assert d["trough_detected_ts"][0] == dt.datetime(2025, 1, 6, tzinfo=dt.timezone.utc)


def test_selloffs_missing_prices_empty_and_bad_input(selloff_panel):
    gap = selloff_panel.with_columns(pl.when(pl.int_range(pl.len()).is_between(200, 250)).then(None)
                                     .otherwise(pl.col("perp_close")).alias("perp_close"))
    cols = ["peak_ts", "trough_ts", "drawdown_pct"]
    assert detect_selloffs(selloff_panel).select(cols).equals(detect_selloffs(gap).select(cols))
    empty = detect_selloffs(selloff_panel.head(0))
    assert empty.height == 0 and set(REQUIRED) <= set(empty.columns)
    with pytest.raises(EventDetectionError, match="perp_close"):
        detect_selloffs(selloff_panel.drop("perp_close"))
    for bad in ({"drawdown_pct": -1}, {"rebound_pct": 0}, {"recovery_frac": 1.5}, {"keep": "first"}):
        with pytest.raises(EventDetectionError, match=next(iter(bad))):
            detect_selloffs(selloff_panel, **bad)


# --------------------------------------------------------------------------------------------------
# no look-ahead: cutting the panel at t never changes what was known by t
# --------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(r=st.lists(st.floats(-0.02, 0.02, allow_nan=False), min_size=30, max_size=400), frac=st.floats(0, 1))
def test_selloffs_truncation_random_walks(r, frac):
    panel = frame(perp_close=100 * np.exp(np.cumsum(r)))
    t = panel["ts"][int(frac * (panel.height - 1))]
    for keep in ("all", "largest_lookahead"):
        assert_truncation_invariant(lambda p: detect_selloffs(p, drawdown_pct=3, rebound_pct=2, keep=keep,
                                                              within_hours=None if keep == "all" else 24),
                                    panel, t, known_later=KNOWN_LATER)


# --------------------------------------------------------------------------------------------------
# the simulated market: every planted episode's sell-off is a detected leg
# --------------------------------------------------------------------------------------------------
def test_simulated_planted_troughs_are_detected_troughs(sim):
    panel, truth = sim
    ev = detect_selloffs(panel)
    assert truth.height == 8
    for row in truth.iter_rows(named=True):
        hit = ev.filter((pl.col("trough_ts") - row["trough_ts"]).abs() <= pl.duration(hours=6))
        assert hit.height == 1, row
        assert hit["drawdown_pct"][0] >= row["drawdown_pct"] - 0.5, row   # the leg is never cut short
        assert hit["ts"][0] <= row["trough_ts"] + dt.timedelta(hours=6)


# --------------------------------------------------------------------------------------------------
# the real pack
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_no_lower_close_before_the_rebound(real_panel):
    ev = detect_selloffs(real_panel)
    px = real_panel.filter(pl.col("perp_close").is_not_null()).select("ts", "perp_close")
    assert ev.height >= 15 and ev["complete"].sum() >= ev.height - 1
    for e in ev.filter(pl.col("complete")).iter_rows(named=True):
        leg = px.filter((pl.col("ts") >= e["cross_ts"]) & (pl.col("ts") < e["trough_detected_ts"]))
        assert leg["perp_close"].min() == e["trough_price"], e
        assert e["trough_detected_price"] >= e["trough_price"] * 1.03
        # and nothing in the leg before the trough had already rebounded 3 % from its running low
        run_min = leg["perp_close"].cum_min()
        assert (leg["perp_close"] < run_min * 1.03).all(), e
        assert e["detected_ts"] <= e["trough_ts"] < e["trough_detected_ts"]
        assert e["recovery_ts"] is None or e["recovery_ts"] > e["trough_ts"]
    # the largest leg of the window is in the table (nothing swallows it)
    assert ev["drawdown_pct"].max() == pytest.approx(
        detect_selloffs(real_panel, keep="largest_lookahead")["drawdown_pct"].max())


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frac=st.floats(0, 1))
def test_real_selloffs_truncation(real_panel, frac):
    t = real_panel["ts"][int(frac * (real_panel.height - 1))]
    assert_truncation_invariant(detect_selloffs, real_panel, t, known_later=KNOWN_LATER)
    assert_truncation_invariant(lambda p: detect_selloffs(p, within_hours=48), real_panel, t, known_later=KNOWN_LATER)
