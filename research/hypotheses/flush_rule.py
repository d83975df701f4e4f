"""The flush/exodus classifier of H1: features of one sell-off, symmetric votes, labels, sensitivity.

Every criterion is a number measured against the episode's own pre-selloff state, with a neutral
``center`` and a ``band``: it votes flush (+1) when it lies at least ``band`` on the flush side of
``center``, exodus (-1) when at least ``band`` on the other side, else abstains (0; also when its
input is missing). So each criterion can vote either way with equal weight, and reflecting every
feature about its centre (:func:`mirror`) turns every flush vote into an exodus vote and back.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

__all__ = ["CRITERIA", "FLUSH_RULE", "RULE_DEFAULTS", "label_of", "mirror", "sensitivity", "votes"]

FLUSH_RULE = """\
Each sell-off leg (peak -> trough, decided when the rebound confirms the trough: trough_detected_ts)
gets one vote per criterion: +1 flush, -1 exodus, 0 abstain (inside the band, or input missing).
Every input ends at the decision hour and is compared with the episode's own pre-selloff state.
  oi          : OI change in coins (research.oi), pre-peak mean -> decision; flush if
                <= oi_center_pct - oi_band_pct, exodus if >= oi_center_pct + oi_band_pct
  funding     : reset = drop of the 8h rate from its pre-peak mean; flush if the drop >= funding_reset_bps
                AND the rate at the decision hour is <= neutral; exodus if it rose >= funding_reset_bps
                AND is >= neutral (mirror image)
  liquidations: long liquidations per covered hour during the leg / the pre-selloff baseline rate;
                flush if >= liq_center_x * liq_band_x, exodus if <= liq_center_x / liq_band_x
  spot share  : spot share of volume during - baseline; exodus if >= +spot_share_band, flush if <= -band
  taker gap   : (spot - perp taker imbalance) during - the same in the baseline; exodus if <= -taker_band
                (spot sellers more aggressive than perp sellers), flush if >= +taker_band
  ETF flows   : mean US spot-ETF net flow per trading day over the leg - the same over the baseline
                (each trading day once, only flows published by the decision day); exodus if
                <= -etf_band_usd, flush if >= +etf_band_usd
Label: 'insufficient' if fewer than min_criteria criteria have inputs; else flush if score >= margin,
exodus if score <= -margin, else 'mixed'."""

#: name -> (feature column, direction (+1: higher is flush), centre parameter or constant, band parameter,
#: scale: "lin" (centre +/- band) or "log" (centre x/÷ band))
CRITERIA = {
    "oi": ("oi_change_pct", -1, "oi_center_pct", "oi_band_pct", "lin"),
    "funding": ("funding_drop_bps", +1, 0.0, "funding_reset_bps", "lin"),
    "liquidations": ("liq_spike", +1, "liq_center_x", "liq_band_x", "log"),
    "spot_share": ("spot_share_change", -1, 0.0, "spot_share_band", "lin"),
    "taker_gap": ("taker_gap_change", +1, 0.0, "taker_band", "lin"),
    "etf": ("etf_flow_change_usd", +1, 0.0, "etf_band_usd", "lin"),
}

#: the classifier's thresholds and their defaults (see FLUSH_RULE)
RULE_DEFAULTS = {"oi_center_pct": -2.0, "oi_band_pct": 2.0, "funding_reset_bps": 1.0, "neutral_bps": 1.0,
                 "liq_center_x": 1.75, "liq_band_x": 1.75, "spot_share_band": 0.02, "taker_band": 0.05,
                 "etf_band_usd": 100e6, "margin": 1, "min_criteria": 3}

LABELS = ("flush", "exodus", "mixed", "insufficient")


def _centre(th: dict, c) -> float:
    return float(th[c]) if isinstance(c, str) else float(c)


def _signed(value: float, direction: int, centre: float, scale: str) -> float:
    """Evidence for flush: positive on the flush side of the centre (log scale for ratios)."""
    if value is None or math.isnan(value):
        return math.nan
    if scale == "log":
        if value < 0:
            return math.nan
        if value == 0:
            return -math.inf * direction
        return direction * (math.log(value) - math.log(centre))
    return direction * (value - centre)


def _band(th: dict, b: str, scale: str) -> float:
    return math.log(float(th[b])) if scale == "log" else float(th[b])


def votes(f: dict, th: dict) -> dict:
    """The votes, score and label of one sell-off's features ``f`` under thresholds ``th``."""
    out, n_in = {}, 0
    for name, (feat, direction, c, b, scale) in CRITERIA.items():
        e = _signed(f.get(feat), direction, _centre(th, c), scale)
        band = _band(th, b, scale)
        v = 0
        if not math.isnan(e):
            n_in += 1
            v = 1 if e >= band else (-1 if e <= -band else 0)
        if name == "funding" and v != 0:
            # a reset ends at or below neutral; its mirror image (a rise) ends at or above it
            after = f.get("funding_after_bps")
            if after is None or not math.isfinite(after) or (v == 1 and after > th["neutral_bps"]) or (v == -1 and after < th["neutral_bps"]):
                v = 0
        out[f"vote_{name}"] = v
    score = sum(out.values())
    out.update(score=score, n_criteria=n_in, label=label_of(score, n_in, th))
    return out


def label_of(score: int, n_criteria: int, th: dict) -> str:
    """``insufficient`` / ``flush`` / ``exodus`` / ``mixed`` from the score and the criteria with inputs."""
    if n_criteria < th["min_criteria"]:
        return "insufficient"
    if score >= th["margin"]:
        return "flush"
    if score <= -th["margin"]:
        return "exodus"
    return "mixed"


def mirror(f: dict, th: dict) -> dict:
    """Reflect every criterion's feature about its centre (the input of the symmetry property)."""
    g = dict(f)
    for feat, _d, c, _b, scale in CRITERIA.values():
        x, c0 = f.get(feat), _centre(th, c)
        if x is None or math.isnan(x):
            continue
        if scale == "log":
            g[feat] = math.nan if x < 0 else (math.inf if x == 0 else (0.0 if math.isinf(x) else c0 * c0 / x))
        else:
            g[feat] = 2 * c0 - x
    a = f.get("funding_after_bps")
    if a is not None and math.isfinite(a):
        g["funding_after_bps"] = 2 * th["neutral_bps"] - a
    return g


def _grid(th: dict) -> list[tuple[str, dict]]:
    """The sensitivity grid: each band x0.5 and x2 in turn, every band x0.5 / x2, each criterion left
    out in turn, margin 1..3."""
    out = [("default", dict(th))]
    bands = [b for *_x, b, _s in CRITERIA.values()]
    for b, (*_x, scale) in zip(bands, CRITERIA.values()):
        for k in (0.5, 2.0):
            v = th[b] ** k if scale == "log" else th[b] * k
            out.append((f"{b} x{k:g}", {**th, b: v}))
    for k in (0.5, 2.0):
        out.append((f"all bands x{k:g}", {**th, **{b: (th[b] ** k if s == "log" else th[b] * k)
                                                    for b, (*_x, s) in zip(bands, CRITERIA.values())}}))
    for name, (*_x, b, _s) in CRITERIA.items():     # leave one criterion out (it always abstains)
        out.append((f"without {name}", {**th, b: math.inf}))
    for m in (1, 2, 3):
        if m != th["margin"]:
            out.append((f"margin {m}", {**th, "margin": m}))
    return out


def sensitivity(features: list[dict], th: dict) -> tuple[pl.DataFrame, np.ndarray]:
    """Label counts over :func:`_grid` and, per event, the share of settings giving its default label."""
    grid = _grid(th)
    labels = [[votes(f, t)["label"] for f in features] for _, t in grid]
    base = labels[0]
    rows = []
    for (name, t), lab in zip(grid, labels):
        rows.append({"setting": name, **{f"n_{x}": sum(1 for y in lab if y == x) for x in LABELS},
                     "n_changed": sum(1 for y, z in zip(lab, base) if y != z)})
    same = np.array([[lab[i] == base[i] for lab in labels] for i in range(len(features))], float)
    stab = same.mean(axis=1) if len(features) else np.zeros(0)
    schema = {"setting": pl.String, **{f"n_{x}": pl.Int64 for x in LABELS}, "n_changed": pl.Int64}
    return pl.DataFrame(rows, schema=schema), stab
