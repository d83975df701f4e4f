"""research.hypotheses.carstudy: verdicts without events are NotTestable records, and the funding
distribution takes its threshold from the detector."""
from __future__ import annotations

import polars as pl

from research.hypotheses import carstudy
from research.hypotheses.extras import funding_distribution
from research.stats import NotTestable, conclude
from tests.hypotheses.helpers import _panel


def test_without_events_every_window_is_not_testable():
    vs = carstudy.car_verdicts(None, [[0, 24], [1, 72]], label="funding resets")
    assert [v.hypothesis for v in vs] == ["CAR(0,+24h) after funding resets != 0", "CAR(+1h,+72h) after funding resets != 0"]
    assert all(v.n_events == 0 and v.effect is None and NotTestable.matches(v.conclusion) for v in vs)
    assert vs[0].conclusion == "not tested: no usable events"
    assert carstudy.verdicts_frame(vs).height == 2


def test_conclude_uses_the_not_testable_record():
    assert conclude(0.01, 1, 5) == str(NotTestable("n = 1 vs 5")) == "not testable (n = 1 vs 5)"
    assert conclude(0.01, 5, 5) == "difference at the 5% level"
    assert not NotTestable.matches(conclude(0.5, 5, 5))


def test_funding_distribution_threshold_comes_from_the_detector():
    p = _panel(3, funding_settled=[1e-4, None, 3e-4], funding_rate_8h=[1e-4, 1e-4, 3e-4])
    ev = pl.DataFrame({"elevated_threshold": [2e-4]})
    tables, notes = funding_distribution(p, ev, {"neutral": 1e-4})
    t = tables["funding_distribution"].row(0, named=True)
    assert t["settlements"] == 2 and t["elevated_threshold"] == 2e-4 and t["share_elevated"] == 0.5 and not notes
    tables, notes = funding_distribution(p, ev.head(0), {"neutral": 1e-4})
    t = tables["funding_distribution"].row(0, named=True)
    assert t["elevated_threshold"] is None and t["share_elevated"] is None and "no funding resets" in notes[0]
