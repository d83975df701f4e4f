"""H4: are volume, |return| and return different around the 00/08/16 UTC funding settlements?"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats as sps

from research.db import is_synthetic
from research.results import Results
from research.stats import conclude, finite_or_none, fmt, nanmean

from .common import col, require, sorted_panel

__all__ = ["SettlementResult", "settlement_hours", "settlement_study"]


@dataclass
class SettlementResult(Results):
    """H4 results.

    Attributes
    ----------
    comparison : polars.DataFrame
        Per metric: mean in/out of the settlement windows, difference, Welch t, Mann-Whitney U and
        the HAC OLS estimate of the difference with its CI and p-value.
    profile : polars.DataFrame
        Per metric and UTC hour: mean with HAC 95 % CI (OLS on hour dummies), ``settlement`` flag.
    contrast : polars.DataFrame
        Per metric: settlement hours vs the hours 2-3 away (a local contrast that absorbs smooth
        intraday seasonality), HAC, and the joint F-test of no hour-of-day effect.
    """

    comparison: pl.DataFrame
    profile: pl.DataFrame
    contrast: pl.DataFrame
    params: dict
    synthetic: bool = False

    _frame_fields = ("comparison", "profile", "contrast")
    _figure = "hour_profile"
    key = "settlement_hours"

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        lines = ["H4 funding settlement hours", "=" * 27]
        for r in self.comparison.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} in {fmt(r['mean_in'])} vs out {fmt(r['mean_out'])}: diff {fmt(r['diff'])} "
                         f"(HAC CI [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}], p={fmt(r['p_hac'])}; Welch p={fmt(r['p_welch'])}, "
                         f"MW p={fmt(r['p_mannwhitney'])})")
        for r in self.contrast.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} settlement vs hours 2-3 away: {fmt(r['contrast'])} (p={fmt(r['pvalue'])}); "
                         f"hour-of-day F p={fmt(r['p_hour_f'])}")
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_hour_profile(self.profile, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        labels = {"log_volume": "log perp volume", "abs_ret": "|hourly log return|", "ret": "hourly log return"}
        for r in self.comparison.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"{labels.get(r['metric'], r['metric'])} differs in the settlement hours ±{self.params['window']} "
                           f"({', '.join(f'{h:02d}' for h in self.params['settlement_hours'])} UTC) from other hours",
                effect=finite_or_none(r["diff"]), ci_low=finite_or_none(r["ci_low"]), ci_high=finite_or_none(r["ci_high"]), pvalue=finite_or_none(r["p_hac"]),
                n_events=int(r["n_in"]), test=f"OLS on a settlement-window dummy, HAC ({self.params['hac_lags']} lags); "
                f"Welch p={fmt(r['p_welch'])}, Mann-Whitney p={fmt(r['p_mannwhitney'])}",
                effect_label="mean in window - mean outside", conclusion=conclude(r["p_hac"], r["n_in"], r["n_out"])))
        return out

def _window_test(name: str, y: np.ndarray, ok: np.ndarray, inw: np.ndarray, hac_lags: int) -> dict:
    """In-window vs out-of-window: means, HAC OLS on a window dummy, Welch t and Mann-Whitney U."""
    import statsmodels.api as sm

    a, b = y[ok & inw], y[ok & ~inw]
    welch = sps.ttest_ind(a, b, equal_var=False) if a.size > 1 and b.size > 1 else None
    mw = sps.mannwhitneyu(a, b, alternative="two-sided") if a.size and b.size else None
    X = np.column_stack([np.ones(int(ok.sum())), inw[ok].astype(float)])
    fit = sm.OLS(y[ok], X).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lags})
    ci = fit.conf_int()[1]
    return {"metric": name, "n_in": int(a.size), "n_out": int(b.size), "mean_in": nanmean(a),
            "mean_out": nanmean(b), "diff": float(fit.params[1]), "se_hac": float(fit.bse[1]),
            "ci_low": float(ci[0]), "ci_high": float(ci[1]), "p_hac": float(fit.pvalues[1]),
            "t_welch": float(welch.statistic) if welch else np.nan,
            "p_welch": float(welch.pvalue) if welch else np.nan,
            "u_mannwhitney": float(mw.statistic) if mw else np.nan,
            "p_mannwhitney": float(mw.pvalue) if mw else np.nan}


def _hour_profile(name: str, y, ok, D, hod, inw, near, ring, hac_lags: int) -> tuple[list[dict], dict]:
    """OLS on hour dummies (HAC): per-hour means, the joint F-test and the settlement-vs-ring contrast."""
    import statsmodels.api as sm

    Dk = D[ok]
    present = Dk.sum(axis=0) > 0
    fit_h = sm.OLS(y[ok], Dk[:, present]).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lags})
    cis = fit_h.conf_int()
    prof = [{"metric": name, "hour": int(h), "mean": float(fit_h.params[j]), "ci_low": float(cis[j, 0]),
             "ci_high": float(cis[j, 1]), "n": int(Dk[:, present][:, j].sum()),
             "settlement": bool(near[h]), "in_window": bool(np.any(inw[hod == h]))}
            for j, h in enumerate(np.arange(24)[present])]
    k = int(present.sum())
    # joint F-test: all hour means equal
    R = np.zeros((k - 1, k))
    R[np.arange(k - 1), 0] = 1
    R[np.arange(k - 1), np.arange(1, k)] = -1
    f_p = float(fit_h.f_test(R).pvalue) if k > 1 else np.nan
    c = np.zeros(k)
    sel_s, sel_r = near[present], ring[present]
    contrast_val, c_p = np.nan, np.nan
    if sel_s.any() and sel_r.any():
        c[sel_s] = 1 / sel_s.sum()
        c[sel_r] = -1 / sel_r.sum()
        tt = fit_h.t_test(c)
        contrast_val, c_p = float(np.squeeze(tt.effect)), float(np.squeeze(tt.pvalue))
    return prof, {"metric": name, "contrast": contrast_val, "pvalue": c_p, "p_hour_f": f_p}


def settlement_hours(
    panel: pl.DataFrame,
    *,
    settlement_hours=(0, 8, 16),
    window: int = 1,
    hac_lags: int = 24,
) -> SettlementResult:
    """Are volume, |return| and return different around the funding settlements (H4)?

    Hours within ``window`` of a settlement hour (circularly: 23, 0, 1 for 00 UTC and ``window=1``)
    are compared with all other hours: difference of means, Welch t-test, Mann-Whitney U, and OLS
    of the metric on a window dummy with HAC errors (``hac_lags``). An OLS on 24 hour dummies (HAC)
    gives the hour-of-day profile, a joint F-test of equal hour means, and a local contrast of the
    settlement hours against the hours 2-3 away from them.
    """

    who = "settlement_hours"
    require(panel, ["ts", "perp_ret", "perp_volume"], who)
    sh = sorted({int(h) % 24 for h in settlement_hours})
    sh = sorted({int(h) % 24 for h in settlement_hours})
    params = {"settlement_hours": sh, "window": int(window), "hac_lags": int(hac_lags)}
    panel = sorted_panel(panel)
    hod = panel["ts"].dt.hour().to_numpy().astype(int)
    dist = np.min(np.stack([np.minimum((hod - s) % 24, (s - hod) % 24) for s in sh]), axis=0)
    inw = dist <= window
    vol = col(panel, "perp_volume")
    ret = col(panel, "perp_ret")
    metrics = {"log_volume": np.where(vol > 0, np.log(np.where(vol > 0, vol, 1.0)), np.nan),
               "abs_ret": np.abs(ret), "ret": ret}
    D = (hod[:, None] == np.arange(24)[None, :]).astype(float)
    near = np.isin(np.arange(24), sh)
    ring = np.array([(min(np.min([(h - s) % 24, (s - h) % 24]) for s in sh) in (2, 3)) for h in range(24)])
    comp, prof, con = [], [], []
    for name, y in metrics.items():
        ok = np.isfinite(y)
        comp.append(_window_test(name, y, ok, inw, hac_lags))
        p, c = _hour_profile(name, y, ok, D, hod, inw, near, ring, hac_lags)
        prof += p
        con.append(c)
    return SettlementResult(comparison=pl.DataFrame(comp).with_columns(pl.col(pl.Float64).fill_nan(None)),
                            profile=pl.DataFrame(prof),
                            contrast=pl.DataFrame(con).with_columns(pl.col(pl.Float64).fill_nan(None)),
                            params=params, synthetic=is_synthetic(panel))


def settlement_study(inputs, **params) -> SettlementResult:
    """Notebook 23: :func:`settlement_hours` on ``inputs``' panel (``params`` are its keywords)."""
    return settlement_hours(inputs.panel, **params)
