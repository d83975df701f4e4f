"""research.hypotheses.flush_rule: the classifier is symmetric (mirrored inputs give mirrored labels)."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from research.hypotheses.flush_rule import CRITERIA, RULE_DEFAULTS, mirror, votes

_MIRROR = {"flush": "exodus", "exodus": "flush", "mixed": "mixed", "insufficient": "insufficient"}

_maybe = lambda s: st.one_of(st.just(math.nan), s)
features = st.fixed_dictionaries({
    "oi_change_pct": _maybe(st.floats(-40, 40)),
    "funding_drop_bps": _maybe(st.floats(-10, 10)),
    "funding_after_bps": _maybe(st.floats(-5, 5)),
    "liq_spike": _maybe(st.one_of(st.just(0.0), st.floats(1e-3, 100))),
    "spot_share_change": _maybe(st.floats(-0.3, 0.3)),
    "taker_gap_change": _maybe(st.floats(-0.5, 0.5)),
    "etf_flow_change_usd": _maybe(st.floats(-1e9, 1e9)),
})
thresholds = st.fixed_dictionaries({
    "oi_center_pct": st.floats(-5, 0), "oi_band_pct": st.floats(0.5, 5), "funding_reset_bps": st.floats(0.1, 3),
    "neutral_bps": st.floats(0, 2), "liq_center_x": st.floats(1, 3), "liq_band_x": st.floats(1.1, 3),
    "spot_share_band": st.floats(0.005, 0.05), "taker_band": st.floats(0.01, 0.2),
    "etf_band_usd": st.floats(1e7, 5e8), "margin": st.integers(1, 3), "min_criteria": st.integers(0, 6)})


@given(features, thresholds)
@settings(max_examples=400, deadline=None)
def test_mirrored_inputs_give_mirrored_labels(f, th):
    v, w = votes(f, th), votes(mirror(f, th), th)
    assert w["label"] == _MIRROR[v["label"]]
    assert w["score"] == -v["score"] and w["n_criteria"] == v["n_criteria"]
    for name in CRITERIA:
        assert w[f"vote_{name}"] == -v[f"vote_{name}"], name


def test_every_criterion_can_vote_both_ways_with_equal_weight():
    th = dict(RULE_DEFAULTS)
    base = {"oi_change_pct": th["oi_center_pct"], "funding_drop_bps": 0.0, "funding_after_bps": th["neutral_bps"],
            "liq_spike": th["liq_center_x"], "spot_share_change": 0.0, "taker_gap_change": 0.0,
            "etf_flow_change_usd": 0.0}
    assert votes(base, th)["score"] == 0 and votes(base, th)["label"] == "mixed"
    seen = {}
    for name, (feat, direction, _c, band, scale) in CRITERIA.items():
        for sign in (+1, -1):
            f = dict(base)
            if scale == "log":
                f[feat] = base[feat] * th[band] ** (1.5 * sign * direction)
            else:
                f[feat] = base[feat] + 1.5 * sign * direction * th[band]
            if name == "funding":
                f["funding_after_bps"] = th["neutral_bps"] - sign
            seen[(name, sign)] = votes(f, th)[f"vote_{name}"]
    assert all(seen[(n, s)] == s for n in CRITERIA for s in (1, -1)), seen
