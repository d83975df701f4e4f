"""Reproduce estudy2 0.10.0's published outputs on its shipped data (``../shared/fixtures/estudy2``).

The expected values are parsed from ``expected.md`` at test time (printed by estudy2's pkgdown pages)
and must hold to the printed digits: tolerance = half a unit of the last printed digit. estudy2's
daily dates become bars (row i = bar i); estimation window = every bar before 2020-03-16, event
window = bars 0..4 of 2020-03-16.

Tests without a printed reference (generalized sign, Corrado sign, modified rank, Wilcoxon) are
checked against a separate, loop-per-security hand computation of estudy2's definitions on the
same data (and scipy's Wilcoxon).

Run: ``python -m pytest tests/eventstudy/test_estudy2.py -q``
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats as sps

from research import eventstudy as es
from research.eventstudy import models, statistics
from tests.conftest import shared_path

COLS = ["mean", "brown_warner_1980", "brown_warner_1985", "cross_sectional_t", "patell", "bmp", "lamb", "sign",
        "corrado_rank"]
SIG_COLS = ["brown_warner_1980", "brown_warner_1985", "cross_sectional_t", "patell", "bmp", "lamb", "sign",
            "corrado_rank"]


def _tol(text: str) -> float:
    dec = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-dec + 1e-12


def _expected():
    text = (shared_path("fixtures/estudy2") / "expected.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 2020-")]
    per_day = [r for r in rows if len(r.strip("|").split("|")) == 10]
    sig = [r for r in rows if len(r.strip("|").split("|")) == 9]
    values, codes = [], []
    for r in per_day:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        for name, v in zip(COLS, cells[1:]):
            values.append((cells[0], name, v))
    for r in sig:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        for name, v in zip(SIG_COLS, cells[1:]):
            codes.append((cells[0], name, v))
    car = {}
    for m in re.finditer(r"\| `(car_\w+)` \| ([-\d.]+) \| ([-\d.]+) \| (\d+) \| (\d+) \| (\**) \|", text):
        car[m.group(1)] = {"car_mean": m.group(2), "statistic": m.group(3), "days": int(m.group(4)),
                           "pct": m.group(5), "signif": m.group(6)}
    return values, codes, car


def _run(estudy2, compat=True, **kw):
    e = estudy2["event_row"]
    return es.run(estudy2["returns"], estudy2["events"], estimation=(-e, -1), window=(0, 4), model="market",
                  market=estudy2["market"], estudy2_compat=compat, overlap="keep", **kw)


@pytest.fixture(scope="module")
def compat(estudy2):
    return _run(estudy2, compat=True)


@pytest.fixture(scope="module")
def expected():
    return _expected()


def test_expected_md_parsed(expected):
    values, codes, car = expected
    assert len(values) == 45 and len(codes) == 40 and set(car) == {"car_brown_warner_1985", "car_lamb"}


@pytest.mark.parametrize("k", range(45))
def test_per_day_value(estudy2, compat, expected, k):
    date, name, text = expected[0][k]
    j = estudy2["dates"].index(date) - estudy2["event_row"]
    got = compat.aar[j] if name == "mean" else compat.bar_tests[name].stat[j]
    assert abs(got - float(text)) <= _tol(text), (date, name, got, text)
    assert compat.n[j] == 7  # estudy2's percentage = 100


@pytest.mark.parametrize("k", range(40))
def test_significance_codes(estudy2, compat, expected, k):
    """estudy2's stars (*, **, *** at 10/5/1 %) from our p-values (t df = mean(n_est) - 1 for BW,
    N - 1 for t/BMP; normal for the others)."""
    date, name, code = expected[1][k]
    j = estudy2["dates"].index(date) - estudy2["event_row"]
    p = compat.bar_tests[name].pvalue[j]
    star = "***" if p <= 0.01 else "**" if p <= 0.05 else "*" if p <= 0.10 else ""
    assert star == code, (date, name, p)


@pytest.mark.parametrize("fn,test", [("car_brown_warner_1985", "brown_warner_1985"), ("car_lamb", "lamb")])
def test_car_tests(compat, expected, fn, test):
    ref = expected[2][fn]
    ts = compat.car_tests["[0,+4]"][test]
    assert abs(ts.stat - float(ref["statistic"])) <= _tol(ref["statistic"])
    assert abs(compat.car_means["[0,+4]"] - float(ref["car_mean"])) <= _tol(ref["car_mean"])
    star = "***" if ts.pvalue <= 0.01 else "**" if ts.pvalue <= 0.05 else "*" if ts.pvalue <= 0.10 else ""
    assert star == ref["signif"] and ref["days"] == 5 and ref["pct"] == "100"


def test_default_is_textbook(estudy2, compat, expected):
    """Without estudy2_compat the CAR mean is the sum of daily AARs and Patell's s.d. and market
    term are the textbook ones, so those numbers differ from estudy2's; the rest agree."""
    default = _run(estudy2, compat=False, tests="all")
    caar = float(np.sum(compat.aar))
    assert default.car_means["[0,+4]"] == pytest.approx(caar, rel=1e-12)
    assert default.car_means["[0,+4]"] == pytest.approx(5 * compat.car_means["[0,+4]"], rel=1e-12)
    assert abs(default.bar_tests["patell"].stat[0] - 2.5507399) > 1e-3
    for name in ("brown_warner_1980", "brown_warner_1985", "cross_sectional_t"):
        np.testing.assert_allclose(default.bar_tests[name].stat, compat.bar_tests[name].stat, rtol=1e-12)
    # the textbook sign test is continuity-corrected: |z| shrinks by 1/2 / sqrt(N/4); estudy2's is not
    n = default.n.astype(float)
    zc, zd = compat.bar_tests["sign"].stat, default.bar_tests["sign"].stat
    np.testing.assert_allclose(np.abs(zd), np.maximum(np.abs(zc) - 1.0 / np.sqrt(n), 0.0), rtol=1e-12)


def test_patell_market_term_convention(estudy2):
    """expected.md convention 1: restricting Patell's market mean/Sxx to the security's complete
    cases gives 2.5499514 on 2020-03-16 instead of estudy2's 2.5507399."""
    res = _run(estudy2, compat=True)
    ctx = res._context
    b = ctx.bar_idx
    R, m = ctx.panel.values["return"], ctx.market
    est_idx, evt_idx = b[:, None] + ctx.est[None, :], b[:, None] + ctx.win[None, :]
    from research.eventstudy.windows import gather

    args = (gather(R, ctx.asset_idx, est_idx), gather(R, ctx.asset_idx, evt_idx), gather(m, None, est_idx),
            gather(m, None, evt_idx))
    restricted = statistics.TestBattery(models.fit("market", *args, full_market_term=False), compat=True)
    assert restricted.bar("patell").stat[0] == pytest.approx(2.5499514, abs=5e-8)
    full = statistics.TestBattery(models.fit("market", *args, full_market_term=True), compat=True)
    assert full.bar("patell").stat[0] == pytest.approx(2.5507399, abs=5e-8)


# ---- hand computation of estudy2's nonparametric definitions (one security at a time) ---------
@pytest.fixture(scope="module")
def hand(estudy2):
    rates, indx = estudy2["rates"], estudy2["index"]
    e = estudy2["event_row"]
    m = indx["^GSPC"].to_numpy()
    est_rows, evt_rows = np.arange(0, e), np.arange(e, e + 5)
    abn = {}
    for tk in estudy2["tickers"]:
        y = rates[tk].to_numpy().astype(float)
        ok = np.isfinite(y[est_rows]) & np.isfinite(m[est_rows])
        X = np.column_stack([np.ones(ok.sum()), m[est_rows][ok]])
        coef, *_ = np.linalg.lstsq(X, y[est_rows][ok], rcond=None)
        abn[tk] = y - coef[0] - coef[1] * m  # NaN where the security has no return
    tick = estudy2["tickers"]
    full_rows = np.concatenate([est_rows, evt_rows])
    A = np.array([abn[t][full_rows] for t in tick]).T  # rows = dates (est then event), cols = securities
    return {"A": A, "n_est": len(est_rows), "tickers": tick}


def _rowsum_quirk(x):
    """estudy2's cross-security sum: rowMeans(na.rm = TRUE) * ncol."""
    return np.array([np.nanmean(r) * r.size if np.isfinite(r).any() else np.nan for r in x])


def test_generalized_sign_by_hand(compat, hand):
    A, ne = hand["A"], hand["n_est"]
    est = A[:ne]
    p = (est[np.isfinite(est)] > 0).mean()  # pooled over all estimation cells
    want = []
    for row in A[ne:]:
        n = np.isfinite(row).sum()
        want.append(((row > 0).sum() - n * p) / np.sqrt(n * p * (1 - p)))
    np.testing.assert_allclose(compat.bar_tests["generalized_sign"].stat, want, rtol=1e-12)


def test_corrado_sign_by_hand(compat, hand):
    A, ne = hand["A"], hand["n_est"]
    G = np.full_like(A, np.nan)
    for i in range(A.shape[1]):
        col = A[:, i]
        G[:, i] = np.sign(col - np.median(col[np.isfinite(col)]))
    nt = np.isfinite(G).sum(1)
    s = _rowsum_quirk(G) / np.sqrt(nt)
    T = np.mean(np.isfinite(A).sum(0))
    sd = np.sqrt(np.nansum(s**2) / T)
    np.testing.assert_allclose(compat.bar_tests["corrado_sign"].stat, s[ne:] / sd, rtol=1e-10)


def test_modified_rank_by_hand(compat, hand):
    A, ne = hand["A"], hand["n_est"]
    U = np.full_like(A, np.nan)
    for i in range(A.shape[1]):
        col = A[:, i]
        ok = np.isfinite(col)
        U[ok, i] = sps.rankdata(col[ok]) / (ok.sum() + 1)
    nt = np.isfinite(U).sum(1)
    s = _rowsum_quirk(U - 0.5) / np.sqrt(nt)
    T = np.mean(np.isfinite(A).sum(0))
    sd = np.sqrt(np.nansum(s**2) / T)
    np.testing.assert_allclose(compat.bar_tests["modified_rank"].stat, s[ne:] / sd, rtol=1e-10)


def test_corrado_rank_by_hand_matches_printed(compat, hand):
    """The same hand route reproduces the printed Corrado rank values, which validates it."""
    A, ne = hand["A"], hand["n_est"]
    K = np.full_like(A, np.nan)
    for i in range(A.shape[1]):
        col = A[:, i]
        ok = np.isfinite(col)
        K[ok, i] = sps.rankdata(col[ok]) - (ok.sum() + 1) / 2
    nt = np.isfinite(K).sum(1)
    s = _rowsum_quirk(K) / nt
    sd = np.sqrt(np.nansum(s**2) / np.mean(np.isfinite(A).sum(0)))
    np.testing.assert_allclose(compat.bar_tests["corrado_rank"].stat, s[ne:] / sd, rtol=1e-10)
    assert s[ne] / sd == pytest.approx(0.7962064, abs=5e-8)


def test_wilcoxon_matches_scipy(compat, hand):
    A, ne = hand["A"], hand["n_est"]
    for j, row in enumerate(A[ne:]):
        r = sps.wilcoxon(row, alternative="greater")  # statistic = W+ (sum of positive ranks)
        assert compat.bar_tests["wilcoxon"].stat[j] == r.statistic
        assert compat.bar_tests["wilcoxon"].pvalue[j] == pytest.approx(sps.wilcoxon(row).pvalue, rel=1e-12)


def test_car_versions_of_other_tests(compat, hand):
    """CAR tests on the 5-day window: cross-sectional t and Wilcoxon on CAR_i agree with scipy."""
    A, ne = hand["A"], hand["n_est"]
    car = A[ne:].sum(0)
    t = compat.car_tests["[0,+4]"]
    ref = sps.ttest_1samp(car, 0.0)
    assert t["cross_sectional_t"].stat == pytest.approx(ref.statistic, rel=1e-12)
    assert t["cross_sectional_t"].pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert t["wilcoxon"].pvalue == pytest.approx(sps.wilcoxon(car).pvalue, rel=1e-12)
