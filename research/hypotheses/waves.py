"""H5: do liquidation prints cluster in time (arrive in waves)?"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats as sps

from research.db import is_synthetic
from research.errors import HypothesisError
from research.results import Results
from research.stats import TestStat, conclude, finite_or_none, fmt, wilson_ci
from research.stats_resampling import (
    rank_critical_value,
    strata_of,
    stratified_placements,
)

from .common import HOUR_US, col, forward_any, hours, require, rows_of, sorted_panel
from .power import design_mde, mde_fields

__all__ = ["LiquidationWavesResult", "liquidation_waves", "waves_study"]


@dataclass
class LiquidationWavesResult(Results):
    """H5 results.

    Attributes
    ----------
    acf : polars.DataFrame
        ``lag, acf_usd, acf_print, band`` (autocorrelations of log1p(USD) and of the print indicator,
        with the ±1.96/sqrt(n) band).
    ljung_box : dict of TestStat
        Ljung-Box Q at ``lags`` for both series.
    conditional : dict
        P(another print within k bars | print) vs the unconditional P(print within k bars): the
        within-volatility-regime permutation (``p_regime``, ``excess_regime``: the primary test), the
        plain shuffle (``p_permutation``, ``excess_shuffle``) and a binomial test.
    calibration : research.hypotheses.calibration.Calibration or None
        Empirical size of the primary test on placebo prints.
    series : polars.DataFrame
        The bucket series (``ts, usd, print``).
    """

    acf: pl.DataFrame
    ljung_box: dict
    conditional: dict
    series: pl.DataFrame
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False
    calibration: object = None
    _design: object = field(default=None, repr=False, compare=False)

    _frame_fields = ("acf", "series")
    _figure = "acf"
    key = "liquidation_waves"

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"measure": k, "value": finite_or_none(v) if not isinstance(v, str) else None}
                             for k, v in self.conditional.items() if not isinstance(v, (dict, TestStat))])

    def summary(self) -> str:
        c = self.conditional
        lines = ["H5 liquidation waves", "=" * 20,
                 (f"buckets: {self.series.height} of {self.params['bucket_hours']} h; prints: "
                  f"{int(self.series['print'].sum())} ({self.params['print_rule']})")]
        for k, t in self.ljung_box.items():
            lines.append(f"  Ljung-Box {k}: {t}")
        lines.append(f"  P(print within {self.params['k_bars']} bars | print) = {fmt(c['p_conditional'], '.3f')} vs "
                     f"unconditional {fmt(c['p_unconditional'], '.3f')} (ratio {fmt(c['ratio'], '.2f')}); "
                     f"binomial p={fmt(c['p_binomial'])}, shuffle p={fmt(c['p_permutation'])}")
        lines.append(f"  excess over the shuffle null {fmt(c['excess_shuffle'], '.3f')}; over the within-regime null "
                     f"{fmt(c['excess_regime'], '.3f')} ({self.params['regime_rule']}), p={fmt(c['p_regime'])} (primary)")
        if self.calibration is not None:
            lines.append(f"  primary test calibration: {self.calibration.summary()}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_acf(self.acf, synthetic=self.synthetic, bucket=f"{self.params['bucket_hours']:g}h")

    def verdicts(self):
        from research.records import Verdict

        c = self.conditional
        lb = self.ljung_box.get("print")
        cal = self.calibration
        p, crit = c["p_regime"], c["regime_critical"]
        if cal is not None and not cal.ok:
            p, crit = cal.calibrated_p, cal.critical_value
        # one-sided test, one-sided interval: the followed rate minus the critical rate of the same
        # null, so "lower bound > 0" and "p < 5 %" are one rule
        lo = c["p_conditional"] - crit if np.isfinite(crit) else None
        m = design_mde(self, method="shift")   # re-planting within-regime permutations costs minutes
        return [
            Verdict(hypothesis=(f"Liquidation prints cluster beyond volatility clustering: another print follows within "
                                f"{self.params['k_bars']} buckets more often than when prints are permuted within "
                                "volatility regimes"),
                    effect=finite_or_none(c["excess_regime"]),
                    ci_low=finite_or_none(lo), ci_high=None,
                    pvalue=finite_or_none(p), n_events=int(c["n_prints"]), primary=True,
                    **mde_fields(m),
                    size=finite_or_none(cal.size) if cal is not None else None,
                    n_placebo=int(cal.n_draws) if cal is not None else None,
                    test=(f"within-regime permutation ({self.params['n_perm']} draws, {self.params['regime_rule']}); "
                          + (cal.label() if cal is not None else "size not measured")
                          + f"; plain shuffle p={fmt(c['p_permutation'])}, binomial p={fmt(c['p_binomial'])}"),
                    effect_label=("P(print within k | print) - its mean under the within-regime null "
                                  "(one-sided 95 % lower bound)"),
                    conclusion=conclude(p, c["n_prints"], c["n_prints"])),
            Verdict(hypothesis=f"(secondary) The print indicator is autocorrelated (Ljung-Box, {self.params['lags']} lags)",
                    effect=finite_or_none(self.acf["acf_print"][1]) if self.acf.height > 1 else None,
                    pvalue=finite_or_none(lb.pvalue) if lb else None, n_events=int(c["n_prints"]),
                    test="Ljung-Box Q", effect_label="lag-1 autocorrelation of the print indicator",
                    conclusion=conclude(lb.pvalue if lb else None, 2, 2)),
        ]


def _print_indicator(s: pl.DataFrame, usd: np.ndarray, prints, side: str, print_quantile: float):
    """``(indicator, rule)``: buckets holding a detected print, or buckets at/above the quantile."""
    if prints is not None and prints.height:
        b = s["ts"].dt.epoch("us").to_numpy()
        p_t = prints["ts"].dt.epoch("us").to_numpy()
        # the bucket that ends in the print's hour: last bucket ending at or before the print row's close
        j = np.searchsorted(b, p_t, side="right") - 1
        ind = np.zeros(s.height, bool)
        ind[j[j >= 0]] = True
        return ind, f"buckets holding a detected print ({prints.height} events)"
    thr = float(np.quantile(usd, print_quantile))
    return usd >= thr, f"{side} USD >= {print_quantile:.0%} quantile = {thr:,.0f}"


def _autocorrelation(x: np.ndarray, ind: np.ndarray, nl: int) -> tuple[pl.DataFrame, dict]:
    """ACF of log1p(USD) and of the indicator with the ±1.96/sqrt(n) band, and Ljung-Box Q at ``nl``."""
    from statsmodels.tsa.stattools import acf as sm_acf

    acf_usd = sm_acf(x, nlags=nl, fft=True)
    acf_p = sm_acf(ind.astype(float), nlags=nl, fft=True) if ind.any() and not ind.all() else np.full(nl + 1, np.nan)
    band = 1.96 / math.sqrt(x.size)
    acf_df = pl.DataFrame({"lag": np.arange(nl + 1), "acf_usd": acf_usd, "acf_print": acf_p,
                           "band": np.full(nl + 1, band)}).with_columns(pl.col(pl.Float64).fill_nan(None))
    lb = {}
    for name, series, r in (("usd", x, acf_usd), ("print", ind.astype(float), acf_p)):
        if np.nanvar(series) == 0:
            continue
        # Ljung-Box Q from the FFT autocorrelations above: statsmodels' acorr_ljungbox recomputes them
        # by direct convolution, O(n^2) (seconds on a year of hourly buckets), for the same Q
        n, k = series.size, np.arange(1, nl + 1)
        q = float(n * (n + 2) * np.sum(r[1:nl + 1] ** 2 / (n - k)))
        lb[name] = TestStat(name=f"ljung_box_{name}", stat=q, pvalue=float(sps.chi2.sf(q, nl)),
                            df=float(nl), null=f"no autocorrelation up to lag {nl}", dist="chi2")
    return acf_df, lb


def _followed_rate(P: np.ndarray, k_bars: int) -> np.ndarray:
    """P(another print within ``k_bars`` | print) of each row of the (m, n) indicator matrix ``P``."""
    n = P.shape[1]
    cs = np.concatenate([np.zeros((P.shape[0], 1), np.int32), np.cumsum(P, axis=1, dtype=np.int32)], axis=1)
    t = np.arange(n)
    hi = t + k_bars
    valid = hi <= n - 1
    fw = (cs[:, hi[valid] + 1] - cs[:, t[valid] + 1]) > 0
    pv = P[:, valid]
    denom = pv.sum(axis=1)
    return np.where(denom > 0, (fw & pv).sum(axis=1) / np.maximum(denom, 1), np.nan)


def _followed_rate_pos(pos: np.ndarray, n: int, k_bars: int) -> np.ndarray:
    """:func:`_followed_rate` from sorted print positions (rows padded past ``n``, as
    :func:`research.stats_resampling.stratified_placements` gives them): a print at ``t <= n-1-k``
    counts, and is followed when the next print is at most ``k_bars`` later."""
    valid = pos <= n - 1 - k_bars
    fol = np.zeros(pos.shape, bool)
    if pos.shape[1] > 1:
        fol[:, :-1] = np.diff(pos, axis=1) <= k_bars
    denom = valid.sum(axis=1)
    return np.where(denom > 0, (fol & valid).sum(axis=1) / np.maximum(denom, 1), np.nan)


def _perm_rates(ind: np.ndarray, strata: np.ndarray, k_bars: int, n_perm: int, seed) -> np.ndarray:
    """The followed rate under ``n_perm`` permutations of ``ind`` within ``strata`` (one stratum: a plain shuffle);
    ``ind`` may be ``(d, n)``: ``d * n_perm`` rates, series by series."""
    pos, _ = stratified_placements(ind, strata, n_perm, seed)
    return _followed_rate_pos(pos, np.shape(ind)[-1], k_bars)


def _perm_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided permutation p-values ``(1 + #{null >= obs}) / (1 + n)`` for each row of ``null``."""
    k = np.sum(null >= observed[:, None] - 1e-12, axis=1)
    return np.where(np.isfinite(observed), (1 + k) / (1 + null.shape[1]), np.nan)


def _conditional(ind: np.ndarray, strata: np.ndarray, k_bars: int, n_perm: int, seed: int) -> dict:
    """P(another print within k bars | print) vs unconditional: binomial, shuffle and within-regime permutation."""
    fwd = forward_any(ind, k_bars)
    okf = np.isfinite(fwd)
    cond_mask = ind & okf
    n_pr = int(cond_mask.sum())
    k_cond = int(np.sum(fwd[cond_mask] == 1))
    p_unc = float(np.mean(fwd[okf] == 1)) if okf.sum() else float("nan")
    p_cond = k_cond / n_pr if n_pr else float("nan")
    binom = sps.binomtest(k_cond, n_pr, p_unc, alternative="greater").pvalue if n_pr and 0 < p_unc < 1 else float("nan")
    shuffle = _perm_rates(ind, np.zeros(ind.size, np.int64), k_bars, n_perm, seed)
    regime = _perm_rates(ind, strata, k_bars, n_perm, seed + 1)
    obs = np.array([p_cond])
    p_shuffle = float(_perm_p(obs, shuffle[None, :])[0]) if n_pr else float("nan")
    p_regime = float(_perm_p(obs, regime[None, :])[0]) if n_pr else float("nan")
    lo, hi_ = wilson_ci(k_cond, n_pr)
    fin = regime[np.isfinite(regime)]
    crit = rank_critical_value(fin, 0.05) if fin.size else float("nan")  # p_regime < 5 % iff p_cond > crit
    mean_s = float(np.nanmean(shuffle)) if np.isfinite(shuffle).any() else float("nan")
    mean_r = float(np.nanmean(regime)) if np.isfinite(regime).any() else float("nan")
    return {"n_prints": n_pr, "k_followed": k_cond, "p_conditional": p_cond, "ci_low": lo, "ci_high": hi_,
            "p_unconditional": p_unc, "ratio": p_cond / p_unc if p_unc else float("nan"),
            "p_binomial": float(binom), "p_permutation": p_shuffle, "perm_mean": mean_s,
            "excess_shuffle": p_cond - mean_s, "p_regime": p_regime, "regime_mean": mean_r,
            "excess_regime": p_cond - mean_r, "regime_critical": float(crit)}


def _regimes(panel: pl.DataFrame, bucket_ts: pl.Series, rv_hours: int, n_regimes: int):
    """Volatility regime of each bucket: decile of the perp return's realised volatility over the
    ``rv_hours`` hours before the bucket (known at its start, so the bucket's own move is not in it)."""
    from .calibration import _trailing_vol

    nan = np.full(bucket_ts.len(), np.nan)
    if "perp_ret" not in panel.columns or n_regimes <= 1:
        return np.zeros(bucket_ts.len(), np.int64), nan, "one regime (no perp returns in the panel)"
    # rv_hours are clock hours: on coarser bars they are fewer rows (at least 2 returns)
    h = hours(panel)
    bar_h = float(np.median(np.diff(h))) if h.size > 1 else 1.0
    n_rows = max(2, round(float(rv_hours) / max(bar_h, 1.0)))
    rv = _trailing_vol(col(panel, "perp_ret"), n_rows)
    at = rows_of(h, bucket_ts)
    rvb = np.where(at >= 0, rv[np.maximum(at, 0)], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rv = np.where(rvb > 0, np.log(rvb), np.nan)
    span = f"{rv_hours} h" if n_rows * bar_h == float(rv_hours) else f"{n_rows * bar_h:g} h ({n_rows} bars)"
    return (strata_of(rvb, int(n_regimes)), log_rv,
            f"{n_regimes} quantile bins of the {span} trailing realised volatility")


def waves_design(ind: np.ndarray, strata: np.ndarray, log_rv: np.ndarray, *, k_bars: int, n_perm: int,
                 observed: dict):
    """H5's primary test as a :class:`~research.hypotheses.calibration.PrimaryDesign`.

    Null draws are placebo prints with no clustering beyond volatility: independent Bernoulli draws
    whose probability follows a logit of the real prints on the log trailing volatility (a smooth
    dependence the regime bins only approximate, so the size check is not circular). Each draw is
    tested with ``n_perm`` within-regime permutations. Planting an effect ``pi``: each print spawns
    one extra print at a uniform lag 1..``k_bars`` with probability ``pi``.
    """
    from .calibration import PrimaryDesign

    ok = np.isfinite(log_rv)
    z = np.where(ok, (log_rv - np.nanmean(log_rv)) / (np.nanstd(log_rv) or 1.0), 0.0)
    a, b = _logit_1d(ind.astype(float), z)
    prob = 1 / (1 + np.exp(-(a + b * z)))

    def null_draws(m, rng):
        return rng.random((m, ind.size)) < prob[None, :]

    def statistic(P, chunk: int = 20):
        obs = _followed_rate(P, k_bars)
        pv = np.empty(P.shape[0])
        for i in range(0, P.shape[0], chunk):  # chunks bound memory (draws x permutations x buckets)
            blk = P[i:i + chunk]
            perm = _perm_rates(blk, strata, k_bars, n_perm, i).reshape(blk.shape[0], n_perm)
            pv[i:i + chunk] = _perm_p(obs[i:i + chunk], perm)
        return obs, pv, obs

    def plant(P, pi, rng):
        P = P.copy()
        r, t = np.nonzero(P)
        spawn = rng.random(r.size) < pi
        tt = t[spawn] + rng.integers(1, k_bars + 1, spawn.sum())
        keep = tt < P.shape[1]
        P[r[spawn][keep], tt[keep]] = True
        return P

    return PrimaryDesign(test="H5 within-volatility-regime permutation of the followed rate",
                         effect_label="share of prints spawning another within k buckets", observed=observed,
                         null_draws=null_draws, statistic=statistic, plant=plant,
                         design={"kind": "placebo prints ~ Bernoulli(logit of log trailing RV)", "logit": [a, b],
                                 "n_perm": int(n_perm), "k_bars": int(k_bars)})


def _logit_1d(y: np.ndarray, z: np.ndarray, iters: int = 25) -> tuple[float, float]:
    """Intercept and slope of a logit of ``y`` on ``z`` by Newton's method (no separation handling needed:
    a near-constant fit just saturates)."""
    beta = np.array([math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6)), 0.0])
    X = np.column_stack([np.ones(z.size), z])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ beta)))
        W = p * (1 - p) + 1e-9
        step = np.linalg.solve(X.T @ (W[:, None] * X) + 1e-9 * np.eye(2), X.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return float(beta[0]), float(beta[1])


def liquidation_waves(
    panel: pl.DataFrame,
    *,
    side: str = "total",
    prints: pl.DataFrame | None = None,
    print_quantile: float = 0.95,
    k_bars: int = 3,
    lags: int = 10,
    n_perm: int = 2000,
    seed: int = 7,
    rv_hours: int = 24,
    n_regimes: int = 10,
    n_draws: int = 200,
    n_perm_placebo: int = 199,
) -> LiquidationWavesResult:
    """Do liquidation prints cluster in time (H5)?

    The liquidation series is taken at its native bucket size (rows of the panel where a bucket
    ends; 1 h on the simulated market, 4 h for CoinGlass). A *print* is a bucket whose USD
    (``side``: long, short or total) is at or above the ``print_quantile`` quantile, or, when
    ``prints`` (e.g. :func:`research.events.detect_liquidation_prints`) is given, a bucket holding
    one of its ``ts``.

    **Primary test**: P(another print within ``k_bars`` | print) against a null that keeps
    volatility clustering: the indicator is permuted ``n_perm`` times *within volatility regimes*
    (``n_regimes`` quantile bins of the perp's realised volatility over the ``rv_hours`` before each
    bucket: known at its start), so prints that cluster only because volatile days cluster are not
    evidence of waves. (A week-long window, ``rv_hours=168``, barely moves the excess on the real
    pack; a day captures the volatility bursts the prints sit in.)
    Its empirical size is measured on ``n_draws`` placebo print series with no clustering beyond
    volatility (:func:`waves_design`, ``n_perm_placebo`` permutations each); the verdict uses the
    calibrated p-value when the size is outside 3.5-7.5 % (``n_draws=0`` skips it).

    Secondary: Ljung-Box on log1p(USD) and on the indicator, a one-sided binomial test against the
    unconditional rate and the plain shuffle (which ignores volatility clustering).
    """
    who = "liquidation_waves"
    require(panel, ["ts", "liq_long_usd", "liq_short_usd"], who)
    if side not in ("long", "short", "total"):
        raise HypothesisError(f"{who}: side={side!r}; use 'long', 'short' or 'total'")
    panel = sorted_panel(panel)
    usd_expr = {"long": pl.col("liq_long_usd"), "short": pl.col("liq_short_usd"),
                "total": pl.col("liq_long_usd") + pl.col("liq_short_usd")}[side]
    s = panel.select("ts", usd_expr.cast(pl.Float64).alias("usd")).filter(
        pl.col("usd").is_not_null() & pl.col("usd").is_not_nan())
    if s.height < 3 * max(lags, k_bars) + 10:
        raise HypothesisError(f"{who}: only {s.height} liquidation buckets in the panel; import liquidations "
                              "(research import liquidations ... / research sample) or widen start/end")
    step_h = float(np.median(np.diff(s["ts"].dt.epoch("us").to_numpy())) / HOUR_US)
    usd = s["usd"].to_numpy().astype(float)
    ind, rule = _print_indicator(s, usd, prints, side, print_quantile)
    s = s.with_columns(pl.Series("print", ind))
    nl = min(lags, usd.size // 4)
    acf_df, lb = _autocorrelation(np.log1p(usd), ind, nl)
    strata, log_rv, regime_rule = _regimes(panel, s["ts"], rv_hours, n_regimes)
    s = s.with_columns(pl.Series("regime", strata))
    params = {"side": side, "print_quantile": print_quantile, "k_bars": k_bars, "lags": nl, "n_perm": n_perm,
              "seed": seed, "bucket_hours": step_h, "print_rule": rule, "rv_hours": rv_hours, "n_regimes": n_regimes,
              "regime_rule": regime_rule, "n_draws": n_draws, "n_perm_placebo": n_perm_placebo}
    cond = _conditional(ind, strata, k_bars, n_perm, seed)
    notes, cal, design = [], None, None
    if cond["n_prints"] >= 2 and np.isfinite(log_rv).any():
        design = waves_design(ind, strata, log_rv, k_bars=k_bars, n_perm=n_perm_placebo,
                              observed={"effect": cond["excess_regime"], "stat": cond["p_conditional"],
                                        "pvalue": cond["p_regime"]})
    if design is not None and n_draws > 0:
        from .calibration import calibrate_design

        cal = calibrate_design(design, n_draws=n_draws, seed=seed)
        if cal.warning:
            notes.append(cal.warning)
    return LiquidationWavesResult(acf=acf_df, ljung_box=lb, conditional=cond, series=s, params=params, notes=notes,
                                  synthetic=is_synthetic(panel), calibration=cal, _design=design)


def waves_study(inputs, *, print_source: str = "detector", print_k: float = 5.0, side: str = "total",
                **params) -> LiquidationWavesResult:
    """Notebook 24: prints from the detector (``print_source="detector"``) or the quantile rule, then
    :func:`liquidation_waves` (``params`` are its keywords)."""
    from research.events import detect_liquidation_prints

    prints = None
    if print_source == "detector":
        prints = detect_liquidation_prints(inputs.panel, side="long" if side == "total" else side, k=print_k,
                                           min_spacing_hours=0)
    return liquidation_waves(inputs.panel, side=side, prints=prints, **params)
