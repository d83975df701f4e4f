"""design_hc against a by-hand construction, the CAR variances, and the estudy2 compat pieces."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from research import eventstudy as es
from research.eventstudy import cartests, ranks

from .conftest import synthetic


def test_design_hc_matches_explicit_weights():
    f, mk = synthetic(n_bars=1500, seed=7)
    bars = np.array([400, 415, 700, 1000, 1010, 1300])
    ev = pl.DataFrame({"ts": f["ts"].gather(bars), "asset": ["A"] * bars.size})
    est, win = (-200, -20), (-3, 12)
    res = es.run(f, ev, estimation=est, window=win, model="market", market=mk, event_overlap="keep",
                 overlap="keep", tests=["design_hc"])
    r, m = f["return"].to_numpy(), mk["return"].to_numpy()
    n_bars = r.size
    A, s2, cnt = np.zeros(n_bars), np.zeros(n_bars), np.zeros(n_bars)
    total = 0.0
    for b in bars:  # one event at a time, the textbook way
        es_ = np.arange(b + est[0], b + est[1] + 1)
        ws = np.arange(b + win[0], b + win[1] + 1)
        x, y = m[es_], r[es_]
        beta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
        alpha = y.mean() - beta * x.mean()
        ar_w = r[ws] - alpha - beta * m[ws]
        ar_e = y - alpha - beta * x
        total += ar_w.sum()
        T, n = ws.size, es_.size
        D = (m[ws] - x.mean()).sum()
        A[ws] += 1
        A[es_] -= T / n + D * (x - x.mean()) / ((x - x.mean()) ** 2).sum()
        for idx, a in ((es_, ar_e), (ws, ar_w)):
            s2[idx] += a**2
            cnt[idx] += 1
    sig2 = np.where(cnt > 0, s2 / np.maximum(cnt, 1), 0)
    want = total / np.sqrt((A**2 * sig2).sum())
    got = res.car_tests["[-3,+12]"]["design_hc"].stat
    assert got == pytest.approx(want, rel=1e-9)


def test_bw_car_variance_includes_estimation_error():
    f, mk = synthetic(n_bars=3000, seed=9)
    bars = np.arange(400, 2800, 300)
    ev = pl.DataFrame({"ts": f["ts"].gather(bars), "asset": ["A"] * bars.size})
    res = es.run(f, ev, estimation=(-250, -11), window=(0, 9), model="market", market=mk, tests=["brown_warner_1980"])
    fit = res._battery.fit
    V = fit.car_pe(0, 9)
    car = res.ar.sum(1)
    want = car.mean() / (np.sqrt((fit.sd1**2 * V).sum()) / car.size)
    assert res.car_tests["[0,+9]"]["brown_warner_1980"].stat == pytest.approx(want, rel=1e-12)
    assert (V > 10).all()  # T = 10 plus the estimation-error terms


def test_rank_car_finite_population_and_sign_continuity():
    assert cartests.cc_binomial(13, 20, 0.5) == pytest.approx(2.5 / np.sqrt(5))
    assert cartests.cc_binomial(10.4, 20, 0.5) == 0.0
    f, mk = synthetic(n_bars=3000, seed=10)
    bars = np.arange(400, 2800, 200)
    ev = pl.DataFrame({"ts": f["ts"].gather(bars), "asset": ["A"] * bars.size})
    res = es.run(f, ev, estimation=(-250, -11), window=(0, 39), model="market", market=mk, tests=["corrado_rank"])
    z = res.bar_tests["corrado_rank"].stat
    L, T = 240 + 40, 40  # estimation (-250, -11) has 240 bars
    want = z.sum() / np.sqrt(T * (L - T) / (L - 1))
    assert res.car_tests["[0,+39]"]["corrado_rank"].stat == pytest.approx(want, rel=1e-12)


def test_cowan_car_rank_by_hand():
    rng = np.random.default_rng(1)
    est, car = rng.normal(size=(6, 30)), rng.normal(0.3, 1, size=(6, 4))
    full = np.concatenate([est, car], 1)
    K = np.vstack([sps.rankdata(row) for row in full])
    mr = np.mean((full.shape[1] + 1) / 2 * np.ones(6))
    den = np.sqrt(((K.mean(0) - mr) ** 2).sum() / full.shape[1])
    want = np.sqrt(4) * (K[:, 30:].mean() - mr) / den
    assert cartests.cowan_car_rank(est, car) == pytest.approx(want, rel=1e-12)


def test_estudy2_wilcoxon_rule_and_qsignrank():
    # exact null of V for n = 10: P(V <= 43) = 0.9473, P(V <= 44) = 0.9580, P(V <= 46) = 0.9756
    assert ranks.signrank_quantile(0.95, 10) == 44 and ranks.signrank_quantile(0.975, 10) == 46
    assert ranks.signrank_quantile(0.9, 10) == 40
    # upper region at 5 %: W >= 44 (one-sided 5 %); lower: W <= 55 - 46 = 9 (alpha/2) -- not symmetric
    codes = ranks.estudy2_wilcoxon_signif(np.array([44.0, 43.0, 9.0, 10.0]), np.array([10, 10, 10, 10]))
    assert codes[0] == "**" and codes[1] == "*" and codes[2] == "**" and codes[3] == "*"


def test_newey_west_and_calendar_portfolio_by_hand():
    x = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.0])
    d = x - x.mean()
    n = x.size
    want = d @ d / n + 2 * (1 - 1 / 3) * (d[1:] @ d[:-1]) / n + 2 * (1 - 2 / 3) * (d[2:] @ d[:-2]) / n
    assert cartests.newey_west_var(x, 2) == pytest.approx(want, rel=1e-12)
    ar = np.array([[1.0, 2.0], [3.0, np.nan]])
    P = cartests.calendar_portfolio(ar, np.array([0, 0]), np.array([10, 11]), 0, 1)
    assert P.tolist() == [1.0, 2.5]  # bar 10: event 0; bar 11: events 0 (2.0) and 1 (3.0)


def test_bmp_kp_sees_shared_bars():
    f, mk = synthetic(n_bars=3000, seed=12)
    bars = np.array([500, 505, 510, 1500, 1504, 2500])
    ev = pl.DataFrame({"ts": f["ts"].gather(bars), "asset": ["A"] * bars.size})
    res = es.run(f, ev, estimation=(-250, -11), window=(0, 19), model="market", market=mk, event_overlap="keep",
                 tests=["bmp", "bmp_kp"])
    bat = res._battery
    r = cartests.overlap_rbar(bat, 0, 19, np.ones(bars.size, dtype=bool))
    shared = 2 * ((20 - 5) + (20 - 10) + (20 - 5) + (20 - 4))  # ordered pairs, bars in common
    want = (shared / 20 + bat.rbar * (30 - 8)) / 30
    assert r == pytest.approx(want, rel=1e-12) and r > 0.1
    t = res.car_tests["[0,+19]"]
    assert abs(t["bmp_kp"].stat) < abs(t["bmp"].stat)
