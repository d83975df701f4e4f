"""research.hypotheses.flush (H1): a hand-made market with one flush and one exodus, and the
planted labels of the simulated market."""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from tests.hypotheses.helpers import _panel


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
