"""A chunked ``run`` (events gathered and fitted in blocks) equals the all-at-once run.

Random panels with missing bars (and missing market bars), clustered and same-bar events, every
model and overlap policy, every test: the ARs are bit-identical, every statistic, p-value, CAAR
band and CAR mean agrees to 1e-12, and the samples (events, dropped, merged) are the same.
"""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research import eventstudy as es
from research.errors import EventStudyError
from research.eventstudy import chunks

from .conftest import synthetic

TOL = {"rtol": 1e-12, "atol": 1e-12}


def _design(seed: int, n_events: int, gap: float, n_assets: int):
    returns, market = synthetic(n_bars=1500, assets=tuple(f"A{i}" for i in range(n_assets)), seed=seed)
    rng = np.random.default_rng(seed)
    r = returns["return"].to_numpy().copy()
    r[rng.random(r.size) < gap] = np.nan  # missing bars
    m = market["return"].to_numpy().copy()
    m[rng.random(m.size) < gap / 2] = np.nan
    returns = returns.with_columns(pl.Series("return", r))
    market = market.with_columns(pl.Series("return", m))
    ts = market["ts"]
    # clustered anchors (overlapping windows) and a few exact repeats (same-bar merges)
    centres = rng.integers(200, 1450, max(1, n_events // 4))
    bars = np.clip(rng.choice(centres, n_events) + rng.integers(-15, 16, n_events), 0, 1499)
    bars[: n_events // 10] = bars[n_events // 10 : 2 * (n_events // 10)]
    events = pl.DataFrame({"ts": ts.gather(bars), "asset": [f"A{i}" for i in rng.integers(0, n_assets, n_events)]})
    return returns, market, events


def _run(returns, market, events, chunk, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return es.run(returns, events, market=market, chunk_size=chunk, **kw)


def _assert_same(a, b, windows):
    assert np.array_equal(a.ar, b.ar, equal_nan=True)
    assert a.events.equals(b.events) and a.dropped.equals(b.dropped)
    assert (a.merged is None and b.merged is None) or a.merged.equals(b.merged)
    for x, y in ((a.aar, b.aar), (a.caar, b.caar), (a.caar_lo, b.caar_lo), (a.caar_hi, b.caar_hi), (a.n, b.n)):
        np.testing.assert_allclose(x, y, **TOL)
    assert a.bar_tests.keys() == b.bar_tests.keys()
    for t in a.bar_tests:
        np.testing.assert_allclose(a.bar_tests[t].stat, b.bar_tests[t].stat, **TOL, err_msg=t)
        np.testing.assert_allclose(a.bar_tests[t].pvalue, b.bar_tests[t].pvalue, **TOL, err_msg=t)
    for wk in a.car_tests:
        np.testing.assert_allclose(a.car_means[wk], b.car_means[wk], **TOL)
        for t, ts in a.car_tests[wk].items():
            other = b.car_tests[wk][t]
            np.testing.assert_allclose([ts.stat, ts.pvalue], [other.stat, other.pvalue], **TOL, err_msg=f"{wk} {t}")
    for w in windows:  # post-hoc CAR tests read the loader (chunked) or the kept fit
        for t, ts in a.car_test(w).items():
            other = b.car_test(w, tests=[t])[t]
            np.testing.assert_allclose([ts.stat, ts.pvalue], [other.stat, other.pvalue], **TOL, err_msg=f"{w} {t}")
        assert a.car(w).equals(b.car(w))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_events=st.integers(12, 90), chunk=st.integers(1, 25),
       gap=st.sampled_from([0.0, 0.002, 0.02]), n_assets=st.integers(1, 3),
       model=st.sampled_from(["market", "mean", "market_adjusted"]),
       overlap=st.sampled_from(["flag", "drop", "shorten", "keep"]),
       event_overlap=st.sampled_from(["keep", "thin"]))
def test_chunked_run_equals_unchunked(seed, n_events, chunk, gap, n_assets, model, overlap, event_overlap):
    returns, market, events = _design(seed, n_events, gap, n_assets)
    kw = dict(estimation=(-120, -21), window=(-10, 15), model=model, overlap=overlap, event_overlap=event_overlap,
              tests="all", car_windows=[(-10, 15), (0, 3)], min_coverage=0.8)
    try:
        a = _run(returns, market, events, None, **kw)
    except EventStudyError:  # e.g. every event dropped: the chunked run must fail alike
        with pytest.raises(EventStudyError):
            _run(returns, market, events, chunk, **kw)
        return
    b = _run(returns, market, events, chunk, **kw)
    _assert_same(a, b, [(-2, 5)])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), chunk=st.integers(1, 30), gap=st.sampled_from([0.0, 0.01]))
def test_chunked_default_tests_equal_unchunked(seed, chunk, gap):
    """The default (design_hc) path never materialises the full fit, and still agrees."""
    returns, market, events = _design(seed, 80, gap, 2)
    kw = dict(estimation=(-150, -31), window=(-24, 24), event_overlap="keep")
    a = _run(returns, market, events, None, **kw)
    b = _run(returns, market, events, chunk, **kw)
    _assert_same(a, b, [(0, 10)])
    assert b._battery.loader is not None and b._battery._fit is None  # still light after every default test


def test_raw_model_without_estimation_chunks_too():
    returns, market, events = _design(3, 60, 0.01, 2)
    kw = dict(estimation=None, window=(-5, 5), model="raw", tests="all")
    _assert_same(_run(returns, market, events, None, **kw), _run(returns, market, events, 7, **kw), [(0, 2)])


def test_chunk_size_is_validated():
    returns, market, events = _design(4, 20, 0.0, 1)
    with pytest.raises(EventStudyError, match="chunk_size"):
        _run(returns, market, events, 0, estimation=(-120, -21), window=(-5, 5))
    assert chunks.CHUNK >= 1000  # the default keeps small studies on the all-at-once path
