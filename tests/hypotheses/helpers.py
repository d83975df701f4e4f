"""Hand-made panels for the hypothesis tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _panel(n: int, **cols) -> pl.DataFrame:
    ts = pl.datetime_range(T0, T0 + timedelta(hours=n - 1), "1h", time_unit="us", time_zone="UTC", eager=True)
    base = {"ts": ts, "symbol": ["BTCUSDT"] * n, "synthetic": [False] * n}
    base.update(cols)
    return pl.DataFrame(base)
