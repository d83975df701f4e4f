"""Results object, compare(), plot(), CAR regression and the per-bar statistics on synthetic data."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from research import eventstudy as es
from research.errors import EventStudyError
from research.stats import TestStat

from .conftest import synthetic


@pytest.fixture(scope="module")
def study():
    f, mk = synthetic(n_bars=3000, assets=("A", "B", "C"), seed=11, beta=(0.8, 1.0, 1.3))
    rng = np.random.default_rng(4)
    ts = f["ts"].unique().sort()
    bars = rng.choice(np.arange(300, 2900), size=45, replace=False)
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": rng.choice(["A", "B", "C"], 45).tolist(),
                       "size": rng.normal(0, 1, 45), "kind": rng.choice(["x", "y", "z"], 45).tolist()})
    res = es.run(f, ev, estimation=(-250, -11), window=(-5, 10), model="market", market=mk, overlap="keep",
                 event_overlap="keep", tests="all", car_windows=[(-5, 10), (0, 2)])
    return f, mk, ev, res


def test_fields_and_frames(study):
    *_, res = study
    assert res.n_events == 45 and res.ar.shape == (45, 16)
    fr = res.to_frame()
    assert fr["event_time"].to_list() == list(range(-5, 11))
    assert {"aar", "caar", "lo", "hi", "patell_stat", "wilcoxon_p"} <= set(fr.columns)
    assert set(res.tests_frame()["window"].unique()) == {"[-5,+10]", "[0,+2]"}
    assert isinstance(res.test("bmp", 0), TestStat)
    s = res.summary()
    assert "anchor: containing" in s and "bmp_kp" in s
    with pytest.raises(EventStudyError):
        res.test("nope")
    with pytest.raises(EventStudyError):
        res.car_test((0, 40))


def test_json_roundtrip(study):
    *_, res = study
    d = json.loads(res.to_json())
    assert d["spec"]["anchor"] == "containing" and d["spec"]["model"] == "market"
    assert d["car_tests"]["[0,+2]"]["patell"]["name"] == "patell"
    assert len(d["bars"]["caar"]) == 16


def test_cross_sectional_t_and_band_match_scipy(study):
    *_, res = study
    j = 5
    r = sps.ttest_1samp(res.ar[:, j], 0.0)
    assert res.bar_tests["cross_sectional_t"].stat[j] == pytest.approx(r.statistic, rel=1e-12)
    cum = np.cumsum(res.ar, 1)[:, j]
    ci = sps.t.interval(0.95, cum.size - 1, loc=cum.mean(), scale=sps.sem(cum))
    assert (res.caar_lo[j], res.caar_hi[j]) == pytest.approx(ci, rel=1e-10)
    assert res.caar[j] == pytest.approx(cum.mean(), rel=1e-12)


def test_kp_adjustment_shrinks_with_positive_correlation(study):
    *_, res = study
    r = res._battery.rbar
    b, kp = res.bar_tests["bmp"].stat, res.bar_tests["bmp_kp"].stat
    np.testing.assert_allclose(kp, b * np.sqrt((1 - r) / (1 + (res.n - 1) * r)), rtol=1e-12)


def test_plot_and_compare(study):
    f, mk, ev, res = study
    ch = res.plot()
    assert isinstance(ch, alt.LayerChart) and ch.to_dict()["layer"]
    other = es.run(f, ev, estimation=(-250, -11), window=(-5, 10), model="mean", overlap="keep",
                   event_overlap="keep", tests="all")
    cmp = es.compare({"market": res, "mean": other})
    assert cmp.columns == ["quantity", "market", "mean"]
    row = cmp.filter(pl.col("quantity") == "caar")
    assert row["market"].item() == pytest.approx(float(np.mean(res.ar.sum(1))), rel=1e-12)
    assert cmp.filter(pl.col("quantity") == "n_events")["mean"].item() == 45


def test_car_regression_matches_statsmodels(study):
    *_, res = study
    reg = es.car_regression(res, ["size", "kind"], window=(0, 2), cov_type="HC3")
    car = res.ar[:, 5:8].sum(1)
    kind = res.events["kind"].to_list()
    X = np.column_stack([np.ones(45), res.events["size"].to_numpy(),
                         [k == "y" for k in kind], [k == "z" for k in kind]]).astype(float)
    ref = sm.OLS(car, X).fit(cov_type="HC3")
    np.testing.assert_allclose(reg.params, ref.params, rtol=1e-10)
    np.testing.assert_allclose(reg.bse, ref.bse, rtol=1e-10)
    assert reg.names == ["const", "size", "kind_y", "kind_z"]
    hac = es.car_regression(res, ["size"], cov_type="HAC", maxlags=3)
    assert hac.cov_type == "HAC" and hac.maxlags == 3 and "CAR" in hac.summary()
    json.dumps(hac.to_dict())
    with pytest.raises(EventStudyError, match="missing_col"):
        es.car_regression(res, ["missing_col"])


def test_profile_tidy_shape():
    f, _ = synthetic(n_bars=500, seed=2)
    f = f.with_columns((pl.col("return") * 100).alias("oi_pct"))
    ev = pl.DataFrame({"ts": f["ts"].gather([100, 200, 300]), "asset": ["A"] * 3})
    out = es.profile(f, ev, (-3, 3), columns=["return", "oi_pct"])
    assert out.columns == ["event_time", "column", "mean", "median", "lo", "hi", "n"]
    assert out.height == 14 and set(out["column"]) == {"return", "oi_pct"}


@pytest.mark.parametrize("n,ties", [(30, False), (80, False), (200, True)])
def test_wilcoxon_pvalues_match_scipy(n, ties):
    from research.eventstudy.statistics import wilcoxon_columns

    rng = np.random.default_rng(n)
    x = rng.normal(0.1, 1, (n, 3))
    if ties:
        x = np.round(x, 1)
    x[0, 1] = np.nan
    w, p = wilcoxon_columns(x)
    for j in range(3):
        col = x[:, j][np.isfinite(x[:, j])]
        assert w[j] == sps.wilcoxon(col, alternative="greater").statistic
        assert p[j] == pytest.approx(sps.wilcoxon(col).pvalue, rel=1e-9)
