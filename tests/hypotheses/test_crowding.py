"""research.hypotheses.crowding (H3)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from tests.hypotheses.helpers import _panel


# --------------------------------------------------------------------------------------------------
# H3
# --------------------------------------------------------------------------------------------------
def test_crowding_precision_recall_known():
    n = 1000
    rng = np.random.default_rng(0)
    fund = np.full(n, 0.0001)
    ls = np.full(n, 1.2)
    signal_rows = np.arange(50, 950, 50)
    fund[signal_rows] = 0.001
    ls[signal_rows] = 2.0
    casc = signal_rows[::2] + 5  # half of the signals are followed by a cascade 5 h later
    extra = np.array([333, 777])  # two unwarned cascades
    p = _panel(n, funding_rate_8h=fund + rng.normal(0, 1e-7, n), account_ls_ratio=ls, has_liq=[True] * n)
    cascades = pl.DataFrame({"ts": p["ts"].gather(np.sort(np.concatenate([casc, extra])))})
    r = H.crowding_early_warning(p, cascades, horizon_hours=10, funding_threshold=0.0005, signal="both")
    assert r.rule["precision"] == pytest.approx(9 / 18)
    assert r.rule["recall"] == pytest.approx(9 / 11)
    assert r.rule["cascades"] == 11
    assert r.logit is not None and set(r.logit["term"]) == {"const", "signal"}
    assert r.logit["cov_type"][0] == "HAC"
    json.dumps(r.to_dict())
    r.plot().to_dict()
