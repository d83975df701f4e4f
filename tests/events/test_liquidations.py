"""Liquidation prints: known answers, causal by default, no look-ahead, the simulated and real market."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.events import EventDetectionError, detect_liquidation_prints
from tests.events.util import REQUIRED, assert_truncation_invariant, at, frame


def liq_panel(n=24 * 20) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    liq = [None] * n
    for h in range(3, n, 4):
        liq[h] = float(rng.uniform(0.8e6, 1.2e6))
    liq[303] = 2e7          # 20x
    liq[307] = 3e7          # 30x, 4 h later: same cluster
    liq[403] = 4e6          # 4x: below k=5
    return frame(perp_close=np.linspace(100, 110, n), liq_long_usd=liq,
                 liq_short_usd=[None if v is None else 1e5 for v in liq])


def _with_after(detect):
    """The detector, plus the time at which price_after_pct is known (for the truncation check)."""
    def run(p):
        ev = detect(p)
        return ev.with_columns((pl.col("ts") + pl.duration(seconds=pl.col("around_hours") * 3600)).alias("after_ts"))
    return run


def test_liquidation_prints_known_answer():
    ev = detect_liquidation_prints(liq_panel(), k=5, min_spacing_hours=24)
    assert ev.columns[:6] == REQUIRED and ev.height == 1
    e = ev.row(0, named=True)
    # the default is causal: the first print of the cluster, known at its bar
    assert e["ts"] == e["detected_ts"] == at(303) and e["usd"] == 2e7 and not e["lookahead"]
    assert 10 < e["multiple"] < 30 and e["threshold_usd"] == pytest.approx(5 * e["median_usd"])
    big = detect_liquidation_prints(liq_panel(), k=5, keep="largest_lookahead")
    assert big["ts"].to_list() == [at(307)] and big["lookahead"].all()
    assert big["detected_ts"].to_list() == [at(307 + 24)]          # final once 24 h pass without a print
    both = detect_liquidation_prints(liq_panel(), k=5, min_spacing_hours=0)
    assert both["ts"].to_list() == [at(303), at(307)]
    assert detect_liquidation_prints(liq_panel(), k=3, min_spacing_hours=0).height == 3
    assert detect_liquidation_prints(liq_panel(), k=5, min_usd=2.5e7, min_spacing_hours=0)["ts"].to_list() == [at(307)]
    assert detect_liquidation_prints(liq_panel(), side="short", k=5).height == 0


def test_price_windows_follow_the_bar_length():
    ev = detect_liquidation_prints(liq_panel(), k=5, around_hours=24)
    p = liq_panel()["perp_close"]
    assert ev["price_after_pct"][0] == pytest.approx(100 * (p[327] / p[303] - 1))
    four = liq_panel().group_by_dynamic("ts", every="4h").agg(pl.col("perp_close").last(),
                                                              pl.col("liq_long_usd").sum(), pl.col("symbol").first())
    e4 = detect_liquidation_prints(four, k=5, around_hours=11, min_history=6)
    assert e4["ts"].to_list() == [at(300)] and e4["around_hours"][0] == 12.0       # 11 h -> 3 bars of 4 h


def test_liquidation_prints_pct_rule_and_errors():
    ev = detect_liquidation_prints(liq_panel(), pct=99, k=None, min_spacing_hours=0)
    assert set(ev["ts"].to_list()) >= {at(303)}
    with pytest.raises(EventDetectionError, match="side"):
        detect_liquidation_prints(liq_panel(), side="both")
    with pytest.raises(EventDetectionError, match="largest_lookahead"):
        detect_liquidation_prints(liq_panel(), keep="largest")
    with pytest.raises(EventDetectionError, match="liq_long_usd"):
        detect_liquidation_prints(liq_panel().drop("liq_long_usd"))


@settings(max_examples=30, deadline=None)
@given(spikes=st.lists(st.tuples(st.integers(0, 119), st.floats(1e6, 5e7)), max_size=12), frac=st.floats(0, 1))
def test_liquidation_truncation(spikes, frac):
    base = liq_panel()
    liq = base["liq_long_usd"].to_list()
    for i, v in spikes:
        liq[3 + 4 * i] = v
    panel = base.with_columns(pl.Series("liq_long_usd", liq))
    t = panel["ts"][int(frac * (panel.height - 1))]
    for keep in ("first", "largest_lookahead"):
        assert_truncation_invariant(_with_after(lambda p: detect_liquidation_prints(p, k=5, keep=keep)), panel, t,
                                    known_later={"after_ts": ["price_after_pct"]})


def test_simulated_flush_prints_found(sim):
    panel, truth = sim
    ev = detect_liquidation_prints(panel, k=10, min_usd=1e6)
    for row in truth.filter(pl.col("kind") == "flush").iter_rows(named=True):
        assert ((ev["ts"] - row["trough_ts"]).dt.total_hours().abs() <= 24).any(), row


@pytest.mark.slow
def test_real_largest_long_print_is_october_10(real_panel):
    ev = detect_liquidation_prints(real_panel, side="long", k=5, keep="largest_lookahead")
    top = ev.sort("usd", descending=True).row(0, named=True)
    # the CoinGlass Binance 4h bucket 2025-10-10 20:00-24:00 sits on the panel hour containing its end
    assert top["ts"] == dt.datetime(2025, 10, 10, 23, tzinfo=dt.timezone.utc)
    assert top["usd"] == pytest.approx(235.6e6, rel=1e-3)
    # the causal default keeps the first print of that cascade, known hours earlier
    first = detect_liquidation_prints(real_panel, side="long", k=5)
    oct10 = first.filter(pl.col("ts").dt.date() == dt.date(2025, 10, 10))
    assert oct10.height == 1 and oct10["ts"][0] < top["ts"] and (first["detected_ts"] == first["ts"]).all()


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frac=st.floats(0, 1))
def test_real_liquidation_truncation(real_panel, frac):
    t = real_panel["ts"][int(frac * (real_panel.height - 1))]
    for keep in ("first", "largest_lookahead"):
        assert_truncation_invariant(_with_after(lambda p: detect_liquidation_prints(p, keep=keep)), real_panel, t,
                                    known_later={"after_ts": ["price_after_pct"]})
