"""H4: are volume, |return| and return different around the 00/08/16 UTC funding settlements?"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats as sps

from research.db import is_synthetic
from research.errors import HypothesisError
from research.results import Results
from research.stats import NotTestable, conclude, finite_or_none, fmt, nanmean
from research.stats_resampling import hac_ols, moving_blocks

from .common import col, require, sorted_panel
from .power import design_mde, mde_fields

__all__ = ["PRIMARY", "SettlementResult", "settlement_hours", "settlement_study", "spot_control_design"]

#: the primary test's metric
PRIMARY = "perp_minus_spot"


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
    spot_control : polars.DataFrame
        The primary test and its two halves: the settlement-window coefficient for log perp volume,
        log spot volume and their difference (perp minus spot), with day fixed effects and smooth
        hour-of-day harmonics, HAC errors (see :func:`spot_control_design`). Empty without spot volume.
    calibration : research.hypotheses.calibration.Calibration or None
        Empirical size of the primary test on day-block placebo data (``n_draws``).
    """

    comparison: pl.DataFrame
    profile: pl.DataFrame
    contrast: pl.DataFrame
    params: dict
    synthetic: bool = False
    spot_control: pl.DataFrame | None = None
    calibration: object = None
    notes: list = field(default_factory=list)
    _design: object = field(default=None, repr=False, compare=False)
    #: why the panel's frequency cannot resolve settlement hours (None: it can)
    not_testable: str | None = None

    _frame_fields = ("spot_control", "comparison", "profile", "contrast")
    _figure = "hour_profile"
    key = "settlement_hours"

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        lines = ["H4 funding settlement hours", "=" * 27]
        for r in (self.spot_control.iter_rows(named=True) if self.spot_control is not None else ()):
            lines.append(f"  {r['metric']:<22} settlement-window coefficient {fmt(r['effect'])} (HAC se {fmt(r['se'])}, "
                         f"p={fmt(r['pvalue'])}; {r['n_days']} days, day FE + {self.params['harmonics']} harmonics)")
        if self.calibration is not None:
            lines.append(f"  primary test calibration: {self.calibration.summary()}")
        lines.append("  secondary (no spot control, intraday seasonality not removed):")
        for r in self.comparison.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} in {fmt(r['mean_in'])} vs out {fmt(r['mean_out'])}: diff {fmt(r['diff'])} "
                         f"(HAC CI [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}], p={fmt(r['p_hac'])}; Welch p={fmt(r['p_welch'])}, "
                         f"MW p={fmt(r['p_mannwhitney'])})")
        for r in self.contrast.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} settlement vs hours 2-3 away: {fmt(r['contrast'])} (p={fmt(r['pvalue'])}); "
                         f"hour-of-day F p={fmt(r['p_hour_f'])}")
        return "\n".join(lines)

    def figures(self) -> dict:
        return {} if self.not_testable else super().figures()

    def plot(self):
        from research import plots

        return plots.plot_hour_profile(self.profile, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = [v for v in [self._primary_verdict(Verdict)] if v is not None]
        if self.not_testable:
            return out
        labels = {"log_volume": "log perp volume", "abs_ret": "|hourly log return|", "ret": "hourly log return"}
        for r in self.comparison.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"(secondary, no spot control) {labels.get(r['metric'], r['metric'])} differs in the settlement hours ±{self.params['window']} "
                           f"({', '.join(f'{h:02d}' for h in self.params['settlement_hours'])} UTC) from other hours",
                effect=finite_or_none(r["diff"]), ci_low=finite_or_none(r["ci_low"]), ci_high=finite_or_none(r["ci_high"]), pvalue=finite_or_none(r["p_hac"]),
                n_events=int(r["n_in"]), test=f"OLS on a settlement-window dummy, HAC ({self.params['hac_lags']} lags); "
                f"Welch p={fmt(r['p_welch'])}, Mann-Whitney p={fmt(r['p_mannwhitney'])}",
                effect_label="mean in window - mean outside", conclusion=conclude(r["p_hac"], r["n_in"], r["n_out"])))
        return out

    def _primary_verdict(self, Verdict):
        hyp = ("Funding settlement raises perp volume beyond spot (perp minus spot log volume higher in the settlement "
               f"hours ±{self.params['window']}, net of day effects and smooth intraday seasonality)")
        row = (self.spot_control.filter(pl.col("metric") == PRIMARY)
               if self.spot_control is not None and self.spot_control.height else None)
        if row is None or not row.height:
            return Verdict(hypothesis=hyp, effect=None, n_events=0, test="perp minus spot, HAC",
                           effect_label="log volume, settlement window - other hours",
                           conclusion=str(NotTestable(self.not_testable or "no hours with both perp and spot volume")))
        r = row.row(0, named=True)
        cal = self.calibration
        p, lo, hi = r["pvalue"], r["ci_low"], r["ci_high"]
        if cal is not None and not cal.ok:
            p = cal.calibrated_p
            lo, hi = cal.interval(r["effect"], r["se"])
        m = design_mde(self)
        return Verdict(hypothesis=hyp, effect=finite_or_none(r["effect"]), ci_low=finite_or_none(lo),
                       ci_high=finite_or_none(hi), pvalue=finite_or_none(p), n_events=int(r["n_days"]), primary=True,
                       **mde_fields(m),
                       size=finite_or_none(cal.size) if cal is not None else None,
                       n_placebo=int(cal.n_draws) if cal is not None else None,
                       test=(f"OLS of log(perp/spot volume) on a settlement-window dummy, day fixed effects and "
                             f"{self.params['harmonics']} daily harmonics, HAC ({self.params['hac_lags']} lags); "
                             + (cal.label() if cal is not None else "size not measured")),
                       effect_label="perp minus spot log volume, settlement window - other hours",
                       conclusion=conclude(p, int(r["n_in"]), int(r["n_out"])))


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

def _hour_distance(hod: np.ndarray, sh) -> np.ndarray:
    """Circular distance in hours from each hour of day to the nearest settlement hour."""
    return np.min(np.stack([np.minimum((hod - s) % 24, (s - hod) % 24) for s in sh]), axis=0)


def _day_matrix(panel: pl.DataFrame, col_: str) -> tuple[np.ndarray, np.ndarray]:
    """``(log(col) per complete UTC day x 24 hours, day numbers)``: days with every hour positive."""
    h = panel["ts"].dt.epoch("us").to_numpy() // 3_600_000_000
    v = col(panel, col_)
    lv = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    days = np.unique(h // 24)
    M = np.full((days.size, 24), np.nan)
    M[np.searchsorted(days, h // 24), h % 24] = lv
    return M, days


def spot_control_design(panel: pl.DataFrame, *, settlement_hours=(0, 8, 16), window: int = 1, harmonics: int = 2,
                        hac_lags: int = 24, block_days: int = 7):
    """H4's primary test as a :class:`~research.hypotheses.calibration.PrimaryDesign`, and its table.

    The outcome is log perp volume minus log spot volume in each hour of the complete UTC days that
    have both (spot has the same intraday seasonality and no funding). It is regressed on a
    settlement-window dummy (hours within ``window`` of a settlement), ``harmonics`` pairs of daily
    harmonics (periods 24 h, 12 h, ...: smooth intraday seasonality; the 8 h harmonic is left out
    because it *is* the settlement cadence) and day fixed effects (day-of-week, trends), with
    Bartlett HAC errors (``hac_lags`` hours). Null draws keep the fitted seasonality and resample the
    residual days in moving blocks of ``block_days`` (each hour keeps its hour of day, the
    settlement coefficient is set to 0); planting adds ``effect`` log units in the window hours.

    Returns
    -------
    (PrimaryDesign or None, polars.DataFrame)
        The design (None without a complete day of perp and spot volume) and the rows for log perp,
        log spot and perp minus spot.
    """
    from .calibration import PrimaryDesign

    sh = sorted({int(h) % 24 for h in settlement_hours})
    if not 0 <= int(harmonics) <= 2:
        raise HypothesisError(f"settlement_hours: harmonics={harmonics} includes the 8 h harmonic, which is the "
                              "settlement cadence itself; use 0, 1 or 2")
    perp, _ = _day_matrix(panel, "perp_volume")
    spot, _ = _day_matrix(panel, "spot_volume")
    hod = np.arange(24)
    settle = (_hour_distance(hod, sh) <= window).astype(float)
    harm = [f(2 * np.pi * k * hod / 24) for k in range(1, harmonics + 1) for f in (np.cos, np.sin)]
    X24 = np.column_stack([settle, *harm])
    X24 = X24 - X24.mean(axis=0)  # within-day transformation (day fixed effects) of every regressor
    rows, fits = [], {}
    keep = np.isfinite(perp).all(axis=1) & np.isfinite(spot).all(axis=1)
    n_days = int(keep.sum())
    for name, M in (("log_perp_volume", perp), ("log_spot_volume", spot), (PRIMARY, perp - spot)):
        if n_days < 2 * block_days:
            continue
        Yd = M[keep] - M[keep].mean(axis=1, keepdims=True)
        X = np.tile(X24, (n_days, 1))
        f = hac_ols(X, Yd.ravel(), hac_lags)
        lo, hi = f.ci()
        fits[name] = (Yd, f)
        rows.append({"metric": name, "effect": float(f.beta[0]), "se": float(f.se[0]), "stat": float(f.t[0]),
                     "pvalue": float(f.pvalue[0]), "ci_low": float(lo[0]), "ci_high": float(hi[0]),
                     "n_days": n_days, "n_in": int(settle.sum()) * n_days, "n_out": int((1 - settle).sum()) * n_days})
    schema = {"metric": pl.String, "effect": pl.Float64, "se": pl.Float64, "stat": pl.Float64, "pvalue": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "n_days": pl.Int64, "n_in": pl.Int64, "n_out": pl.Int64}
    table = pl.DataFrame(rows, schema=schema)
    if PRIMARY not in fits:
        return None, table
    Yd, f = fits[PRIMARY]
    e = Yd - (X24 @ f.beta)[None, :]  # residual days, (n_days, 24)
    null_mean = X24[:, 1:] @ f.beta[1:]  # the fitted seasonality, settlement coefficient 0
    X = np.tile(X24, (n_days, 1))

    def null_draws(m, rng):
        idx = moving_blocks(n_days, block_days, m, rng)  # (m, n_days)
        return (null_mean[None, None, :] + e[idx]).reshape(m, -1).T  # (n, m)

    def statistic(Y):
        g = hac_ols(X, Y, hac_lags, coef=0)
        return g.t[0], g.pvalue[0], g.beta[0]

    def plant(Y, effect, rng):
        return Y + effect * X[:, :1]

    r = table.filter(pl.col("metric") == PRIMARY).row(0, named=True)
    design = PrimaryDesign(
        test="H4 perp-minus-spot settlement coefficient, HAC t", effect_label="log volume (perp minus spot)",
        observed={"effect": r["effect"], "se": r["se"], "stat": r["stat"], "pvalue": r["pvalue"]},
        null_draws=null_draws, statistic=statistic, plant=plant,
        design={"kind": "moving blocks of residual days, settlement coefficient 0", "block_days": int(block_days),
                "n_days": n_days, "hac_lags": int(hac_lags), "harmonics": int(harmonics)})
    return design, table


def settlement_hours(
    panel: pl.DataFrame,
    *,
    settlement_hours=(0, 8, 16),
    window: int = 1,
    hac_lags: int = 24,
    harmonics: int = 2,
    block_days: int = 7,
    n_draws: int = 200,
    seed: int = 7,
) -> SettlementResult:
    """Is trading more intense around the funding settlements than funding-free spot (H4)?

    **Primary test** (:func:`spot_control_design`): the settlement-window coefficient of log perp
    volume minus log spot volume, with day fixed effects and smooth hour-of-day harmonics, HAC
    errors; its empirical size is measured on ``n_draws`` day-block placebo draws
    (:func:`research.hypotheses.calibration.calibrate_design`, ``seed``) and the verdict uses the
    calibrated p-value when the size is outside 3.5-7.5 % (``n_draws=0`` skips the calibration).

    Secondary, descriptive (no spot control, so intraday seasonality is *not* removed): hours
    within ``window`` of a settlement hour (circularly: 23, 0, 1 for 00 UTC and ``window=1``) vs all
    other hours for perp log volume, |return| and return (difference of means, Welch t,
    Mann-Whitney U, OLS on a window dummy with HAC errors), an OLS on 24 hour dummies (HAC) for the
    hour-of-day profile with a joint F-test, and a local contrast of the settlement hours against
    the hours 2-3 away from them.
    """
    from .calibration import calibrate_design

    who = "settlement_hours"
    require(panel, ["ts", "perp_ret", "perp_volume"], who)
    sh = sorted({int(h) % 24 for h in settlement_hours})
    params = {"settlement_hours": sh, "window": int(window), "hac_lags": int(hac_lags), "harmonics": int(harmonics),
              "block_days": int(block_days), "n_draws": int(n_draws), "seed": int(seed)}
    panel = sorted_panel(panel)
    step_h = (float(panel["ts"].diff().drop_nulls().median().total_seconds()) / 3600) if panel.height > 1 else 1.0
    if step_h > 1:
        # settlement hours +-window need hourly bars: on coarser bars every bar holds or straddles a
        # settlement, so any in/out contrast would be an artefact of the bar grid
        why = (f"the panel's bars are {step_h:g} h; settlement hours ±{int(window)} h need 1 h bars "
               "(run with interval=\"1h\")")
        empty = pl.DataFrame()
        return SettlementResult(comparison=empty, profile=empty, contrast=empty, params=params,
                                synthetic=is_synthetic(panel), spot_control=None, notes=[str(NotTestable(why))],
                                not_testable=why)
    notes = []
    design, spot_table = spot_control_design(panel, settlement_hours=sh, window=window, harmonics=harmonics,
                                             hac_lags=hac_lags, block_days=block_days)
    cal = None
    if design is None:
        notes.append(str(NotTestable("no complete UTC days with both perp and spot volume: the spot control "
                                     "(the primary test) cannot run")))
    elif n_draws > 0:
        cal = calibrate_design(design, n_draws=n_draws, seed=seed)
        if cal.warning:
            notes.append(cal.warning)
    hod = panel["ts"].dt.hour().to_numpy().astype(int)
    inw = _hour_distance(hod, sh) <= window
    vol = col(panel, "perp_volume")
    ret = col(panel, "perp_ret")
    metrics = {"log_volume": np.where(vol > 0, np.log(np.where(vol > 0, vol, 1.0)), np.nan),
               "abs_ret": np.abs(ret), "ret": ret}
    D = (hod[:, None] == np.arange(24)[None, :]).astype(float)
    near = np.isin(np.arange(24), sh)
    ring = np.isin(_hour_distance(np.arange(24), sh), (2, 3))
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
                            params=params, synthetic=is_synthetic(panel), spot_control=spot_table,
                            calibration=cal, notes=notes, _design=design)


def settlement_study(inputs, **params) -> SettlementResult:
    """Notebook 23: :func:`settlement_hours` on ``inputs``' panel (``params`` are its keywords)."""
    return settlement_hours(inputs.panel, **params)
