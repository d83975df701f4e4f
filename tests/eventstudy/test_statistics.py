"""Column statistics of the test battery: complete-matrix fast paths against NaN-aware references."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from research.eventstudy import models, statistics
from research.eventstudy.results import caar_band


@pytest.fixture(params=["complete", "gaps"])
def ar(request):
    x = np.random.default_rng(3).normal(0, 0.01, (40, 9))
    if request.param == "gaps":
        x[3, 2] = x[7, 2] = x[11, 5] = np.nan
        x[:, 8] = np.nan  # a bar no event has
    return x


def test_column_mean_and_sd(ar):
    with warnings.catch_warnings():  # numpy warns about the all-NaN bar
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(ar, 0), np.nanstd(ar, 0, ddof=1)
    np.testing.assert_allclose(statistics._nanmean0(ar), mean, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(statistics._nanstd0(ar), sd, rtol=1e-12, equal_nan=True)


def test_brown_warner_1980_denominator(ar):
    """AAR_t / (sqrt(sum over events with a bar t of s_i^2) / N_t), whichever path computes it."""
    rng = np.random.default_rng(5)
    n, w = ar.shape
    est = rng.normal(0, 0.01, (n, 60))
    m_est, m_evt = rng.normal(0, 0.01, (n, 60)), rng.normal(0, 0.01, (n, w))
    fit = models.fit("market", est, ar, m_est, m_evt)
    fit.evt_ar = ar  # test the statistic on these ARs
    got = statistics.TestBattery(fit).bar("brown_warner_1980").stat
    has = np.isfinite(ar)
    with np.errstate(invalid="ignore", divide="ignore"):
        nt = has.sum(0)
        want = (np.where(has, ar, 0).sum(0) / nt) / (np.sqrt((has * fit.sd1[:, None] ** 2).sum(0)) / nt)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_caar_band_on_complete_paths(ar):
    lo, hi, n = caar_band(ar, 0.9)
    cum = np.cumsum(ar, 1)
    for j in range(ar.shape[1]):
        c = cum[np.isfinite(cum[:, j]), j]
        assert n[j] == c.size
        if c.size > 1:
            ci = sps.t.interval(0.9, c.size - 1, loc=c.mean(), scale=sps.sem(c))
            assert (lo[j], hi[j]) == pytest.approx(ci, rel=1e-10)
        else:
            assert np.isnan(lo[j]) and np.isnan(hi[j])



def _matrix(seed, n, L, decimals, gap_share):
    """Random values rounded to make ties, with a share of NaN gaps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, L)).round(decimals)
    x[rng.random(x.shape) < gap_share] = np.nan
    return x


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), L=st.integers(1, 80),
       decimals=st.integers(0, 3), gap_share=st.sampled_from([0.0, 0.05, 0.5, 1.0]))
def test_row_ranks_equal_scipy_rankdata(seed, n, L, decimals, gap_share):
    x = _matrix(seed, n, L, decimals, gap_share)
    want = sps.rankdata(x, axis=1, nan_policy="omit")
    np.testing.assert_array_equal(statistics.row_ranks(x), want)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), L=st.integers(1, 80),
       decimals=st.integers(0, 3), gap_share=st.sampled_from([0.0, 0.05, 0.5, 1.0]))
def test_row_median_equals_numpy_nanmedian(seed, n, L, decimals, gap_share):
    x = _matrix(seed, n, L, decimals, gap_share)
    with warnings.catch_warnings():  # numpy warns about all-NaN rows
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian(x, axis=1)
    np.testing.assert_array_equal(statistics.row_median(x), want)

