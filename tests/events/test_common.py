"""Shared detector helpers: bar length, de-clustering, input checks, the package's public surface."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from research import events
from research.events import EventDetectionError, bar_hours, decluster
from tests.events.util import at, frame


def test_public_names_and_one_error_class():
    import research.errors

    for name in ("detect_selloffs", "detect_funding_resets", "detect_oi_collapses", "detect_liquidation_prints",
                 "decluster", "NEUTRAL_FUNDING_8H"):
        assert hasattr(events, name)
    assert events.EventDetectionError is research.errors.EventDetectionError


def test_bar_hours():
    assert bar_hours(frame(x=np.zeros(5))) == 1.0
    assert bar_hours(frame(step="4h", x=np.zeros(5))) == 4.0
    assert bar_hours(frame(step="1d", x=np.zeros(5)).filter(pl.int_range(pl.len()) != 2)) == 24.0   # a gap
    assert bar_hours(frame(x=np.zeros(1))) == 1.0


def test_decluster_first_and_largest_lookahead():
    ev = pl.DataFrame({"ts": [at(0), at(10), at(30), at(80)], "usd": [1.0, 5.0, 2.0, 1.0]})
    assert decluster(ev, 24)["ts"].to_list() == [at(0), at(30), at(80)]
    largest = decluster(ev, 24, keep="largest_lookahead", score="usd")
    assert largest["ts"].to_list() == [at(10), at(80)]       # at(0) and at(30) are within 24 h of at(10)
    # the first cluster (0, 10, 30) is closed 24 h after its last member
    assert largest["choice_known_ts"].to_list() == [at(54), at(104)]
    assert decluster(ev, None).height == 4
    with pytest.raises(EventDetectionError, match="score"):
        decluster(ev, 24, keep="largest_lookahead")
    with pytest.raises(EventDetectionError, match="largest_lookahead"):
        decluster(ev, 24, keep="largest", score="usd")


def test_require_names_the_column_and_type():
    with pytest.raises(EventDetectionError, match="DataFrame"):
        events.detect_selloffs({"ts": []})
    with pytest.raises(EventDetectionError, match="Datetime"):
        events.detect_selloffs(pl.DataFrame({"ts": [1, 2], "perp_close": [1.0, 2.0]}))


@pytest.mark.slow
def test_real_forward_measures_start_at_or_after_detection(real_panel):
    s = events.detect_selloffs(real_panel)
    assert (s["trough_ts"] >= s["detected_ts"]).all() and (s["trough_detected_ts"] > s["detected_ts"]).all()
    assert s.filter(pl.col("recovery_ts").is_not_null()).select((pl.col("recovery_ts") > pl.col("detected_ts")).all()).item()
    o = events.detect_oi_collapses(real_panel)
    assert o.height and (o["trough_ts"] >= o["detected_ts"]).all() and (o["peak_ts"] <= o["detected_ts"]).all()
    for ev in (s, o, events.detect_liquidation_prints(real_panel), events.detect_funding_resets(real_panel, elevated_k=1.5)):
        assert (ev["ts"] == ev["detected_ts"]).all() and not ev["lookahead"].any()
