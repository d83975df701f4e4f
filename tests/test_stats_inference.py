"""research.stats: intervals from the same method as their test (#12), against published values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from research.stats import (
    _fisher_minlike_p,
    ci_agrees,
    fisher_exact_or,
    newcombe_rd_ci,
    permutation_pvalue,
    permutation_shift_test,
)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
@pytest.mark.parametrize("k1,n1,k2,n2,lo,hi", [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
])
def test_newcombe_matches_published_table(k1, n1, k2, n2, lo, hi):
    got = newcombe_rd_ci(k1, n1, k2, n2)
    assert got[0] == pytest.approx(lo, abs=6e-5) and got[1] == pytest.approx(hi, abs=6e-5)


@given(st.integers(0, 12), st.integers(1, 12), st.integers(0, 12), st.integers(1, 12))
@settings(max_examples=150, deadline=None)
def test_newcombe_inside_unit_interval(k1, n1, k2, n2):
    k1, k2 = min(k1, n1), min(k2, n2)
    lo, hi = newcombe_rd_ci(k1, n1, k2, n2)
    assert -1.0 <= lo <= k1 / n1 - k2 / n2 <= hi <= 1.0


@pytest.mark.parametrize("table", [(3, 0, 0, 3), (5, 2, 1, 6), (1, 5, 6, 1), (2, 2, 2, 2), (0, 4, 4, 0), (7, 3, 2, 8),
                                   (10, 2, 3, 9)])
def test_fisher_pvalue_is_scipys_and_ci_inverts_the_same_test(table):
    a, b, c, d = table
    r = fisher_exact_or(a, b, c, d)
    assert r["pvalue"] == pytest.approx(sps.fisher_exact([[a, b], [c, d]]).pvalue, abs=1e-12)
    # the minlike p-value at psi = 1 is Fisher's p: the CI is the inversion of that very test
    p1 = _fisher_minlike_p(a, a + b, a + c, a + b + c + d, np.array([1.0]))[0]
    assert p1 == pytest.approx(r["pvalue"], abs=1e-9)
    hi = r["ci_high"] if math.isfinite(r["ci_high"]) else None
    assert ci_agrees(r["pvalue"], r["ci_low"], hi, null=1.0)
    # just outside a finite bound the test rejects, at it the test accepts
    for bound, step in ((r["ci_low"], 0.97), (r["ci_high"], 1.03)):
        if 0 < bound < math.inf:
            pv = _fisher_minlike_p(a, a + b, a + c, a + b + c + d, np.array([bound, bound * step]))
            assert pv[0] >= 0.05 - 1e-9 and pv[1] < 0.05


def test_fisher_known_value_3_0_0_3():
    # 3/3 vs 0/3: two-sided p = 2 / C(6, 3) = 0.1, odds ratio infinite, CI unbounded above
    r = fisher_exact_or(3, 0, 0, 3)
    assert r["pvalue"] == pytest.approx(0.1, abs=1e-12) and r["odds_ratio"] == math.inf and r["ci_high"] == math.inf


def test_permutation_shift_p_is_the_permutation_pvalue():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.4, 1, 9), rng.normal(0, 1, 14)
    r = permutation_shift_test(a, b, n_perm=999, seed=11)
    assert r["pvalue"] == pytest.approx(permutation_pvalue(a, b, n_perm=999, seed=11), abs=1e-12)
    assert r["ci_low"] <= r["diff"] <= r["ci_high"]


@given(st.integers(3, 9), st.integers(3, 9), st.floats(-2, 2), st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_permutation_ci_agrees_with_its_pvalue(na, nb, shift, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_t(3, na) + shift, rng.standard_t(3, nb)
    r = permutation_shift_test(a, b, n_perm=499, seed=seed)
    assert ci_agrees(r["pvalue"], r["ci_low"], r["ci_high"])
    # the interval shifts with the data (location-shift equivariance)
    r2 = permutation_shift_test(a + 1.0, b, n_perm=499, seed=seed)
    assert r2["ci_low"] == pytest.approx(r["ci_low"] + 1.0, abs=0.05 * (r["ci_high"] - r["ci_low"]) + 1e-9)


def test_ci_agrees_detects_a_contradiction():
    # the H2 row: Wald CI [0.10, 0.98] with Fisher p = 0.091
    assert not ci_agrees(0.091, 0.10, 0.98)
    assert ci_agrees(0.091, -0.05, 0.98) and ci_agrees(0.01, 0.1, 0.9) and ci_agrees(None, 0.1, 0.9)


def test_fisher_size_known_values():
    from research.stats import fisher_size

    # 3 of 6 with the outcome, 3 with the condition: the most extreme tables have p = 0.1, none rejects
    assert fisher_size(6, 3, 3) == 0.0
    # 4 of 8 and 4: the two extreme tables (each 1/70) have p = 2/70 < 0.05
    assert fisher_size(8, 4, 4) == pytest.approx(2 / 70, abs=1e-12)


def test_permutation_size_is_near_nominal_on_exchangeable_data():
    from research.stats import permutation_size

    rng = np.random.default_rng(5)
    s = permutation_size(rng.standard_t(3, 8), rng.standard_t(3, 12), n_placebo=400, n_perm=199, seed=2)
    # nominal 9/200 = 0.045; 400 draws: Monte-Carlo SE ~0.010
    assert 0.015 < s < 0.08


def test_size_warning_band():
    from research.stats import size_warning

    assert size_warning(0.05) == "" and size_warning(None) == ""
    assert "conservative" in size_warning(0.02) and "over-rejects" in size_warning(0.11)
