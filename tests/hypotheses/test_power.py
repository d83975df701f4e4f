"""research.hypotheses.power: planted effects, MDE bisection, CAR power from placebo studies."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from research.hypotheses.calibration import PrimaryDesign, _finish
from research.hypotheses.power import (
    PowerResult,
    car_mde,
    car_power,
    minimum_detectable_effect,
    power,
)

N = 50


def _mean_design() -> PrimaryDesign:
    def stat(Y):
        t = Y.mean(0) / (Y.std(0, ddof=1) / np.sqrt(Y.shape[0]))
        return t, 2 * sps.t.sf(np.abs(t), Y.shape[0] - 1), Y.mean(0)

    return PrimaryDesign(test="one-sample t", effect_label="mean", observed={"stat": 0.0, "pvalue": 1.0, "se": 1 / np.sqrt(N)},
                         null_draws=lambda m, rng: rng.normal(size=(N, m)), statistic=stat, plant=lambda Y, e, rng: Y + e)


def test_power_rises_with_the_planted_effect_and_starts_at_the_size():
    r = power(_mean_design(), [0.0, 0.2, 0.4, 0.8], n_draws=2000, seed=1)
    assert isinstance(r, PowerResult)
    rate = r.table["rejection_rate"].to_list()
    assert rate[0] == pytest.approx(0.05, abs=0.015)
    assert rate == sorted(rate) and rate[-1] > 0.99
    # the analytic power of the t test at d = 0.4, n = 50: ~0.80
    assert rate[2] == pytest.approx(sps.nct.sf(sps.t.ppf(0.975, N - 1), N - 1, 0.4 * np.sqrt(N)), abs=0.03)
    assert "one-sample t" in r.summary()
    cal = power(_mean_design(), [0.0, 0.4], n_draws=2000, seed=1, calibrated=True)
    assert cal.calibrated and cal.table["rejection_rate"][0] < 0.06


def test_minimum_detectable_effect_matches_the_textbook_value():
    m = minimum_detectable_effect(_mean_design(), n_draws=2000, seed=3)
    # (z_.975 + z_.8) / sqrt(n) with the t correction: ~0.40
    assert m["mde"] == pytest.approx(0.40, abs=0.03) and m["power_at_mde"] >= 0.8
    assert m["estimate_shift"] == pytest.approx(m["mde"], abs=1e-9)  # the planted shift moves the mean exactly
    none = minimum_detectable_effect(_mean_design(), n_draws=200, seed=3, upper=0.01, max_effect=0.05)
    assert none["mde"] is None and none["power_at_mde"] < 0.8


def test_car_power_and_mde_from_placebo_studies():
    rng = np.random.default_rng(0)
    se = 0.01
    caar = rng.normal(0, se, 400)
    t = caar / se
    cal = _finish("cross_sectional_t", t, 2 * sps.norm.sf(np.abs(t)), 0.0, 1.0, 0.05, {},
                  extra={"caar": caar, "stat": t})
    tab = car_power(cal, [0.0, 0.01, 0.03], calibrated=False)
    assert isinstance(tab, pl.DataFrame)
    r = tab["rejection_rate"].to_list()
    assert r[0] == pytest.approx(0.05, abs=0.025) and r[1] < r[2] and r[2] > 0.8
    mde = car_mde(cal, calibrated=False)
    assert mde == pytest.approx((1.96 + 0.8416) * se, rel=0.1)


def test_permutation_mde_matches_the_two_sample_textbook_value():
    from research.hypotheses.power import permutation_mde

    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 40), rng.normal(0, 1, 40)
    mde = permutation_mde(a, b, n_draws=2000, seed=1)
    s = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    textbook = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * s * np.sqrt(2 / 40)
    assert mde == pytest.approx(textbook, rel=0.12)
    assert permutation_mde(a[:0], b) is None


def test_fisher_mde_is_exact_and_checked_by_simulation():
    from research.hypotheses.power import fisher_mde

    n1, n2, base = 20, 30, 0.3
    d = fisher_mde(n1, n2, base)
    assert d is not None and 0.2 < d < 0.7
    rng = np.random.default_rng(0)

    def sim_power(delta, reps=2000):
        x1 = rng.binomial(n1, base + delta, reps)
        x2 = rng.binomial(n2, base, reps)
        return np.mean([sps.fisher_exact([[a, n1 - a], [c, n2 - c]]).pvalue < 0.05 for a, c in zip(x1, x2)])

    assert sim_power(d) == pytest.approx(0.8, abs=0.04)      # 2,000 draws: MC s.e. 0.009
    assert sim_power(d - 0.05) < 0.8
    # too few events: even certainty does not reach 80 %
    assert fisher_mde(2, 3, 0.3) is None


def test_design_mde_shift_and_mde_fields():
    from types import SimpleNamespace

    from research.hypotheses.power import design_mde, mde_fields

    null = np.random.default_rng(2).normal(0.5, 0.05, 1000)
    cal = _finish("toy", null, np.full(null.size, 0.5), 0.6, 0.01, 0.05, {})
    res = SimpleNamespace(_design=None, calibration=cal, params={"seed": 0})
    m = design_mde(res, method="shift")
    assert m["mde"] == pytest.approx(cal.critical_value - np.quantile(null, 0.2), rel=1e-12)
    assert design_mde(res, method="shift") is m     # cached on the result
    assert mde_fields(m)["mde"] == m["mde"] and mde_fields({}) == {"mde": None, "mde_label": ""}
    assert "80 % power" in mde_fields({"mde": None, "max_effect": 1.0})["mde_label"]
