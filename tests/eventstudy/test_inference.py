"""Bootstrap, placebo and Benjamini-Hochberg: calibration under the null, power, reproducibility."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from research import eventstudy as es
from research.errors import EventStudyError

from .conftest import synthetic

N_STUDIES = 80
#: Rejection rate at 5 % over N_STUDIES null studies must stay inside this band (binomial(80, 0.05)
#: puts < 0.5 % mass outside it even with the mild over-rejection of the bootstrap at n = 40).
BAND = (0.0, 0.125)


def _study(returns, rng, n_events=40, delta=0.0):
    ts = returns["ts"]
    bars = np.sort(rng.choice(np.arange(120, ts.len() - 10), size=n_events, replace=False))
    r = returns
    if delta:
        r = returns.with_columns(pl.when(pl.arange(0, returns.height).is_in(bars.tolist()))
                                 .then(pl.col("return") + delta).otherwise(pl.col("return")).alias("return"))
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": ["A"] * n_events})
    return es.run(r, ev, estimation=(-100, -11), window=(-2, 5), model="mean", overlap="keep",
                  tests=["cross_sectional_t"])


@settings(max_examples=2, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_null_pvalues_roughly_uniform(seed):
    rng = np.random.default_rng(seed)
    returns, _ = synthetic(n_bars=3000, seed=seed % 1000)
    pb, pp = [], []
    for k in range(N_STUDIES):
        res = _study(returns, rng)
        pb.append(es.bootstrap(res, horizons=[(0, 3)], n_draws=199, seed=k).frame["pvalue"][0])
        pp.append(es.placebo(res, horizons=[(0, 3)], n_draws=199, seed=k).frame["pvalue"][0])
    for p in (np.array(pb), np.array(pp)):
        rate = (p <= 0.05).mean()
        assert BAND[0] <= rate <= BAND[1], rate
        assert 0.35 <= p.mean() <= 0.65  # uniform has mean 0.5


@settings(max_examples=4, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), delta=st.floats(0.004, 0.05))
def test_planted_effect_is_recovered(seed, delta):
    rng = np.random.default_rng(seed)
    returns, _ = synthetic(n_bars=3000, seed=seed % 1000, sigma=0.01)
    res = _study(returns, rng, n_events=60, delta=delta)
    j = int(np.flatnonzero(res.event_time == 0)[0])
    se = 0.01 / np.sqrt(60)
    assert abs(res.aar[j] - delta) < 5 * se
    assert abs(res.car_test((0, 0))["cross_sectional_t"].stat) > 0  # runs on the sub-window
    boot = es.bootstrap(res, horizons=[(0, 0)], n_draws=499, seed=1)
    assert abs(boot.frame["caar"][0] - delta) < 5 * se
    if delta > 8 * se:
        assert boot.frame["pvalue"][0] < 0.01
        assert es.placebo(res, horizons=[(0, 0)], n_draws=199, seed=1).frame["pvalue"][0] < 0.01


def test_seeded_and_reproducible():
    returns, _ = synthetic(n_bars=2000, seed=5)
    res = _study(returns, np.random.default_rng(0))
    a = es.bootstrap(res, n_draws=100, seed=3)
    b = es.bootstrap(res, n_draws=100, seed=3)
    assert a.frame.equals(b.frame) and not a.frame.equals(es.bootstrap(res, n_draws=100, seed=4).frame)
    c, d = es.placebo(res, n_draws=50, seed=3), es.placebo(res, n_draws=50, seed=3)
    np.testing.assert_array_equal(c.draws, d.draws)
    assert a.frame["window"].to_list()[:2] == ["[0,0]", "[0,+1]"]  # default horizons (0, h)
    assert set(a.to_dict()) >= {"method", "horizons", "seed"}


def test_placebo_shifts_keep_gaps_and_match_volatility():
    """Placebo sets are the real pattern shifted (same gaps), at offsets whose trailing volatility
    is closest to the real events'; never within one event window of the real dates."""
    rng = np.random.default_rng(3)
    n = 6000
    vol = np.where((np.arange(n) // 500) % 2 == 0, 0.005, 0.03)  # alternating calm / wild regimes
    r = rng.normal(0, 1, n) * vol
    panel = es.build_panel(pl.DataFrame({"ts": np.arange(n), "asset": "A", "return": r}))
    bars = np.array([1700, 1730, 1790, 2700, 2760])  # inside wild regimes (1500-1999, 2500-2999)
    a = np.zeros(bars.size, dtype=np.int64)
    sh = es.matched_shifts(panel, a, bars, (-200, 20), 31, 40, np.random.default_rng(0), vol_window=100)
    assert sh.size == 40 and (np.abs(sh) >= 31).all()
    lv = np.log(vol)
    placebo_vol = np.array([lv[bars + s - 1].mean() for s in sh])
    assert np.mean(np.isclose(placebo_vol, np.log(0.03))) > 0.9  # matched: wild like the real events
    assert (bars.min() + sh + (-200) >= 0).all() and (bars.max() + sh + 20 <= n - 1).all()


def test_placebo_size_near_nominal_on_iid_returns():
    returns, market = synthetic(n_bars=6000, seed=8)
    rng = np.random.default_rng(2)
    bars = np.sort(rng.choice(np.arange(300, 5800), size=60, replace=False))
    ev = pl.DataFrame({"ts": returns["ts"].gather(bars), "asset": ["A"] * 60})
    ps = es.placebo_size(returns, ev, window=(-2, 5), estimation=(-200, -10), test="bmp", n_draws=60,
                         model="market", market=market, seed=1)
    assert ps.n_draws >= 50 and 0.0 <= ps.rate <= 0.15 and ps.lo <= ps.rate <= ps.hi
    assert "placebo sets" in ps.summary()


def test_assumption_warnings_flag_fat_tails_and_clusters():
    rng = np.random.default_rng(4)
    n = 4000
    ts = pl.Series("ts", np.arange(n))
    r = rng.standard_t(3, n) * 0.01
    f = pl.DataFrame({"ts": ts, "asset": "A", "return": r})
    bars = np.array([500, 510, 1500, 2500, 2520, 3500])
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": ["A"] * bars.size})
    res = es.run(f, ev, estimation=(-300, -20), window=(-5, 20), model="mean", event_overlap="keep",
                 tests=["patell", "bmp", "design_hc"])
    with pytest.warns(es.AssumptionWarning):
        msgs = es.assumption_warnings(res)
    assert any("kurtosis" in m for m in msgs) and any("share event-window bars" in m for m in msgs)
    thin = es.run(f, ev, estimation=(-300, -20), window=(-5, 20), model="mean", tests=["design_hc"])
    assert es.assumption_warnings(thin, warn=False) == []


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.2, 0.5], [0.001, 0.8, np.nan, 0.02], [0.9]])
def test_bh_matches_statsmodels(p):
    p = np.array(p, dtype=float)
    q, rej = es.bh(p, alpha=0.05)
    ok = np.isfinite(p)
    rj, qs, *_ = multipletests(p[ok], alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(q[ok], qs, rtol=1e-12)
    np.testing.assert_array_equal(rej[ok], rj)
    assert not rej[~ok].any()
    with pytest.raises(EventStudyError):
        es.bh([1.5])
