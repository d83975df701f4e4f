"""Hour parameters on coarser bars (#13): clock hours become whole bars, and what a frequency cannot
resolve is not testable rather than trivially satisfied."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from research.hypotheses.common import bar_hours, to_bars
from research.hypotheses.flush import _forward_returns
from research.hypotheses.settlement import settlement_hours
from research.stats import NotTestable


def _daily(n: int) -> pl.DataFrame:
    ts = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1) + dt.timedelta(days=n - 1), "1d",
                           eager=True, time_zone="UTC")
    rng = np.random.default_rng(1)
    return pl.DataFrame({"ts": ts, "symbol": ["BTCUSDT"] * n, "perp_ret": rng.normal(0, 0.02, n),
                         "perp_volume": rng.uniform(1, 2, n), "spot_volume": rng.uniform(1, 2, n),
                         "synthetic": [False] * n})


def test_clock_hours_become_bars():
    assert bar_hours(_daily(5)) == 24.0 and to_bars(72, 24.0) == 3 and to_bars(24, 24.0) == 1
    assert to_bars(72, 1.0) == 72 and to_bars(6, 24.0) == 1 and to_bars(72, 4.0) == 18


def test_forward_return_horizons_are_clock_hours_on_daily_bars():
    close = np.exp(np.arange(10, dtype=float))             # log close = row number
    ts = _daily(10)["ts"]
    ev = pl.DataFrame({"event_id": [0], "label": ["flush"], "_idc": [2]})
    fw = _forward_returns(ev, ts, close, (24, 72), bar_h=24.0).sort("horizon_h")
    assert fw["horizon_h"].to_list() == [24, 72] and np.allclose(fw["car"].to_numpy(), [1.0, 3.0])
    hourly = _forward_returns(ev, ts, close, (3,), bar_h=1.0)
    assert np.allclose(hourly["car"].to_numpy(), [3.0])     # 1 h bars: unchanged


def test_settlement_hours_are_not_testable_on_daily_bars():
    res = settlement_hours(_daily(60), n_draws=0)
    v = res.verdicts()
    assert len(v) == 1 and NotTestable.matches(v[0].conclusion) and "1 h bars" in v[0].conclusion
    assert v[0].pvalue is None and v[0].ci_low is None and res.figures() == {}
