"""research.hypotheses.settlement (H4)."""
from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from tests.hypotheses.helpers import _panel


# --------------------------------------------------------------------------------------------------
# H4
# --------------------------------------------------------------------------------------------------
def test_settlement_hours_detects_planted_volume_bump():
    n = 24 * 60
    rng = np.random.default_rng(1)
    p = _panel(n, perp_ret=rng.normal(0, 0.003, n), perp_volume=np.exp(rng.normal(8, 0.1, n)))
    hod = p["ts"].dt.hour().to_numpy()
    vol = p["perp_volume"].to_numpy() * np.where(np.isin(hod, [23, 0, 1, 7, 8, 9, 15, 16, 17]), np.exp(0.5), 1.0)
    p = p.with_columns(pl.Series("perp_volume", vol))
    r = H.settlement_hours(p, window=1)
    row = r.comparison.filter(pl.col("metric") == "log_volume").row(0, named=True)
    assert row["diff"] == pytest.approx(0.5, abs=0.02)
    assert row["p_hac"] < 1e-6 and row["n_in"] == 9 * 60
    ret = r.comparison.filter(pl.col("metric") == "ret").row(0, named=True)
    assert ret["p_hac"] > 0.001
    assert r.profile.filter(pl.col("metric") == "log_volume").height == 24
    r.plot().to_dict()
