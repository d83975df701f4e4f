"""Funding resets: known answers, a causal percentile rule, no look-ahead, the simulated market."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.events import EventDetectionError, detect_funding_resets
from tests.events.util import REQUIRED, assert_truncation_invariant, at, frame


def funding_panel(rates: list[float], interval: int = 8) -> pl.DataFrame:
    n = len(rates) * interval
    settled = [None] * n
    for i, r in enumerate(rates):
        settled[i * interval] = r
    df = frame(perp_close=np.linspace(100, 90, n), oi_base=np.linspace(1000, 800, n),
               funding_settled=settled, funding_interval_hours=[interval] * n)
    return df.with_columns((pl.col("funding_settled").forward_fill() * 8.0 / interval).alias("funding_rate_8h"))


def test_funding_reset_known_answer():
    rates = [0.0001, 0.0004, 0.0003, 0.0002, 0.0001, 0.00005, 0.0001, 0.0005, 0.0002, 0.0002, 0.0002, 0.0000]
    ev = detect_funding_resets(funding_panel(rates), elevated_k=3, neutral=0.0001, within_settlements=3,
                               min_spacing_hours=0)
    # settlement 4 resets from 2 (0.0003, within 2 settlements); settlement 11 is 4 after the last elevated (7)
    assert ev.columns[:6] == REQUIRED and ev.height == 1
    e = ev.row(0, named=True)
    assert e["ts"] == e["detected_ts"] == at(4 * 8) and e["elevated_ts"] == at(2 * 8)
    assert e["rate_before"] == pytest.approx(0.0003) and e["rate_after"] == pytest.approx(0.0001)
    assert e["settlements_taken"] == 2 and e["hours_taken"] == 16
    assert e["elevated_threshold"] == pytest.approx(0.0003)
    assert e["oi_change_pct"] < 0 and e["price_change_pct"] < 0 and e["oi_method"] == "oi_base"
    longer = detect_funding_resets(funding_panel(rates), elevated_k=3, within_settlements=4, min_spacing_hours=0)
    assert longer.height == 2 and longer["ts"][1] == at(11 * 8)


def test_funding_reset_rules_and_intervals():
    rates = [0.0001, 0.0004, 0.0001, 0.0002, 0.0001]
    assert detect_funding_resets(funding_panel(rates), elevated=0.0003, min_spacing_hours=0).height == 1
    assert detect_funding_resets(funding_panel(rates), elevated=0.00015, min_spacing_hours=0).height == 2
    # a 4-hourly market: 0.0002 per 4 h is 0.0004 per 8 h
    four = funding_panel([0.00005, 0.0002, 0.00005], interval=4)
    ev = detect_funding_resets(four, elevated_k=3, min_spacing_hours=0)
    assert ev.height == 1 and ev["rate_before"][0] == pytest.approx(0.0004)
    with pytest.raises(EventDetectionError, match="above neutral"):
        detect_funding_resets(funding_panel(rates), elevated=0.00005)
    with pytest.raises(EventDetectionError, match="elevated_pct"):
        detect_funding_resets(funding_panel(rates), elevated_pct=120)


def test_percentile_rule_uses_earlier_settlements_only():
    rates = [0.0001] * 10 + [0.0002, 0.0001] + [0.0001] * 5 + [0.0009, 0.0001]
    panel = funding_panel(rates)
    ev = detect_funding_resets(panel, elevated_pct=90, min_history=10, min_spacing_hours=0)
    # at settlement 10 the 90th percentile of the ten earlier 0.0001 rates is 0.0001: 0.0002 is elevated
    assert ev["elevated_ts"].to_list() == [at(80), at(17 * 8)]
    assert ev["elevated_threshold"][0] == pytest.approx(0.0001)
    # a huge later rate must not change the earlier threshold (it would, in-sample)
    assert detect_funding_resets(panel.head(13 * 8), elevated_pct=90, min_history=10,
                                 min_spacing_hours=0).row(0) == ev.row(0)
    assert detect_funding_resets(panel, elevated_pct=90, min_history=30, min_spacing_hours=0).height == 0


def test_funding_reset_gap_does_not_bridge():
    df = funding_panel([0.0004, 0.0003, 0.0001, 0.0001])
    gap = df.filter(~pl.col("ts").is_between(at(1), at(15)))
    assert detect_funding_resets(gap, elevated_k=3, within_settlements=1, min_spacing_hours=0).height == 0
    assert detect_funding_resets(gap, elevated_k=3, within_settlements=2, min_spacing_hours=0).height == 1


@settings(max_examples=30, deadline=None)
@given(rates=st.lists(st.sampled_from([0.0, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005]), min_size=5, max_size=60),
       frac=st.floats(0, 1))
def test_funding_reset_truncation(rates, frac):
    panel = funding_panel(rates)
    t = panel["ts"][int(frac * (panel.height - 1))]
    for kw in ({"elevated_k": 2}, {"elevated_pct": 80, "min_history": 3}):
        assert_truncation_invariant(lambda p: detect_funding_resets(p, **kw), panel, t, known_later={})


def test_simulated_flush_resets_found(sim):
    panel, truth = sim
    ev = detect_funding_resets(panel, elevated_k=2)
    for row in truth.filter(pl.col("kind") == "flush").iter_rows(named=True):
        if row["funding_before"] >= 2e-4 and row["funding_after"] <= 1e-4:   # the truth had a reset to find
            assert ((ev["ts"] - row["trough_ts"]).dt.total_hours().abs() <= 24).any(), row


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frac=st.floats(0, 1))
def test_real_funding_reset_truncation(real_panel, frac):
    t = real_panel["ts"][int(frac * (real_panel.height - 1))]
    assert_truncation_invariant(lambda p: detect_funding_resets(p, elevated_pct=90), real_panel, t, known_later={})
