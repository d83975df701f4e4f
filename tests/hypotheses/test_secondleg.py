"""research.hypotheses.secondleg (H2)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from tests.hypotheses.helpers import _panel


# --------------------------------------------------------------------------------------------------
# H2
# --------------------------------------------------------------------------------------------------
def _legs(n_events=6):
    """Selloffs every 200 h; even ones bounce 3 % then undercut (second leg), odd ones bounce and hold."""
    n = 200 * n_events + 200
    close = np.full(n, 100.0)
    oi = np.full(n, 1000.0)
    fund = np.full(n, 0.0001)
    peaks, troughs = [], []
    for e in range(n_events):
        s = 200 * e + 20
        close[s:s + 10] = np.linspace(100, 90, 10)
        close[s + 10:s + 20] = np.linspace(90, 93, 10)
        if e % 2 == 0:
            close[s + 20:s + 40] = np.linspace(93, 88, 20)
            close[s + 40:s + 200] = 88 + np.linspace(0, 12, 160)
        else:
            close[s + 20:s + 200] = 93 + np.linspace(0, 7, 180)
            oi[s + 5:s + 200] = 900.0  # OI dropped 10 % in the selloffs that hold
            fund[s:s + 200] = -0.0001
        peaks.append(s - 1)
        troughs.append(s + 9)
    p = _panel(n, perp_close=close, oi_base=oi, oi_usd=oi * close, funding_rate_8h=fund)
    # the trough is confirmed by a 3 % rebound (close >= 92.7): the 9th bar of the bounce
    confirmed = [t + 1 + int(np.flatnonzero(close[t + 1:] >= close[t] * 1.03)[0]) for t in troughs]
    sell = pl.DataFrame({"event_id": list(range(n_events)), "peak_ts": p["ts"].gather(peaks),
                         "trough_ts": p["ts"].gather(troughs), "trough_detected_ts": p["ts"].gather(confirmed)})
    return p, sell


def test_second_leg_rates_and_separation_note():
    p, sell = _legs()
    r = H.second_leg(p, sell, bounce_pct=2.0, bounce_hours=24, horizon_days=3)
    allr = r.rates.filter(pl.col("group") == "all").row(0, named=True)
    assert (allr["k"], allr["n"]) == (3, 6)
    held = r.rates.filter(pl.col("group") == "oi_held").row(0, named=True)
    assert (held["k"], held["n"]) == (3, 3)
    fis = r.fisher.filter(pl.col("condition") == "oi_held").row(0, named=True)
    # 3/3 vs 0/3: two-sided Fisher p = 2 / C(6,3) = 0.1
    assert fis["pvalue"] == pytest.approx(0.1, abs=1e-12)
    assert fis["risk_diff"] == pytest.approx(1.0)
    assert -1 <= fis["rd_ci_low"] <= fis["rd_ci_high"] <= 1
    # the bounce (decision bar) is at or after the detector's confirmation of the trough
    ev = r.events.join(sell.select("event_id", "trough_detected_ts"), on="event_id")
    assert (ev["bounce_ts"] >= ev["trough_detected_ts"]).all()
    # verdicts: the exact CI of the odds ratio agrees with Fisher's p; q-values beside p-values
    tab = r.verdict_table()
    rows = tab.filter(pl.col("pvalue").is_not_null())
    assert rows.height == 3 and rows["q_value"].is_not_null().all()
    assert tab.filter(pl.col("primary"))["hypothesis"].to_list() == [
        "oi_held and funding_positive raises the probability of a second leg"]
    for v in r.verdicts():
        assert v.ci_agrees
    # here the three conditions split the sell-offs identically: the note says so
    assert any("split the usable sell-offs identically" in n for n in r.notes)
    # perfect separation: no logit, and a note says why
    assert r.logit is None
    assert any("separation" in n for n in r.notes)
    json.dumps(r.to_dict())
    r.plot().to_dict()


def test_second_leg_small_group_is_not_testable():
    p, sell = _legs(4)
    r = H.second_leg(p, sell.filter(pl.col("event_id") != 1), bounce_pct=2.0, bounce_hours=24, horizon_days=3)
    rows = [v for v in r.verdicts() if v.pvalue is None and v.hypothesis.startswith("oi_held raises")]
    assert rows and rows[0].conclusion.startswith("not testable") and rows[0].ci_low is None


def test_second_leg_needs_confirmed_troughs():
    p, sell = _legs(2)
    with pytest.raises(H.HypothesisError, match="trough_detected_ts"):
        H.second_leg(p, sell.drop("trough_detected_ts"))
