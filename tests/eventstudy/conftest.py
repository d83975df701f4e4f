"""Fixtures for the event-study tests: estudy2's shipped data mapped to bars, synthetic panels."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_path

BASE = dt.datetime(2000, 1, 1)


def dates_to_bars(dates: list[str]) -> dict[str, dt.datetime]:
    """estudy2/xKDR rows are trading days; the engine works in bars, so row i becomes bar i of a
    daily grid (a calendar gap such as a weekend is not a missing bar in those packages)."""
    return {d: BASE + dt.timedelta(days=i) for i, d in enumerate(dates)}


@pytest.fixture(scope="session")
def estudy2():
    """estudy2's ``rates``/``rates_indx`` as (returns, market, events, rates, index, dates)."""
    d = shared_path("fixtures/estudy2")
    rates = pl.read_csv(d / "rates.csv", null_values=["", "NA"])
    indx = pl.read_csv(d / "rates_indx.csv", null_values=["", "NA"])
    dates = rates["date"].to_list()
    assert dates == indx["date"].to_list()
    bars = dates_to_bars(dates)
    tickers = [c for c in rates.columns if c != "date"]
    ts = pl.Series("ts", [bars[x] for x in dates])
    long = (
        rates.with_columns(ts).unpivot(index=["ts"], on=tickers, variable_name="asset", value_name="return")
        .filter(pl.col("return").is_not_null())
    )
    market = pl.DataFrame({"ts": ts, "return": indx["^GSPC"]})
    events = pl.DataFrame({"ts": [bars["2020-03-16"]] * len(tickers), "asset": tickers})
    return {"returns": long, "market": market, "events": events, "rates": rates, "index": indx,
            "dates": dates, "tickers": tickers, "event_row": dates.index("2020-03-16")}


def synthetic(n_bars=2000, assets=("A",), seed=0, freq="1h", sigma=0.01, beta=None):
    """Regular-grid returns (ts, asset, return) plus a market series; iid normal noise."""
    rng = np.random.default_rng(seed)
    ts = pl.datetime_range(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1) + dt.timedelta(hours=n_bars - 1),
                           interval=freq, eager=True)[:n_bars]
    m = rng.normal(0, sigma, n_bars)
    frames = []
    for i, a in enumerate(assets):
        b = 1.0 if beta is None else beta[i]
        r = b * m + rng.normal(0, sigma, n_bars)
        frames.append(pl.DataFrame({"ts": ts, "asset": [a] * n_bars, "return": r}))
    return pl.concat(frames), pl.DataFrame({"ts": ts, "return": m})
