"""research.hypotheses.waves (H5)."""
from __future__ import annotations

import json

import numpy as np
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
