"""Tests of the synthetic market: determinism, schema, planted truth, lake round trip, realism.

Real-data comparisons read ``../shared/data/real`` (skip without it, fail under CI). Tolerances are
stated next to each check; they are ratios or bands around the real statistic, not fitted values.
"""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

import numpy as np
import polars as pl
import pytest

from research import lake
from research.schema import SYNTHETIC_SOURCE, TABLES, validate
from research.simulate import (
    TABLE_NAMES, SimulatedMarket, SimulationError, read_truth, simulate, truth_path, write_sample,
)
from tests.conftest import shared_path

SEEDS = [7, 11, 2024]
H = timedelta(hours=1)


@lru_cache(maxsize=None)
def market(seed: int = 7) -> SimulatedMarket:
    # 180 days keeps the suite fast; the default 18-month span has its own test below
    return simulate(seed=seed, days=180)


def bn(df: pl.DataFrame) -> pl.DataFrame:
    """The Binance rows: the market the model simulates (other venues are derived from it)."""
    return df.filter(pl.col("venue") == "binance")


def perp(m: SimulatedMarket) -> pl.DataFrame:
    return m.bars.filter(pl.col("market") == "perp").sort("ts")


def spot(m: SimulatedMarket) -> pl.DataFrame:
    return m.bars.filter(pl.col("market") == "spot").sort("ts")


def close_at(m, ts) -> float:
    return perp(m).filter(pl.col("ts") == ts)["close"].item()


def oi_after(m, ts) -> float:
    """OI snapshot observed at the end of the bar that starts at ``ts``."""
    return bn(m.open_interest).filter(pl.col("ts") == ts + H)["oi_base"].item()


def episodes(m, kind):
    return list(m.truth.filter(pl.col("kind") == kind).iter_rows(named=True))


# ------------------------------------------------------------------------------------------------
# determinism and schema
# ------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_frames_and_other_seed_differs():
    a, b = market(7), simulate(seed=7, days=180)
    for name in (*TABLE_NAMES, "truth"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.params == b.params
    c = market(11)
    assert not perp(a)["close"].equals(perp(c)["close"])
    assert not a.truth.equals(c.truth)


def test_every_table_is_canonical_and_synthetic():
    m = market(7)
    for name, df in m.tables().items():
        assert df.height > 0, name
        assert validate(name, df).equals(df), name
        assert df["source"].unique().to_list() == [SYNTHETIC_SOURCE], name
        key = list(TABLES[name].key)
        assert df.select(key).is_unique().all(), f"{name}: duplicate keys"
    n = 180 * 24
    assert perp(m).height == spot(m).height == n
    assert set(m.bars["venue"].unique()) == {"binance"} and set(m.bars["symbol"].unique()) == {"BTCUSDT"}
    assert perp(m)["ts"].diff().drop_nulls().unique().to_list() == [H]
    # funding: 8-hourly settlements at 00/08/16 UTC
    assert set(m.funding["ts"].dt.hour().unique()) == {0, 8, 16}
    assert m.funding["interval_hours"].unique().to_list() == [8] and m.funding.height == 180 * 3
    # OI and positioning are observations at the bar's end
    assert bn(m.open_interest)["ts"].min() == perp(m)["ts"].min() + H
    assert bn(m.open_interest)["interval"].unique().to_list() == ["1h"]
    assert (bn(m.open_interest)["oi_usd"] / bn(m.open_interest)["oi_base"]).is_between(1e4, 1e6).all()
    assert m.positioning["ts"].equals(bn(m.open_interest)["ts"])
    assert bn(m.liquidations).height == n
    assert m.etf_flows["date"].dt.weekday().max() <= 5  # polars: Monday=1 .. Sunday=7
    assert m.etf_flows["product"].unique().to_list() == ["TOTAL"]


def test_fear_greed_labels_follow_alternative_me():
    s = market(7).sentiment
    assert s["value"].is_between(0, 100).all() and (s["value"] == s["value"].round()).all()
    expected = (pl.when(pl.col("value") <= 25).then(pl.lit("Extreme Fear"))
                .when(pl.col("value") <= 46).then(pl.lit("Fear"))
                .when(pl.col("value") <= 54).then(pl.lit("Neutral"))
                .when(pl.col("value") <= 75).then(pl.lit("Greed"))
                .otherwise(pl.lit("Extreme Greed")))
    assert s.select((pl.col("label") == expected).all()).item()


def test_summary_and_record_are_usable():
    m = market(7)
    assert "flush" in m.summary() and "exodus" in m.summary()
    rec = m.to_dict()
    assert rec["rows"]["bars"] == 8640 and len(rec["truth"]) == 8
    import json
    json.dumps(rec)


# ------------------------------------------------------------------------------------------------
# planted episodes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_default_plants_four_of_each_well_separated(seed):
    t = market(seed).truth.sort("start_ts")
    assert t.filter(pl.col("kind") == "flush").height == 4
    assert t.filter(pl.col("kind") == "exodus").height == 4
    assert t["kind"].to_list() != sorted(t["kind"].to_list()) or seed != 7  # interleaved (seed 7)
    gaps = (t["start_ts"].shift(-1) - t["end_ts"]).drop_nulls()
    assert gaps.min() >= timedelta(days=7)
    assert (t["start_ts"] <= t["peak_ts"]).all() and (t["peak_ts"] < t["trough_ts"]).all()
    assert (t["trough_ts"] < t["end_ts"]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_truth_is_measured_on_the_series(seed):
    m = market(seed)
    f = m.funding
    for r in m.truth.iter_rows(named=True):
        pk, tr = r["peak_ts"], r["trough_ts"]
        assert r["drawdown_pct"] == pytest.approx(100 * (1 - close_at(m, tr) / close_at(m, pk)), rel=1e-4)
        assert r["oi_change_pct"] == pytest.approx(100 * (oi_after(m, tr) / oi_after(m, pk) - 1), abs=1e-3)
        before = f.filter((pl.col("ts") > pk + H - timedelta(hours=24)) & (pl.col("ts") <= pk + H))["rate"]
        after = f.filter((pl.col("ts") > tr + H) & (pl.col("ts") <= tr + H + timedelta(hours=24)))["rate"]
        assert r["funding_before"] == pytest.approx(before.mean(), abs=1e-10)
        assert r["funding_after"] == pytest.approx(after.mean(), abs=1e-10)
        liq = bn(m.liquidations).filter(pl.col("ts").is_between(pk, tr + 6 * H))["long_usd"].sum()
        assert r["long_liq_usd"] == pytest.approx(liq, rel=1e-9)
        # the peak is the highest close of the episode before the selloff
        window = perp(m).filter(pl.col("ts").is_between(r["start_ts"], pk))
        assert window["close"].max() == close_at(m, pk)


@pytest.mark.parametrize("seed", SEEDS)
def test_flushes_look_like_flushes(seed):
    m = market(seed)
    liq = bn(m.liquidations).sort("ts")
    for r in episodes(m, "flush"):
        pk, tr = r["peak_ts"], r["trough_ts"]
        assert -25.0 <= r["oi_change_pct"] <= -5.0, r
        assert r["funding_before"] >= 1.2e-4, r          # elevated before
        assert r["funding_after"] <= 3e-5, r             # reset to about neutral
        burst = liq.filter(pl.col("ts").is_between(pk, tr + 6 * H))["long_usd"].max()
        later = liq.filter(pl.col("ts").is_between(tr + 24 * H, tr + 72 * H))["long_usd"].median()
        assert burst >= 10 * later, (burst, later)       # burst, then decays
        # price stabilises: no new low more than 3 % under the trough in the next 48 h
        after = perp(m).filter(pl.col("ts").is_between(tr, tr + 48 * H))["close"].min()
        assert after >= close_at(m, tr) * 0.97
        # crowding rises into the flush
        pos = m.positioning
        start = pos.filter(pl.col("ts").is_between(r["start_ts"] + H, r["start_ts"] + 24 * H))
        top = pos.filter(pl.col("ts").is_between(pk - 23 * H, pk + H))
        assert top["top_trader_ls_ratio"].mean() > start["top_trader_ls_ratio"].mean() + 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_exoduses_look_like_exoduses(seed):
    m = market(seed)
    p, s = perp(m), spot(m)
    share_all = (s["volume"] / p["volume"]).median()
    liq = bn(m.liquidations)

    def burst(r):  # largest hourly long liquidation from the peak to 6 h after the trough
        return liq.filter(pl.col("ts").is_between(r["peak_ts"], r["trough_ts"] + 6 * H))["long_usd"].max()

    flush_burst = float(np.median([burst(r) for r in episodes(m, "flush")]))
    for r in episodes(m, "exodus"):
        pk, tr = r["peak_ts"], r["trough_ts"]
        assert abs(r["oi_change_pct"]) < 3.0, r                      # OI holds
        assert r["funding_after"] >= 7e-5, r                          # funding stays positive
        # settlements whose 8 h premium window lies inside the selloff
        fund = m.funding.filter(pl.col("ts").is_between(pk + 9 * H, tr + H))["rate"]
        assert fund.min() > 0
        win_p = p.filter(pl.col("ts").is_between(pk + H, tr))
        win_s = s.filter(pl.col("ts").is_between(pk + H, tr))
        assert (win_s["volume"].sum() / win_p["volume"].sum()) >= 1.8 * share_all  # spot leads
        assert win_s["taker_buy_volume"].sum() / win_s["volume"].sum() < 0.46       # taker selling
        assert burst(r) < 0.5 * flush_burst                                         # small liquidations
        assert r["second_leg"] and r["second_leg_ts"] is not None
        leg2 = r["second_leg_ts"]
        assert tr < leg2 <= tr + timedelta(days=7)
        assert close_at(m, leg2) < close_at(m, tr)                    # a lower low follows


@pytest.mark.parametrize("seed", SEEDS)
def test_etf_outflows_accompany_exoduses(seed):
    m = market(seed)
    days = pl.concat([pl.date_range(r["peak_ts"].date(), r["second_leg_ts"].date(), eager=True)
                      for r in episodes(m, "exodus")])
    etf = m.etf_flows.with_columns(exodus=pl.col("date").is_in(days.implode()))
    by = etf.group_by("exodus").agg(pl.col("flow_usd").mean())
    assert by.filter("exodus")["flow_usd"].item() < 0 < by.filter(~pl.col("exodus"))["flow_usd"].item()


@pytest.mark.parametrize("seed", SEEDS)
def test_drawdowns_of_both_kinds_are_comparable(seed):
    t = market(seed).truth
    assert t["drawdown_pct"].is_between(5.0, 16.0).all(), t["drawdown_pct"].to_list()
    by = t.group_by("kind").agg(pl.col("drawdown_pct").median()).sort("kind")["drawdown_pct"]
    assert abs(by[0] - by[1]) < 4.0


def _detect(p: pl.DataFrame, d: float = 0.05, w: int = 72) -> pl.DataFrame:
    """Drawdown >= d within w hours from the rolling high; one row per contiguous selloff."""
    x = p.select("ts", "close").with_columns(
        hi=pl.col("close").rolling_max(w, min_samples=1)).with_columns(
        dd=1 - pl.col("close") / pl.col("hi")).with_columns(
        on=pl.col("dd") >= d).with_columns(grp=(pl.col("on") != pl.col("on").shift(1)).cum_sum())
    x = x.with_row_index("i")
    segs = x.filter("on").group_by("grp").agg(
        trough_i=pl.col("i").gather(pl.col("close").arg_min()).first(),
        seg_start=pl.col("ts").first(), seg_end=pl.col("ts").last()).sort("trough_i")
    closes = p["close"].to_numpy()
    peaks = []
    for ti in segs["trough_i"].to_list():
        lo = max(0, ti - w)
        peaks.append(lo + int(np.argmax(closes[lo:ti + 1])))
    return segs.select(
        peak_ts=p["ts"].gather(peaks), trough_ts=p["ts"].gather(segs["trough_i"]),
        seg_start="seg_start", seg_end="seg_end")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_simple_classifier_recovers_the_planted_labels(seed):
    """Detect selloffs from price alone, then classify on OI change and funding reset."""
    m = market(seed)
    det = _detect(perp(m))
    oi = bn(m.open_interest).select((pl.col("ts") - H).alias("ts"), "oi_base")
    det = (det.join(oi.rename({"ts": "peak_ts", "oi_base": "oi_pk"}), on="peak_ts")
              .join(oi.rename({"ts": "trough_ts", "oi_base": "oi_tr"}), on="trough_ts"))
    # lowest funding settled in the 24 h after the trough (the reset, if any)
    fund = m.funding.select("ts", "rate")
    det = det.join(fund, how="cross").filter(
        (pl.col("ts") > pl.col("trough_ts")) & (pl.col("ts") <= pl.col("trough_ts") + timedelta(hours=24))
    ).group_by(det.columns).agg(f_after=pl.col("rate").min())
    det = det.with_columns(
        doi=100 * (pl.col("oi_tr") / pl.col("oi_pk") - 1)).with_columns(
        label=pl.when((pl.col("doi") <= -5) & (pl.col("f_after") <= 3e-5)).then(pl.lit("flush"))
        .when((pl.col("doi").abs() < 3) & (pl.col("f_after") >= 7e-5)).then(pl.lit("exodus"))
        .otherwise(pl.lit("other")))
    for r in m.truth.iter_rows(named=True):
        hit = det.filter(pl.lit(r["trough_ts"]).is_between(pl.col("seg_start"), pl.col("seg_end")))
        assert hit.height >= 1, f"planted {r['kind']} at {r['trough_ts']} not detected"
        assert r["kind"] in hit["label"].to_list(), (r, hit)


# ------------------------------------------------------------------------------------------------
# parameters and lake round trip
# ------------------------------------------------------------------------------------------------
def test_bad_parameters_raise_named_errors():
    with pytest.raises(SimulationError, match="n_flsh"):
        simulate(n_flsh=3)
    with pytest.raises(SimulationError, match="increase 'days'"):
        simulate(days=30, n_flush=4, n_exodus=4)
    with pytest.raises(SimulationError, match="start"):
        simulate(start="2025-01-01T05:00")
    with pytest.raises(SimulationError, match="n_exodus"):
        simulate(n_exodus=-1)


def test_write_sample_round_trip_is_idempotent_and_keeps_real_rows(data_dir):
    real = perp(market(7)).head(3).with_columns(pl.lit("binance_vision").alias("source"))
    lake.write("bars", real, data_dir)
    kw = dict(seed=3, days=40, n_flush=1, n_exodus=1)
    m1 = write_sample(data_dir, **kw)
    m2 = write_sample(data_dir, **kw)
    for name in TABLE_NAMES:
        got = lake.read(name, data_dir, source=SYNTHETIC_SOURCE)
        want = m2.tables()[name].sort(list(TABLES[name].key))
        assert got.equals(want), name
        assert m1.tables()[name].equals(m2.tables()[name])
    assert read_truth(data_dir).equals(m2.truth)
    assert truth_path(data_dir).is_file()
    # a shorter sample replaces the older one completely; real rows stay
    write_sample(data_dir, seed=4, days=35, n_flush=1, n_exodus=1)
    assert lake.read("bars", data_dir, source=SYNTHETIC_SOURCE).height == 35 * 24 * 2
    assert lake.read("bars", data_dir, source="binance_vision").height == 3
    assert read_truth(data_dir)["start_ts"].max() < read_truth(data_dir)["end_ts"].max()


def test_read_truth_without_sample_says_what_to_do(data_dir):
    with pytest.raises(FileNotFoundError, match="research sample"):
        read_truth(data_dir)


# ------------------------------------------------------------------------------------------------
# magnitudes against real Binance / CoinGlass / alternative.me / Farside data
# ------------------------------------------------------------------------------------------------
REAL = "data/real"


@lru_cache(maxsize=None)
def real_perp() -> pl.DataFrame:
    return pl.read_csv(shared_path(REAL) / "gg-cmk+binance-quant/data/BTCUSDT-1h-futures.csv")


@lru_cache(maxsize=None)
def real_spot() -> pl.DataFrame:
    f = shared_path(REAL) / "denniskid2520+btcusdt-research-archive/src/data/btcusdt_1h_5year.csv"
    return pl.read_csv(f).with_columns(pl.col("timestamp").str.to_datetime().dt.replace_time_zone("UTC"))


def _pct(x, q):
    return np.percentile(np.asarray(x, dtype=float), q)


def test_hourly_returns_match_binance_perp():
    """|hourly log return| percentiles 50/90/99 and the std within x0.67..x1.5 of real (2025-26)."""
    real = np.diff(np.log(real_perp()["close"].to_numpy()))
    for seed in SEEDS:
        sim = np.diff(np.log(perp(market(seed))["close"].to_numpy()))
        for q in (50, 90, 99):
            ratio = _pct(np.abs(sim), q) / _pct(np.abs(real), q)
            assert 0.67 <= ratio <= 1.5, (seed, q, ratio)
        assert 0.67 <= sim.std() / real.std() <= 1.5


def test_volumes_and_taker_flow_match_binance():
    """Perp volume p5/p50/p95 within x0.5..x2; spot/perp share median x0.6..x1.6; taker-buy share p1/p99 +-0.05."""
    rp = real_perp()
    m = market(7)
    p = perp(m)
    for q in (5, 50, 95):
        ratio = _pct(p["volume"], q) / _pct(rp["volume"], q)
        assert 0.5 <= ratio <= 2.0, (q, ratio)
    tb_real = (rp["takerBuyBase"] / rp["volume"]).to_numpy()
    tb_sim = (p["taker_buy_volume"] / p["volume"]).to_numpy()
    for q in (1, 99):
        assert abs(_pct(tb_sim, q) - _pct(tb_real, q)) <= 0.05, q
    rs = real_spot()
    joined = (rp.select(pl.from_epoch("openTime", time_unit="ms").dt.replace_time_zone("UTC").alias("ts"),
                        "volume")
              .join(rs.select(pl.col("timestamp").alias("ts"), pl.col("volume").alias("spot")), on="ts"))
    real_share = (joined["spot"] / joined["volume"]).median()
    sim_share = (spot(m)["volume"] / p["volume"]).median()
    assert 0.6 <= sim_share / real_share <= 1.6, (sim_share, real_share)


def test_funding_matches_binance_history():
    """Binance BTCUSDT funding 2019-2026 (8h): synthetic median within the real p25..p75, p5 within
    the real p1..p25, p95 within the real p50..p99, and a pile at exactly 0.0001 (>= 10 % of settlements)."""
    f = shared_path(REAL) / "twitter-bot-tech+btc-funding-arb/data/funding_btcusdt.csv"
    real = pl.read_csv(f)["fundingRate"].to_numpy()
    for seed in SEEDS:
        sim = market(seed).funding["rate"].to_numpy()
        assert _pct(real, 25) <= np.median(sim) <= _pct(real, 75)
        assert _pct(real, 1) <= _pct(sim, 5) <= _pct(real, 25)
        assert _pct(real, 50) <= _pct(sim, 95) <= _pct(real, 99)
        assert (sim == 0.0001).mean() >= 0.10
        assert (sim < 0).mean() > 0.02  # occasionally negative


def test_open_interest_level_and_flush_drops_match_real():
    """OI level within x0.5..x2 of real Binance BTCUSDT OI (REST 4h, 2026); flush drops 5..25 %, and
    the deepest flush no deeper than 1.5x the deepest 72 h drop of CoinGlass aggregate OI."""
    oi = pl.read_csv(shared_path(REAL) / "silertrades+gravestone-data/data/oi_4h/BTCUSDT.csv")
    agg = pl.read_csv(shared_path(REAL) / "denniskid2520+btcusdt-research-archive/src/data/coinglass_oi_4h.csv")
    c = agg["close"].to_numpy()
    real_min_72h = 100 * (c[18:] / c[:-18] - 1).min()
    for seed in SEEDS:
        m = market(seed)
        ratio = bn(m.open_interest)["oi_usd"].median() / oi["sum_open_interest_value"].median()
        assert 0.5 <= ratio <= 2.0, ratio
        drops = [r["oi_change_pct"] for r in episodes(m, "flush")]
        assert all(-25 <= d <= -5 for d in drops), drops
        assert min(drops) >= 1.5 * real_min_72h


def test_liquidations_match_coinglass_binance():
    """4h long liquidations: median within x0.33..x3 of real; every flush's largest 4h bucket within
    x0.1..x10 of the median of the 10 largest real 4h buckets; exoduses' largest below flushes' median."""
    real = pl.read_csv(shared_path(REAL) / "denniskid2520+btcusdt-research-archive/src/data/coinglass_liquidation_4h.csv")
    real_top = np.median(np.sort(real["long_usd"].to_numpy())[-10:])
    for seed in SEEDS:
        m = market(seed)
        l4 = (bn(m.liquidations).sort("ts").group_by_dynamic("ts", every="4h")
              .agg(pl.col("long_usd").sum()))
        ratio = l4["long_usd"].median() / real["long_usd"].median()
        assert 1 / 3 <= ratio <= 3, ratio

        def peak4h(r):
            return l4.filter(pl.col("ts").is_between(r["peak_ts"] - 4 * H, r["trough_ts"] + 6 * H))["long_usd"].max()

        flush = [peak4h(r) for r in episodes(m, "flush")]
        exodus = [peak4h(r) for r in episodes(m, "exodus")]
        assert all(0.1 * real_top <= x <= 10 * real_top for x in flush), (flush, real_top)
        assert max(exodus) < np.median(flush)


def test_positioning_sentiment_and_etf_flows_match_real():
    """Top-trader L/S median within +-0.3 of CoinGlass Binance (2025+) and p5/p95 inside its p1..p99;
    Fear & Greed median within +-12 points; ETF daily flow p5/p95 within x0.5..x2 of Farside."""
    top = pl.read_csv(shared_path(REAL) / "denniskid2520+btcusdt-research-archive/src/data/coinglass_top_ls_1d.csv")
    top = top.filter(pl.col("timestamp") >= "2025-01-01")["ratio"].to_numpy()
    fng = pl.read_csv(shared_path(REAL) / "twitter-bot-tech+btc-funding-arb/data/fng.csv")["fng"].to_numpy()
    etf = pl.read_csv(shared_path(REAL) / "ccyun95+Cryptocurrency_Work/data/etf.csv")
    etf = etf["btc_etf_net_flow_usd_mn"].drop_nulls().to_numpy() * 1e6
    m = market(7)
    sim_top = m.positioning["top_trader_ls_ratio"].to_numpy()
    assert abs(np.median(sim_top) - np.median(top)) <= 0.3
    assert _pct(top, 1) <= _pct(sim_top, 5) and _pct(sim_top, 95) <= _pct(top, 99)
    assert abs(m.sentiment["value"].median() - np.median(fng)) <= 12
    sim_etf = m.etf_flows["flow_usd"].to_numpy()
    for q in (5, 95):
        assert 0.5 <= _pct(sim_etf, q) / _pct(etf, q) <= 2.0, q


# ------------------------------------------------------------------------------------------------
# Default span and venues
# ------------------------------------------------------------------------------------------------
def test_default_span_is_18_months_ending_on_a_fixed_date():
    import research.simulate as sim

    m = simulate(seed=7)
    p = perp(m)
    assert p["ts"].min().isoformat() == "2024-10-01T00:00:00+00:00"
    assert p["ts"].max().isoformat() == "2026-03-31T23:00:00+00:00"
    assert m.params["days"] == sim.DEFAULT_DAYS == 547
    assert m.truth.height == 24  # 4 of each kind per 180 days
    oct_mar = m.truth.filter(pl.col("peak_ts").dt.date().is_between(pl.date(2025, 10, 1), pl.date(2026, 3, 31)))
    assert oct_mar.height >= 4 and set(oct_mar["kind"]) == {"flush", "exodus"}
    assert not hasattr(sim, "KINDS")
    # days= alone keeps working and still ends on the fixed date
    short = simulate(seed=7, days=40, n_flush=1, n_exodus=1)
    assert perp(short)["ts"].max().isoformat() == "2026-03-31T23:00:00+00:00"


def test_venues_and_realistic_shares():
    m = market(7)
    assert sorted(m.liquidations["venue"].unique()) == ["binance", "bybit", "hyperliquid", "okx"]
    assert sorted(m.open_interest["venue"].unique()) == ["binance", "bybit", "hyperliquid", "okx"]
    oi = m.open_interest.group_by("venue").agg(pl.col("oi_usd").mean())
    share = dict(zip(oi["venue"], oi["oi_usd"] / oi["oi_usd"].sum()))
    # typical 2025 BTC perp OI shares among these four venues, +-0.08
    for v, s in {"binance": 0.37, "bybit": 0.25, "okx": 0.17, "hyperliquid": 0.21}.items():
        assert abs(share[v] - s) < 0.08, (v, share[v])
    vt = m.venue_truth
    assert vt.height == 4 * m.truth.height
    sums = vt.group_by("episode_id").agg(pl.col("long_liq_share").sum())["long_liq_share"]
    assert ((sums - 1).abs() < 1e-9).all()
    # shares differ between selloffs (the venue-share analysis has something to find)
    assert vt.filter(pl.col("venue") == "hyperliquid")["long_liq_share"].std() > 0.03


def test_binance_rows_do_not_depend_on_the_other_venues():
    from research.simulate import _venues

    m = market(7)
    b = bn(m.liquidations).sort("ts")
    t = m.truth.row(0, named=True)
    w = b.filter(pl.col("ts").is_between(t["peak_ts"], t["trough_ts"] + 6 * H))["long_usd"].sum()
    assert w == pytest.approx(t["long_liq_usd"], rel=1e-12)
    assert set(_venues.VENUES) == {"bybit", "okx", "hyperliquid"}


def test_write_sample_writes_venue_truth(tmp_path):
    from research.simulate import read_venue_truth

    m = write_sample(tmp_path, seed=3, days=40, n_flush=1, n_exodus=1)
    assert read_venue_truth(tmp_path).equals(m.venue_truth)
    assert sorted(lake.read("open_interest", tmp_path)["venue"].unique()) == ["binance", "bybit", "hyperliquid", "okx"]
