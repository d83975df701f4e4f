"""H3: do funding extremes and long/short ratios above 1.5 precede liquidation cascades?

The thresholds are the articles' own, absolute: funding at or above the venue's neutral rate times
a factor (neutral = Binance's base rate, 0.01 % per 8 h), the article's "0.5 % per period", and a
long/short ratio of 1.5 on every ratio the data has. Each condition is tested at its inputs' own
frequency (funding changes every 8 h, positioning ratios daily): the rows are subsampled to that
grid, the outcome is a cascade in the next ``horizon_hours``, and a linear probability model (the
risk difference) gets Bartlett HAC errors with enough lags to cover the overlapping outcome windows
and the slowest input. A condition that holds in (nearly) all or no rows is "not testable".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.db import is_synthetic
from research.errors import HypothesisError
from research.results import Results
from research.stats import NotTestable, conclude, finite_or_none, fmt, wilson_ci
from research.stats_resampling import (
    forward_any_rows,
    hac_ols,
    nw_lags,
    rotation_hac_test,
)

from .common import backward_any, col, hours, require, rows_of, sorted_panel
from .power import design_mde, mde_fields

__all__ = [
    "ARTICLE_FUNDING",
    "LS_RATIOS",
    "NEUTRAL_FUNDING",
    "CrowdingResult",
    "crowding_design",
    "crowding_early_warning",
    "crowding_study",
]

#: Binance's neutral funding (interest 0.03 %/day, premium 0): 0.01 % per 8 h
NEUTRAL_FUNDING = 0.0001
#: "elevated funding rates - typically exceeding 0.5 % per period" (article 002)
ARTICLE_FUNDING = 0.005
#: the long/short ratios the articles' 1.5 can apply to, as the panel names them
LS_RATIOS = {"top_trader_ls_ratio": "top-trader position L/S", "top_trader_account_ls_ratio": "top-trader account L/S",
             "account_ls_ratio": "global account L/S"}
#: a condition holding in fewer than this share of rows (or more than 1 minus it) is not testable
DEGENERATE_SHARE = 0.02


@dataclass
class CrowdingResult(Results):
    """H3 results (p-values: the HAC t among rotations of the signal).

    Attributes
    ----------
    rates : polars.DataFrame
        One row per condition: grid step, rows, signal share, P(cascade within H | signal) (the
        precision), | no signal, the base rate, lift, risk difference with HAC CI and p, recall,
        ``testable`` and ``reason``.
    rule : dict
        The primary condition's row.
    thresholds : dict
        Neutral funding, factors, the article's level and its maximum in the data, L/S threshold.
    calibration : research.hypotheses.calibration.Calibration or None
        Empirical size of the primary test on rotated cascades (shuffled time).
    """

    rates: pl.DataFrame
    rule: dict
    thresholds: dict
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False
    calibration: object = None
    _design: object = field(default=None, repr=False, compare=False)

    _frame_fields = ("rates",)
    _figure = "crowding_rates"
    key = "crowding_early_warning"

    def to_frame(self) -> pl.DataFrame:
        return self.rates

    def summary(self) -> str:
        H = self.params["horizon_hours"]
        lines = ["H3 crowding as early warning", "=" * 28, f"thresholds: {self.thresholds}"]
        for r in self.rates.iter_rows(named=True):
            if not r["testable"]:
                lines.append(f"  {r['label']:<44} {r['reason']}")
                continue
            lines.append(f"  {r['label']:<44} every {r['step_hours']} h, {r['n_signal']}/{r['n']} rows: "
                         f"P(cascade in {H} h) {fmt(r['precision'], '.3f')} vs {fmt(r['rate_other'], '.3f')} "
                         f"(base {fmt(r['base_rate'], '.3f')}, lift {fmt(r['lift'], '.2f')}); diff {fmt(r['risk_diff'], '.3f')} "
                         f"[{fmt(r['rot_ci_low'], '.3f')}, {fmt(r['rot_ci_high'], '.3f')}] rotation p={fmt(r['p_rotation'])} "
                         f"(HAC({r['hac_lags']}) normal p={fmt(r['pvalue'])}); "
                         f"recall {fmt(r['recall'], '.2f')}")
        if self.calibration is not None:
            lines.append(f"  primary test calibration: {self.calibration.summary()}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        t = self.rates.filter(pl.col("testable"))
        base = t["base_rate"][0] if t.height else None
        frame = pl.concat([
            pl.DataFrame({"group": ["base rate"], "n": [int(t["n"][0]) if t.height else 0], "rate": [base],
                          "ci_low": [base], "ci_high": [base]}, schema_overrides={"rate": pl.Float64, "ci_low": pl.Float64,
                                                                                   "ci_high": pl.Float64}),
            t.select(pl.col("label").alias("group"), pl.col("n_signal").alias("n"), pl.col("precision").alias("rate"),
                     pl.col("precision_ci_low").alias("ci_low"), pl.col("precision_ci_high").alias("ci_high"))],
            how="vertical_relaxed")
        return plots.plot_conditional_rates(
            frame, title=f"P(liquidation cascade within {self.params['horizon_hours']} h) given crowding",
            y_title="share of grid rows", baseline_group="base rate", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        H = self.params["horizon_hours"]
        for r in self.rates.iter_rows(named=True):
            primary = r["condition"] == self.rule.get("condition")
            hyp = (("" if primary else "(secondary) ") + f"{r['label']} precedes liquidation cascades within {H} h")
            if not r["testable"]:
                out.append(Verdict(hypothesis=hyp, effect=None, n_events=int(r["cascades"] or 0),
                                   test="risk difference, HAC", effect_label="P(cascade | signal) - P(cascade | no signal)",
                                   conclusion=r["reason"]))
                continue
            # the p-value among signal rotations, and the interval with the same rotation critical value
            p, lo, hi = r["p_rotation"], r["rot_ci_low"], r["rot_ci_high"]
            cal = self.calibration
            test = f"; p among {self.params['n_rotations']} signal rotations (HAC normal p={fmt(r['pvalue'])})"
            if primary and cal is not None:
                test += "; " + cal.label()
                if not cal.ok:
                    p = cal.calibrated_p
                    lo, hi = cal.interval(r["risk_diff"], r["se"])
            m = design_mde(self) if primary else {}
            out.append(Verdict(
                hypothesis=hyp, effect=finite_or_none(r["risk_diff"]), ci_low=finite_or_none(lo), ci_high=finite_or_none(hi),
                pvalue=finite_or_none(p), n_events=int(r["cascades"]), primary=primary,
                **mde_fields(m),
                size=finite_or_none(cal.size) if primary and cal is not None else None,
                n_placebo=int(cal.n_draws) if primary and cal is not None else None,
                test=(f"linear probability model on the {r['step_hours']} h grid of its inputs, HAC ({r['hac_lags']} lags)"
                      + test),
                effect_label="P(cascade | signal) - P(cascade | no signal)",
                conclusion=(f"precision {fmt(r['precision'], '.2f')} vs base rate {fmt(r['base_rate'], '.2f')}, recall "
                            f"{fmt(r['recall'], '.2f')}; " + conclude(p, int(r["n_signal"]), int(r["n"] - r["n_signal"])))))
        return out


# --------------------------------------------------------------------------------------------------
# conditions and their grids
# --------------------------------------------------------------------------------------------------
def _update_step(h: np.ndarray, x: np.ndarray) -> tuple[int, int]:
    """``(step, anchor)`` in hours: the usual spacing of an input's changes, and its phase."""
    ok = np.isfinite(x)
    xs, hs = x[ok], h[ok]
    if xs.size < 3:
        return 1, 0
    ch = hs[np.concatenate([[True], xs[1:] != xs[:-1]])]
    if ch.size <= 2:
        return 1, 0
    # the most common spacing of changes (a value can repeat, so spacings are multiples of the step)
    gaps, counts = np.unique(np.diff(ch), return_counts=True)
    step = int(max(1, gaps[np.argmax(counts)]))
    return step, int(np.bincount(ch % step).argmax())


def _conditions(panel, f, neutral, factors, ls_threshold, ratios):
    """``[(name, label, signal, defined, inputs)]`` of every condition the data allows."""
    out = []
    for k in factors:
        out.append((f"funding_x{k:g}", f"funding >= {k:g} x neutral ({k * neutral:.4%} / 8 h)",
                    f >= k * neutral - 1e-12, np.isfinite(f), ["funding_rate_8h"]))
    out.append(("funding_article", f"funding >= {ARTICLE_FUNDING:.1%} / 8 h (article)",
                f >= ARTICLE_FUNDING, np.isfinite(f), ["funding_rate_8h"]))
    for c in ratios:
        x = col(panel, c)
        out.append((f"ls_{c}", f"{LS_RATIOS.get(c, c)} >= {ls_threshold:g}", x >= ls_threshold, np.isfinite(x), [c]))
    if ratios:
        x = col(panel, ratios[0])
        fk = factors[0]
        fe = f >= fk * neutral - 1e-12
        le = x >= ls_threshold
        d = np.isfinite(f) & np.isfinite(x)
        lab = f"funding >= {fk:g} x neutral and {LS_RATIOS.get(ratios[0], ratios[0])} >= {ls_threshold:g}"
        out.append(("both", lab, fe & le, d, ["funding_rate_8h", ratios[0]]))
        out.append(("either", lab.replace(" and ", " or "), fe | le, d, ["funding_rate_8h", ratios[0]]))
    return out


class _Setup:
    """The hourly arrays a condition is tested on: cascades, coverage and the outcome."""

    def __init__(self, panel, cascades, horizon):
        self.h = hours(panel)
        n = panel.height
        idx = rows_of(self.h, cascades["ts"]) if cascades.height else np.zeros(0, int)
        self.ind = np.zeros(n, bool)
        self.ind[idx[idx >= 0]] = True
        self.cov = panel["has_liq"].fill_null(False).to_numpy() if "has_liq" in panel.columns else np.ones(n, bool)
        self.horizon = int(horizon)
        # usable outcome: liquidation coverage over the row and its whole forward window
        unc = forward_any_rows((~self.cov)[None, :], self.horizon)[0]
        self.ok_y = self.cov & (unc == 0)
        span = np.flatnonzero(self.cov)
        self.span = (int(span[0]), int(span[-1])) if span.size else (0, -1)


def _test(setup: _Setup, name, label, s, d, inputs, panel, neutral_info, n_rot) -> tuple[dict, dict | None]:
    """One condition's row (and the arrays its primary design needs)."""
    steps = [_update_step(setup.h, col(panel, c)) for c in inputs]
    step, anchor = min(steps)
    slowest = max(st for st, _ in steps)
    grid = ((setup.h - anchor) % step == 0) & d & setup.ok_y
    y = forward_any_rows(setup.ind[None, :], setup.horizon)[0]
    rows = np.flatnonzero(grid & np.isfinite(y))
    n = rows.size
    sig = s[rows].astype(float)
    n_sig = int(sig.sum())
    casc = np.flatnonzero(setup.ind & setup.cov)
    warned = backward_any(s & d, setup.horizon)[casc] if casc.size else np.zeros(0, bool)
    row = {"condition": name, "label": label, "inputs": ",".join(inputs), "step_hours": step, "n": n,
           "n_signal": n_sig, "share_signal": n_sig / n if n else math.nan, "precision": math.nan,
           "rate_other": math.nan, "base_rate": math.nan, "lift": math.nan, "risk_diff": math.nan, "se": math.nan,
           "stat": math.nan, "ci_low": math.nan, "ci_high": math.nan, "pvalue": math.nan, "hac_lags": 0,
           "precision_ci_low": math.nan, "precision_ci_high": math.nan,
           "p_rotation": math.nan, "rot_ci_low": math.nan, "rot_ci_high": math.nan,
           "recall": float(np.mean(warned)) if warned.size else math.nan, "cascades": int(casc.size),
           "cascades_warned": int(np.sum(warned)), "testable": False, "reason": ""}
    if name == "funding_article" and n_sig == 0:
        row["reason"] = str(NotTestable(f"never reached: funding peaked at {neutral_info['max_funding']:.4%} per 8 h"))
        return row, None
    share = n_sig / n if n else 0.0
    if n < 20 or n_sig < 5 or n - n_sig < 5 or share < DEGENERATE_SHARE or share > 1 - DEGENERATE_SHARE:
        row["reason"] = str(NotTestable(f"the condition holds in {n_sig} of {n} grid rows ({share:.0%}): "
                                        "(nearly) all or none"))
        return row, None
    Y = y[rows]
    lags = max(math.ceil(setup.horizon / step), math.ceil(slowest / step), nw_lags(n))
    X = np.column_stack([np.ones(n), sig])
    fit = hac_ols(X, Y, lags)
    lo, hi = fit.ci()
    base = float(Y.mean())
    prec = float(Y[sig == 1].mean())
    plo, phi = wilson_ci(int(Y[sig == 1].sum()), n_sig)
    row.update(precision_ci_low=plo, precision_ci_high=phi, precision=prec, rate_other=float(Y[sig == 0].mean()), base_rate=base,
               lift=prec / base if base > 0 else math.nan, risk_diff=float(fit.beta[1]), se=float(fit.se[1]),
               stat=float(fit.t[1]), ci_low=float(lo[1]), ci_high=float(hi[1]), pvalue=float(fit.pvalue[1]),
               hac_lags=int(lags), testable=True)
    test = rotation_hac_test(X, lags, n_rot, min_shift=168 // max(step, 1))
    _, p_rot, crit, _ = test(Y[:, None])
    rlo, rhi = row["risk_diff"] - crit[0] * row["se"], row["risk_diff"] + crit[0] * row["se"]
    row.update(p_rotation=float(p_rot[0]), rot_ci_low=float(rlo), rot_ci_high=float(rhi))
    return row, {"rows": rows, "X": X, "lags": lags, "signal_rows": rows[sig == 1], "test": test}


def crowding_design(setup: _Setup, arrays: dict, row: dict):
    """H3's primary test as a :class:`~research.hypotheses.calibration.PrimaryDesign`.

    The test: the risk difference's HAC t on the grid, with its p-value among rotations of the
    signal (:func:`research.stats_resampling.rotation_hac_test`). Null draws for its size: the hourly cascade indicator rebuilt
    from moving blocks of a week inside its coverage span (cascades keep their clustering, lose
    any link to the signal). Planting ``pi``: each signal grid row gains a cascade at a uniform lag
    of 1..H hours with probability ``pi``.
    """
    from research.stats_resampling import moving_blocks

    from .calibration import PrimaryDesign

    lo, hi = setup.span
    seg = np.arange(lo, hi + 1)
    rows, lags, srows = arrays["rows"], arrays["lags"], arrays["signal_rows"]
    H = setup.horizon
    test = arrays["test"]

    def null_draws(m, rng):
        idx = moving_blocks(seg.size, 168, m, rng)
        M = np.zeros((m, setup.ind.size), bool)
        M[:, seg] = setup.ind[seg][idx]
        return M

    def statistic(M):
        Y = forward_any_rows(M, H)[:, rows].T
        t, p, _, beta = test(Y)
        return t, p, beta

    def plant(M, pi, rng):
        M = M.copy()
        hit = rng.random((M.shape[0], srows.size)) < pi
        r, j = np.nonzero(hit)
        t = srows[j] + rng.integers(1, H + 1, r.size)
        ok = t < M.shape[1]
        M[r[ok], t[ok]] = True
        return M

    return PrimaryDesign(test=f"H3 risk difference ({row['condition']}), HAC t against signal rotations", observed={
        "effect": row["risk_diff"], "se": row["se"], "stat": row["stat"], "pvalue": row["p_rotation"]},
        effect_label="added P(cascade within H) per signal row", null_draws=null_draws, statistic=statistic,
        plant=plant, design={"kind": "cascades from moving blocks of 168 h; p from signal rotations",
                             "hac_lags": int(lags), "grid_rows": int(rows.size), "step_hours": row["step_hours"]})


def crowding_early_warning(
    panel: pl.DataFrame,
    cascades: pl.DataFrame,
    *,
    horizon_hours: int = 24,
    ls_threshold: float = 1.5,
    neutral_funding: float = NEUTRAL_FUNDING,
    funding_factors=(1.0, 2.0),
    signal: str = "both",
    n_rotations: int = 199,
    n_draws: int = 200,
    seed: int = 7,
) -> CrowdingResult:
    """Do funding above neutral and long/short ratios above 1.5 precede liquidation cascades (H3)?

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``funding_rate_8h``, and the long/short ratios it has).
    cascades : polars.DataFrame
        Cascade events with ``ts`` (the row at whose close the cascade is known), e.g.
        :func:`research.events.detect_liquidation_prints`.
    horizon_hours : int
        Outcome: a cascade in the ``H`` hours after a grid row.
    ls_threshold : float
        The articles' 1.5, applied to every ratio in :data:`LS_RATIOS` the panel has.
    neutral_funding : float
        The venue's neutral 8 h rate (Binance 0.01 %).
    funding_factors : sequence of float
        Conditions ``funding >= factor x neutral``; the first also enters ``both``/``either``.
    signal : {"both", "either", "funding", "ls"}
        The primary condition (``funding``: the first factor, ``ls``: the first ratio).
    n_rotations : int
        Rotations of the signal along its grid: the p-value of every condition's test.
    n_draws, seed : int
        Placebo draws (cascades rebuilt from week-long blocks) for the primary test's empirical
        size; 0 skips it.
    """
    who = "crowding_early_warning"
    require(panel, ["ts", "funding_rate_8h"], who)
    if signal not in ("both", "either", "funding", "ls"):
        raise HypothesisError(f"{who}: signal={signal!r}; use 'both', 'either', 'funding' or 'ls'")
    if "ts" not in cascades.columns:
        raise HypothesisError(f"{who}: cascades has no column 'ts'; pass research.events.detect_liquidation_prints(panel)")
    factors = tuple(float(k) for k in funding_factors) or (1.0,)
    panel = sorted_panel(panel)
    notes: list[str] = []
    f = col(panel, "funding_rate_8h")
    ratios = [c for c in LS_RATIOS if c in panel.columns and np.isfinite(col(panel, c)).any()]
    missing = [LS_RATIOS[c] for c in LS_RATIOS if c not in ratios]
    if missing:
        notes.append(f"not in the data: {', '.join(missing)} (no condition on them)")
    fmax = float(np.nanmax(f)) if np.isfinite(f).any() else math.nan
    info = {"max_funding": fmax}
    setup = _Setup(panel, cascades, horizon_hours)
    rows, arrays = [], {}
    for name, label, s, d, inputs in _conditions(panel, f, neutral_funding, factors, ls_threshold, ratios):
        r, a = _test(setup, name, label, s, d, inputs, panel, info, n_rotations)
        rows.append(r)
        arrays[name] = a
    by = {r["condition"]: r for r in rows}
    for combo in ("both", "either"):  # a combination of a degenerate component tests only the other one
        parts = [by.get(f"funding_x{factors[0]:g}"), by.get(f"ls_{ratios[0]}" if ratios else "")]
        bad = [q["label"] for q in parts if q is not None and not q["testable"]]
        if combo in by and by[combo]["testable"] and bad:
            by[combo].update(testable=False, reason=str(NotTestable(f"its component '{bad[0]}' is not testable")))
            arrays[combo] = None
    primary = {"both": "both", "either": "either", "funding": f"funding_x{factors[0]:g}",
               "ls": f"ls_{ratios[0]}" if ratios else "none"}[signal]
    if primary not in arrays:
        notes.append(str(NotTestable(f"primary condition '{signal}' needs a long/short ratio, none in the data")))
    rates = pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.col(pl.Float64).fill_nan(None))
    rule = next((r for r in rows if r["condition"] == primary), {"condition": primary})
    cal = design = None
    if arrays.get(primary) is not None:
        design = crowding_design(setup, arrays[primary], rule)
    if design is not None and n_draws > 0:
        from .calibration import calibrate_design

        cal = calibrate_design(design, n_draws=n_draws, seed=seed)
        if cal.warning:
            notes.append(cal.warning)
    params = {"horizon_hours": int(horizon_hours), "ls_threshold": ls_threshold, "neutral_funding": neutral_funding,
              "funding_factors": list(factors), "signal": signal, "n_rotations": int(n_rotations),
              "n_draws": int(n_draws), "seed": int(seed)}
    thresholds = {"neutral_funding_8h": neutral_funding, "funding_factors": list(factors),
                  "article_funding_8h": ARTICLE_FUNDING, "max_funding_8h": fmax, "ls_threshold": ls_threshold,
                  "ls_ratios": ratios}
    return CrowdingResult(rates=rates, rule=rule, thresholds=thresholds, params=params, notes=notes,
                          synthetic=is_synthetic(panel), calibration=cal, _design=design)


def crowding_study(inputs, *, cascade_side: str = "long", cascade_k: float = 5.0, cascade_window_hours: int = 720,
                   cascade_spacing_hours: int = 24, **params) -> CrowdingResult:
    """Notebook 22: detect liquidation cascades (first print of each cluster) and run :func:`crowding_early_warning`."""
    from research.events import detect_liquidation_prints

    cascades = detect_liquidation_prints(inputs.panel, side=cascade_side, k=cascade_k, window_hours=cascade_window_hours,
                                         min_spacing_hours=cascade_spacing_hours, keep="first")
    return crowding_early_warning(inputs.panel, cascades, **params)
