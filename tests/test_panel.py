"""research.panel: the OI unit policy, the coverage dict and the empty-lake policy."""
from __future__ import annotations

import numpy as np
import pytest

from research import panel as P
from tests.hypotheses.helpers import _panel


def test_stale_open_interest_counts_as_missing():
    # CoinGlass-style USD OI that stopped updating: dividing the carried-forward value by a falling
    # close would fake a rising OI, so rows the panel marks stale (has_oi false: older than its
    # stale_after of the OI series' own interval) must read as missing; no constant age limit applies
    close = np.array([100.0, 90.0, 80.0, 70.0])
    p = _panel(4, perp_close=close, oi_usd=np.full(4, 1e9), oi_base=np.full(4, np.nan),
               oi_age_hours=np.array([0.0, 1.0, 13.0, 40.0]), has_oi=[True, True, False, False])
    oi = P.oi_units(p)
    # row 1's observation is 1 h old: it is divided by the close of the bar that had closed then (row 0)
    assert oi[0] == pytest.approx(1e7) and oi[1] == pytest.approx(1e7) and np.isnan(oi[2:]).all()
    _, rec = P.oi_measure(p)
    assert rec == {"oi_measure": "coins", "oi_method": "oi_usd/price", "oi_approximate": True,
                   "oi_price_col": "perp_close"}


def test_oi_is_research_oi_measure():
    from research.oi import oi_coins

    close = np.array([100.0, 90.0, 80.0])
    p = _panel(3, perp_close=close, oi_usd=np.array([1e9, 9e8, 9e8]), oi_age_hours=np.zeros(3))
    expect = oi_coins(p).frame["oi_coins"].to_numpy()
    assert np.allclose(P.oi_units(p), expect) and np.allclose(P.oi_coins(p).to_numpy(), expect)
    bare = _panel(3, perp_close=close)
    assert np.isnan(P.oi_units(bare)).all() and P.oi_measure(bare)[1]["oi_method"] == "none"


def test_coverage_dict_keys_and_counts():
    p = _panel(4, perp_close=[1.0] * 4, has_perp=[True, True, False, True], has_oi=[True, False, False, False],
               funding_settled=[None, 1e-4, None, None], inputs=["bars=x"] * 4)
    cov = P.coverage(p)
    assert cov["bars"] == 4 and cov["symbol"] == "BTCUSDT" and cov["inputs"] == "bars=x"
    assert cov["share_with_perp"] == pytest.approx(0.75) and cov["share_with_oi"] == pytest.approx(0.25)
    assert cov["has_perp"] == 3 and cov["funding_settlements"] == 1 and cov["synthetic"] is False
    assert cov["share_with_spot"] is None          # a series the panel does not carry
    assert P.coverage(p.head(0)) == {"rows": 0}


def test_oi_policy_prefers_coins_and_divides_usd_by_close():
    # without oi_age_hours the bar's own close converts USD OI (flagged approximate)
    p = _panel(2, perp_close=[100.0, 50.0], oi_base=[None, 3.0], oi_usd=[1e4, 1e4])
    assert P.oi_units(p).tolist() == [100.0, 3.0]
    assert P.oi_measure(p)[1]["oi_method"] == "mixed"


def test_explicit_empty_lake_is_an_error_naming_it(tmp_path):
    with pytest.raises(P.PanelError, match=str(tmp_path)):
        P.load(tmp_path, symbol="BTCUSDT")


@pytest.mark.slow
def test_empty_default_lake_simulates_into_a_directory_that_is_removed(tmp_path, monkeypatch):
    import gc
    from pathlib import Path

    monkeypatch.setenv("RESEARCH_DATA_DIR", str(tmp_path / "empty"))
    inp = P.load(None, sample_days=130, daily=False)
    d = Path(inp.data_dir)
    assert inp.synthetic and inp.simulated_fallback and d.exists() and inp.truth is not None
    assert not (tmp_path / "empty").exists()         # the user's lake is never written
    del inp
    gc.collect()
    assert not d.exists()


def test_from_parameters_passes_only_loader_parameters(monkeypatch):
    seen = {}
    monkeypatch.setattr(P, "load", lambda data_dir=None, **kw: seen.update(data_dir=data_dir, **kw))
    P.from_parameters({"data_dir": "/d", "symbol": "ETHUSDT", "output_dir": "/o", "k": 3}, daily=False)
    assert seen == {"data_dir": "/d", "symbol": "ETHUSDT", "daily": False}


def test_daily_oi_is_not_blanked_by_a_constant_age():
    # daily OI observed at 00:00 is 24 h old at the bar's close: the panel (stale_after x 1d) keeps
    # it, so the loader must too (the old 12 h constant blanked every daily row)
    close = np.array([100.0, 90.0, 80.0])
    p = _panel(3, perp_close=close, oi_base=np.array([5.0, 4.0, 3.0]), oi_age_hours=np.full(3, 24.0),
               has_oi=[True, True, True])
    assert P.oi_units(p).tolist() == [5.0, 4.0, 3.0]
    assert P.oi_units(p, max_age_hours=12)[0] != P.oi_units(p, max_age_hours=12)[0]   # explicit limit still works


def test_bad_interval_and_price_are_one_line_errors(tmp_path):
    with pytest.raises(P.PanelError, match="interval='2d'"):
        P.load(tmp_path, interval="2d")
    with pytest.raises(P.PanelError, match="price='mark'"):
        P.load(tmp_path, price="mark")


def test_record_coverage_states_the_span_analysed_and_flags_uncovered_inputs():
    import datetime as dt

    import polars as pl

    ts = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 10), "1d", eager=True, time_zone="UTC")
    n = ts.len()
    panel = pl.DataFrame({"ts": ts, "symbol": ["BTCUSDT"] * n, "close": [1.0] * n, "bar_hours": [24.0] * n,
                          "interval": ["1d"] * n, "price_market": ["perp"] * n,
                          "has_oi": [False] * 3 + [True] * (n - 3),
                          "inputs": ["price=perp; oi=coinalyze/binance/BTCUSDT/1d"] * n})
    inp = P.Inputs(panel=panel, daily=pl.DataFrame(), data_dir="x", synthetic=False, coverage=P.coverage(panel),
                   interval="1d", requested_start="2020-01-01", requested_end="2020-01-11")
    rec = inp.record_coverage("11-oi-collapses")
    assert rec["interval"] == "1d" and rec["bar_hours"] == 24.0 and rec["price_market"] == "perp"
    assert rec["start"].startswith("2020-01-04") and rec["end"].startswith("2020-01-10")
    assert rec["analysed"]["price"]["covered"] and not rec["analysed"]["oi"]["covered"]
    assert len(rec["uncovered"]) == 1 and rec["uncovered"][0].startswith("oi (coinalyze/binance/BTCUSDT/1d)")
    assert rec["panel_span"]["start"].startswith("2020-01-01")


def test_inputs_name_the_lake_table_versions_they_read(sim_lake):
    from research import lake, panel

    inp = panel.load(sim_lake, start="2026-01-01", end="2026-01-08", daily=False)
    versions = inp.coverage["lake_versions"]
    assert versions["bars"] == lake.versions(sim_lake)["bars"] >= 1
    assert set(versions) <= set(lake.versions(sim_lake)) and all(v > 0 for v in versions.values())
    assert inp.record_coverage("20-flush-vs-exodus")["lake_versions"] == versions  # what the record states
