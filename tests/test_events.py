"""Event detectors: hand-built panels with known answers, the simulated market's planted episodes,
and (when ../shared is present) facts plainly in the real pack."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from research.events import (EventDetectionError, decluster, detect_funding_resets, detect_liquidation_prints,
                             detect_oi_collapses, detect_selloffs)

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
REQUIRED = ["event_id", "ts", "symbol", "asset", "kind"]


def hours(n: int) -> pl.Series:
    return pl.datetime_range(T0, T0 + dt.timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC").alias("ts")


def frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({"ts": hours(n), "symbol": ["BTCUSDT"] * n, **cols})


def at(h: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=h)


# --------------------------------------------------------------------------------------------------
# sell-offs
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def selloff_panel():
    p = np.full(600, 100.0)
    p[100:110] = np.linspace(100, 90, 10)     # -10 % in 9 h, trough at 109
    p[110:150] = np.linspace(90, 101, 40)     # regains 100 at 146
    p[150:] = 101.0
    p[300:305] = [99, 97, 95, 94, 96]         # -6.9 % from 101, trough at 303
    p[305:] = 101.0
    return frame(perp_close=p)


def test_selloffs_known_answer(selloff_panel):
    ev = detect_selloffs(selloff_panel, drawdown_pct=5, within_hours=48, min_spacing_hours=72)
    assert ev.columns[:5] == REQUIRED
    assert ev.height == 2
    e0, e1 = ev.row(0, named=True), ev.row(1, named=True)
    assert e0["peak_ts"] == at(100) and e0["trough_ts"] == at(109)
    assert e0["drawdown_pct"] == pytest.approx(10.0, abs=1e-9)
    assert e0["ts"] == e0["cross_ts"] and e0["cross_price"] <= 95.0
    assert e0["recovery_ts"] == at(146)             # first close >= 100
    assert e1["peak_ts"] == at(299) and e1["trough_ts"] == at(303)
    assert e1["drawdown_pct"] == pytest.approx(100 * (1 - 94 / 101), abs=1e-9)
    assert e1["recovery_ts"] == at(305)
    assert set(ev["kind"]) == {"selloff"} and set(ev["symbol"]) == {"BTCUSDT"}


def test_selloffs_partial_recovery_and_threshold(selloff_panel):
    ev = detect_selloffs(selloff_panel, drawdown_pct=5, recovery_frac=0.5)
    # half the loss of 10: first close >= 95 after the trough
    p = selloff_panel["perp_close"].to_numpy()
    assert ev["recovery_ts"][0] == at(int(np.argmax((np.arange(600) > 109) & (p >= 95.0))))
    assert detect_selloffs(selloff_panel, drawdown_pct=12).height == 0
    assert detect_selloffs(selloff_panel, drawdown_pct=5, within_hours=2).height == 0   # 10 % took 9 h


def test_selloffs_no_recovery_is_null():
    p = np.r_[np.full(50, 100.0), np.linspace(100, 80, 10), np.full(20, 85.0)]
    ev = detect_selloffs(frame(perp_close=p))
    assert ev.height == 1 and ev["recovery_ts"][0] is None


def test_selloffs_ignore_missing_prices(selloff_panel):
    with_gap = selloff_panel.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(200, 250)).then(None).otherwise(pl.col("perp_close")).alias("perp_close"))
    a = detect_selloffs(selloff_panel)
    b = detect_selloffs(with_gap)
    assert a.select("peak_ts", "trough_ts", "drawdown_pct").equals(b.select("peak_ts", "trough_ts", "drawdown_pct"))


def test_selloffs_empty_and_bad_input(selloff_panel):
    empty = detect_selloffs(selloff_panel.head(0))
    assert empty.height == 0 and set(REQUIRED) <= set(empty.columns)
    with pytest.raises(EventDetectionError, match="perp_close"):
        detect_selloffs(selloff_panel.drop("perp_close"))
    with pytest.raises(EventDetectionError, match="drawdown_pct"):
        detect_selloffs(selloff_panel, drawdown_pct=-1)
    with pytest.raises(EventDetectionError, match="recovery_frac"):
        detect_selloffs(selloff_panel, recovery_frac=1.5)


# --------------------------------------------------------------------------------------------------
# de-clustering
# --------------------------------------------------------------------------------------------------
def test_decluster_first_and_largest():
    ev = pl.DataFrame({"ts": [at(0), at(10), at(30), at(80)], "usd": [1.0, 5.0, 2.0, 1.0]})
    first = decluster(ev, 24)
    assert first["ts"].to_list() == [at(0), at(30), at(80)]
    largest = decluster(ev, 24, keep="largest", score="usd")
    assert largest["ts"].to_list() == [at(10), at(80)]      # at(0) and at(30) are within 24 h of at(10)
    assert decluster(ev, None).height == 4
    with pytest.raises(EventDetectionError, match="score"):
        decluster(ev, 24, keep="largest")


# --------------------------------------------------------------------------------------------------
# funding resets
# --------------------------------------------------------------------------------------------------
def funding_panel(rates: list[float], interval: int = 8) -> pl.DataFrame:
    n = len(rates) * interval
    settled = [None] * n
    for i, r in enumerate(rates):
        settled[i * interval] = r
    df = frame(perp_close=np.linspace(100, 90, n), oi_base=np.linspace(1000, 800, n),
               funding_settled=settled, funding_interval_hours=[interval] * n)
    return df.with_columns((pl.col("funding_settled").forward_fill() * 8.0 / interval).alias("funding_rate_8h"))


def test_funding_reset_known_answer():
    rates = [0.0001, 0.0004, 0.0003, 0.0002, 0.0001, 0.00005, 0.0001, 0.0005, 0.0002, 0.0002, 0.0002, 0.0000]
    ev = detect_funding_resets(funding_panel(rates), elevated_k=3, neutral=0.0001, within_settlements=3,
                               min_spacing_hours=0)
    # settlement 4 resets from 2 (0.0003, within 2 settlements); settlement 11 is 4 after the last elevated (7)
    assert ev.height == 1
    e = ev.row(0, named=True)
    assert e["ts"] == at(4 * 8) and e["elevated_ts"] == at(2 * 8)
    assert e["rate_before"] == pytest.approx(0.0003) and e["rate_after"] == pytest.approx(0.0001)
    assert e["settlements_taken"] == 2 and e["hours_taken"] == 16
    assert e["elevated_threshold"] == pytest.approx(0.0003)
    assert e["oi_change_pct"] < 0 and e["price_change_pct"] < 0
    longer = detect_funding_resets(funding_panel(rates), elevated_k=3, within_settlements=4, min_spacing_hours=0)
    assert longer.height == 2 and longer["ts"][1] == at(11 * 8)


def test_funding_reset_rules_and_intervals():
    rates = [0.0001, 0.0004, 0.0001, 0.0002, 0.0001]
    assert detect_funding_resets(funding_panel(rates), elevated=0.0003, min_spacing_hours=0).height == 1
    assert detect_funding_resets(funding_panel(rates), elevated=0.00015, elevated_k=None, min_spacing_hours=0).height == 2
    assert detect_funding_resets(funding_panel(rates), elevated_pct=70, min_spacing_hours=0).height >= 1
    # a 4-hourly market: 0.0002 per 4 h is 0.0004 per 8 h
    four = funding_panel([0.00005, 0.0002, 0.00005], interval=4)
    ev = detect_funding_resets(four, elevated_k=3, min_spacing_hours=0)
    assert ev.height == 1 and ev["rate_before"][0] == pytest.approx(0.0004)
    with pytest.raises(EventDetectionError, match="above neutral"):
        detect_funding_resets(funding_panel(rates), elevated=0.00005)


def test_funding_reset_gap_does_not_bridge():
    df = funding_panel([0.0004, 0.0003, 0.0001, 0.0001])
    # drop the settlement at 8 h and the hours between: elevated (0) -> reset (16 h) is 1 observed settlement
    # apart but 16 h in clock time > 1 x 8 h
    gap = df.filter(~pl.col("ts").is_between(at(1), at(15)))
    ev = detect_funding_resets(gap, elevated_k=3, within_settlements=1, min_spacing_hours=0)
    assert ev.height == 0
    assert detect_funding_resets(gap, elevated_k=3, within_settlements=2, min_spacing_hours=0).height == 1


# --------------------------------------------------------------------------------------------------
# OI collapses
# --------------------------------------------------------------------------------------------------
def oi_panel() -> pl.DataFrame:
    oi = np.full(400, 1000.0)
    oi[200:206] = np.linspace(1000, 880, 6)     # -12 % in 5 h
    oi[206:] = 880.0
    px = np.linspace(100, 100, 400)
    px[200:206] = np.linspace(100, 95, 6)
    px[206:] = 95.0
    liq = [None] * 400
    for h in range(3, 400, 4):
        liq[h] = 1e6
    liq[203] = 5e7
    return frame(perp_close=px, oi_base=oi, oi_usd=oi * px, funding_rate_8h=np.where(np.arange(400) < 203, 3e-4, 1e-4),
                 liq_long_usd=liq, liq_short_usd=[None if v is None else 1e5 for v in liq], has_liq=[True] * 400)


def test_oi_collapse_known_answer():
    ev = detect_oi_collapses(oi_panel(), drop_pct=5, within_hours=24)
    assert ev.height == 1
    e = ev.row(0, named=True)
    assert e["peak_ts"] == at(200) and e["trough_ts"] == at(205)
    assert e["oi_change_pct"] == pytest.approx(-12.0)
    assert e["price_change_pct"] == pytest.approx(-5.0)
    assert e["ts"] == at(203)                    # 1000 -> 928 (-7.2 %) is the first close below -5 %
    assert e["funding_before"] == pytest.approx(3e-4) and e["funding_after"] == pytest.approx(1e-4)
    assert e["liq_long_usd"] == pytest.approx(5e7 + 0)   # buckets in (200, 205]: the 203 one only
    assert e["oi_column"] == "oi_base"
    usd = detect_oi_collapses(oi_panel(), oi_col="oi_usd")
    assert usd["oi_change_pct"][0] == pytest.approx(100 * (880 * 95 / 100000 - 1))
    assert detect_oi_collapses(oi_panel(), drop_pct=15).height == 0


def test_oi_collapse_zscore_rule_and_stale_oi():
    rng = np.random.default_rng(1)
    df = oi_panel().with_columns(pl.col("oi_base") * pl.Series(1 + 0.002 * rng.standard_normal(400)))
    ev = detect_oi_collapses(df, zscore=4, zscore_window_hours=168, zscore_min_hours=100)
    assert ev.height == 1 and ev["zscore"][0] <= -4 and at(200) < ev["ts"][0] <= at(206)
    stale = oi_panel().with_columns(pl.lit(30.0).alias("oi_age_hours"))
    assert detect_oi_collapses(stale, max_oi_age_hours=12).height == 0
    assert detect_oi_collapses(stale, max_oi_age_hours=None).height == 1


# --------------------------------------------------------------------------------------------------
# liquidation prints
# --------------------------------------------------------------------------------------------------
def liq_panel(n=24 * 20) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    liq = [None] * n
    for h in range(3, n, 4):
        liq[h] = float(rng.uniform(0.8e6, 1.2e6))
    liq[303] = 2e7          # 20x
    liq[307] = 3e7          # 30x, 4 h later: same cluster
    liq[403] = 4e6          # 4x: below k=5
    return frame(perp_close=np.linspace(100, 110, n), liq_long_usd=liq,
                 liq_short_usd=[None if v is None else 1e5 for v in liq])


def test_liquidation_prints_known_answer():
    ev = detect_liquidation_prints(liq_panel(), k=5, min_spacing_hours=24)
    assert ev.height == 1
    e = ev.row(0, named=True)
    assert e["ts"] == at(307) and e["usd"] == 3e7 and e["side"] == "long"      # largest of the cluster
    assert 20 < e["multiple"] < 40 and e["threshold_usd"] == pytest.approx(5 * e["median_usd"])
    first = detect_liquidation_prints(liq_panel(), k=5, keep="first")
    assert first["ts"].to_list() == [at(303)]
    both = detect_liquidation_prints(liq_panel(), k=5, min_spacing_hours=0)
    assert both["ts"].to_list() == [at(303), at(307)]
    assert detect_liquidation_prints(liq_panel(), k=3, min_spacing_hours=0).height == 3
    assert detect_liquidation_prints(liq_panel(), k=5, min_usd=2.5e7, min_spacing_hours=0)["ts"].to_list() == [at(307)]
    assert detect_liquidation_prints(liq_panel(), side="short", k=5).height == 0


def test_liquidation_prints_no_look_ahead():
    base = liq_panel()
    ev = detect_liquidation_prints(base, k=5, min_spacing_hours=0)
    # a huge later bucket must not change the threshold of earlier buckets
    later = base.with_columns(pl.when(pl.col("ts") == at(451)).then(1e12).otherwise(pl.col("liq_long_usd")).alias("liq_long_usd"))
    ev2 = detect_liquidation_prints(later, k=5, min_spacing_hours=0).filter(pl.col("ts") < at(451))
    assert ev.select("ts", "threshold_usd").equals(ev2.select("ts", "threshold_usd"))


def test_liquidation_prints_pct_rule_and_errors():
    ev = detect_liquidation_prints(liq_panel(), pct=99, k=None, min_spacing_hours=0)
    assert set(ev["ts"].to_list()) >= {at(303)}
    with pytest.raises(EventDetectionError, match="side"):
        detect_liquidation_prints(liq_panel(), side="both")
    with pytest.raises(EventDetectionError, match="liq_long_usd"):
        detect_liquidation_prints(liq_panel().drop("liq_long_usd"))


# --------------------------------------------------------------------------------------------------
# the simulated market: planted flushes are found
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(sim_lake):
    from research import db, simulate

    return db.query("hourly_panel", sim_lake, symbol="BTCUSDT"), simulate.read_truth(sim_lake)


def _near(events: pl.DataFrame, ts: dt.datetime, hours: float) -> bool:
    return any(abs((t - ts).total_seconds()) <= hours * 3600 for t in events["ts"].to_list())


def test_simulated_flushes_detected(sim):
    panel, truth = sim
    flushes = truth.filter(pl.col("kind") == "flush")
    assert flushes.height >= 2
    resets = detect_funding_resets(panel, elevated_k=2)
    collapses = detect_oi_collapses(panel, drop_pct=5, within_hours=24)
    prints = detect_liquidation_prints(panel, k=10, min_usd=1e6)
    sells = detect_selloffs(panel, drawdown_pct=5, within_hours=48, min_spacing_hours=24)
    for row in flushes.iter_rows(named=True):
        assert _near(collapses, row["trough_ts"], 24), row
        if row["funding_before"] >= 2e-4 and row["funding_after"] <= 1e-4:   # the truth had a reset to find
            assert _near(resets, row["trough_ts"], 24), row
        assert _near(prints, row["trough_ts"], 24), row
        assert _near(sells.rename({"ts": "x"}).rename({"trough_ts": "ts"}), row["trough_ts"], 24), row
    # the planted sell-offs (both kinds) are all among the detected sell-offs
    for row in truth.iter_rows(named=True):
        if row["drawdown_pct"] >= 6:
            assert _near(sells.rename({"ts": "x"}).rename({"peak_ts": "ts"}), row["peak_ts"], 48), row


def test_simulated_attributes_agree_with_truth(sim):
    panel, truth = sim
    collapses = detect_oi_collapses(panel, drop_pct=5, within_hours=24)
    for row in truth.filter(pl.col("kind") == "flush").iter_rows(named=True):
        ev = collapses.filter((pl.col("ts") - row["trough_ts"]).abs() <= pl.duration(hours=24))
        # the detector sees the OI drop within 24 h of its high; the truth measures peak to end
        assert ev["oi_change_pct"][0] < -5 and ev["oi_change_pct"][0] >= row["oi_change_pct"] - 10


# --------------------------------------------------------------------------------------------------
# the real pack (../shared): facts plainly in the data
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_panel(real_lake):
    from research import db

    return db.query("hourly_panel", real_lake, symbol="BTCUSDT", start="2025-10-01", end="2026-04-01",
                    oi_venue="all", liq_venue="binance")


@pytest.mark.slow
def test_real_largest_long_print_is_october_10(real_panel):
    ev = detect_liquidation_prints(real_panel, side="long", k=5)
    top = ev.sort("usd", descending=True).row(0, named=True)
    # the CoinGlass Binance 4h bucket 2025-10-10 20:00-24:00 sits on the panel hour containing its end
    assert top["ts"] == dt.datetime(2025, 10, 10, 23, tzinfo=dt.timezone.utc)
    assert top["usd"] == pytest.approx(235.6e6, rel=1e-3)


@pytest.mark.slow
def test_real_oi_collapse_october_10(real_panel):
    ev = detect_oi_collapses(real_panel, drop_pct=5, within_hours=24, oi_col="oi_usd")
    hit = ev.filter(pl.col("ts").is_between(dt.datetime(2025, 10, 10, tzinfo=dt.timezone.utc),
                                            dt.datetime(2025, 10, 12, tzinfo=dt.timezone.utc)))
    assert hit.height >= 1
    e = hit.row(0, named=True)
    assert e["oi_trough"] == pytest.approx(70.5e9, rel=0.02)
    assert e["oi_peak"] >= 85.7e9
    assert e["oi_change_pct"] < -15
