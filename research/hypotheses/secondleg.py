"""H2: after a sell-off and a bounce, how often does a second leg make a new low, and do OI and
funding raise those odds?"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.db import is_synthetic
from research.errors import HypothesisError
from research.panel import oi_measure
from research.results import Results
from research.stats import (
    FISHER_SCHEMA,
    MIN_CLASS_SIZE,
    NotTestable,
    finite_or_none,
    fisher_exact_or,
    fisher_size,
    fit_logit,
    fmt,
    nanmean,
    newcombe_rd_ci,
    separated,
    size_warning,
    wilson_ci,
)

from .common import col, hours, require, rows_of, sorted_panel
from .power import fisher_mde

__all__ = ["SecondLegResult", "second_leg", "second_leg_study"]

_CONDITIONS = ("oi_held", "funding_positive")
#: the condition H2 declares primary (the article: OI held and funding still supporting longs)
PRIMARY = "oi_held and funding_positive"


@dataclass
class SecondLegResult(Results):
    """H2 results.

    Attributes
    ----------
    events : polars.DataFrame
        Per sell-off: bounce, ``second_leg`` (bool), ``oi_held``, ``funding_positive`` and their values.
    rates : polars.DataFrame
        P(second leg) overall and by condition, with Wilson CIs.
    fisher : polars.DataFrame
        Fisher exact tests (2x2) per condition: odds ratio, p-value, risk difference.
    logit : polars.DataFrame or None
        Logit coefficients with HC1 errors (None when not estimable; see ``notes``).
    notes : list of str
    """

    events: pl.DataFrame
    rates: pl.DataFrame
    fisher: pl.DataFrame
    logit: pl.DataFrame | None
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("events", "rates", "fisher", "logit")
    _figure = "second_leg_rates"
    key = "second_leg"

    def to_frame(self) -> pl.DataFrame:
        return self.rates

    def summary(self) -> str:
        lines = ["H2 second leg", "=" * 13]
        for r in self.rates.iter_rows(named=True):
            lines.append(f"  {r['group']:<28} {r['k']}/{r['n']} = {fmt(r['rate'], '.2f')} "
                         f"[{fmt(r['ci_low'], '.2f')}, {fmt(r['ci_high'], '.2f')}]")
        for r in self.fisher.iter_rows(named=True):
            lines.append(f"  {'*' if r['condition'] == PRIMARY else ' '}Fisher {r['condition']}: OR {fmt(r['odds_ratio'])} "
                         f"[{fmt(r['or_ci_low'])}, {fmt(r['or_ci_high'])}], p={fmt(r['pvalue'])}; "
                         f"risk diff {fmt(r['risk_diff'], '.2f')} (Newcombe [{fmt(r['rd_ci_low'], '.2f')}, "
                         f"{fmt(r['rd_ci_high'], '.2f')}])")
        if self.logit is not None:
            lines.append("  Logit (HC1):")
            for r in self.logit.iter_rows(named=True):
                lines.append(f"    {r['term']:<18} {fmt(r['coef'])} (se {fmt(r['se'])}, p={fmt(r['pvalue'])})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_conditional_rates(self.rates, title="P(second down-leg makes a new low)",
                                            y_title="share of sell-offs with a second leg", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        all_ = self.rates.filter(pl.col("group") == "all")
        if all_.height:
            r = all_.row(0, named=True)
            out.append(Verdict(
                hypothesis=f"After a sell-off and a bounce a second leg makes a new low within {self.params['horizon_days']} days",
                effect=finite_or_none(r["rate"]), ci_low=finite_or_none(r["ci_low"]), ci_high=finite_or_none(r["ci_high"]),
                n_events=int(r["n"]), test="share (descriptive, no test)", ci_method="Wilson score 95%",
                effect_label="P(second leg)", conclusion=""))
        for r in self.fisher.iter_rows(named=True):
            hyp = f"{r['condition']} raises the probability of a second leg"
            primary = r["condition"] == PRIMARY
            if min(r["n_yes"], r["n_no"]) < MIN_CLASS_SIZE:
                out.append(Verdict(hypothesis=hyp, effect=None, n_events=int(r["n"]), primary=primary, null=1.0,
                                   test="Fisher exact test (two-sided)", effect_label="odds ratio",
                                   conclusion=str(NotTestable(f"n = {r['n_yes']} with vs {r['n_no']} without; "
                                                              f"each group needs >= {MIN_CLASS_SIZE}"))))
                continue
            p = finite_or_none(r["pvalue"])
            hi = r["or_ci_high"]
            base = (r["leg_if_yes"] + r["leg_if_no"]) / r["n"] if r["n"] else math.nan
            mde = fisher_mde(r["n_yes"], r["n_no"], base) if primary and math.isfinite(base) else None
            out.append(Verdict(
                hypothesis=hyp, effect=finite_or_none(r["odds_ratio"]) if math.isfinite(r["odds_ratio"] or math.nan)
                else None, ci_low=finite_or_none(r["or_ci_low"]),
                ci_high=finite_or_none(hi), pvalue=p, n_events=int(r["n"]), primary=primary, null=1.0,
                test=f"Fisher exact test (two-sided, minlike) on the 2x2 table; risk difference "
                     f"{fmt(r['risk_diff'], '.2f')} (Newcombe 95% [{fmt(r['rd_ci_low'], '.2f')}, {fmt(r['rd_ci_high'], '.2f')}], "
                     "descriptive); size = exact rejection rate at 5% under the null at this design (margins fixed)"
                     + size_warning(r["size"])
                     + ("; OR infinite (an empty cell), CI unbounded above" if hi is None or
                                       not math.isfinite(hi) else ""),
                ci_method="exact conditional CI of the odds ratio, inverting the same Fisher test",
                size=finite_or_none(r["size"]),
                mde=finite_or_none(mde), mde_label=(f"P(second leg | condition) - base rate {base:.2f}" if mde is not None
                                                    else "no rise of P(second leg) up to certainty has 80 % power with "
                                                         "these events" if primary else ""),
                effect_label="odds ratio (second leg | condition vs not)",
                conclusion=("association at the 5% level" if p is not None and p < 0.05
                            else "no association detected at the 5% level")))
        return out


_EVENT_SCHEMA = {"event_id": pl.Int64, "bounce": pl.Boolean, "bounce_pct": pl.Float64, "second_leg": pl.Boolean,
                 "complete": pl.Boolean, "oi_change_pct": pl.Float64, "funding_mean": pl.Float64,
                 "oi_held": pl.Boolean, "funding_positive": pl.Boolean}


def _one_leg(panel, close, oi, fund, r, ip: int, it: int, idt: int, *, bounce_pct, bounce_hours, H, oi_hold_pct,
             funding_positive, pre_hours) -> dict:
    """The bounce and second-leg outcome of one confirmed leg.

    Decision bar = the bounce: the first close at or after the trough's confirmation (``idt``, the
    detector's rebound bar) at least ``bounce_pct`` % above the trough, within ``bounce_hours`` of the
    confirmation. The conditions use data up to the bounce, the outcome only bars after it.
    """
    n = close.size
    pt = close[it]
    stop = min(idt + 1 + int(bounce_hours), n)
    seg = close[idt:stop]
    up = np.flatnonzero(seg >= pt * (1 + bounce_pct / 100))
    below = np.flatnonzero(seg < pt)
    if up.size == 0 or (below.size and below[0] < up[0]):
        return {"event_id": r["event_id"], "trough_ts": r["trough_ts"], "bounce": False}
    ib = idt + int(up[0])
    end = min(ib + H, n - 1)
    lows = np.flatnonzero(close[ib + 1: end + 1] < pt)
    leg = bool(lows.size)
    oi_pre = nanmean(oi[max(ip - pre_hours, 0): ip + 1])
    oi_chg = 100 * (oi[ib] / oi_pre - 1) if np.isfinite(oi_pre) and oi_pre > 0 else np.nan
    f_mean = nanmean(fund[it: ib + 1])
    return {
        "event_id": r["event_id"], "trough_ts": r["trough_ts"], "bounce": True,
        "bounce_ts": panel["ts"][ib], "bounce_pct": 100 * (close[ib] / pt - 1),
        "second_leg": leg, "second_leg_ts": panel["ts"][ib + 1 + int(lows[0])] if leg else None,
        "complete": ib + H <= n - 1 or leg, "oi_change_pct": oi_chg, "funding_mean": f_mean,
        "oi_held": bool(oi_chg > -oi_hold_pct) if np.isfinite(oi_chg) else None,
        "funding_positive": bool(f_mean > funding_positive) if np.isfinite(f_mean) else None,
    }


def _legs(panel: pl.DataFrame, selloffs: pl.DataFrame, oi: np.ndarray, **kw) -> pl.DataFrame:
    n = panel.height
    close, fund = col(panel, "perp_close"), col(panel, "funding_rate_8h")
    ev = selloffs.filter(pl.col("trough_detected_ts").is_not_null()).sort("trough_ts")
    h = hours(panel)
    ip_all, it_all = rows_of(h, ev["peak_ts"]), rows_of(h, ev["trough_ts"])
    id_all = rows_of(h, ev["trough_detected_ts"])
    rows = []
    for k, r in enumerate(ev.iter_rows(named=True)):
        ip, it, idt = int(ip_all[k]), int(it_all[k]), int(id_all[k])
        if ip < 0 or it < 0 or idt < 0 or idt + 1 >= n:
            continue
        rows.append(_one_leg(panel, close, oi, fund, r, ip, it, idt, **kw))
    ts_t = panel.schema["ts"]
    schema = {"event_id": pl.Int64, "trough_ts": ts_t, "bounce": pl.Boolean, "bounce_ts": ts_t,
              "bounce_pct": pl.Float64, "second_leg": pl.Boolean, "second_leg_ts": ts_t, "complete": pl.Boolean,
              "oi_change_pct": pl.Float64, "funding_mean": pl.Float64, "oi_held": pl.Boolean,
              "funding_positive": pl.Boolean}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _condition(use: pl.DataFrame, c: str) -> tuple[np.ndarray, np.ndarray]:
    """``(value, known)`` of a boolean condition column (unknown where null)."""
    v = use[c].to_numpy() if use.height else np.zeros(0)
    ok = np.array([x is not None for x in v], bool)
    x = np.array([bool(x) if x is not None else False for x in v], bool)
    return x, ok


def _rates_and_tests(use: pl.DataFrame, y: np.ndarray):
    """Rates (Wilson CIs) overall and by condition, and Fisher exact tests per condition."""
    rates, fisher = [], []

    def rate(name, mask):
        kk, nn = int(np.sum(y[mask])), int(np.sum(mask))
        lo, hi = wilson_ci(kk, nn)
        rates.append({"group": name, "n": nn, "k": kk, "rate": kk / nn if nn else np.nan, "ci_low": lo, "ci_high": hi})

    rate("all", np.ones(y.size, bool))
    conds = {}
    for c in _CONDITIONS:
        x, ok = conds[c] = _condition(use, c)
        rate(f"{c}", ok & x)
        rate(f"not {c}", ok & ~x)
        if ok.sum():
            fisher.append(_fisher_row(x[ok], y[ok], c))
    (xo, oko), (xf, okf) = conds["oi_held"], conds["funding_positive"]
    both_ok = oko & okf
    rate("oi_held and funding_positive", both_ok & xo & xf)
    rate("neither/one of them", both_ok & ~(xo & xf))
    if both_ok.sum():
        fisher.append(_fisher_row((xo & xf)[both_ok], y[both_ok], PRIMARY))
    rates_df = pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None))
    fisher_df = (pl.DataFrame(fisher, schema=_FISHER_SCHEMA) if fisher else pl.DataFrame(schema=_FISHER_SCHEMA)
                 ).with_columns(pl.col(pl.Float64).fill_nan(None))
    return rates_df, fisher_df, conds, both_ok


_FISHER_SCHEMA = {**FISHER_SCHEMA, "or_ci_low": pl.Float64, "or_ci_high": pl.Float64, "primary": pl.Boolean,
                  "size": pl.Float64}


def _fisher_row(cond: np.ndarray, y: np.ndarray, name: str) -> dict:
    """Fisher's exact test of ``y`` on ``cond``: OR with the CI inverting the same test, risk difference (Newcombe)."""
    a, b = int(np.sum(cond & y)), int(np.sum(cond & ~y))
    c, d = int(np.sum(~cond & y)), int(np.sum(~cond & ~y))
    n_yes, n_no = a + b, c + d
    row = {"condition": name, "n": n_yes + n_no, "n_yes": n_yes, "n_no": n_no, "leg_if_yes": a, "leg_if_no": c,
           "primary": name == PRIMARY}
    if not (n_yes and n_no):
        return {**row, **{k: np.nan for k in ("risk_diff", "rd_ci_low", "rd_ci_high", "odds_ratio", "pvalue",
                                              "or_ci_low", "or_ci_high", "size")}}
    f = fisher_exact_or(a, b, c, d)
    lo, hi = newcombe_rd_ci(a, n_yes, c, n_no)
    return {**row, "risk_diff": a / n_yes - c / n_no, "rd_ci_low": lo, "rd_ci_high": hi,
            "odds_ratio": f["odds_ratio"], "pvalue": f["pvalue"], "or_ci_low": f["ci_low"], "or_ci_high": f["ci_high"],
            "size": fisher_size(n_yes + n_no, a + c, n_yes)}


def _logit(y: np.ndarray, conds: dict, both_ok: np.ndarray, notes: list) -> pl.DataFrame | None:
    """``second_leg ~ oi_held + funding_positive`` (HC1), skipping regressors that separate the outcome."""
    if not (both_ok.sum() >= 4 and 0 < y[both_ok].sum() < both_ok.sum()):
        notes.append("logit skipped: fewer than 4 usable sell-offs or the outcome takes one value")
        return None
    X, names = [np.ones(int(both_ok.sum()))], ["const"]
    for c in _CONDITIONS:
        xv = conds[c][0][both_ok]
        if xv.min() == xv.max():
            notes.append(f"{c} takes one value in every usable sell-off: left out of the logit")
            continue
        if separated(xv, y[both_ok]):
            notes.append(f"perfect/quasi-separation: {c} has an empty cell against second_leg, so its logit "
                         "coefficient is infinite; the Fisher exact test is reported instead")
            continue
        X.append(xv.astype(float))
        names.append(c)
    if len(names) > 1:
        return fit_logit(y[both_ok], np.column_stack(X), names, notes, cov_type="HC1")
    return None


def second_leg(
    panel: pl.DataFrame,
    selloffs: pl.DataFrame,
    *,
    bounce_pct: float = 2.0,
    bounce_hours: int = 72,
    horizon_days: float = 7,
    oi_hold_pct: float = 3.0,
    funding_positive: float = 0.0,
    pre_hours: int = 24,
) -> SecondLegResult:
    """After a sell-off and a bounce, how often does a second leg make a new low (H2)?

    For each confirmed leg of :func:`research.events.detect_selloffs` (``trough_detected_ts`` set):
    the bounce (the decision bar) is the first close at or after the trough's confirmation that is at
    least ``bounce_pct`` % above the trough close, within ``bounce_hours`` of the confirmation and
    before any close below the trough; legs without one are left out. The second leg happens when a
    close within ``horizon_days`` after the bounce is below the trough close (so it is never the first
    leg continuing: the detector's rebound ended that leg). Conditions, known at the bounce:
    ``oi_held`` = OI in coins (:func:`research.panel.oi_measure`) at the bounce above
    ``-oi_hold_pct`` % of its mean over the ``pre_hours`` before the peak; ``funding_positive`` = mean
    8h funding from trough to bounce > ``funding_positive``.

    Primary test: Fisher's exact test of ``second_leg`` on :data:`PRIMARY`; each test's CI is the
    exact conditional CI of the odds ratio got by inverting the same test. A group smaller than
    :data:`research.stats.MIN_CLASS_SIZE` is not testable. A logit with HC1 errors is descriptive.
    """
    require(panel, ["ts", "perp_close"], "second_leg")
    for c in ("peak_ts", "trough_ts", "trough_detected_ts"):
        if c not in selloffs.columns:
            raise HypothesisError(f"second_leg: selloffs has no column {c!r}; pass research.events.detect_selloffs(panel)")
    panel = sorted_panel(panel)
    oi, oi_info = oi_measure(panel)
    params = {"bounce_pct": bounce_pct, "bounce_hours": bounce_hours, "horizon_days": horizon_days,
              "oi_hold_pct": oi_hold_pct, "funding_positive": funding_positive, "pre_hours": pre_hours,
              "primary": PRIMARY, **oi_info}
    # hour windows are clock hours: on coarser bars they span fewer rows
    from .common import bar_hours, to_bars

    bar_h = bar_hours(panel)
    events = _legs(panel, selloffs, oi, bounce_pct=bounce_pct, bounce_hours=to_bars(bounce_hours, bar_h),
                   H=to_bars(horizon_days * 24, bar_h), oi_hold_pct=oi_hold_pct, funding_positive=funding_positive,
                   pre_hours=to_bars(pre_hours, bar_h))
    notes: list[str] = [f"OI measure: coins via {oi_info['oi_method']}"
                        + (" (approximate: USD OI / price)" if oi_info["oi_approximate"] else ""),
                        f"primary test: Fisher exact test on '{PRIMARY}'; CIs invert the same test; q-values by BH"]
    n_open = selloffs.height - selloffs.filter(pl.col("trough_detected_ts").is_not_null()).height
    if n_open:
        notes.append(f"{n_open} sell-off(s) without a confirmed trough by the panel's end left out")
    n_nob = int((~events["bounce"]).sum()) if events.height else 0
    if n_nob:
        notes.append(f"{n_nob} sell-off(s) without a {bounce_pct}% bounce within {bounce_hours} h left out")
    use = events.filter(pl.col("bounce") & pl.col("complete"))
    n_inc = int(events.filter(pl.col("bounce") & ~pl.col("complete")).height)
    if n_inc:
        notes.append(f"{n_inc} sell-off(s) too close to the end of the data to observe {horizon_days} days left out")
    y = use["second_leg"].to_numpy().astype(bool) if use.height else np.zeros(0, bool)
    rates, fisher, conds, both_ok = _rates_and_tests(use, y)
    _same_split_note(conds, both_ok, notes)
    logit = _logit(y, conds, both_ok, notes)
    if y.size < 20:
        notes.append(f"only {y.size} sell-offs: exact tests are the primary evidence, the logit is descriptive")
    return SecondLegResult(events=events, rates=rates, fisher=fisher, logit=logit, params=params, notes=notes,
                           synthetic=is_synthetic(panel))


def _same_split_note(conds: dict, both_ok: np.ndarray, notes: list) -> None:
    """Say so when two conditions split the usable legs identically (their rows then repeat one test)."""
    if not both_ok.sum():
        return
    xo, xf = conds["oi_held"][0][both_ok], conds["funding_positive"][0][both_ok]
    splits = {"oi_held": xo, "funding_positive": xf, PRIMARY: xo & xf}
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.array_equal(splits[a], splits[b]):
                notes.append(f"'{a}' and '{b}' split the usable sell-offs identically: their tests are one test")


def second_leg_study(inputs, *, drawdown_pct: float = 5.0, rebound_pct: float = 3.0, within_hours: float | None = None,
                     min_spacing_hours: float | None = 72, **params) -> SecondLegResult:
    """Notebook 21: detect sell-off legs in ``inputs`` and run :func:`second_leg` (``params`` are its keywords)."""
    from research.events import detect_selloffs

    selloffs = detect_selloffs(inputs.panel, drawdown_pct=drawdown_pct, rebound_pct=rebound_pct,
                               within_hours=within_hours, min_spacing_hours=min_spacing_hours)
    return second_leg(inputs.panel, selloffs, **params)
