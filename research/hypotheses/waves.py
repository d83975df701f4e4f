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

from .common import HOUR_US, forward_any, require, sorted_panel

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
        P(another print within k bars | print) vs the unconditional P(print within k bars), with a
        binomial test and a shuffle permutation test.
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

    _frame_fields = ("acf", "series")
    _figure = "acf"
    key = "liquidation_waves"

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"measure": k, "value": finite_or_none(v) if not isinstance(v, str) else None}
                             for k, v in self.conditional.items() if not isinstance(v, (dict, TestStat))])

    def summary(self) -> str:
        c = self.conditional
        lines = ["H5 liquidation waves", "=" * 20,
                 f"buckets: {self.series.height} of {self.params['bucket_hours']} h; prints: {int(self.series['print'].sum())} "
                 f"({self.params['print_rule']})"]
        for k, t in self.ljung_box.items():
            lines.append(f"  Ljung-Box {k}: {t}")
        lines.append(f"  P(print within {self.params['k_bars']} bars | print) = {fmt(c['p_conditional'], '.3f')} vs "
                     f"unconditional {fmt(c['p_unconditional'], '.3f')} (ratio {fmt(c['ratio'], '.2f')}); "
                     f"binomial p={fmt(c['p_binomial'])}, shuffle p={fmt(c['p_permutation'])}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_acf(self.acf, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        c = self.conditional
        lb = self.ljung_box.get("print")
        return [
            Verdict(hypothesis=f"Liquidation prints cluster: another print follows within {self.params['k_bars']} bars more often than unconditionally",
                    effect=finite_or_none(c["p_conditional"] - c["p_unconditional"]) if c["p_conditional"] is not None else None,
                    ci_low=finite_or_none(c.get("ci_low") - c["p_unconditional"]) if c.get("ci_low") is not None else None,
                    ci_high=finite_or_none(c.get("ci_high") - c["p_unconditional"]) if c.get("ci_high") is not None else None,
                    pvalue=finite_or_none(c["p_permutation"]), n_events=int(c["n_prints"]),
                    test=f"shuffle permutation ({self.params['n_perm']} draws, seed {self.params['seed']}); binomial p={fmt(c['p_binomial'])}",
                    effect_label="P(print within k | print) - P(print within k)",
                    conclusion=conclude(c["p_permutation"], c["n_prints"], c["n_prints"])),
            Verdict(hypothesis=f"The print indicator is autocorrelated (Ljung-Box, {self.params['lags']} lags)",
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
    from statsmodels.stats.diagnostic import acorr_ljungbox
    from statsmodels.tsa.stattools import acf as sm_acf

    acf_usd = sm_acf(x, nlags=nl, fft=True)
    acf_p = sm_acf(ind.astype(float), nlags=nl, fft=True) if ind.any() and not ind.all() else np.full(nl + 1, np.nan)
    band = 1.96 / math.sqrt(x.size)
    acf_df = pl.DataFrame({"lag": np.arange(nl + 1), "acf_usd": acf_usd, "acf_print": acf_p,
                           "band": np.full(nl + 1, band)}).with_columns(pl.col(pl.Float64).fill_nan(None))
    lb = {}
    for name, series in (("usd", x), ("print", ind.astype(float))):
        if np.nanvar(series) == 0:
            continue
        t = acorr_ljungbox(series, lags=[nl])
        lb[name] = TestStat(name=f"ljung_box_{name}", stat=float(t["lb_stat"].iloc[0]), pvalue=float(t["lb_pvalue"].iloc[0]),
                            df=float(nl), null=f"no autocorrelation up to lag {nl}", dist="chi2")
    return acf_df, lb


def _shuffle_rates(ind: np.ndarray, k_bars: int, n_perm: int, seed: int) -> np.ndarray:
    """P(print within k | print) under ``n_perm`` shuffles of the indicator (same count, random places)."""
    n = ind.size
    rng = np.random.default_rng(seed)
    P = ind[np.argsort(rng.random((n_perm, n)), axis=1)]
    cs = np.concatenate([np.zeros((n_perm, 1), int), np.cumsum(P, axis=1)], axis=1)
    t = np.arange(n)
    hi = t + k_bars
    valid = hi <= n - 1
    fw = (cs[:, hi[valid] + 1] - cs[:, t[valid] + 1]) > 0
    pv = P[:, valid]
    denom = pv.sum(axis=1)
    return np.where(denom > 0, (fw & pv).sum(axis=1) / np.maximum(denom, 1), np.nan)


def _conditional(ind: np.ndarray, k_bars: int, n_perm: int, seed: int) -> dict:
    """P(another print within k bars | print) vs unconditional, binomial and shuffle-permutation p-values."""
    fwd = forward_any(ind, k_bars)
    okf = np.isfinite(fwd)
    cond_mask = ind & okf
    n_pr = int(cond_mask.sum())
    k_cond = int(np.sum(fwd[cond_mask] == 1))
    p_unc = float(np.mean(fwd[okf] == 1)) if okf.sum() else float("nan")
    p_cond = k_cond / n_pr if n_pr else float("nan")
    binom = sps.binomtest(k_cond, n_pr, p_unc, alternative="greater").pvalue if n_pr and 0 < p_unc < 1 else float("nan")
    perm_rate = _shuffle_rates(ind, k_bars, n_perm, seed)
    p_perm = (1 + int(np.sum(perm_rate >= p_cond - 1e-12))) / (1 + n_perm) if n_pr else float("nan")
    lo, hi_ = wilson_ci(k_cond, n_pr)
    return {"n_prints": n_pr, "k_followed": k_cond, "p_conditional": p_cond, "ci_low": lo, "ci_high": hi_,
            "p_unconditional": p_unc, "ratio": p_cond / p_unc if p_unc else float("nan"),
            "p_binomial": float(binom), "p_permutation": float(p_perm),
            "perm_mean": float(np.nanmean(perm_rate)) if np.isfinite(perm_rate).any() else float("nan")}


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
) -> LiquidationWavesResult:
    """Do liquidation prints cluster in time (H5)?

    The liquidation series is taken at its native bucket size (rows of the panel where a bucket
    ends; 1 h on the simulated market, 4 h for CoinGlass). A *print* is a bucket whose USD
    (``side``: long, short or total) is at or above the ``print_quantile`` quantile, or, when
    ``prints`` (e.g. :func:`research.events.detect_liquidation_prints`) is given, a bucket holding
    one of its ``ts``. Tests: Ljung-Box on log1p(USD) and on the indicator; P(another print within
    ``k_bars`` | print) vs the unconditional P(a print within ``k_bars``), with a one-sided binomial
    test and a permutation test that shuffles the indicator (seeded; destroys clustering, keeps the
    count).
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
    params = {"side": side, "print_quantile": print_quantile, "k_bars": k_bars, "lags": nl, "n_perm": n_perm,
              "seed": seed, "bucket_hours": step_h, "print_rule": rule}
    return LiquidationWavesResult(acf=acf_df, ljung_box=lb, conditional=_conditional(ind, k_bars, n_perm, seed),
                                  series=s, params=params, notes=[], synthetic=is_synthetic(panel))


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
