"""H3: do funding extremes and long/short ratios above a threshold precede liquidation cascades?"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.db import is_synthetic
from research.errors import HypothesisError
from research.results import Results
from research.stats import conclude, finite_or_none, fit_logit, fmt, separated, wilson_ci

from .common import backward_any, col, forward_any, hours, require, rows_of, sorted_panel

__all__ = ["CrowdingResult", "crowding_early_warning", "crowding_study"]


@dataclass
class CrowdingResult(Results):
    """H3 results.

    Attributes
    ----------
    rates : polars.DataFrame
        P(cascade within H hours) overall (base rate) and conditional on each signal, lift, Wilson CIs.
    logit : polars.DataFrame or None
        Logit ``cascade_next_H ~ funding_extreme + ls_extreme`` with HAC errors (maxlags = H).
    rule : dict
        Precision, recall and counts of the chosen rule.
    thresholds : dict
        The funding and long/short thresholds used.
    """

    rates: pl.DataFrame
    logit: pl.DataFrame | None
    rule: dict
    thresholds: dict
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("rates", "logit")
    _figure = "crowding_rates"
    key = "crowding_early_warning"

    def to_frame(self) -> pl.DataFrame:
        return self.rates

    def summary(self) -> str:
        lines = ["H3 crowding as early warning", "=" * 28,
                 f"thresholds: {self.thresholds}"]
        for r in self.rates.iter_rows(named=True):
            lines.append(f"  {r['condition']:<22} hours={r['n']:>5}  P(cascade in {self.params['horizon_hours']} h)="
                         f"{fmt(r['rate'], '.3f')} [{fmt(r['ci_low'], '.3f')}, {fmt(r['ci_high'], '.3f')}]  lift={fmt(r['lift'], '.2f')}")
        lines.append(f"  rule '{self.rule['signal']}': precision {fmt(self.rule['precision'], '.3f')}, recall "
                     f"{fmt(self.rule['recall'], '.3f')} ({self.rule['cascades_warned']}/{self.rule['cascades']} cascades warned)")
        if self.logit is not None:
            for r in self.logit.iter_rows(named=True):
                lines.append(f"    {r['term']:<18} {fmt(r['coef'])} (HAC se {fmt(r['se'])}, p={fmt(r['pvalue'])})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_conditional_rates(
            self.rates.rename({"condition": "group"}),
            title=f"P(liquidation cascade within {self.params['horizon_hours']} h) given crowding",
            y_title="share of hours", baseline_group="all hours", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        sig = self.rule["signal"]
        row = self.rates.filter(pl.col("condition") == sig)
        base = self.rates.filter(pl.col("condition") == "all hours")
        if row.height and base.height:
            r, b = row.row(0, named=True), base.row(0, named=True)
            p = None
            if self.logit is not None:
                t = self.logit.filter(pl.col("term") == "signal")
                p = finite_or_none(t["pvalue"][0]) if t.height else None
            out.append(Verdict(
                hypothesis=f"Crowding ({sig}) precedes liquidation cascades within {self.params['horizon_hours']} h",
                effect=finite_or_none(r["rate"] - b["rate"]) if r["rate"] is not None and b["rate"] is not None else None,
                ci_low=finite_or_none(r["ci_low"] - b["rate"]) if r["ci_low"] is not None and b["rate"] is not None else None,
                ci_high=finite_or_none(r["ci_high"] - b["rate"]) if r["ci_high"] is not None and b["rate"] is not None else None,
                pvalue=p, n_events=int(self.rule["cascades"]),
                test="logit of cascade-within-H on the signal, HAC (Newey-West) errors",
                effect_label="P(cascade | signal) - base rate",
                conclusion=(f"precision {fmt(self.rule['precision'], '.2f')}, recall {fmt(self.rule['recall'], '.2f')}; "
                            + (conclude(p, 2, 2) if p is not None else "logit not estimable"))))
        return out



def _pick_ls_column(panel: pl.DataFrame, ls_column: str) -> str:
    if ls_column != "auto":
        return ls_column
    cands = [c for c in ("account_ls_ratio", "top_trader_ls_ratio") if c in panel.columns and panel[c].drop_nulls().len()]
    return cands[0] if cands else "account_ls_ratio"


def _rates(yb, ok, fe, le, n, funding_threshold, ls_column, ls_threshold, base) -> pl.DataFrame:
    """P(cascade within H) overall and given each signal, with Wilson CIs and the lift over the base rate."""
    rates = []
    for name, m in [("all hours", np.ones(n, bool)), (f"funding >= {funding_threshold:.6f}", fe),
                    (f"{ls_column} >= {ls_threshold}", le), ("both", fe & le), ("either", fe | le),
                    ("neither", ~(fe | le))]:
        mm = ok & m
        kk, nn = int(np.sum(yb[mm])), int(mm.sum())
        lo, hi = wilson_ci(kk, nn)
        r = kk / nn if nn else float("nan")
        rates.append({"condition": name, "n": nn, "k": kk, "rate": r, "ci_low": lo, "ci_high": hi,
                      "lift": r / base if base and base > 0 else float("nan")})
    # short names for the rule lookup, the thresholds in the label
    rates[1]["condition"], rates[2]["condition"] = "funding", "ls"
    rates[1]["label"] = f"funding_rate_8h >= {funding_threshold:.6f}"
    rates[2]["label"] = f"{ls_column} >= {ls_threshold}"
    for r in rates:
        r.setdefault("label", r["condition"])
    return pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None))


def _signal_logit(yb, ok, s, signal: str, lags: int, notes: list) -> pl.DataFrame | None:
    """Logit of cascade-within-H on the signal with HAC errors; None (and a note) when not estimable."""
    if ok.sum() < 50:
        notes.append(f"only {int(ok.sum())} hours with funding, long/short ratio and liquidation coverage: logit skipped")
        return None
    if yb[ok].min() == yb[ok].max():
        notes.append("the outcome takes one value in every usable hour: logit skipped")
        return None
    xs = s[ok].astype(float)
    if xs.min() == xs.max():
        notes.append(f"signal '{signal}' takes one value in every usable hour: logit skipped")
        return None
    if separated(xs, yb[ok]):
        notes.append(f"perfect/quasi-separation of the outcome by signal '{signal}': logit skipped")
        return None
    X = np.column_stack([np.ones(int(ok.sum())), xs])
    return fit_logit(yb[ok], X, ["const", "signal"], notes, cov_type="HAC", cov_kwds={"maxlags": lags})


def crowding_early_warning(
    panel: pl.DataFrame,
    cascades: pl.DataFrame,
    *,
    horizon_hours: int = 24,
    ls_threshold: float = 1.5,
    ls_column: str = "auto",
    funding_threshold: float | None = None,
    funding_quantile: float = 0.9,
    signal: str = "both",
    hac_lags: int | None = None,
) -> CrowdingResult:
    """Do funding extremes and long/short ratios above a threshold precede liquidation cascades (H3)?

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``funding_rate_8h`` and a long/short ratio column).
    cascades : polars.DataFrame
        Cascade events with ``ts`` (the row at whose close the cascade is known), e.g.
        :func:`research.events.detect_liquidation_prints`.
    horizon_hours : int
        Outcome: a cascade in rows ``t+1 .. t+H`` after the signal row ``t``.
    ls_threshold : float
        Long/short ratio threshold (the article names 1.5).
    ls_column : str
        ``"auto"`` (``account_ls_ratio``, else ``top_trader_ls_ratio``) or a column name.
    funding_threshold : float, optional
        8h funding rate above which funding is "extreme"; default: the ``funding_quantile`` quantile
        of the sample (the article's 0.5 % per period is never reached in BTCUSDT).
    signal : {"both", "either", "funding", "ls"}
        The rule whose precision and recall are reported.
    hac_lags : int, optional
        Newey-West lags for the logit (default ``horizon_hours``: the outcome windows overlap).
    """
    who = "crowding_early_warning"
    require(panel, ["ts", "funding_rate_8h"], who)
    if signal not in ("both", "either", "funding", "ls"):
        raise HypothesisError(f"{who}: signal={signal!r}; use 'both', 'either', 'funding' or 'ls'")
    if "ts" not in cascades.columns:
        raise HypothesisError(f"{who}: cascades has no column 'ts'; pass research.events.detect_liquidation_prints(panel)")
    ls_column = _pick_ls_column(panel, ls_column)
    params = {"horizon_hours": horizon_hours, "ls_threshold": ls_threshold, "ls_column": ls_column,
              "funding_threshold": funding_threshold, "funding_quantile": funding_quantile, "signal": signal,
              "hac_lags": hac_lags}
    panel = sorted_panel(panel)
    n = panel.height
    notes: list[str] = []
    f = col(panel, "funding_rate_8h")
    ls = col(panel, ls_column)
    if funding_threshold is None:
        fin = f[np.isfinite(f)]
        funding_threshold = float(np.quantile(fin, funding_quantile)) if fin.size else float("nan")
        notes.append(f"funding threshold = {funding_quantile:.0%} quantile of the sample = {funding_threshold:.6f} per 8 h "
                     f"(the article's 0.5 % = 0.005 is exceeded in {int(np.sum(fin >= 0.005))} of {fin.size} hours)")
    idx = rows_of(hours(panel), cascades["ts"]) if cascades.height else np.zeros(0, int)
    ind = np.zeros(n, bool)
    ind[idx[idx >= 0]] = True
    liq_cov = panel["has_liq"].to_numpy() if "has_liq" in panel.columns else np.ones(n, bool)
    y = forward_any(ind, horizon_hours)
    has_ls = bool(np.isfinite(ls).any())
    if not has_ls:
        notes.append(f"no long/short ratio in the data ({ls_column} is empty: positioning not imported): only the "
                     "funding signal is tested")
        if signal in ("both", "ls"):
            signal = "funding"
            params["signal_used"] = signal
    fe = f >= funding_threshold
    le = ls >= ls_threshold
    ok = np.isfinite(y) & np.isfinite(f) & (np.isfinite(ls) if has_ls else True) & liq_cov
    # the outcome needs liquidation coverage over the whole forward window
    ok &= forward_any(~liq_cov, horizon_hours) == 0
    yb = y == 1
    base = float(np.mean(yb[ok])) if ok.sum() else float("nan")
    rates = _rates(yb, ok, fe, le, n, funding_threshold, ls_column, ls_threshold, base)
    s = {"funding": fe, "ls": le, "both": fe & le, "either": fe | le}[signal]
    casc_rows = np.flatnonzero(ind & liq_cov)
    s_def = s & np.isfinite(f) & (np.isfinite(ls) if has_ls else True)
    warned = backward_any(s_def, horizon_hours)[casc_rows] if casc_rows.size else np.zeros(0, bool)
    tp = int(np.sum(yb[ok & s]))
    rule = {"signal": signal, "precision": tp / int((ok & s).sum()) if (ok & s).sum() else float("nan"),
            "recall": float(np.mean(warned)) if warned.size else float("nan"),
            "cascades": int(casc_rows.size), "cascades_warned": int(np.sum(warned)),
            "signal_hours": int((ok & s).sum()), "hours": int(ok.sum()), "base_rate": base}
    logit = _signal_logit(yb, ok, s, signal, int(hac_lags if hac_lags is not None else horizon_hours), notes)
    return CrowdingResult(rates=rates, logit=logit, rule=rule,
                          thresholds={"funding_rate_8h": funding_threshold, ls_column: ls_threshold},
                          params=params, notes=notes, synthetic=is_synthetic(panel))


def crowding_study(inputs, *, cascade_side: str = "long", cascade_k: float = 5.0, cascade_window_hours: int = 720,
                   cascade_spacing_hours: int = 24, **params) -> CrowdingResult:
    """Notebook 22: detect liquidation cascades (first print of each cluster) and run :func:`crowding_early_warning`."""
    from research.events import detect_liquidation_prints

    cascades = detect_liquidation_prints(inputs.panel, side=cascade_side, k=cascade_k, window_hours=cascade_window_hours,
                                         min_spacing_hours=cascade_spacing_hours, keep="first")
    return crowding_early_warning(inputs.panel, cascades, **params)
