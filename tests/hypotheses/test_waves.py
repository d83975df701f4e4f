"""research.hypotheses.waves (H5)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from research.stats import TestStat
from tests.hypotheses.helpers import _panel


# --------------------------------------------------------------------------------------------------
# H5
# --------------------------------------------------------------------------------------------------
def test_liquidation_waves_clustered_vs_iid():
    n = 3000
    rng = np.random.default_rng(2)
    usd = rng.lognormal(10, 0.5, n)
    starts = rng.choice(np.arange(10, n - 10), 40, replace=False)
    for s in starts:  # waves: 4 consecutive large buckets
        usd[s:s + 4] *= 50
    p = _panel(n, liq_long_usd=usd, liq_short_usd=np.zeros(n))
    r = H.liquidation_waves(p, print_quantile=0.95, k_bars=3, n_perm=500, seed=1)
    assert r.calibration is None and "one regime" in r.params["regime_rule"]  # no returns: no regimes
    c = r.conditional
    assert c["p_conditional"] > 2 * c["p_unconditional"]
    assert c["p_permutation"] < 0.01 and c["p_binomial"] < 1e-6
    assert r.ljung_box["print"].pvalue < 1e-6
    assert isinstance(r.ljung_box["usd"], TestStat)
    # i.i.d. prints: no clustering detected
    p2 = _panel(n, liq_long_usd=rng.lognormal(10, 1.0, n), liq_short_usd=np.zeros(n))
    r2 = H.liquidation_waves(p2, print_quantile=0.95, k_bars=3, n_perm=500, seed=1)
    assert r2.conditional["p_permutation"] > 0.01
    json.dumps(r.to_dict())
    r.plot().to_dict()


def test_liquidation_waves_uses_native_bucket_size():
    n = 4 * 300
    usd = np.full(n, np.nan)
    usd[3::4] = np.random.default_rng(3).lognormal(10, 1, n // 4)  # 4h buckets land on every 4th hour
    p = _panel(n, liq_long_usd=usd, liq_short_usd=np.where(np.isfinite(usd), 0.0, np.nan))
    r = H.liquidation_waves(p, n_perm=100)
    assert r.params["bucket_hours"] == pytest.approx(4.0) and r.series.height == n // 4


def _vol_regime_market(n: int, seed: int, wave: bool = False):
    """Hourly returns in volatility regimes of 5-10 days; prints depend on the regime only (or also come in waves)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(120, 241, n // 120 + 2)
    high = np.repeat(np.arange(lengths.size) % 2 == 1, lengths)[:n]
    ret = rng.normal(0, np.where(high, 0.01, 0.002))
    prints = rng.random(n) < np.where(high, 0.15, 0.01)
    if wave:  # each print is followed by another one or two hours later
        follow = np.flatnonzero(prints)[:-1] + rng.integers(1, 3, int(prints.sum()) - 1)
        prints[follow[follow < n]] = True
    usd = np.where(prints, 5e7, 1e5) * rng.lognormal(0, 0.1, n)
    p = _panel(n, perp_ret=ret, liq_long_usd=usd, liq_short_usd=np.zeros(n))
    return p, p.filter(pl.Series(prints)).select("ts")


def test_liquidation_waves_null_keeps_volatility_clustering():
    p, prints = _vol_regime_market(4000, seed=0)
    r = H.liquidation_waves(p, prints=prints, k_bars=3, n_perm=500, seed=1, n_draws=60, n_perm_placebo=49)
    c = r.conditional
    # prints cluster because volatile days cluster: the shuffle calls it waves; within regimes most
    # of the excess goes (not all: a trailing window lags a regime's abrupt onset by up to a day)
    assert c["p_permutation"] < 0.01 and c["excess_shuffle"] > 0.1
    assert c["excess_regime"] < c["excess_shuffle"] / 3 and c["p_regime"] > 0.05
    assert r.series["regime"].n_unique() == 11  # 10 bins and the first day without history
    v = r.verdicts()[0]
    assert "beyond volatility clustering" in v.hypothesis and "empirical size" in v.test
    assert r.calibration is not None and r.calibration.n_draws == 60
    assert v.ci_high is None and (v.ci_low > 0) == (v.pvalue < 0.05)  # one-sided bound, one rule with p
    # real waves on top of the regimes are still found
    p2, prints2 = _vol_regime_market(4000, seed=0, wave=True)
    w = H.liquidation_waves(p2, prints=prints2, k_bars=3, n_perm=500, seed=1, n_draws=0)
    assert w.conditional["p_regime"] < 0.01 and w.conditional["excess_regime"] > 0.1
    vw = w.verdicts()[0]
    assert vw.pvalue < 0.05 and vw.ci_low > 0


def test_waves_design_plants_followers():
    from research.hypotheses.waves import waves_design

    rng = np.random.default_rng(0)
    n = 600
    ind = rng.random(n) < 0.08
    strata = np.zeros(n, np.int64)
    d = waves_design(ind, strata, rng.normal(size=n), k_bars=3, n_perm=49, observed={"stat": 0.3, "pvalue": 0.5})
    P = d.null_draws(20, rng)
    assert P.shape == (20, n) and P.dtype == bool
    rate0, p0, _ = d.statistic(P)
    rate1, p1, _ = d.statistic(d.plant(P, 1.0, rng))
    assert np.all(rate1 > rate0) and np.mean(p1 < 0.05) > np.mean(p0 < 0.05)
    assert np.all((p0 > 0) & (p0 <= 1))


def test_ljung_box_from_fft_acf_equals_statsmodels():
    from statsmodels.stats.diagnostic import acorr_ljungbox

    from research.hypotheses.waves import _autocorrelation

    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=3000)) * 0.01 + rng.normal(size=3000)
    ind = rng.random(3000) < 0.07
    _, lb = _autocorrelation(x, ind, 10)
    for name, s in (("usd", x), ("print", ind.astype(float))):
        ref = acorr_ljungbox(s, lags=[10])
        assert lb[name].stat == pytest.approx(float(ref["lb_stat"].iloc[0]), rel=1e-10)
        assert lb[name].pvalue == pytest.approx(float(ref["lb_pvalue"].iloc[0]), rel=1e-8)


def test_followed_rate_from_positions_equals_the_matrix_rate():
    from research.hypotheses.waves import _followed_rate, _followed_rate_pos
    from research.stats_resampling import stratified_permutations

    rng = np.random.default_rng(0)
    n = 2000
    ind, strata = rng.random(n) < 0.06, rng.integers(0, 5, n)
    P = stratified_permutations(ind, strata, 40, seed=1)
    pos = np.sort(np.where(P, np.arange(n)[None, :], 3 * n + 1), axis=1)
    for k in (1, 3, 10):
        np.testing.assert_allclose(_followed_rate_pos(pos, n, k), _followed_rate(P, k), rtol=0, atol=1e-15)
