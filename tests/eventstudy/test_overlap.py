"""Event-window overlap: same-bar merges, thinning, clusters, shared-bar sums, and run()'s reports."""
from __future__ import annotations

import numpy as np
import polars as pl

from research import eventstudy as es
from research.eventstudy import overlap as O

from .conftest import synthetic


def _brute_shared(bars, T):
    c = np.zeros(bars.max() + T + 1)
    for b in bars:
        c[b : b + T] += 1
    return float((c * (c - 1)).sum())


def test_clusters_duplicates_thin_and_shared_bars():
    a = np.zeros(7, dtype=np.int64)
    b = np.array([100, 50, 60, 100, 200, 150, 300])
    cid = O.clusters(a, b, (0, 10))  # windows of 11 bars: 50-60 chain, 100 (x2), 150, 200, 300 alone
    assert cid[1] == cid[2] and cid[0] == cid[3] and len(set(cid.tolist())) == 5
    dup, into = O.same_bar_duplicates(a, b)
    assert dup.tolist() == [False, False, False, True, False, False, False] and into[3] == 0
    keep = O.thin_keep(a, b, 11)
    assert keep.tolist() == [True, True, False, False, True, True, True]
    rng = np.random.default_rng(0)
    bars = np.sort(rng.integers(0, 500, 40))
    bars = np.unique(bars)
    assert O.pair_overlap_sum(np.zeros(bars.size, dtype=np.int64), bars, 0, 20) == _brute_shared(bars, 21)


def test_run_merges_same_bar_and_thins_by_default():
    f, mk = synthetic(n_bars=3000, seed=3)
    ts = f["ts"]
    bars = [600, 600, 620, 700, 1500, 2400]
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": ["A"] * len(bars)})
    res = es.run(f, ev, estimation=(-250, -11), window=(-5, 30), model="market", market=mk)
    assert res.merged["event_id"].to_list() == [1] and res.merged["into_event_id"].to_list() == [0]
    gone = dict(zip(res.dropped["event_id"].to_list(), res.dropped["reason"].to_list()))
    assert gone == {2: "event_window_overlap"}  # 620 within 36 bars of 600; 700 is 100 bars later
    assert res.n_events == 4 and res.spec["event_overlap"] == "thin"
    kept = es.run(f, ev, estimation=(-250, -11), window=(-5, 30), model="market", market=mk, event_overlap="keep")
    assert kept.n_events == 5 and kept.events["cluster"].n_unique() == 4
    dropped = es.run(f, ev, estimation=(-250, -11), window=(-5, 30), model="market", market=mk, event_overlap="drop")
    assert dropped.n_events == 3


def test_missing_bar_rule_is_one_sample():
    f, mk = synthetic(n_bars=4000, seed=4)
    r = f["return"].to_numpy().copy()
    r[[1010, 2005, 2006, 2007, 2008]] = np.nan
    f = f.with_columns(pl.Series("return", r))
    ts = f["ts"]
    bars = [1000, 2000, 3000]
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": ["A"] * 3})
    res = es.run(f, ev, estimation=(-250, -11), window=(0, 19), model="market", market=mk, min_coverage=0.9)
    assert res.dropped.filter(pl.col("reason") == "missing_window_bars")["event_id"].to_list() == [1]  # 4/20 missing
    car = res.car()["car"].to_numpy()
    assert np.isfinite(car).all() and res.n_events == 2  # the 1-bar gap: CAR over the 19 present bars
    assert res.car_means["[0,+19]"] == np.mean(car)
    np.testing.assert_allclose(car[0], np.nansum(res.ar[0]), rtol=1e-12)
