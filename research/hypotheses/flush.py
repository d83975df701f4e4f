"""H1: classify sell-offs as leverage flush or spot exodus and compare what follows.

Change the classifier here: :data:`FLUSH_RULE` documents it, :func:`_votes` implements it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats as sps

from research.db import is_synthetic
from research.errors import HypothesisError
from research.panel import oi_units
from research.results import Results
from research.stats import (bootstrap_diff_ci, bootstrap_mean_ci, conclude, finite_or_none, fmt, hedges_g, nanmean,
                            permutation_pvalue)

from .common import col, hours, require, rows_of, sorted_panel, window_sum
from .truth import confusion, match_truth

__all__ = ["FLUSH_RULE", "FlushExodusResult", "flush_vs_exodus", "flush_study"]

FLUSH_RULE = """\
Each sell-off (peak -> trough) gets one vote per criterion; +1 = flush, -1 = spot exodus, 0 = no
vote (also when the input is missing). Label = flush if the sum >= 1, exodus if <= -1, else mixed.
  OI         : change peak->trough (base units) <= -oi_drop_pct: +1; > -oi_hold_pct: -1
  funding    : funding_before - funding_after >= funding_reset_bps (bp per 8 h): +1;
               funding_after > 0 and no reset (drop < funding_reset_bps / 2): -1
  liquidation: long liquidations per hour during the sell-off (peak -> decision hour) >= liq_spike x
               baseline AND the rate after the liquidation peak is <= liq_decay_max x that rate: +1;
               rate < liq_quiet x baseline: -1
  spot share : mean spot share of volume during - baseline >= spot_share_rise: -1
  taker flow : mean spot taker imbalance during <= -taker_sell: -1
  ETF flows  : sum of daily net flows over the sell-off days <= -etf_outflow_usd: -1
(baseline = the baseline_hours before the peak; funding_before = mean 8h-rate over the
funding_lookback_hours before the peak; funding_after = the rate in force at the decision hour,
trough + post_hours; every input ends at the decision hour.)"""

#: the classifier's thresholds (see FLUSH_RULE) and their defaults
RULE_DEFAULTS = {"oi_drop_pct": 4.0, "oi_hold_pct": 2.0, "funding_reset_bps": 1.0, "liq_spike": 3.0,
                 "liq_decay_max": 0.5, "liq_quiet": 1.5, "spot_share_rise": 0.02, "taker_sell": 0.10,
                 "etf_outflow_usd": 0.0}


@dataclass
class FlushExodusResult(Results):
    """H1 results.

    Attributes
    ----------
    events : polars.DataFrame
        One row per sell-off: features, votes, ``score`` and ``label`` (flush/exodus/mixed).
    forward : polars.DataFrame
        Long: ``event_id, label, horizon_h, car`` (forward log return from the decision hour).
    comparison : polars.DataFrame
        Per horizon: n and mean per class, ``diff`` (flush - exodus), Hedges' g, bootstrap CI,
        permutation p-value, Welch p-value.
    confusion : polars.DataFrame or None
        ``truth`` x ``predicted`` counts against the simulated market's planted episodes.
    matches : polars.DataFrame or None
        Detected sell-offs matched to planted episodes (and missed episodes).
    accuracy : float or None
        Share of planted episodes detected *and* labelled as planted.
    accuracy_detected : float or None
        Share of the detected planted episodes labelled as planted (classifier alone).
    params : dict
    """

    events: pl.DataFrame
    forward: pl.DataFrame
    comparison: pl.DataFrame
    params: dict
    confusion: pl.DataFrame | None = None
    matches: pl.DataFrame | None = None
    accuracy: float | None = None
    accuracy_detected: float | None = None
    synthetic: bool = False
    rule: str = FLUSH_RULE

    _frame_fields = ("events", "forward", "comparison", "confusion", "matches")
    _figure = "flush_vs_exodus"
    key = "flush_vs_exodus"

    @property
    def notes(self) -> list[str]:
        if self.confusion is None:
            return []
        return [f"planted labels recovered: accuracy {self.accuracy:.2f} (misses count as errors), "
                f"{self.accuracy_detected} among detected episodes"]

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        n = self.events["label"].value_counts().sort("label") if self.events.height else None
        lines = ["H1 flush vs spot exodus", "=" * 23,
                 f"sell-offs: {self.events.height}  " + (", ".join(f"{r['label']}={r['count']}" for r in n.iter_rows(named=True)) if n is not None else "")]
        for r in self.comparison.iter_rows(named=True):
            lines.append(
                f"  CAR {r['horizon_h']:>4} h: flush {fmt(r['mean_flush'])} (n={r['n_flush']}) vs exodus "
                f"{fmt(r['mean_exodus'])} (n={r['n_exodus']}); diff {fmt(r['diff'])} "
                f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}], g={fmt(r['hedges_g'], '.2f')}, "
                f"perm p={fmt(r['p_perm'])}")
        if self.accuracy is not None:
            lines.append(f"recovery of planted labels: accuracy {self.accuracy:.2f} (misses count as errors); "
                         f"among detected episodes {fmt(self.accuracy_detected, '.2f')}")
            lines.append(str(self.confusion))
        return "\n".join(lines)

    def plot(self):
        from research import plots

        means = self.comparison.select(
            "horizon_h", pl.lit("flush").alias("label"), pl.col("mean_flush").alias("mean"),
            pl.col("ci_flush_low").alias("ci_low"), pl.col("ci_flush_high").alias("ci_high"),
        ).vstack(self.comparison.select(
            "horizon_h", pl.lit("exodus").alias("label"), pl.col("mean_exodus").alias("mean"),
            pl.col("ci_exodus_low").alias("ci_low"), pl.col("ci_exodus_high").alias("ci_high"),
        ))
        return plots.plot_flush_vs_exodus(self.forward.filter(pl.col("label").is_in(["flush", "exodus"])),
                                          means, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        for r in self.comparison.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"Forward return {r['horizon_h']} h after the trough differs between leverage "
                           "flushes and spot exoduses",
                effect=finite_or_none(r["diff"]), ci_low=finite_or_none(r["ci_low"]),
                ci_high=finite_or_none(r["ci_high"]), pvalue=finite_or_none(r["p_perm"]),
                n_events=int(r["n_flush"] + r["n_exodus"]),
                test=f"permutation of class labels ({self.params['n_perm']} draws, seed {self.params['seed']}); "
                     f"Hedges g = {fmt(r['hedges_g'], '.2f')}",
                effect_label="mean CAR flush - exodus (log return)",
                conclusion=conclude(r["p_perm"], r["n_flush"], r["n_exodus"]),
            ))
        if self.accuracy is not None:
            n_true = int(self.matches.filter(pl.col("truth") != "none").height) if self.matches is not None else None
            out.append(Verdict(
                hypothesis="The rule-based classifier recovers the planted flush/exodus labels of the simulated market",
                effect=self.accuracy, n_events=n_true, test="confusion matrix vs planted episodes",
                effect_label="accuracy (share of planted episodes detected and labelled correctly)",
                conclusion="recovered" if self.accuracy >= 0.8 else "NOT recovered (accuracy < 0.8)"))
        return out


# --------------------------------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------------------------------
@dataclass
class _Series:
    """The panel columns the classifier reads, as numpy (one pass over the panel)."""

    ts: pl.Series
    close: np.ndarray
    oi: np.ndarray
    fund: np.ndarray
    liq: np.ndarray
    cs_liq: np.ndarray
    cs_cov: np.ndarray
    share: np.ndarray
    taker: np.ndarray

    @classmethod
    def of(cls, panel: pl.DataFrame) -> "_Series":
        liq = col(panel, "liq_long_usd")
        has_liq = panel["has_liq"].to_numpy() if "has_liq" in panel.columns else np.isfinite(liq)
        liq0 = np.where(np.isfinite(liq), liq, 0.0)
        taker = col(panel, "spot_taker_imbalance")
        if not np.isfinite(taker).any():
            taker = col(panel, "taker_imbalance")
        return cls(ts=panel["ts"], close=col(panel, "perp_close"), oi=oi_units(panel),
                   fund=col(panel, "funding_rate_8h"), liq=liq,
                   cs_liq=np.concatenate([[0.0], np.cumsum(liq0)]),
                   cs_cov=np.concatenate([[0.0], np.cumsum(has_liq.astype(float))]),
                   share=col(panel, "spot_share"), taker=taker)


def _liquidation_features(s: _Series, ip: int, idc: int, b0: int) -> dict:
    """Long-liquidation rate per covered hour before/during the sell-off, spike and decay after the peak."""
    cov_base = window_sum(s.cs_cov, b0, ip - 1)
    cov_dur = window_sum(s.cs_cov, ip, idc)
    base_rate = window_sum(s.cs_liq, b0, ip - 1) / cov_base if cov_base > 0 else np.nan
    dur_rate = window_sum(s.cs_liq, ip, idc) / cov_dur if cov_dur > 0 else np.nan
    spike = dur_rate / base_rate if base_rate and base_rate > 0 else np.nan
    seg = s.liq[ip: idc + 1]
    decay = np.nan
    liq_peak_ts = None
    if np.isfinite(seg).any() and cov_dur > 0:
        lp = ip + int(np.nanargmax(seg))
        liq_peak_ts = s.ts[lp]
        cov_after = window_sum(s.cs_cov, lp + 1, idc)
        after = window_sum(s.cs_liq, lp + 1, idc) / cov_after if cov_after > 0 else np.nan
        decay = after / dur_rate if dur_rate and dur_rate > 0 else np.nan
    return {"liq_rate_baseline": base_rate, "liq_rate_during": dur_rate, "liq_spike": spike,
            "liq_peak_ts": liq_peak_ts, "liq_decay": decay}


def _etf_sum(etf: pl.DataFrame | None, d0, d1) -> float:
    """Sum of daily ETF net flows from ``d0`` to ``d1`` (NaN without data)."""
    if etf is None:
        return np.nan
    sub = etf.filter((pl.col("date") >= d0) & (pl.col("date") <= d1))["etf_flow_usd"].drop_nulls()
    return float(sub.sum()) if sub.len() else np.nan


def _features(s: _Series, etf, peak_ts, ip: int, idc: int, *, baseline_hours: int, funding_lookback_hours: int) -> dict:
    """Every classifier input of one sell-off, each ending at the decision hour ``idc``."""
    b0 = max(ip - baseline_hours, 0)
    oi_chg = 100 * (s.oi[idc] / s.oi[ip] - 1) if np.isfinite(s.oi[ip]) and s.oi[ip] > 0 else np.nan
    f_before = nanmean(s.fund[max(ip - funding_lookback_hours, 0): ip + 1])
    f_after = s.fund[idc]
    return {"oi_change_pct": oi_chg, "funding_before": f_before, "funding_after": f_after,
            "funding_drop_bps": 1e4 * (f_before - f_after),
            **_liquidation_features(s, ip, idc, b0),
            "spot_share_change": nanmean(s.share[ip: idc + 1]) - nanmean(s.share[b0:ip]),
            "spot_taker_imbalance": nanmean(s.taker[ip: idc + 1]),
            "etf_flow_usd": _etf_sum(etf, peak_ts.date(), s.ts[idc].date())}


def _vote_funding(f_drop: float, f_after: float, reset_bps: float) -> int:
    if not np.isfinite(f_drop):
        return 0
    if f_drop >= reset_bps:
        return 1
    return -1 if f_after > 0 and f_drop < reset_bps / 2 else 0


def _vote_liquidations(spike: float, decay: float, th: dict) -> int:
    if not np.isfinite(spike):
        return 0
    if spike >= th["liq_spike"] and np.isfinite(decay) and decay <= th["liq_decay_max"]:
        return 1
    return -1 if spike < th["liq_quiet"] else 0


def _votes(f: dict, th: dict) -> dict:
    """The votes of :data:`FLUSH_RULE` for one sell-off's features ``f`` and thresholds ``th``."""
    oi_chg, share, taker, etf = f["oi_change_pct"], f["spot_share_change"], f["spot_taker_imbalance"], f["etf_flow_usd"]
    v_oi = 0 if not np.isfinite(oi_chg) else (1 if oi_chg <= -th["oi_drop_pct"] else (-1 if oi_chg > -th["oi_hold_pct"] else 0))
    v = {"vote_oi": v_oi,
         "vote_funding": _vote_funding(f["funding_drop_bps"], f["funding_after"], th["funding_reset_bps"]),
         "vote_liquidations": _vote_liquidations(f["liq_spike"], f["liq_decay"], th),
         "vote_spot_share": -1 if np.isfinite(share) and share >= th["spot_share_rise"] else 0,
         "vote_taker": -1 if np.isfinite(taker) and taker <= -th["taker_sell"] else 0,
         "vote_etf": -1 if np.isfinite(etf) and etf <= -th["etf_outflow_usd"] and etf < 0 else 0}
    score = sum(v.values())
    return {**v, "score": score, "label": "flush" if score >= 1 else ("exodus" if score <= -1 else "mixed")}


def _classify(panel: pl.DataFrame, selloffs: pl.DataFrame, daily, *, post_hours: int, baseline_hours: int,
              funding_lookback_hours: int, th: dict) -> pl.DataFrame:
    """One row per sell-off found in the panel: features, votes, score, label and ``_idc`` (decision row)."""
    s = _Series.of(panel)
    n = panel.height
    ev = selloffs.sort("peak_ts")
    h = hours(panel)
    ip_all, it_all = rows_of(h, ev["peak_ts"]), rows_of(h, ev["trough_ts"])
    etf = daily.select("date", "etf_flow_usd") if daily is not None and "etf_flow_usd" in daily.columns and daily.height else None
    rows = []
    for k, r in enumerate(ev.iter_rows(named=True)):  # a loop over events (tens), not bars
        ip, it = int(ip_all[k]), int(it_all[k])
        if ip < 0 or it < 0:
            continue
        idc = min(it + post_hours, n - 1)
        f = _features(s, etf, r["peak_ts"], ip, idc, baseline_hours=baseline_hours,
                      funding_lookback_hours=funding_lookback_hours)
        rows.append({"event_id": r.get("event_id", k), "peak_ts": r["peak_ts"], "trough_ts": r["trough_ts"],
                     "decision_ts": s.ts[idc], "drawdown_pct": r.get("drawdown_pct"), **f, **_votes(f, th),
                     "_idc": idc})
    ts_t = panel.schema["ts"]
    if rows:
        events = pl.DataFrame(rows, schema_overrides={"liq_peak_ts": ts_t}, strict=False)
    else:
        events = pl.DataFrame(schema={"event_id": pl.Int64, "peak_ts": ts_t, "trough_ts": ts_t, "decision_ts": ts_t,
                                      "score": pl.Int64, "label": pl.String, "_idc": pl.Int64})
    return events.with_columns(pl.col(pl.Float64).fill_nan(None))


def _forward_returns(events: pl.DataFrame, close: np.ndarray, horizons) -> pl.DataFrame:
    """Forward log returns from each decision hour (vectorised over events x horizons)."""
    n = close.size
    idc = events["_idc"].to_numpy().astype(int) if events.height else np.zeros(0, int)
    logp = np.log(close)
    parts = []
    for h in horizons:
        j = idc + h
        car = np.where(j < n, logp[np.minimum(j, n - 1)] - logp[idc], np.nan) if idc.size else np.zeros(0)
        parts.append(pl.DataFrame({"event_id": events["event_id"], "label": events["label"],
                                   "horizon_h": np.full(idc.size, h, dtype=np.int64), "car": car}))
    forward = (pl.concat(parts) if parts else pl.DataFrame(
        schema={"event_id": pl.Int64, "label": pl.String, "horizon_h": pl.Int64, "car": pl.Float64}))
    return forward.with_columns(pl.col("car").fill_nan(None)).drop_nulls("car")


def _compare(forward: pl.DataFrame, horizons, *, n_boot: int, n_perm: int, seed: int) -> pl.DataFrame:
    """Per horizon: flush vs exodus means, difference, Hedges' g, bootstrap CIs, permutation and Welch p."""
    comp = []
    for i, h in enumerate(horizons):
        sub = forward.filter(pl.col("horizon_h") == h)
        a = sub.filter(pl.col("label") == "flush")["car"].to_numpy()
        b = sub.filter(pl.col("label") == "exodus")["car"].to_numpy()
        lo, hi = bootstrap_diff_ci(a, b, n_boot=n_boot, seed=seed + i)
        fa = bootstrap_mean_ci(a, n_boot, seed + 100 + i)
        fb = bootstrap_mean_ci(b, n_boot, seed + 200 + i)
        welch = sps.ttest_ind(a, b, equal_var=False).pvalue if a.size >= 2 and b.size >= 2 else np.nan
        comp.append({
            "horizon_h": h, "n_flush": int(a.size), "n_exodus": int(b.size),
            "mean_flush": nanmean(a), "mean_exodus": nanmean(b),
            "ci_flush_low": fa[0], "ci_flush_high": fa[1], "ci_exodus_low": fb[0], "ci_exodus_high": fb[1],
            "diff": (a.mean() - b.mean()) if a.size and b.size else np.nan,
            "hedges_g": hedges_g(a, b), "ci_low": lo, "ci_high": hi,
            "p_perm": permutation_pvalue(a, b, n_perm=n_perm, seed=seed + i) if a.size and b.size else np.nan,
            "p_welch": float(welch),
        })
    return pl.DataFrame(comp, schema_overrides={"n_flush": pl.Int64, "n_exodus": pl.Int64}).with_columns(
        pl.col(pl.Float64).fill_nan(None))


def flush_vs_exodus(
    panel: pl.DataFrame,
    selloffs: pl.DataFrame,
    daily: pl.DataFrame | None = None,
    *,
    horizons=(24, 72, 168),
    post_hours: int = 12,
    baseline_hours: int = 168,
    funding_lookback_hours: int = 48,
    oi_drop_pct: float = 4.0,
    oi_hold_pct: float = 2.0,
    funding_reset_bps: float = 1.0,
    liq_spike: float = 3.0,
    liq_decay_max: float = 0.5,
    liq_quiet: float = 1.5,
    spot_share_rise: float = 0.02,
    taker_sell: float = 0.10,
    etf_outflow_usd: float = 0.0,
    n_boot: int = 2000,
    n_perm: int = 5000,
    seed: int = 7,
    truth: pl.DataFrame | None = None,
    match_tolerance_hours: float = 48,
) -> FlushExodusResult:
    """Classify sell-offs as leverage flush or spot exodus and compare forward returns (H1).

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel.
    selloffs : polars.DataFrame
        :func:`research.events.detect_selloffs` output (``event_id, peak_ts, trough_ts``).
    daily : polars.DataFrame, optional
        Daily panel (``date, etf_flow_usd``) for the ETF-flow vote.
    horizons : sequence of int
        Forward-return horizons in hours, measured from the decision hour ``trough + post_hours``.
    post_hours : int
        Hours after the trough the classifier may look at; returns start there (no look-ahead).
    oi_drop_pct, oi_hold_pct, funding_reset_bps, liq_spike, liq_decay_max, liq_quiet,
    spot_share_rise, taker_sell, etf_outflow_usd, baseline_hours, funding_lookback_hours
        Classifier thresholds, see :data:`FLUSH_RULE`.
    n_boot, n_perm, seed
        Bootstrap draws, permutation draws, seed.
    truth, match_tolerance_hours
        Planted episodes (:func:`research.simulate.read_truth`); detected troughs within the
        tolerance of a planted trough are matched to it for the confusion matrix.

    Returns
    -------
    FlushExodusResult

    Notes
    -----
    Forward returns are raw cumulative log returns (BTC has no benchmark here; a constant-mean
    model would subtract a drift estimated mostly from the rally before a flush). Returns measured
    from a trough are positive on average by construction (the trough is the lowest close); the
    comparison between classes, not their level, is the test.
    """
    who = "flush_vs_exodus"
    require(panel, ["ts", "perp_close"], who)
    for c in ("peak_ts", "trough_ts"):
        if c not in selloffs.columns:
            raise HypothesisError(f"{who}: selloffs has no column {c!r}; pass research.events.detect_selloffs(panel)")
    if post_hours < 0:
        raise HypothesisError(f"{who}: post_hours={post_hours} must be >= 0")
    horizons = tuple(int(h) for h in horizons)
    th = {"oi_drop_pct": oi_drop_pct, "oi_hold_pct": oi_hold_pct, "funding_reset_bps": funding_reset_bps,
          "liq_spike": liq_spike, "liq_decay_max": liq_decay_max, "liq_quiet": liq_quiet,
          "spot_share_rise": spot_share_rise, "taker_sell": taker_sell, "etf_outflow_usd": etf_outflow_usd}
    params = {"horizons": list(horizons), "post_hours": post_hours, "baseline_hours": baseline_hours,
              "funding_lookback_hours": funding_lookback_hours, **th, "n_boot": n_boot, "n_perm": n_perm,
              "seed": seed, "match_tolerance_hours": match_tolerance_hours}
    panel = sorted_panel(panel)
    events = _classify(panel, selloffs, daily, post_hours=post_hours, baseline_hours=baseline_hours,
                       funding_lookback_hours=funding_lookback_hours, th=th)
    forward = _forward_returns(events, col(panel, "perp_close"), horizons)
    events = events.drop("_idc")
    res = FlushExodusResult(events=events, forward=forward,
                            comparison=_compare(forward, horizons, n_boot=n_boot, n_perm=n_perm, seed=seed),
                            params=params, synthetic=is_synthetic(panel))
    if truth is not None:
        _score_against_truth(res, truth, match_tolerance_hours)
    return res


def _score_against_truth(res: FlushExodusResult, truth: pl.DataFrame, tolerance_hours: float) -> None:
    res.matches = match_truth(res.events, truth, tolerance_hours=tolerance_hours)
    res.confusion = confusion(res.matches)
    planted = res.matches.filter(pl.col("truth") != "none")
    res.accuracy = float((planted["truth"] == planted["predicted"]).mean()) if planted.height else None
    found = planted.filter(pl.col("predicted") != "missed")
    res.accuracy_detected = float((found["truth"] == found["predicted"]).mean()) if found.height else None


def flush_study(inputs, *, drawdown_pct: float = 5.0, within_hours: int = 72, min_spacing_hours: int = 72,
                **params) -> FlushExodusResult:
    """Notebook 20: detect sell-offs in ``inputs`` (:class:`research.panel.Inputs`) and run :func:`flush_vs_exodus`.

    ``params`` are :func:`flush_vs_exodus`'s keywords; the simulated market's truth is used when present.
    """
    from research.events import detect_selloffs

    selloffs = detect_selloffs(inputs.panel, drawdown_pct=drawdown_pct, within_hours=within_hours,
                               min_spacing_hours=min_spacing_hours)
    return flush_vs_exodus(inputs.panel, selloffs, inputs.daily, truth=inputs.truth, **params)
