"""research.hypotheses.settlement (H4)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from research.errors import HypothesisError
from research.hypotheses.settlement import spot_control_design
from research.records import Verdict
from tests.hypotheses.helpers import _panel

WINDOW_HOURS = [23, 0, 1, 7, 8, 9, 15, 16, 17]


def _market(days: int, perp_bump: float, spot_bump: float, seed: int = 1) -> pl.DataFrame:
    """Hourly perp and spot volumes with a shared smooth intraday cycle, day effects and settlement bumps."""
    n = 24 * days
    rng = np.random.default_rng(seed)
    hod = np.arange(n) % 24
    season = 0.3 * np.cos(2 * np.pi * (hod - 14) / 24)  # the US session
    day = np.repeat(rng.normal(0, 0.2, days), 24)  # day-of-week / news days
    win = np.isin(hod, WINDOW_HOURS)
    common = season + day + rng.normal(0, 0.1, n)
    perp = np.exp(9 + common + perp_bump * win + rng.normal(0, 0.05, n))
    spot = np.exp(7 + common + spot_bump * win + rng.normal(0, 0.05, n))
    return _panel(n, perp_ret=rng.normal(0, 0.003, n), perp_volume=perp, spot_volume=spot)


def test_settlement_hours_detects_planted_volume_bump():
    p = _market(60, 0.5, 0.0)
    r = H.settlement_hours(p, window=1, n_draws=0)
    row = r.comparison.filter(pl.col("metric") == "log_volume").row(0, named=True)
    assert row["diff"] == pytest.approx(0.5, abs=0.05)
    assert row["p_hac"] < 1e-6 and row["n_in"] == 9 * 60
    assert r.profile.filter(pl.col("metric") == "log_volume").height == 24
    prim = r.spot_control.filter(pl.col("metric") == "perp_minus_spot").row(0, named=True)
    assert prim["effect"] == pytest.approx(0.5, abs=0.03) and prim["pvalue"] < 1e-6 and prim["n_days"] == 60
    r.plot().to_dict()


def test_spot_control_separates_funding_from_intraday_seasonality():
    # both venues busier at the settlement hours by the same amount: seasonality, not funding
    p = _market(90, 0.3, 0.3, seed=4)
    r = H.settlement_hours(p, n_draws=100, seed=1)
    sc = {row["metric"]: row for row in r.spot_control.iter_rows(named=True)}
    assert sc["log_perp_volume"]["effect"] == pytest.approx(0.3, abs=0.03) and sc["log_perp_volume"]["pvalue"] < 1e-6
    assert sc["log_spot_volume"]["effect"] == pytest.approx(0.3, abs=0.03)
    assert abs(sc["perp_minus_spot"]["effect"]) < 0.02
    v = r.verdicts()[0]
    assert isinstance(v, Verdict) and "beyond spot" in v.hypothesis
    assert v.pvalue == pytest.approx(sc["perp_minus_spot"]["pvalue"]) or not r.calibration.ok
    assert "empirical size" in v.test and r.calibration.n_draws == 100
    assert (v.ci_low < 0 < v.ci_high) == (v.pvalue >= 0.05)
    json.dumps(r.to_dict())


def test_settlement_hours_smooth_seasonality_alone_is_not_a_settlement_effect():
    # a smooth intraday cycle in the perp share only: the harmonics absorb it
    n = 24 * 60
    rng = np.random.default_rng(5)
    hod = np.arange(n) % 24
    perp = np.exp(9 + 0.4 * np.sin(2 * np.pi * hod / 24) + rng.normal(0, 0.1, n))
    p = _panel(n, perp_ret=rng.normal(0, 0.003, n), perp_volume=perp, spot_volume=np.exp(7 + rng.normal(0, 0.1, n)))
    r = H.settlement_hours(p, n_draws=0)
    prim = r.spot_control.filter(pl.col("metric") == "perp_minus_spot").row(0, named=True)
    assert abs(prim["effect"]) < 0.03


def test_spot_control_design_null_draws_and_planting():
    p = _market(40, 0.0, 0.0, seed=2)
    design, _table = spot_control_design(p)
    rng = np.random.default_rng(0)
    Y = design.null_draws(30, rng)
    assert Y.shape == (40 * 24, 30)
    _, _, beta0 = design.statistic(Y)
    assert np.all(np.abs(beta0) < 0.05)
    _, p1, beta1 = design.statistic(design.plant(Y, 0.2, rng))
    np.testing.assert_allclose(beta1 - beta0, 0.2, atol=1e-10)  # an exact shift of the coefficient
    assert np.all(p1 < 1e-3)


def test_settlement_hours_without_spot_is_not_testable_and_harmonics_checked():
    n = 24 * 20
    rng = np.random.default_rng(0)
    p = _panel(n, perp_ret=rng.normal(0, 0.003, n), perp_volume=np.exp(rng.normal(8, 0.1, n)))
    r = H.settlement_hours(p, n_draws=10)
    v = r.verdicts()[0]
    assert v.effect is None and v.conclusion.startswith("not testable") and r.calibration is None
    with pytest.raises(HypothesisError, match="8 h harmonic"):
        spot_control_design(_market(20, 0, 0), harmonics=3)
