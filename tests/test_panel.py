"""research.panel: the OI unit policy, the coverage dict and the empty-lake policy."""
from __future__ import annotations

import numpy as np
import pytest

from research import panel as P
from tests.hypotheses.helpers import _panel


def test_stale_open_interest_counts_as_missing():
    # CoinGlass-style USD OI that stopped updating: dividing the carried-forward value by a falling
    # close would fake a rising OI, so hours older than OI_MAX_AGE_HOURS must read as missing
    close = np.array([100.0, 90.0, 80.0])
    p = _panel(3, perp_close=close, oi_usd=np.full(3, 1e9), oi_base=np.full(3, np.nan),
               oi_age_hours=np.array([1.0, P.OI_MAX_AGE_HOURS + 1, 40.0]))
    oi = P.oi_units(p)
    assert oi[0] == pytest.approx(1e7) and np.isnan(oi[1:]).all()
