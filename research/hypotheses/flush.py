"""H1: classify sell-offs as leverage flush or spot exodus and compare what follows.

The classifier (criteria, votes, labels, sensitivity grid) lives in :mod:`.flush_rule`; this module
measures each sell-off's features at its decision time and runs the comparison. Decision time is the
bar at which the detector confirms the trough (``trough_detected_ts``, the rebound): every feature
ends there and every forward return starts there, so nothing after the decision is used to label an
event and nothing before it counts as "what follows".
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.db import is_synthetic
from research.errors import HypothesisError
from research.panel import oi_measure
from research.results import Results
from research.stats import (
    MIN_CLASS_SIZE,
    NotTestable,
    finite_or_none,
    fmt,
    hedges_g,
    nanmean,
    permutation_shift_test,
    permutation_size,
    size_warning,
    t_interval,
)

from .common import col, hours, require, rows_of, sorted_panel, window_sum
from .flush_rule import FLUSH_RULE, LABELS, RULE_DEFAULTS, sensitivity, votes
from .power import permutation_mde
from .truth import confusion, match_truth

__all__ = ["FLUSH_RULE", "RULE_DEFAULTS", "FlushExodusResult", "flush_study", "flush_vs_exodus"]


@dataclass
class FlushExodusResult(Results):
    """H1 results.

    Attributes
    ----------
    events : polars.DataFrame
        One row per sell-off: features, votes, ``score``, ``label`` (flush/exodus/mixed/insufficient),
        ``decision_ts`` (= the detector's ``trough_detected_ts``) and ``label_stability`` (share of
        the sensitivity grid giving the default label).
    forward : polars.DataFrame
        Long: ``event_id, label, horizon_h, start_ts, car`` (forward log return from the decision bar).
    comparison : polars.DataFrame
        Per horizon: n and mean per class, ``diff`` (flush - exodus), Hedges' g, permutation p-value
        and the CI got by inverting the same permutation test; ``primary`` marks the primary horizon.
    sensitivity : polars.DataFrame
        Label counts over a grid of thresholds (:func:`research.hypotheses.flush_rule.sensitivity`).
    confusion, matches : polars.DataFrame or None
        Against the simulated market's planted episodes.
    accuracy, accuracy_detected : float or None
    oi : dict
        The OI measure used (:meth:`research.oi.OISeries.to_dict`).
    """

    events: pl.DataFrame
    forward: pl.DataFrame
    comparison: pl.DataFrame
    params: dict
    sensitivity: pl.DataFrame | None = None
    confusion: pl.DataFrame | None = None
    matches: pl.DataFrame | None = None
    accuracy: float | None = None
    accuracy_detected: float | None = None
    oi: dict = field(default_factory=dict)
    synthetic: bool = False
    rule: str = FLUSH_RULE
    extra_notes: list = field(default_factory=list)

    _frame_fields = ("events", "forward", "comparison", "sensitivity", "confusion", "matches")
    _figure = "flush_vs_exodus"
    key = "flush_vs_exodus"

    @property
    def notes(self) -> list[str]:
        out = ["decision time = trough_detected_ts (the rebound that confirms the trough); forward returns start there",
               f"OI measure: {self.oi.get('oi_measure', 'coins')} via {self.oi.get('oi_method', 'none')}"
               + (" (approximate: USD OI / price)" if self.oi.get("oi_approximate") else ""),
               (f"primary test: permutation test of mean forward return flush - exodus at "
                f"{self.params['primary_horizon']} h; CI by inverting it (same draws); q-values by BH")]
        if self.oi.get("oi_approximate"):
            out.append("OI is USD OI / price: for a USD aggregate that includes coin-margined contracts a price fall "
                       "can read as more coins, which leans the OI criterion to 'exodus'; see the sensitivity table's "
                       "'without oi' row")
        if self.confusion is not None:
            out.append(f"planted labels recovered: accuracy {self.accuracy:.2f} (misses count as errors), "
                       f"{fmt(self.accuracy_detected, '.2f')} among detected episodes")
        return out + list(self.extra_notes)

    def label_counts(self) -> dict:
        """``{label: count}`` over :data:`LABELS`."""
        lab = self.events["label"].to_list() if self.events.height else []
        return {x: lab.count(x) for x in LABELS}

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        lines = ["H1 flush vs spot exodus", "=" * 23,
                 f"sell-offs: {self.events.height}  " + ", ".join(f"{k}={v}" for k, v in self.label_counts().items())]
        for r in self.comparison.iter_rows(named=True):
            lines.append(
                f"  {'*' if r['primary'] else ' '}CAR {r['horizon_h']:>4} h: flush {fmt(r['mean_flush'])} (n={r['n_flush']}) "
                f"vs exodus {fmt(r['mean_exodus'])} (n={r['n_exodus']}); diff {fmt(r['diff'])} "
                f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}], g={fmt(r['hedges_g'], '.2f')}, perm p={fmt(r['p_perm'])}")
        if self.accuracy is not None:
            lines.append(f"recovery of planted labels: accuracy {self.accuracy:.2f}; among detected "
                         f"{fmt(self.accuracy_detected, '.2f')}")
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
                                          means, synthetic=self.synthetic,
                                          title="Forward returns from the decision bar: leverage flush vs spot exodus")

    def verdicts(self):
        from research.records import Verdict

        out = []
        for r in self.comparison.iter_rows(named=True):
            nf, nx = r["n_flush"], r["n_exodus"]
            hyp = (f"Forward return {r['horizon_h']} h after the decision bar differs between leverage flushes "
                   "and spot exoduses")
            if min(nf, nx) < MIN_CLASS_SIZE:
                out.append(Verdict(hypothesis=hyp, effect=None, n_events=int(nf + nx), primary=r["primary"],
                                   test="permutation of class labels", effect_label="mean CAR flush - exodus (log return)",
                                   conclusion=str(NotTestable(f"n = {nf} flush vs {nx} exodus; "
                                                              f"each class needs >= {MIN_CLASS_SIZE}"))))
                continue
            p = finite_or_none(r["p_perm"])
            out.append(Verdict(
                hypothesis=hyp, effect=finite_or_none(r["diff"]), ci_low=finite_or_none(r["ci_low"]),
                ci_high=finite_or_none(r["ci_high"]), pvalue=p, n_events=int(nf + nx), primary=r["primary"],
                test=f"permutation of class labels ({self.params['n_perm']} draws, seed {self.params['seed']}); "
                     f"Hedges g = {fmt(r['hedges_g'], '.2f')}"
                     + (f"; size = rejection rate at 5% over {r['n_placebo']} placebo relabellings"
                        + size_warning(r["size"]) if r["n_placebo"] else ""),
                ci_method="inversion of the same permutation test (location shift, same draws)",
                size=finite_or_none(r["size"]), n_placebo=r["n_placebo"],
                mde=finite_or_none(r.get("mde")), mde_label="difference of mean forward log returns" if r.get("mde") else "",
                effect_label="mean CAR flush - exodus (log return)",
                conclusion=("difference at the 5% level" if p is not None and p < 0.05
                            else "no difference detected at the 5% level")))
        if self.accuracy is not None:
            n_true = int(self.matches.filter(pl.col("truth") != "none").height) if self.matches is not None else None
            out.append(Verdict(
                hypothesis="The rule-based classifier recovers the planted flush/exodus labels of the simulated market",
                effect=self.accuracy, n_events=n_true, test="confusion matrix vs planted episodes (descriptive)",
                effect_label="accuracy (share of planted episodes detected and labelled correctly)",
                conclusion="recovered" if self.accuracy >= 0.8 else "NOT recovered (accuracy < 0.8)"))
        return out


# --------------------------------------------------------------------------------------------------
# features, measured at the decision bar against the pre-selloff state
# --------------------------------------------------------------------------------------------------
@dataclass
class _Series:
    """The panel columns the classifier reads, as numpy (one pass over the panel)."""

    ts: pl.Series
    oi: np.ndarray
    fund: np.ndarray
    cs_liq: np.ndarray
    cs_cov: np.ndarray
    share: np.ndarray
    gap: np.ndarray

    @classmethod
    def of(cls, panel: pl.DataFrame, oi: np.ndarray) -> _Series:
        liq = col(panel, "liq_long_usd")
        has_liq = panel["has_liq"].fill_null(False).to_numpy() if "has_liq" in panel.columns else np.isfinite(liq)
        liq0 = np.where(np.isfinite(liq) & has_liq, liq, 0.0)
        return cls(ts=panel["ts"], oi=oi, fund=col(panel, "funding_rate_8h"),
                   cs_liq=np.concatenate([[0.0], np.cumsum(liq0)]),
                   cs_cov=np.concatenate([[0.0], np.cumsum(has_liq.astype(float))]),
                   share=col(panel, "spot_share"),
                   gap=col(panel, "spot_taker_imbalance") - col(panel, "taker_imbalance"))


def _rate(s: _Series, i0: int, i1: int) -> float:
    cov = window_sum(s.cs_cov, i0, i1)
    return window_sum(s.cs_liq, i0, i1) / cov if cov > 0 else np.nan


def _etf_by_day(daily) -> pl.DataFrame | None:
    """One row per ETF trading day: ``flow_date, flow_usd, published`` (first daily row carrying it).

    The daily panel carries the latest flow on every later row (weekends, holidays), so summing its
    rows counts a flow several times; here each trading day appears once.
    """
    if daily is None or not daily.height or "etf_flow_usd" not in daily.columns:
        return None
    d = daily.filter(pl.col("etf_flow_usd").is_not_null())
    if "etf_flow_date" not in d.columns:       # no flow dates: every row is its own day (no carry)
        return d.select(pl.col("date").alias("flow_date"), pl.col("etf_flow_usd").alias("flow_usd"),
                        pl.col("date").alias("published"))
    return (d.group_by("etf_flow_date").agg(pl.col("etf_flow_usd").first().alias("flow_usd"),
                                            pl.col("date").min().alias("published"))
            .rename({"etf_flow_date": "flow_date"}).sort("flow_date"))


def _etf_mean(etf: pl.DataFrame | None, d0, d1, known_by) -> float:
    """Mean net flow per trading day with flow dates in ``[d0, d1]`` published by ``known_by``."""
    if etf is None:
        return np.nan
    sub = etf.filter((pl.col("flow_date") >= d0) & (pl.col("flow_date") <= d1) & (pl.col("published") <= known_by))
    return float(sub["flow_usd"].mean()) if sub.height else np.nan


def _features(s: _Series, etf, ip: int, idc: int, *, baseline_hours: int, pre_hours: int,
              funding_lookback_hours: int) -> dict:
    """Every classifier input of one sell-off: the leg (peak ``ip`` -> decision ``idc``) vs before the peak."""
    b0 = max(ip - baseline_hours, 0)
    oi_pre = nanmean(s.oi[max(ip - pre_hours, 0): ip + 1])
    oi_now = s.oi[idc] if np.isfinite(s.oi[idc]) else nanmean(s.oi[max(idc - 3, ip): idc + 1])
    oi_chg = 100 * (oi_now / oi_pre - 1) if np.isfinite(oi_pre) and oi_pre > 0 else np.nan
    f_before = nanmean(s.fund[max(ip - funding_lookback_hours, 0): ip + 1])
    f_after = s.fund[idc]
    base_rate, dur_rate = _rate(s, b0, ip - 1), _rate(s, ip, idc)
    spike = dur_rate / base_rate if np.isfinite(base_rate) and base_rate > 0 else np.nan
    peak_day, dec_day = s.ts[ip].date(), s.ts[idc].date()
    base_day0 = s.ts[b0].date()
    etf_during = _etf_mean(etf, peak_day, dec_day, dec_day)
    etf_before = _etf_mean(etf, base_day0, peak_day - dt.timedelta(days=1), peak_day)
    return {"oi_pre_coins": oi_pre, "oi_change_pct": oi_chg, "funding_before_bps": 1e4 * f_before,
            "funding_after_bps": 1e4 * f_after, "funding_drop_bps": 1e4 * (f_before - f_after),
            "liq_rate_baseline": base_rate, "liq_rate_during": dur_rate, "liq_spike": spike,
            "spot_share_change": nanmean(s.share[ip: idc + 1]) - nanmean(s.share[b0:ip]),
            "taker_gap_change": nanmean(s.gap[ip: idc + 1]) - nanmean(s.gap[b0:ip]),
            "etf_flow_during_usd": etf_during, "etf_flow_before_usd": etf_before,
            "etf_flow_change_usd": etf_during - (etf_before if np.isfinite(etf_before) else 0.0)}


def _classify(panel: pl.DataFrame, selloffs: pl.DataFrame, daily, oi: np.ndarray, *, th: dict,
              baseline_hours: int, pre_hours: int, funding_lookback_hours: int) -> tuple[pl.DataFrame, list]:
    """One row per complete sell-off: features, votes, label and ``_idc`` (decision row); and the features."""
    s = _Series.of(panel, oi)
    ev = selloffs.sort("peak_ts")
    h = hours(panel)
    ip_all, id_all = rows_of(h, ev["peak_ts"]), rows_of(h, ev["trough_detected_ts"])
    etf = _etf_by_day(daily)
    rows, feats = [], []
    for k, r in enumerate(ev.iter_rows(named=True)):  # a loop over events (tens), not bars
        ip, idc = int(ip_all[k]), int(id_all[k])
        if ip < 0 or idc < 0:
            continue
        f = _features(s, etf, ip, idc, baseline_hours=baseline_hours, pre_hours=pre_hours,
                      funding_lookback_hours=funding_lookback_hours)
        feats.append(f)
        rows.append({"event_id": r["event_id"], "peak_ts": r["peak_ts"], "detected_ts": r["detected_ts"],
                     "trough_ts": r["trough_ts"], "decision_ts": s.ts[idc], "drawdown_pct": r.get("drawdown_pct"),
                     **f, **votes(f, th), "_idc": idc})
    ts_t = panel.schema["ts"]
    if rows:
        events = pl.DataFrame(rows, strict=False)
    else:
        events = pl.DataFrame(schema={"event_id": pl.Int64, "peak_ts": ts_t, "detected_ts": ts_t, "trough_ts": ts_t,
                                      "decision_ts": ts_t, "score": pl.Int64, "label": pl.String, "_idc": pl.Int64})
    return events.with_columns(pl.col(pl.Float64).fill_nan(None)), feats


def _forward_returns(events: pl.DataFrame, ts: pl.Series, close: np.ndarray, horizons, bar_h: float = 1.0) -> pl.DataFrame:
    """Forward log returns from each decision bar's close (vectorised over events x horizons).

    ``horizons`` are clock hours (``horizon_h``), taken as whole bars of ``bar_h`` hours.
    """
    from .common import to_bars

    n = close.size
    idc = events["_idc"].to_numpy().astype(int) if events.height else np.zeros(0, int)
    logp = np.log(close)
    parts = []
    for h in horizons:
        j = idc + to_bars(h, bar_h)
        car = np.where(j < n, logp[np.minimum(j, n - 1)] - logp[idc], np.nan) if idc.size else np.zeros(0)
        parts.append(pl.DataFrame({"event_id": events["event_id"], "label": events["label"],
                                   "horizon_h": np.full(idc.size, h, dtype=np.int64),
                                   "start_ts": ts.gather(idc) if idc.size else pl.Series([], dtype=ts.dtype),
                                   "car": car}))
    forward = (pl.concat(parts) if parts else pl.DataFrame(
        schema={"event_id": pl.Int64, "label": pl.String, "horizon_h": pl.Int64, "start_ts": ts.dtype,
                "car": pl.Float64}))
    return forward.with_columns(pl.col("car").fill_nan(None)).drop_nulls("car")


def _compare(forward: pl.DataFrame, horizons, primary: int, *, n_perm: int, seed: int, n_placebo: int) -> pl.DataFrame:
    """Per horizon: class means (t intervals, descriptive), difference, Hedges' g, permutation p and its CI."""
    comp = []
    for i, h in enumerate(horizons):
        sub = forward.filter(pl.col("horizon_h") == h)
        a = sub.filter(pl.col("label") == "flush")["car"].to_numpy()
        b = sub.filter(pl.col("label") == "exodus")["car"].to_numpy()
        ok = min(a.size, b.size) >= MIN_CLASS_SIZE
        t = permutation_shift_test(a, b, n_perm=n_perm, seed=seed + i) if ok else {}
        size = permutation_size(a, b, n_placebo=n_placebo, seed=seed + 1000) if ok and h == primary and n_placebo else None
        mde = permutation_mde(a, b, seed=seed + 2000) if ok and h == primary else None
        _, fl, fh = t_interval(a)
        _, xl, xh = t_interval(b)
        comp.append({"horizon_h": h, "primary": h == primary, "n_flush": int(a.size), "n_exodus": int(b.size),
                     "mean_flush": nanmean(a), "mean_exodus": nanmean(b), "ci_flush_low": fl, "ci_flush_high": fh,
                     "ci_exodus_low": xl, "ci_exodus_high": xh,
                     "diff": (a.mean() - b.mean()) if a.size and b.size else np.nan,
                     "hedges_g": hedges_g(a, b), "ci_low": t.get("ci_low", np.nan), "ci_high": t.get("ci_high", np.nan),
                     "p_perm": t.get("pvalue", np.nan), "size": size, "n_placebo": n_placebo if size is not None else None,
                     "mde": mde})
    schema = {"n_flush": pl.Int64, "n_exodus": pl.Int64, "primary": pl.Boolean, "size": pl.Float64, "n_placebo": pl.Int64,
              "mde": pl.Float64}
    return pl.DataFrame(comp, schema_overrides=schema).with_columns(pl.col(pl.Float64).fill_nan(None))


def flush_vs_exodus(panel: pl.DataFrame, selloffs: pl.DataFrame, daily: pl.DataFrame | None = None, *,
                    horizons=(24, 72, 168), primary_horizon: int = 72, baseline_hours: int = 168,
                    pre_hours: int = 24, funding_lookback_hours: int = 48, n_perm: int = 5000, seed: int = 7,
                    n_placebo: int = 200,
                    truth: pl.DataFrame | None = None, match_tolerance_hours: float = 48,
                    **thresholds) -> FlushExodusResult:
    """Classify sell-offs as leverage flush or spot exodus and compare forward returns (H1).

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel.
    selloffs : polars.DataFrame
        :func:`research.events.detect_selloffs` output; incomplete legs (no confirmed trough) are
        left out.
    daily : polars.DataFrame, optional
        Daily panel (``date, etf_flow_usd, etf_flow_date``) for the ETF criterion.
    horizons, primary_horizon : int
        Forward-return horizons (hours from the decision bar); the primary test's horizon.
    baseline_hours, pre_hours, funding_lookback_hours : int
        Pre-selloff windows (hours before the peak): baseline of liquidations, spot share, taker gap
        and ETF flows; OI pre-level; funding pre-level.
    n_perm, seed : int
        Permutation draws and seed.
    n_placebo : int
        Placebo relabellings measuring the primary test's empirical size on these events (0: skip).
    truth, match_tolerance_hours
        Planted episodes (simulated market) for the confusion matrix.
    **thresholds
        :data:`research.hypotheses.flush_rule.RULE_DEFAULTS` overrides (see :data:`FLUSH_RULE`).
    """
    who = "flush_vs_exodus"
    require(panel, ["ts", "perp_close"], who)
    for c in ("peak_ts", "trough_ts", "trough_detected_ts"):
        if c not in selloffs.columns:
            raise HypothesisError(f"{who}: selloffs has no column {c!r}; pass research.events.detect_selloffs(panel)")
    unknown = sorted(set(thresholds) - set(RULE_DEFAULTS))
    if unknown:
        raise HypothesisError(f"{who}: unknown parameter(s) {unknown}; thresholds are {sorted(RULE_DEFAULTS)}")
    horizons = tuple(int(h) for h in horizons)
    if int(primary_horizon) not in horizons:
        raise HypothesisError(f"{who}: primary_horizon={primary_horizon} is not one of horizons={list(horizons)}")
    th = {**RULE_DEFAULTS, **thresholds}
    panel = sorted_panel(panel)
    # hour windows are clock hours: on coarser bars they span fewer rows
    from .common import bar_hours, to_bars

    bar_h = bar_hours(panel)
    oi, oi_info = oi_measure(panel)
    sel = selloffs.filter(pl.col("trough_detected_ts").is_not_null())
    n_incomplete = selloffs.height - sel.height
    events, feats = _classify(panel, sel, daily, oi, th=th, baseline_hours=to_bars(baseline_hours, bar_h),
                              pre_hours=to_bars(pre_hours, bar_h),
                              funding_lookback_hours=to_bars(funding_lookback_hours, bar_h))
    sens, stab = sensitivity(feats, th)
    events = events.with_columns(pl.Series("label_stability", stab, dtype=pl.Float64))
    forward = _forward_returns(events, panel["ts"], col(panel, "perp_close"), horizons, bar_h)
    params = {"horizons": list(horizons), "primary_horizon": int(primary_horizon), "baseline_hours": baseline_hours,
              "pre_hours": pre_hours, "funding_lookback_hours": funding_lookback_hours, **th, "n_perm": n_perm,
              "seed": seed, "n_placebo": n_placebo, "match_tolerance_hours": match_tolerance_hours, **oi_info}
    notes = [f"{n_incomplete} sell-off(s) without a confirmed trough by the panel's end left out"] if n_incomplete else []
    if bar_h != 1:
        notes.append(f"bars of {bar_h:g} h: hour windows and horizons are taken as whole bars "
                     f"(e.g. {horizons[0]} h = {to_bars(horizons[0], bar_h)} bar(s))")
    res = FlushExodusResult(events=events.drop("_idc"), forward=forward,
                            comparison=_compare(forward, horizons, int(primary_horizon), n_perm=n_perm, seed=seed,
                                                n_placebo=n_placebo),
                            params=params, sensitivity=sens, oi=oi_info, synthetic=is_synthetic(panel),
                            extra_notes=notes)
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


def flush_study(inputs, *, drawdown_pct: float = 5.0, rebound_pct: float = 3.0, within_hours: float | None = None,
                min_spacing_hours: float | None = 72, detection_grid=((8.0, 3.0), (5.0, 2.0), (5.0, 5.0)),
                **params) -> FlushExodusResult:
    """Notebook 20: detect sell-off legs in ``inputs`` (:class:`research.panel.Inputs`) and run :func:`flush_vs_exodus`.

    Every leg is kept (causal; ``min_spacing_hours`` only labels clusters). ``params`` are
    :func:`flush_vs_exodus`'s keywords; the simulated market's truth is used when present.
    ``detection_grid`` lists further ``(drawdown_pct, rebound_pct)`` pairs whose legs are classified
    with the same thresholds; their label counts join the sensitivity table (``n_changed`` counts
    legs with the same trough as a default leg but another label).
    """
    from research.events import detect_selloffs

    def detect(dd, rb):
        return detect_selloffs(inputs.panel, drawdown_pct=dd, rebound_pct=rb, within_hours=within_hours,
                               min_spacing_hours=min_spacing_hours)

    res = flush_vs_exodus(inputs.panel, detect(drawdown_pct, rebound_pct), inputs.daily, truth=inputs.truth, **params)
    quick = {k: v for k, v in params.items() if k not in ("truth",)}
    quick.update(n_perm=1, n_placebo=0)     # labels only: the comparison of these runs is not used
    rows = []
    base = res.events.select("trough_ts", pl.col("label").alias("_base"))
    for dd, rb in detection_grid or ():
        alt = flush_vs_exodus(inputs.panel, detect(float(dd), float(rb)), inputs.daily, **quick)
        both = alt.events.select("trough_ts", "label").join(base, on="trough_ts", how="inner")
        rows.append({"setting": f"detection drawdown {float(dd):g} % / rebound {float(rb):g} %",
                     **{f"n_{x}": n for x, n in alt.label_counts().items()},
                     "n_changed": int((both["label"] != both["_base"]).sum())})
    if rows:
        res.sensitivity = pl.concat([res.sensitivity, pl.DataFrame(rows, schema=res.sensitivity.schema)])
    res.params["detection"] = {"drawdown_pct": drawdown_pct, "rebound_pct": rebound_pct,
                               "within_hours": within_hours, "min_spacing_hours": min_spacing_hours}
    return res
