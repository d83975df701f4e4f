"""The causal zigzag: known answers, and (property tests) the trough and no-look-ahead guarantees."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from research.events.legs import triggered_legs, zigzag_legs


def test_zigzag_known_answer():
    p = np.array([100, 101, 99, 95, 94, 96, 93, 97, 99, 105, 104, 99, 98, 101.0])
    legs = zigzag_legs(p, drop_pct=5, rebound_pct=4)
    # leg 1: peak 101 (1), crosses at 95 (3: 95 <= 95.95), lows 94, 96 (< 97.76), 93 (6), then 97 >= 96.72 (7)
    assert legs["peak_i"].tolist() == [1, 9]
    assert legs["cross_i"].tolist() == [3, 11]
    assert legs["trough_i"].tolist() == [6, 12]
    assert legs["confirm_i"].tolist() == [7, -1]       # the second leg is still open at the end
    assert legs["detect_i"].tolist() == legs["cross_i"].tolist()


def test_zigzag_ties_and_trigger():
    p = np.array([100, 100, 94, 94, 99.0])
    legs = zigzag_legs(p, 5, 3)
    assert legs["peak_i"].tolist() == [1] and legs["trough_i"].tolist() == [2]   # latest high, earliest low
    # a trigger that fires only at bar 3 moves the detection; one outside the down phase drops the leg
    trig = np.array([False, False, False, True, False])
    assert zigzag_legs(p, 5, 3, trig)["detect_i"].tolist() == [3]
    assert zigzag_legs(p, 5, 3, np.array([True, False, False, False, True]))["detect_i"].tolist() == [-1]


def test_triggered_legs_merge_a_continuing_collapse():
    o = np.array([100, 94, 96, 93, 92, 95, 100, 100, 94, 100.0])
    trig = o <= 95
    legs = triggered_legs(o, trig, rebound_pct=5)
    # 94 starts the leg; the new run at 93 (before the +5 % rebound at 100, bar 6) belongs to it
    assert legs["detect_i"].tolist() == [1, 8]
    assert legs["trough_i"].tolist() == [4, 8]
    assert legs["confirm_i"].tolist() == [6, 9]


walks = st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=5, max_size=300).map(
    lambda r: 100 * np.exp(np.cumsum(r)))


@settings(max_examples=150, deadline=None)
@given(p=walks, drop=st.floats(1, 10), reb=st.floats(0.5, 8))
def test_no_lower_close_before_the_rebound(p, drop, reb):
    legs = zigzag_legs(p, drop, reb)
    for pk, c, tr, k in zip(legs["peak_i"], legs["cross_i"], legs["trough_i"], legs["confirm_i"]):
        end = k if k >= 0 else p.size
        assert pk <= c <= tr < end
        assert p[c] <= p[pk] * (1 - drop / 100) + 1e-12
        assert p[tr] == p[c:end].min()                                   # the lowest close of the leg
        run_min = np.minimum.accumulate(p[c:end])
        assert (p[c:end] < run_min * (1 + reb / 100)).all()              # no rebound before the end
        if k >= 0:
            assert p[k] >= p[tr] * (1 + reb / 100)


@settings(max_examples=150, deadline=None)
@given(p=walks, drop=st.floats(1, 10), reb=st.floats(0.5, 8), frac=st.floats(0, 1))
def test_zigzag_truncation_changes_nothing_known(p, drop, reb, frac):
    t = int(frac * (p.size - 1))
    full, cut = zigzag_legs(p, drop, reb), zigzag_legs(p[:t + 1], drop, reb)
    known = full["cross_i"] <= t
    for key in ("peak_i", "cross_i"):
        assert full[key][known].tolist() == cut[key].tolist()
    conf = known & (full["confirm_i"] >= 0) & (full["confirm_i"] <= t)
    for key in ("trough_i", "confirm_i"):
        assert full[key][conf].tolist() == cut[key][conf[:cut[key].size]].tolist()


def _reference(p, drop, reb):
    """The zigzag as a plain bar-by-bar state machine (slow, obviously right)."""
    legs, i, n = [], 0, len(p)
    peak_v, peak_i, mode = -np.inf, 0, "up"
    while i < n:
        if mode == "up":
            if p[i] >= peak_v:
                peak_v, peak_i = p[i], i
            if p[i] <= peak_v * (1 - drop / 100):
                cross, low_v, low_i, mode = i, p[i], i, "down"
        else:
            if p[i] < low_v:
                low_v, low_i = p[i], i
            elif p[i] >= low_v * (1 + reb / 100):
                legs.append((peak_i, cross, low_i, i))
                peak_v, peak_i, mode = p[i], i, "up"
        i += 1
    if mode == "down":
        legs.append((peak_i, cross, low_i, -1))
    return legs


@settings(max_examples=200, deadline=None)
@given(p=walks, drop=st.floats(1, 10), reb=st.floats(0.5, 8))
def test_zigzag_matches_the_bar_by_bar_state_machine(p, drop, reb):
    legs = zigzag_legs(p, drop, reb)
    got = list(zip(*(legs[k].tolist() for k in ("peak_i", "cross_i", "trough_i", "confirm_i"))))
    assert got == _reference(p, drop, reb)


def test_zigzag_long_series_matches_reference():
    rng = np.random.default_rng(5)
    p = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 20_000)))
    legs = zigzag_legs(p, 5, 3)
    got = list(zip(*(legs[k].tolist() for k in ("peak_i", "cross_i", "trough_i", "confirm_i"))))
    assert len(got) > 50 and got == _reference(p, 5, 3)
