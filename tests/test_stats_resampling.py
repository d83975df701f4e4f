"""research.stats_resampling: HAC OLS against statsmodels, resampling indices, rank p-values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from research import stats_resampling as R


def test_hac_ols_matches_statsmodels_for_every_column():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    n = 400
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n) > 0])
    Y = np.stack([X @ [1, 0.2, 0] + np.convolve(rng.normal(size=n + 4), np.ones(5), "valid") for _ in range(3)], axis=1)
    fit = R.hac_ols(X, Y, 6)
    only = R.hac_ols(X, Y, 6, coef=2)
    for j in range(3):
        ref = sm.OLS(Y[:, j], X).fit(cov_type="HAC", cov_kwds={"maxlags": 6})
        np.testing.assert_allclose(fit.beta[:, j], ref.params, rtol=1e-10)
        np.testing.assert_allclose(fit.se[:, j], ref.bse, rtol=1e-10)
        np.testing.assert_allclose(fit.pvalue[:, j], ref.pvalues, rtol=1e-8)
        assert only.se[2, j] == pytest.approx(ref.bse[2], rel=1e-10) and np.isnan(only.se[0, j])
    lo, hi = fit.ci()
    assert np.all(lo < fit.beta) and np.all(fit.beta < hi)


def test_nw_lags_rule():
    assert R.nw_lags(100) == 4 and R.nw_lags(5000) == 9 and R.nw_lags(1) == 1


def test_stratified_permutations_keep_each_stratum_counts():
    rng = np.random.default_rng(1)
    x = rng.random(300) < 0.2
    strata = rng.integers(-1, 5, 300)
    P = R.stratified_permutations(x, strata, 50, seed=2)
    assert P.shape == (50, 300)
    for s in np.unique(strata):
        assert np.all(P[:, strata == s].sum(axis=1) == x[strata == s].sum())
    assert not np.all(P == x[None, :])  # places do change
    np.testing.assert_array_equal(P, R.stratified_permutations(x, strata, 50, seed=2))  # seeded


def test_stratified_placements_are_uniform_within_strata_and_keep_counts():
    rng = np.random.default_rng(1)
    n = 240
    X = rng.random((3, n)) < 0.15
    strata = rng.integers(-1, 4, n)
    pos, sentinel = R.stratified_placements(X, strata, 3000, seed=2)
    assert pos.shape[0] == 3 * 3000 and (np.diff(pos, axis=1) >= 0).all() and sentinel > 3 * n
    for i in range(3):
        rows = pos[i * 3000:(i + 1) * 3000]
        for s in np.unique(strata):
            slots = np.flatnonzero(strata == s)
            assert (np.isin(rows, slots).sum(axis=1) == X[i, slots].sum()).all()   # each stratum keeps its events
        # every slot of a stratum is equally likely: frequency = the stratum's event share (chi-square)
        freq = np.bincount(rows[rows < n].ravel(), minlength=n)
        for s in np.unique(strata):
            slots = np.flatnonzero(strata == s)
            k = X[i, slots].sum()
            if 0 < k < slots.size:
                exp = 3000 * k / slots.size
                chi2 = float(np.sum((freq[slots] - exp) ** 2 / exp))
                assert chi2 < sps.chi2.ppf(0.9999, slots.size - 1) * (1 - k / slots.size) + 5, (i, s, chi2)
    np.testing.assert_array_equal(pos, R.stratified_placements(X, strata, 3000, seed=2)[0])   # seeded


@pytest.mark.parametrize("n_slots", [6, 9])   # 2 events in 6 slots: the dense path; in 9: the sparse one
def test_stratified_placements_draw_every_subset_equally_often(n_slots):
    # uniform margins are not enough: each 2-subset of the stratum must be equally likely (chi-square)
    x = np.zeros(n_slots, bool)
    x[:2] = True
    n_perm = 30000
    pos, _ = R.stratified_placements(x, np.zeros(n_slots, np.int64), n_perm, seed=5)
    pairs = pos[:, 0] * n_slots + pos[:, 1]
    counts = np.bincount(pairs, minlength=n_slots * n_slots)
    counts = counts[counts > 0]
    n_subsets = n_slots * (n_slots - 1) // 2
    assert counts.size == n_subsets and (pos[:, 0] < pos[:, 1]).all()
    exp = n_perm / n_subsets
    chi2 = float(np.sum((counts - exp) ** 2 / exp))
    assert chi2 < sps.chi2.ppf(0.9999, n_subsets - 1), chi2


def test_strata_of_quantile_bins_and_nan():
    s = R.strata_of(np.r_[np.arange(100.0), np.nan], 4)
    assert s[-1] == -1 and np.bincount(s[:-1]).tolist() == [25, 25, 25, 25]


def test_circular_shifts_and_moving_blocks():
    k = R.circular_shifts(100, 500, seed=0, min_shift=10)
    assert k.min() >= 10 and k.max() <= 90
    idx = R.moving_blocks(30, 7, 20, seed=0)
    assert idx.shape == (20, 30) and idx.max() < 30
    d = np.diff(idx[:, :7], axis=1)
    assert np.all(d == 1)  # the first block is consecutive units
    with pytest.raises(ValueError):
        R.circular_shifts(5, 1, min_shift=3)


def test_rank_pvalue_and_matching_critical_value():
    rng = np.random.default_rng(3)
    null = rng.normal(size=199)
    assert R.rank_pvalue(100.0, null) == pytest.approx(1 / 200)
    assert R.rank_pvalue(0.0, null) == pytest.approx(1.0)
    assert R.rank_pvalue(1.0, null, two_sided=False) == pytest.approx((1 + np.sum(null >= 1)) / 200)
    for obs in rng.normal(0, 2.5, 3000):
        assert (abs(obs) > R.rank_critical_value(null)) == (R.rank_pvalue(obs, null) < 0.05)
    assert R.rank_critical_value(rng.normal(size=10)) == np.inf  # too few draws to reach 5 %
    N = rng.normal(size=(199, 4))
    np.testing.assert_allclose(R.rank_critical_value(N, axis=0), [R.rank_critical_value(N[:, j]) for j in range(4)])


def test_rejection_rate_and_mc_band():
    assert R.rejection_rate(np.array([0.01, 0.05, 0.2, np.nan])) == pytest.approx(1 / 3)
    lo, hi = R.mc_band(1000)
    assert lo == pytest.approx(0.0365, abs=5e-4) and hi == pytest.approx(0.0635, abs=5e-4)


def test_forward_any_rows_matches_a_loop():
    rng = np.random.default_rng(4)
    ind = rng.random((3, 40)) < 0.1
    out = R.forward_any_rows(ind, 5)
    for i in range(3):
        for t in range(40):
            want = np.nan if t + 5 > 39 else float(ind[i, t + 1:t + 6].any())
            assert (np.isnan(want) and np.isnan(out[i, t])) or out[i, t] == want


def test_rotation_hac_test_p_and_critical_value_agree():
    rng = np.random.default_rng(5)
    n = 300
    sig = np.repeat(rng.random(n // 10) < 0.3, 10).astype(float)  # a persistent signal
    X = np.column_stack([np.ones(n), sig])
    Y = np.stack([rng.normal(size=n) for _ in range(50)] + [sig * 2 + rng.normal(size=n)], axis=1)
    test = R.rotation_hac_test(X, 10, 199, min_shift=20, seed=1)
    t, p, crit, beta = test(Y)
    assert t.shape == p.shape == crit.shape == beta.shape == (51,)
    np.testing.assert_array_equal(np.abs(t) > crit, p < 0.05)
    assert p[-1] == pytest.approx(1 / 200) and beta[-1] == pytest.approx(2, abs=0.3)
    assert np.mean(p[:50] < 0.05) < 0.2
