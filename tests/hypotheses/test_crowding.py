"""research.hypotheses.crowding (H3)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from research import hypotheses as H
from research.hypotheses.crowding import NEUTRAL_FUNDING
from tests.hypotheses.helpers import _panel


def _crowding_panel(days: int = 200, seed: int = 0, effect: bool = True):
    """Funding set every 8 h, a top-trader L/S ratio set daily, cascades after crowded days (or not)."""
    n = 24 * days
    rng = np.random.default_rng(seed)
    f8 = rng.choice([0.00003, 0.00005, NEUTRAL_FUNDING], size=n // 8 + 1, p=[0.45, 0.4, 0.15])
    fund = np.repeat(f8, 8)[:n]
    ls_d = np.where(rng.random(days + 1) < 0.3, 1.8, 1.2)
    ls = np.repeat(ls_d, 24)[:n]
    crowded = (fund >= NEUTRAL_FUNDING) & (ls >= 1.5)
    base = np.full(n, 0.004)
    if effect:
        base = np.where(np.r_[np.zeros(6, bool), crowded[:-6]], 0.06, base)
    casc = np.flatnonzero(rng.random(n) < base)
    p = _panel(n, funding_rate_8h=fund, top_trader_ls_ratio=ls, has_liq=[True] * n)
    return p, pl.DataFrame({"ts": p["ts"].gather(casc)})


def test_crowding_absolute_thresholds_and_input_grids():
    p, casc = _crowding_panel()
    r = H.crowding_early_warning(p, casc, horizon_hours=24, n_draws=50)
    rows = {x["condition"]: x for x in r.rates.iter_rows(named=True)}
    assert rows["funding_x1"]["step_hours"] == 8 and rows["ls_top_trader_ls_ratio"]["step_hours"] == 24
    assert rows["both"]["step_hours"] == 8 and rows["both"]["hac_lags"] >= 3  # covers the daily ratio and H/8
    assert rows["funding_x1"]["label"].startswith("funding >= 1 x neutral (0.0100%")
    # the article's 0.5 % per period is reported as never reached, with the maximum seen
    art = rows["funding_article"]
    assert not art["testable"] and "never reached" in art["reason"] and "0.0100%" in art["reason"]
    assert not rows["funding_x2"]["testable"] and rows["funding_x2"]["reason"].startswith("not testable")
    # the planted effect is found on the primary ("both") condition
    b = rows["both"]
    assert b["testable"] and b["risk_diff"] > 0.3 and b["p_rotation"] < 0.05
    assert b["precision"] > 2 * b["base_rate"] and b["lift"] == pytest.approx(b["precision"] / b["base_rate"])
    assert 0 < b["recall"] <= 1 and b["cascades"] == casc.height
    assert r.rule["condition"] == "both" and r.calibration is not None and r.calibration.n_draws == 50
    assert any("global account" in n for n in r.notes)  # ratios the data lacks are named
    v = [v for v in r.verdicts() if not v.hypothesis.startswith("(secondary)")]
    assert len(v) == 1 and v[0].effect == pytest.approx(b["risk_diff"])
    assert (v[0].ci_low > 0) == (v[0].pvalue < 0.05)  # interval and p from one rule
    json.dumps(r.to_dict())
    r.plot().to_dict()


def test_crowding_no_effect_is_not_rejected():
    p, casc = _crowding_panel(seed=3, effect=False)
    r = H.crowding_early_warning(p, casc, n_draws=0)
    b = r.rates.filter(pl.col("condition") == "both").row(0, named=True)
    assert b["p_rotation"] > 0.01 and abs(b["risk_diff"]) < 0.15


def test_crowding_precision_recall_known():
    n = 1000
    fund = np.full(n, 0.00002)
    ls = np.full(n, 1.2)
    signal_rows = np.arange(25, 975, 25)
    fund[signal_rows] = 0.001
    ls[signal_rows] = 2.0
    casc = signal_rows[::2] + 5  # half of the signals are followed by a cascade 5 h later
    extra = np.array([340, 790])  # two unwarned cascades (15 h after a signal)
    p = _panel(n, funding_rate_8h=fund, top_trader_ls_ratio=ls, has_liq=[True] * n)
    cascades = pl.DataFrame({"ts": p["ts"].gather(np.sort(np.concatenate([casc, extra])))})
    r = H.crowding_early_warning(p, cascades, horizon_hours=10, funding_factors=(2.0,), n_draws=0)
    b = r.rates.filter(pl.col("condition") == "both").row(0, named=True)
    assert b["step_hours"] == 1  # the inputs change every hour here
    assert b["precision"] == pytest.approx(19 / 38) and b["n_signal"] == 38
    assert b["recall"] == pytest.approx(19 / 21) and b["cascades"] == 21


def test_crowding_degenerate_condition_is_not_testable():
    # the simulated market's account ratio is >= 1.5 in every hour: no comparison exists
    p, casc = _crowding_panel(days=60)
    p = p.with_columns(pl.lit(1.9).alias("account_ls_ratio"))
    r = H.crowding_early_warning(p, casc, n_draws=0)
    row = r.rates.filter(pl.col("condition") == "ls_account_ls_ratio").row(0, named=True)
    assert not row["testable"] and "(nearly) all or none" in row["reason"]
    v = [v for v in r.verdicts() if "global account" in v.hypothesis]
    assert v and v[0].pvalue is None and v[0].ci_low is None and v[0].conclusion.startswith("not testable")
    # a combination with a degenerate component is not a test of the combination
    q = H.crowding_early_warning(p.drop("top_trader_ls_ratio"), casc, n_draws=10)
    both = q.rates.filter(pl.col("condition") == "both").row(0, named=True)
    assert not both["testable"] and "component" in both["reason"] and q.calibration is None


def test_crowding_without_ratios_tests_funding_only():
    p, casc = _crowding_panel(days=60)
    p = p.drop("top_trader_ls_ratio")
    r = H.crowding_early_warning(p, casc, signal="both", n_draws=0)
    assert not any(c.startswith("ls_") for c in r.rates["condition"])
    assert any("needs a long/short ratio" in n for n in r.notes)
    with pytest.raises(Exception, match="signal"):
        H.crowding_early_warning(p, casc, signal="bogus")
