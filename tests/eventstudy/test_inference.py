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


def test_placebo_dates_avoid_event_windows():
    returns, _ = synthetic(n_bars=600, seed=2)
    res = _study(returns, np.random.default_rng(1), n_events=10)
    from research.eventstudy import inference, windows as W

    ctx = res._context
    cover = W.window_cover(ctx.panel, ctx.asset_idx, ctx.bar_idx, (int(ctx.win[0]), int(ctx.win[-1])))
    cs = np.concatenate([[0], np.cumsum(cover[0] > 0)])
    elig = inference._eligible(ctx, 0, cs[None, :])
    for b in elig:
        assert not (cover[0, b + ctx.win[0] : b + ctx.win[-1] + 1] > 0).any()
    assert set(ctx.bar_idx.tolist()).isdisjoint(elig.tolist())


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
