"""Unit tests of research.hypotheses on small hand-made frames with known answers, and the
flush/exodus recovery on the simulated market."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from research.stats import TestStat

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _panel(n: int, **cols) -> pl.DataFrame:
    ts = pl.datetime_range(T0, T0 + timedelta(hours=n - 1), "1h", time_unit="us", time_zone="UTC", eager=True)
    base = {"ts": ts, "symbol": ["BTCUSDT"] * n, "synthetic": [False] * n}
    base.update(cols)
    return pl.DataFrame(base)


# --------------------------------------------------------------------------------------------------
# small statistics
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a,b,expected,tol", [
    # d = (2-1)/1 = 1; J = 1 - 3/(4*6-9) = 0.8
    ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], 0.8, 1e-12),
    ([0.0, 2.0], [0.0, 2.0], 0.0, 1e-12),
])
def test_hedges_g_known_values(a, b, expected, tol):
    assert H.hedges_g(a, b) == pytest.approx(expected, abs=tol)


def test_hedges_g_degenerate_is_nan():
    assert math.isnan(H.hedges_g([1.0], [1.0, 2.0]))


@pytest.mark.parametrize("k,n,lo,hi,tol", [
    (5, 10, 0.2366, 0.7634, 1e-4),  # Wilson 95 % for 5/10 (textbook value)
    (0, 10, 0.0, 0.2775, 1e-4),
])
def test_wilson_ci(k, n, lo, hi, tol):
    a, b = H.wilson_ci(k, n)
    assert a == pytest.approx(lo, abs=tol) and b == pytest.approx(hi, abs=tol)


def test_permutation_and_bootstrap_are_seeded_and_sensible():
    a = np.array([1.0, 1.1, 0.9, 1.2, 1.0, 0.95])
    b = np.array([0.0, 0.1, -0.1, 0.05, 0.0, -0.05])
    p1 = H.permutation_pvalue(a, b, n_perm=999, seed=3)
    p2 = H.permutation_pvalue(a, b, n_perm=999, seed=3)
    assert p1 == p2
    # only the identity split (and its mirror) is as extreme: p = (1 + ~2/924*999)/1000 < 0.01
    assert p1 < 0.01
    lo, hi = H.bootstrap_diff_ci(a, b, n_boot=2000, seed=1)
    assert lo < a.mean() - b.mean() < hi and lo > 0.8
    same = H.permutation_pvalue(b, b, n_perm=499, seed=1)
    assert same == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# H1 on a hand-made market: one flush and one exodus with known features
# --------------------------------------------------------------------------------------------------
def _two_selloffs():
    n = 600
    close = np.full(n, 100.0)
    oi = np.full(n, 1000.0)
    fund = np.full(n, 0.0001)
    liq = np.full(n, 10.0)
    share = np.full(n, 0.10)
    taker = np.zeros(n)
    # flush: peak at 200, trough at 210; OI -20 %, funding 3 bp -> -1 bp, liquidation burst at 203 that fades
    fund[150:201] = 0.0003
    close[200:211] = np.linspace(100, 90, 11)
    close[211:] = 90.0
    oi[205:] = 800.0
    fund[201:] = -0.0001
    liq[203] = 5000.0
    close[230:] = np.linspace(90, 99, n - 230)  # flush is followed by a recovery
    # exodus: peak at 400, trough at 410; OI flat, funding positive, spot share up, spot takers selling
    close[400:411] = np.linspace(close[400], close[400] * 0.9, 11)
    close[411:] = close[410] * np.linspace(1, 0.95, n - 411)  # and by a further fall
    share[400:423] = 0.25
    taker[400:423] = -0.3
    fund[380:] = 0.0002
    p = _panel(n, perp_close=close, oi_base=oi, oi_usd=oi * close, funding_rate_8h=fund, liq_long_usd=liq,
               has_liq=[True] * n, spot_share=share, spot_taker_imbalance=taker)
    sell = pl.DataFrame({"event_id": [0, 1], "peak_ts": [p["ts"][200], p["ts"][400]],
                         "trough_ts": [p["ts"][210], p["ts"][410]], "drawdown_pct": [10.0, 10.0]})
    return p, sell, close


def test_flush_vs_exodus_classifies_hand_made_events():
    p, sell, close = _two_selloffs()
    r = H.flush_vs_exodus(p, sell, post_hours=12, n_boot=200, n_perm=199)
    ev = r.events.sort("event_id")
    assert ev["label"].to_list() == ["flush", "exodus"]
    f = ev.row(0, named=True)
    assert f["oi_change_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert f["funding_drop_bps"] == pytest.approx(4.0, abs=1e-9)  # 3 bp before, -1 bp at the decision hour
    assert f["vote_liquidations"] == 1 and f["liq_decay"] < 0.5
    x = ev.row(1, named=True)
    assert x["oi_change_pct"] == pytest.approx(0.0, abs=1e-9)
    assert x["spot_share_change"] == pytest.approx(0.15, abs=1e-9)
    assert x["vote_oi"] == -1 and x["vote_spot_share"] == -1 and x["vote_taker"] == -1
    # forward return from the decision hour (trough + 12) to +24 h, exactly from the closes
    fw = r.forward.filter((pl.col("event_id") == 0) & (pl.col("horizon_h") == 24))["car"][0]
    assert fw == pytest.approx(math.log(close[222 + 24] / close[222]), abs=1e-12)
    assert set(r.comparison["horizon_h"].to_list()) == {24, 72, 168}
    json.dumps(r.to_dict())
    assert r.plot().to_dict()["layer"]


def test_flush_vs_exodus_confusion_against_truth():
    p, sell, _ = _two_selloffs()
    truth = pl.DataFrame({"episode_id": [1, 2, 3], "kind": ["flush", "exodus", "exodus"],
                          "trough_ts": [p["ts"][212], p["ts"][409], p["ts"][590]]})
    r = H.flush_vs_exodus(p, sell, truth=truth, match_tolerance_hours=24, n_boot=50, n_perm=49)
    cm = {row["truth"]: row for row in r.confusion.iter_rows(named=True)}
    assert cm["flush"]["flush"] == 1 and cm["exodus"]["exodus"] == 1 and cm["exodus"]["missed"] == 1
    assert r.accuracy == pytest.approx(2 / 3) and r.accuracy_detected == pytest.approx(1.0)


def test_flush_vs_exodus_names_missing_columns():
    p, _, _ = _two_selloffs()
    with pytest.raises(H.HypothesisError, match="trough_ts"):
        H.flush_vs_exodus(p, pl.DataFrame({"peak_ts": p["ts"][:1]}))


# --------------------------------------------------------------------------------------------------
# H2
# --------------------------------------------------------------------------------------------------
def _legs(n_events=6):
    """Selloffs every 200 h; even ones bounce 3 % then undercut (second leg), odd ones bounce and hold."""
    n = 200 * n_events + 200
    close = np.full(n, 100.0)
    oi = np.full(n, 1000.0)
    fund = np.full(n, 0.0001)
    peaks, troughs = [], []
    for e in range(n_events):
        s = 200 * e + 20
        close[s:s + 10] = np.linspace(100, 90, 10)
        close[s + 10:s + 20] = np.linspace(90, 93, 10)
        if e % 2 == 0:
            close[s + 20:s + 40] = np.linspace(93, 88, 20)
            close[s + 40:s + 200] = 88 + np.linspace(0, 12, 160)
        else:
            close[s + 20:s + 200] = 93 + np.linspace(0, 7, 180)
            oi[s + 5:s + 200] = 900.0  # OI dropped 10 % in the selloffs that hold
            fund[s:s + 200] = -0.0001
        peaks.append(s - 1)
        troughs.append(s + 9)
    p = _panel(n, perp_close=close, oi_base=oi, oi_usd=oi * close, funding_rate_8h=fund)
    sell = pl.DataFrame({"event_id": list(range(n_events)), "peak_ts": p["ts"].gather(peaks),
                         "trough_ts": p["ts"].gather(troughs)})
    return p, sell


def test_second_leg_rates_and_separation_note():
    p, sell = _legs()
    r = H.second_leg(p, sell, bounce_pct=2.0, bounce_hours=24, horizon_days=3)
    allr = r.rates.filter(pl.col("group") == "all").row(0, named=True)
    assert (allr["k"], allr["n"]) == (3, 6)
    held = r.rates.filter(pl.col("group") == "oi_held").row(0, named=True)
    assert (held["k"], held["n"]) == (3, 3)
    fis = r.fisher.filter(pl.col("condition") == "oi_held").row(0, named=True)
    # 3/3 vs 0/3: two-sided Fisher p = 2 / C(6,3) = 0.1
    assert fis["pvalue"] == pytest.approx(0.1, abs=1e-12)
    assert fis["risk_diff"] == pytest.approx(1.0)
    # perfect separation: no logit, and a note says why
    assert r.logit is None
    assert any("separation" in n for n in r.notes)
    json.dumps(r.to_dict())
    r.plot().to_dict()


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


# --------------------------------------------------------------------------------------------------
# H6
# --------------------------------------------------------------------------------------------------
def test_heatmap_levels_and_crossing():
    n = 5
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    p = _panel(n, perp_close=close, perp_high=close + 0.1, perp_low=close - 0.1,
               oi_base=np.array([10.0, 20.0, 20.0, 20.0, 20.0]), oi_usd=np.full(n, np.nan))
    hm = H.liquidation_heatmap(p, leverage_mix={10: 1.0}, long_share=0.5, bin_pct=0.1)
    c = hm.centers
    # 10 BTC opened at 100 at hour 1: $500 long at 90, $500 short at 110
    il = int(np.argmax(hm.long_usd[1]))
    is_ = int(np.argmax(hm.short_usd[1]))
    assert hm.long_usd[1].sum() == pytest.approx(500.0) and hm.short_usd[1].sum() == pytest.approx(500.0)
    assert c[il] == pytest.approx(90.0, rel=0.002) and c[is_] == pytest.approx(110.0, rel=0.002)
    # a crash through 90 liquidates the longs; the shorts stay
    p2 = p.with_columns(pl.Series("perp_low", [99.9, 99.9, 99.9, 85.0, 99.9]))
    hm2 = H.liquidation_heatmap(p2, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm2.long_usd[3].sum() == 0.0 and hm2.short_usd[3].sum() == pytest.approx(500.0)
    # an OI drop closes positions proportionally
    p3 = p.with_columns(pl.Series("oi_base", [10.0, 20.0, 10.0, 10.0, 10.0]))
    hm3 = H.liquidation_heatmap(p3, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm3.long_usd[2].sum() == pytest.approx(250.0)


def test_heatmap_covers_only_hours_with_fresh_open_interest():
    n = 8
    close = np.full(n, 100.0)
    age = np.array([np.nan, 0.0, 1.0, 0.0, 1.0, 13.0, 14.0, 15.0])  # OI stops after hour 4
    p = _panel(n, perp_close=close, perp_high=close + 0.1, perp_low=close - 0.1,
               oi_base=np.array([np.nan, 10.0, 10.0, 20.0, 20.0, 20.0, 20.0, 20.0]), oi_usd=np.full(n, np.nan),
               oi_age_hours=age)
    hm = H.liquidation_heatmap(p, leverage_mix={10: 1.0}, bin_pct=0.1)
    assert hm.close.size == 4 and hm.ts[0] == p["ts"][1] and hm.ts[-1] == p["ts"][4]
    assert H.liquidation_heatmap(p, leverage_mix={10: 1.0}, bin_pct=0.1, max_oi_age_hours=None).close.size == n
    with pytest.raises(H.HypothesisError, match="max_oi_age_hours"):
        H.liquidation_heatmap(p.with_columns(oi_age_hours=pl.lit(50.0)), leverage_mix={10: 1.0})


def test_heatmap_test_finds_planted_attraction():
    """Price drifts toward where longs sit: the cluster below is hit, the mirror above is not."""
    n = 24 * 120
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(np.full(n, -0.0004) + rng.normal(0, 0.001, n)))
    oi = 1000 + np.cumsum(np.abs(rng.normal(0, 1, n)))
    p = _panel(n, perp_close=close, perp_high=close * 1.001, perp_low=close * 0.999, oi_base=oi,
               oi_usd=np.full(n, np.nan))
    r = H.liquidation_heatmap_test(p, leverage_mix={25: 1.0}, long_share=1.0, max_distance_pct=5,
                                   horizon_hours=72, n_perm=999, seed=1)
    rates = {x["level"]: x["rate"] for x in r.hit_rates.iter_rows(named=True)}
    assert rates["largest cluster"] > rates["mirror placebo"]
    assert r.permutation.pvalue < 0.01 and r.mcnemar.pvalue < 0.01
    frame = r.heatmap.frame(max_cells=2000)
    assert 0 < frame.height <= 2000
    spec = r.plot().to_dict()
    assert spec["layer"]
    json.dumps(r.to_dict())


def test_heatmap_rejects_bad_leverage():
    p = _panel(3, perp_close=[1.0, 1.0, 1.0], perp_high=[1.0] * 3, perp_low=[1.0] * 3, oi_base=[1.0] * 3)
    with pytest.raises(H.HypothesisError, match="leverage_mix"):
        H.liquidation_heatmap(p, leverage_mix={1: 1.0})


# --------------------------------------------------------------------------------------------------
# the simulated market: planted flush/exodus labels are recovered
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_inputs(sim_lake):
    return H.load_inputs(sim_lake)


def test_flush_exodus_recovers_planted_labels(sim_inputs):
    from research.events import detect_selloffs

    p = sim_inputs.panel
    sell = detect_selloffs(p, drawdown_pct=5, within_hours=72, min_spacing_hours=72)
    r = H.flush_vs_exodus(p, sell, sim_inputs.daily, truth=sim_inputs.truth, n_boot=200, n_perm=199)
    assert sim_inputs.synthetic and r.synthetic
    # bound: at least 80 % of the 8 planted episodes detected AND labelled as planted (seed 7 gives 8/8)
    assert r.accuracy >= 0.8, r.summary()
    assert r.accuracy_detected >= 0.8
    cm = {row["truth"]: row for row in r.confusion.iter_rows(named=True)}
    assert cm["flush"]["exodus"] == 0 and cm["exodus"]["flush"] == 0  # never the opposite class



def test_stale_open_interest_counts_as_missing():
    # CoinGlass-style USD OI that stopped updating: dividing the carried-forward value by a falling
    # close would fake a rising OI, so hours older than OI_MAX_AGE_HOURS must read as missing
    close = np.array([100.0, 90.0, 80.0])
    p = _panel(3, perp_close=close, oi_usd=np.full(3, 1e9), oi_base=np.full(3, np.nan),
               oi_age_hours=np.array([1.0, H.OI_MAX_AGE_HOURS + 1, 40.0]))
    oi = H._oi_units(p)
    assert oi[0] == pytest.approx(1e7) and np.isnan(oi[1:]).all()
