"""Normal-return models against statsmodels / direct formulas."""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from research.eventstudy import models


@pytest.fixture(params=["gaps", "complete"])
def data(request):
    """Estimation windows with missing bars (masked fit) or complete ones (the fast path)."""
    rng = np.random.default_rng(7)
    n, le, w = 6, 80, 7
    m_est, m_evt = rng.normal(0, 0.01, (n, le)), rng.normal(0, 0.01, (n, w))
    beta = rng.uniform(0.5, 1.5, n)
    r_est = 0.001 + beta[:, None] * m_est + rng.normal(0, 0.005, (n, le))
    r_evt = 0.001 + beta[:, None] * m_evt + rng.normal(0, 0.005, (n, w))
    if request.param == "gaps":
        r_est[0, :5] = np.nan  # a missing stretch
        m_est[1, 10] = np.nan
    return r_est, r_evt, m_est, m_evt


def test_market_model_matches_statsmodels(data):
    r_est, r_evt, m_est, m_evt = data
    f = models.fit("market", r_est, r_evt, m_est, m_evt)
    for i in range(r_est.shape[0]):
        ok = np.isfinite(r_est[i]) & np.isfinite(m_est[i])
        ols = sm.OLS(r_est[i, ok], sm.add_constant(m_est[i, ok])).fit()
        assert f.alpha[i] == pytest.approx(ols.params[0], rel=1e-9, abs=1e-14)
        assert f.beta[i] == pytest.approx(ols.params[1], rel=1e-9)
        assert f.sigma[i] == pytest.approx(np.sqrt(ols.scale), rel=1e-9)
        assert f.n_est[i] == ok.sum()
        # the fit keeps sums, not residuals: the estimation ARs it builds on demand and the
        # s.d. it derives from the SSR must still be statsmodels' residuals and their s.d.
        np.testing.assert_allclose(f.est_ar[i, ok], ols.resid, rtol=1e-9, atol=1e-15)
        assert np.isnan(f.est_ar[i, ~ok]).all()
        assert f.sd1[i] == pytest.approx(np.std(ols.resid, ddof=1), rel=1e-9)
        np.testing.assert_allclose(f.evt_ar[i], r_evt[i] - ols.params[0] - ols.params[1] * m_evt[i], rtol=1e-9, atol=1e-15)
        x = m_est[i, ok]
        pe = 1 + 1 / ok.sum() + (m_evt[i] - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum()
        np.testing.assert_allclose(f.pe[i], pe, rtol=1e-12)


def test_other_models(data):
    r_est, r_evt, m_est, m_evt = data
    mean = models.fit("mean", r_est, r_evt)
    np.testing.assert_allclose(mean.evt_ar, r_evt - np.nanmean(r_est, 1)[:, None], rtol=1e-12)
    adj = models.fit("market_adjusted", r_est, r_evt, m_est, m_evt)
    np.testing.assert_allclose(adj.evt_ar, r_evt - m_evt)
    raw = models.fit("raw", None, r_evt)
    np.testing.assert_array_equal(raw.evt_ar, r_evt)


def test_car_prediction_error_variance(data):
    """car_pe(j, j) equals the one-bar factor C_t."""
    r_est, r_evt, m_est, m_evt = data
    f = models.fit("market", r_est, r_evt, m_est, m_evt)
    for j in range(r_evt.shape[1]):
        np.testing.assert_allclose(f.car_pe(j, j), f.pe[:, j], rtol=1e-12)


@pytest.mark.parametrize("model", ["market", "mean", "market_adjusted"])
def test_take_equals_fit_of_the_subset(data, model):
    r_est, r_evt, m_est, m_evt = data
    keep = np.array([True, False, True, True, False, True])
    whole = models.fit(model, r_est, r_evt, m_est, m_evt).take(keep)
    sub = models.fit(model, r_est[keep], r_evt[keep], m_est[keep], m_evt[keep])
    for name in ("evt_ar", "est_ar", "n_est", "sigma", "sd1", "pe"):
        np.testing.assert_allclose(getattr(whole, name), getattr(sub, name), rtol=1e-12, atol=1e-18)
