"""One OI measure: coins from oi_base, else USD OI / the close at the observation instant (flagged)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from research.errors import EventDetectionError
from research.oi import oi_coins
from tests.events.util import frame


def test_oi_base_is_used_as_is():
    s = oi_coins(frame(oi_base=[10.0, 11.0], oi_usd=[1e3, 1.2e3], perp_close=[100.0, 110.0]))
    assert s.method == "oi_base" and not s.approximate
    assert s.frame["oi_coins"].to_list() == [10.0, 11.0]
    assert s.to_dict()["oi_measure"] == "coins"


def test_usd_is_divided_by_the_close_at_the_observation():
    # a 4h OI series on hourly bars: observed at the close of bar 3 (age 0 there), carried 3 more bars
    px = [100.0, 101.0, 102.0, 104.0, 90.0, 80.0, 70.0, 105.0]
    usd = [None, None, None, 2080.0, 2080.0, 2080.0, 2080.0, 2100.0]
    age = [None, None, None, 0.0, 1.0, 2.0, 3.0, 0.0]
    s = oi_coins(frame(perp_close=px, oi_usd=usd, oi_age_hours=age))
    assert s.method == "oi_usd/price" and s.approximate
    assert s.frame["oi_coins"].to_list() == [None, None, None, 20.0, 20.0, 20.0, 20.0, 20.0]
    no_age = oi_coins(frame(perp_close=px, oi_usd=usd))
    assert no_age.method == "oi_usd/close" and no_age.frame["oi_coins"][4] == pytest.approx(2080 / 90)


def test_mixed_stale_and_errors():
    df = frame(perp_close=[100.0, 100.0, 100.0], oi_base=[None, 5.0, 5.0], oi_usd=[400.0, 500.0, 500.0],
               oi_age_hours=[0.0, 0.0, 20.0])
    s = oi_coins(df, max_age_hours=12)
    assert s.method == "mixed" and s.frame["oi_method"].to_list() == ["oi_usd/price", "oi_base", None]
    assert s.frame["oi_coins"].to_list() == [4.0, 5.0, None]
    with pytest.raises(EventDetectionError, match="oi_base or oi_usd"):
        oi_coins(frame(perp_close=[1.0]))
    with pytest.raises(EventDetectionError, match="perp_close"):
        oi_coins(frame(oi_usd=[1.0, np.nan]))


@pytest.mark.slow
def test_real_pack_one_day_usd_vs_coins(real_lake):
    from research import db

    p = db.query("hourly_panel", data_dir=real_lake, symbol="BTCUSDT", start="2026-01-30", end="2026-02-02",
                 oi_venue="all")
    s = oi_coins(p)
    day = pl.DataFrame({"ts": p["ts"], "c": s.frame["oi_coins"], "u": p["oi_usd"]}).drop_nulls()
    day = day.group_by_dynamic("ts", every="1d").agg(pl.col("c").last(), pl.col("u").last())
    chg = day.with_columns((pl.col(c) / pl.col(c).shift() - 1) * 100 for c in ("c", "u")).row(1, named=True)
    # 2026-01-31: USD OI -8.2 %, but the price fell too: in coins only -1.8 %
    assert chg["u"] == pytest.approx(-8.2, abs=0.1) and chg["c"] == pytest.approx(-1.8, abs=0.1)
