"""research.hypotheses.carstudy/carverdicts: every CAR study run calibrates its primary window on
placebo dates, and its verdict is the placebo-calibrated test (p, interval, size and MDE from the
placebo studies); an out-of-band nominal size is flagged."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats as sps

from research import hypotheses as H
from research.hypotheses import calibration as C
from research.hypotheses.carverdicts import PRIMARY_TEST, SECONDARY_TESTS
from research.stats import SIZE_BAND
from research.stats_resampling import rank_critical_value, rank_pvalue

KEYS = ("funding_reset", "oi_collapse", "liquidation_print")
REAL = {"start": "2025-10-01", "end": "2026-04-01", "oi_venue": "all", "liq_venue": "binance"}


def _primary(res):
    (v,) = [v for v in res.verdicts() if v.primary]
    return v


@pytest.fixture(scope="module")
def sim_inputs(sim_lake):
    return H.load_inputs(sim_lake, daily=False)


@pytest.mark.parametrize("key", KEYS)
def test_primary_row_has_its_size_on_the_simulated_market(sim_inputs, key):
    res = H.event_type_study(key, sim_inputs, n_placebo=200)
    v = _primary(res)
    assert res.primary_test == PRIMARY_TEST == "cross_sectional_t"
    assert v.size is not None and 0 <= v.size <= 1 and v.n_placebo >= 190      # a few draws may fail
    assert v.p_calibrated is not None and v.ci_agrees and v.pvalue is not None
    # the engine ran the primary and the secondary tests, explicitly
    assert set(res.study.spec["tests"]) == {PRIMARY_TEST, *SECONDARY_TESTS}
    assert any("placebo calibration of cross_sectional_t" in n for n in res.notes)
    assert any("engine assumption check" in n for n in res.notes)
    # the primary row is always the placebo-calibrated t: its p is the study's rank among the
    # placebo studies, its interval the placebo critical value's, its size that of the ranks
    entry = res.calibration["[+1,+24]"]
    stat = res.study.car_test((1, 24), [PRIMARY_TEST])[PRIMARY_TEST].stat
    assert v.pvalue == v.p_calibrated and "placebo-calibrated" in v.test and v.ci_method.startswith("CAAR +- placebo")
    assert SIZE_BAND[0] <= v.size <= SIZE_BAND[1] and v.size == entry["size"]
    assert entry["nominal_size"] is not None and f"the nominal t's size there is {entry['nominal_size']:.1%}" in v.test
    se = abs(v.effect / stat)
    assert v.ci_low == pytest.approx(v.effect - entry["critical_value"] * se, rel=1e-9)
    assert v.mde is not None and v.mde > 0 and "CAAR" in v.mde_label   # power.car_mde on those placebo studies
    # secondary windows keep the nominal cross-sectional t
    for w in (x for x in res.verdicts() if not x.primary and x.pvalue is not None):
        assert "placebo-calibrated" not in w.test


def test_zero_placebo_draws_skips_the_calibration(sim_inputs):
    res = H.event_type_study("oi_collapse", sim_inputs, n_placebo=0)
    assert _primary(res).size is None and res.calibration is None


def test_out_of_band_size_uses_the_calibrated_p_and_its_interval(sim_inputs, monkeypatch):
    real = C.calibrate
    seen = {}

    def over_rejecting(*args, **kwargs):
        # the same placebo statistics shrunk: a 0.15 size claim, critical value and p from them
        cal = real(*args, **kwargs)
        seen["null"] = null = cal.null_stats * 0.5
        return dataclasses.replace(cal, size=0.15, warning="size 15.0 % is outside the band", null_stats=null,
                                   critical_value=rank_critical_value(null, 0.05))

    monkeypatch.setattr(C, "calibrate", over_rejecting)
    res = H.event_type_study("liquidation_print", sim_inputs, n_placebo=200)
    v = _primary(res)
    stat = res.study.car_test((1, 24), [PRIMARY_TEST])[PRIMARY_TEST].stat
    entry = res.calibration["[+1,+24]"]
    assert entry["nominal_size"] == 0.15 and v.pvalue == v.p_calibrated == pytest.approx(rank_pvalue(stat, seen["null"]))
    nominal = res.study.car_test((1, 24), [PRIMARY_TEST])[PRIMARY_TEST].pvalue
    assert not math.isclose(v.pvalue, nominal)
    assert "placebo-calibrated" in v.test and "the nominal p would mislead" in v.test
    assert v.ci_method.startswith("CAAR +- placebo")
    # the interval is CAAR +- c x SE with the placebo critical value c: it agrees with the calibrated p
    se = abs(v.effect / stat)
    c = entry["critical_value"]
    assert v.ci_low == pytest.approx(v.effect - c * se, rel=1e-9) and v.ci_high == pytest.approx(v.effect + c * se, rel=1e-9)
    assert v.ci_agrees
    assert any(n.startswith("WARNING: placebo calibration") for n in res.notes)


def test_design_hc_as_primary_has_its_own_normal_interval(sim_inputs):
    res = H.event_type_study("liquidation_print", sim_inputs, primary_test="design_hc", n_placebo=0)
    for v in res.verdicts():
        t = res.study.car_test(tuple(int(x) for x in v.hypothesis.split("CAR(")[1].split(")")[0]
                                     .replace("h", "").split(",")), ["design_hc"])["design_hc"]
        z = sps.norm.ppf(0.975)
        half = z * abs(v.effect / t.stat)
        assert v.pvalue == pytest.approx(t.pvalue) and v.ci_agrees
        assert v.ci_high - v.ci_low == pytest.approx(2 * half, rel=1e-9)
        assert "design_hc" in v.ci_method


@pytest.mark.slow
def test_primary_row_has_its_size_on_the_real_pack(real_lake):
    inputs = H.load_inputs(real_lake, daily=False, **REAL)
    seen = 0
    for key in KEYS:
        res = H.event_type_study(key, inputs, n_placebo=200)
        if res.events.height < 5:   # no or too few events at the defaults (funding resets): nothing to calibrate
            assert _primary(res).pvalue is None or _primary(res).size is not None
            continue
        v = _primary(res)
        assert v.size is not None and v.n_placebo >= 190 and v.ci_agrees, key
        assert np.isfinite(v.p_calibrated), key
        seen += 1
    assert seen >= 2


def test_size_table_reads_the_notebook_parameters_and_measures_each_cell(sim_inputs):
    from research.hypotheses.carsizes import notebook_parameters, size_table

    assert notebook_parameters("liquidation_print")["k"] == 10.0 and notebook_parameters("selloff") == {}
    tab = size_table(sim_inputs, event_types=("oi_collapse",), tests=("cross_sectional_t",), car_windows=((1, 24),),
                     n_draws=40)
    assert tab.height == 1 and tab["n_draws"][0] >= 38 and 0 <= tab["size"][0] <= 1
    assert tab["mc_lo"][0] < 0.05 < tab["mc_hi"][0]


def test_raw_model_runs_only_event_window_tests(sim_inputs):
    res = H.event_type_study("oi_collapse", sim_inputs, model="raw", n_placebo=0)
    assert res.study is not None and res.study.spec["tests"] == ["cross_sectional_t", "wilcoxon"]
    assert _primary(res).pvalue is not None and _primary(res).ci_agrees
