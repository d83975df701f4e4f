"""xKDR eventstudies inference expectations (``../shared/fixtures/xkdr``).

Prices -> log returns (first date has none), event time 0 = the return ending on the event date
(``anchor="containing"`` on daily bars, one bar per trading row), window -1..+1, cumulative sums
with the first row as base 0 (``profile(..., cumulate=True)``). Classic inference = mean and 95 %
t interval; Wilcoxon inference = median and the signed-rank interval. Events outside the data,
on an unknown firm, or on the date without a return are dropped and reported.

Run: ``python -m pytest tests/eventstudy/test_xkdr.py -q``
"""
from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from research import eventstudy as es
from tests.conftest import shared_path

from .conftest import BASE, dates_to_bars

CLASSIC = {-1: (math.nan, 0.0, math.nan),
           0: (-0.0459535096314264, 0.00984612009294346, 0.0656457498173133),
           1: (-0.125491237730001, 0.00699588521385023, 0.139483008157702)}
WILCOX = {-1: (0.0, 0.0, 0.0),
          0: (-0.0153232381366424, 0.0170053232695686, 0.0278562751459042),
          1: (-0.0408950663236913, -0.00258888649946787, 0.0644716084647099)}
TOL = 1.5e-8  # testthat::equals


@pytest.fixture(scope="module")
def xkdr():
    d = shared_path("fixtures/xkdr")
    prices = pl.read_csv(d / "prices.csv")
    events = pl.read_csv(d / "events.csv")
    dates = prices["date"].to_list()
    bars = dates_to_bars(dates)
    last = dt.date.fromisoformat(dates[-1])

    def to_bar(s: str) -> dt.datetime:
        # dates outside the table land beyond the grid's end (or before its start)
        if s in bars:
            return bars[s]
        return BASE + dt.timedelta(days=len(dates) - 1 + (dt.date.fromisoformat(s) - last).days)

    firms = [c for c in prices.columns if c != "date"]
    ts = pl.Series("ts", [bars[x] for x in dates])
    logp = prices.select([pl.col(f).log().diff().alias(f) for f in firms]).with_columns(ts)
    long = logp.unpivot(index=["ts"], on=firms, variable_name="asset", value_name="ret")  # first row: null
    ev = pl.DataFrame({"ts": [to_bar(w) for w in events["when"]], "asset": events["name"]})
    return long, ev


@pytest.mark.parametrize("band,expected,centre", [("t", CLASSIC, "mean"), ("wilcoxon", WILCOX, "median")])
def test_inference_matches_xkdr(xkdr, band, expected, centre):
    long, ev = xkdr
    out, dropped = es.profile(long, ev, (-1, 1), band=band, cumulate=True, return_dropped=True)
    assert out.height == 3 and out["n"].to_list() == [3, 3, 3]
    for row in out.iter_rows(named=True):
        lo, mid, hi = expected[row["event_time"]]
        got = (row["lo"], row[centre], row["hi"])
        for g, w in zip(got, (lo, mid, hi)):
            if math.isnan(w):
                assert g is None
            else:
                assert g == pytest.approx(w, abs=TOL)


def test_cumulative_returns_per_event(xkdr):
    long, ev = xkdr
    out = es.profile(long, ev.head(3), (-1, 1), band="quantile", cumulate=True)
    # three events: the quantile band's extremes at 100 % are the min/max of the three CARs
    assert out.filter(pl.col("event_time") == 1)["median"].item() == pytest.approx(-0.002588886499467681, abs=1e-15)


def test_dropped_events_reported_not_crashing(xkdr):
    long, ev = xkdr
    _, dropped = es.profile(long, ev, (-1, 1), cumulate=True, return_dropped=True)
    got = {(r["asset"], r["reason"]) for r in dropped.iter_rows(named=True)}
    assert got == {("ITC", "outside_data"), ("Junk", "unknown_asset"), ("Reliance", "no_return_at_event")}
    assert sorted(dropped["event_id"].to_list()) == [3, 4, 5]


def test_run_reports_dropped_xkdr_events(xkdr):
    long, ev = xkdr
    res = es.run(long.rename({"ret": "return"}), ev, estimation=None, window=(0, 1), model="raw")
    assert res.n_events == 3 and res.dropped.height == 3
    assert set(res.spec["tests"]) == {"cross_sectional_t", "wilcoxon"}  # the defaults without estimation
    assert res.spec["anchor"] == "containing"
