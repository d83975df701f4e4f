"""research.stats: the generic statistics on small samples with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from research import hypotheses as H


# --------------------------------------------------------------------------------------------------
# small statistics
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a,b,expected,tol", [
    # d = (2-1)/1 = 1; J = 1 - 3/(4*6-9) = 0.8
    ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], 0.8, 1e-12),
    ([0.0, 2.0], [0.0, 2.0], 0.0, 1e-12),
])
def test_hedges_g_known_values(a, b, expected, tol):
    assert H.hedges_g(a, b) == pytest.approx(expected, abs=tol)


def test_hedges_g_degenerate_is_nan():
    assert math.isnan(H.hedges_g([1.0], [1.0, 2.0]))


@pytest.mark.parametrize("k,n,lo,hi,tol", [
    (5, 10, 0.2366, 0.7634, 1e-4),  # Wilson 95 % for 5/10 (textbook value)
    (0, 10, 0.0, 0.2775, 1e-4),
])
def test_wilson_ci(k, n, lo, hi, tol):
    a, b = H.wilson_ci(k, n)
    assert a == pytest.approx(lo, abs=tol) and b == pytest.approx(hi, abs=tol)


def test_permutation_and_bootstrap_are_seeded_and_sensible():
    a = np.array([1.0, 1.1, 0.9, 1.2, 1.0, 0.95])
    b = np.array([0.0, 0.1, -0.1, 0.05, 0.0, -0.05])
    p1 = H.permutation_pvalue(a, b, n_perm=999, seed=3)
    p2 = H.permutation_pvalue(a, b, n_perm=999, seed=3)
    assert p1 == p2
    # only the identity split (and its mirror) is as extreme: p = (1 + ~2/924*999)/1000 < 0.01
    assert p1 < 0.01
    lo, hi = H.bootstrap_diff_ci(a, b, n_boot=2000, seed=1)
    assert lo < a.mean() - b.mean() < hi and lo > 0.8
    same = H.permutation_pvalue(b, b, n_perm=499, seed=1)
    assert same == pytest.approx(1.0)
