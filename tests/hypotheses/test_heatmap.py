"""research.hypotheses.levels (the liquidation-level estimator) and heatmap (H6)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from tests.hypotheses.helpers import _panel


# --------------------------------------------------------------------------------------------------
# H6
# --------------------------------------------------------------------------------------------------
def test_heatmap_levels_and_crossing():
    n = 5
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    p = _panel(n, perp_close=close, perp_high=close + 0.1, perp_low=close - 0.1,
               oi_base=np.array([10.0, 20.0, 20.0, 20.0, 20.0]), oi_usd=np.full(n, np.nan))
    hm = H.liquidation_heatmap(p, leverage_mix={10: 1.0}, long_share=0.5, bin_pct=0.1)
    c = hm.centers
    # 10 BTC opened at 100 at hour 1: $500 long at 90, $500 short at 110
    il = int(np.argmax(hm.long_usd[1]))
    is_ = int(np.argmax(hm.short_usd[1]))
    assert hm.long_usd[1].sum() == pytest.approx(500.0) and hm.short_usd[1].sum() == pytest.approx(500.0)
    assert c[il] == pytest.approx(90.0, rel=0.002) and c[is_] == pytest.approx(110.0, rel=0.002)
    # a crash through 90 liquidates the longs; the shorts stay
    p2 = p.with_columns(pl.Series("perp_low", [99.9, 99.9, 99.9, 85.0, 99.9]))
    hm2 = H.liquidation_heatmap(p2, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm2.long_usd[3].sum() == 0.0 and hm2.short_usd[3].sum() == pytest.approx(500.0)
    # an OI drop closes positions proportionally
    p3 = p.with_columns(pl.Series("oi_base", [10.0, 20.0, 10.0, 10.0, 10.0]))
    hm3 = H.liquidation_heatmap(p3, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm3.long_usd[2].sum() == pytest.approx(250.0)


def test_heatmap_covers_only_hours_with_fresh_open_interest():
    n = 8
    close = np.full(n, 100.0)
    age = np.array([np.nan, 0.0, 1.0, 0.0, 1.0, 13.0, 14.0, 15.0])  # OI stops after hour 4
    p = _panel(n, perp_close=close, perp_high=close + 0.1, perp_low=close - 0.1,
               oi_base=np.array([np.nan, 10.0, 10.0, 20.0, 20.0, 20.0, 20.0, 20.0]), oi_usd=np.full(n, np.nan),
               oi_age_hours=age, has_oi=[False, True, True, True, True, False, False, False])
    # default: the panel's own staleness (has_oi, stale_after of the OI series' interval)
    hm = H.liquidation_heatmap(p, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm.close.size == 4 and hm.ts[0] == p["ts"][1] and hm.ts[-1] == p["ts"][4]
    # an explicit age limit in hours still applies
    assert H.liquidation_heatmap(p, leverage_mix={10: 1.0}, bin_pct=0.1, max_oi_age_hours=12).close.size == 4
    assert H.liquidation_heatmap(p.drop("has_oi"), leverage_mix={10: 1.0}, bin_pct=0.1).close.size == n
    with pytest.raises(H.HypothesisError, match="max_oi_age_hours"):
        H.liquidation_heatmap(p.with_columns(oi_age_hours=pl.lit(50.0)), leverage_mix={10: 1.0}, max_oi_age_hours=12)
    with pytest.raises(H.HypothesisError, match="has_oi"):
        H.liquidation_heatmap(p.with_columns(has_oi=pl.lit(False)), leverage_mix={10: 1.0})


def test_heatmap_test_finds_planted_attraction():
    """Price drifts toward where longs sit: the cluster below is hit, the mirror above is not."""
    n = 24 * 120
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(np.full(n, -0.0004) + rng.normal(0, 0.001, n)))
    oi = 1000 + np.cumsum(np.abs(rng.normal(0, 1, n)))
    p = _panel(n, perp_close=close, perp_high=close * 1.001, perp_low=close * 0.999, oi_base=oi,
               oi_usd=np.full(n, np.nan))
    r = H.liquidation_heatmap_test(p, leverage_mix={25: 1.0}, long_share=1.0, max_distance_pct=5,
                                   horizon_hours=72, n_perm=999, seed=1)
    rates = {x["level"]: x["rate"] for x in r.hit_rates.iter_rows(named=True)}
    assert rates["largest cluster"] > rates["mirror placebo"]
    assert r.permutation.pvalue < 0.01 and r.mcnemar.pvalue < 0.01
    frame = r.heatmap.frame(max_cells=2000)
    assert 0 < frame.height <= 2000
    spec = r.plot().to_dict()
    assert spec["layer"]
    json.dumps(r.to_dict())


def test_heatmap_rejects_bad_leverage():
    p = _panel(3, perp_close=[1.0, 1.0, 1.0], perp_high=[1.0] * 3, perp_low=[1.0] * 3, oi_base=[1.0] * 3)
    with pytest.raises(H.HypothesisError, match="leverage_mix"):
        H.liquidation_heatmap(p, leverage_mix={1: 1.0})


def test_interval_inverts_the_one_sided_sign_flip_test():
    from research.hypotheses.heatmap import _paired_tests
    from research.stats import ci_agrees

    rng = np.random.default_rng(3)
    seen = set()
    for i in range(60):
        n = int(rng.integers(20, 120))
        a = rng.random(n) < 0.3 + 0.25 * rng.random()
        b = rng.random(n) < 0.3
        params = {}
        _, perm, _ = _paired_tests(a, b, 999, i, params)
        lo = params["diff_ci_low"]
        assert params["diff_ci_high"] is None
        assert (perm.pvalue < 0.05) == (lo > 0), (i, perm.pvalue, lo)
        assert ci_agrees(perm.pvalue, lo, None)
        seen.add(perm.pvalue < 0.05)
    assert seen == {True, False}
