"""research.hypotheses.carstudy: the primary CAR test, its CI, the calibration hook, mechanical windows."""
from __future__ import annotations

import polars as pl
import pytest

from research import hypotheses as H
from research.stats import SIZE_BAND


@pytest.fixture(scope="module")
def prints_study(sim_lake):
    inputs = H.load_inputs(sim_lake, daily=False)
    return H.event_type_study("liquidation_print", inputs, k=5.0), inputs


def test_primary_window_is_after_detection_and_ci_agrees(prints_study):
    res, _ = prints_study
    vs = res.verdicts()
    assert [v.primary for v in vs] == [False, False, True, False]       # [1, 24] of the default windows
    assert (res.events["ts"] >= res.events["detected_ts"]).all()
    for v in vs:
        assert v.ci_agrees and v.n_events >= 3
        # the primary row is the placebo-calibrated t, the others the nominal t
        assert v.ci_method.startswith("CAAR +- placebo" if v.primary else "t interval"), v
    # pre-event windows of liquidation prints say plainly they are mechanical
    assert "mechanical" in vs[0].conclusion and "mechanical" in vs[1].conclusion
    assert "mechanical" not in vs[2].conclusion
    assert any("pre-event returns are mechanical" in n for n in res.notes)
    tab = res.verdict_table()
    assert tab["q_value"].is_not_null().all() and (tab["q_value"] >= tab["pvalue"] - 1e-12).all()


def test_calibration_attaches_size_and_warns_outside_band(prints_study):
    res, _ = prints_study
    res.attach_calibration({"[+1,+24]": {"size": 0.052, "p_calibrated": 0.4, "n_placebo": 400},
                            "[+1,+72]": {"size": 0.11, "n_placebo": 400}})
    try:
        vs = {tuple(w): v for w, v in zip(res.car_windows, res.verdicts())}
        assert vs[(1, 24)].size == 0.052 and vs[(1, 24)].p_calibrated == 0.4 and vs[(1, 24)].n_placebo == 400
        assert "WARNING" not in vs[(1, 24)].test
        assert vs[(1, 72)].size == 0.11 and "outside" in vs[(1, 72)].test
        assert vs[(0, 24)].size is None
        assert SIZE_BAND == (0.035, 0.075)
    finally:
        res.calibration = None


def test_parametric_primary_test_warns_and_prints_no_t_interval(prints_study):
    res, _ = prints_study
    vs = H.car_verdicts(res.study, res.car_windows, label="x", test="patell", primary_window=(1, 24))
    assert all("WARNING" in v.test and v.ci_low is None for v in vs)


def test_lookahead_events_are_reanchored_at_their_detection(sim_lake):
    from research.events import detect_selloffs

    inputs = H.load_inputs(sim_lake, daily=False)
    ev = detect_selloffs(inputs.panel, keep="largest_lookahead")
    ev = ev.filter(pl.col("detected_ts").is_not_null())
    assert (ev["detected_ts"] > ev["ts"]).any()
    res = H.car_study(inputs, ev, key="selloff", label="sell-offs")
    assert (res.events["ts"] >= res.events["detected_ts"]).all()
    with pytest.raises(H.HypothesisError, match="primary_window"):
        H.car_study(inputs, ev, key="selloff", label="sell-offs", primary_window=(2, 5))
