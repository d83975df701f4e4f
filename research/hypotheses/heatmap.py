"""H6: does price reach the largest nearby modelled liquidation cluster more often than placebo levels?

The map comes from the estimator in :mod:`research.hypotheses.levels`.
"""
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

from .levels import LiquidationHeatmap, liquidation_heatmap

__all__ = ["LiquidationHeatmapResult", "liquidation_heatmap_test", "heatmap_study"]


@dataclass
class LiquidationHeatmapResult(Results):
    """H6 results.

    Attributes
    ----------
    tests : polars.DataFrame
        One row per test time: price, largest cluster level within the band, its distance, whether
        price reached it within the horizon, the mirror placebo level and whether that was reached.
    hit_rates : polars.DataFrame
        ``level, n, hits, rate, ci_low, ci_high`` for cluster, mirror placebo, random-side placebo.
    mcnemar : TestStat
        Exact McNemar (binomial on discordant pairs) of cluster vs mirror, one-sided (greater).
    permutation : TestStat
        Random-side placebo: sign-flip permutation of the pairs (seeded), one-sided (greater).
    heatmap : LiquidationHeatmap
    """

    tests: pl.DataFrame
    hit_rates: pl.DataFrame
    mcnemar: TestStat
    permutation: TestStat
    params: dict
    heatmap: LiquidationHeatmap | None = None
    notes: list = field(default_factory=list)
    synthetic: bool = False
    max_cells: int = 3_500

    _frame_fields = ("tests", "hit_rates")
    key = "liquidation_heatmap"

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("heatmap", None)
        return d

    def tables(self) -> dict[str, pl.DataFrame]:
        out = super().tables()
        if self.heatmap is not None:
            out["heatmap"] = self.heatmap.frame()
        return out

    def to_frame(self) -> pl.DataFrame:
        return self.hit_rates

    def summary(self) -> str:
        lines = ["H6 liquidation heatmap: does price reach the largest nearby cluster?", "=" * 68,
                 f"test times: {self.tests.height}; band ±{self.params['max_distance_pct']}%, horizon {self.params['horizon_hours']} h"]
        for r in self.hit_rates.iter_rows(named=True):
            lines.append(f"  {r['level']:<22} {r['hits']}/{r['n']} = {fmt(r['rate'], '.3f')} [{fmt(r['ci_low'], '.3f')}, {fmt(r['ci_high'], '.3f')}]")
        lines.append(f"  {self.mcnemar}")
        lines.append(f"  {self.permutation}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def figures(self) -> dict:
        return {"liquidation_heatmap": self.plot(), "cluster_hit_rates": self.plot_hits()}

    def plot(self, max_cells: int | None = None):
        """The modelled heatmap (at most ``max_cells`` cells, default :attr:`max_cells`) with price and targets."""
        from research import plots

        if self.heatmap is None:
            raise HypothesisError("plot(): this result carries no heatmap (it was loaded from a record)")
        return plots.plot_liquidation_heatmap(self.heatmap.frame(max_cells=max_cells or self.max_cells),
                                              self.heatmap.price_frame(),
                                              targets=self.tests.select("ts", "price", "cluster_level", "cluster_hit"),
                                              synthetic=self.synthetic)

    def plot_hits(self):
        from research import plots

        return plots.plot_conditional_rates(self.hit_rates.rename({"level": "group"}),
                                            title="Price reaches the level within the horizon",
                                            y_title="share of test times", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        r = {x["level"]: x for x in self.hit_rates.iter_rows(named=True)}
        c, m = r.get("largest cluster"), r.get("mirror placebo")
        if not c or not m:
            return []
        return [Verdict(
            hypothesis=f"Price reaches the largest modelled liquidation cluster within ±{self.params['max_distance_pct']}% "
                       f"more often than a placebo level at the same distance on the other side (within {self.params['horizon_hours']} h)",
            effect=finite_or_none(c["rate"] - m["rate"]) if c["rate"] is not None and m["rate"] is not None else None,
            ci_low=finite_or_none(self.params.get("diff_ci_low")), ci_high=finite_or_none(self.params.get("diff_ci_high")),
            pvalue=finite_or_none(self.permutation.pvalue), n_events=int(c["n"]), primary=True,
            test=f"random-side placebo (sign-flip permutation, seeded, one-sided); exact McNemar p={fmt(self.mcnemar.pvalue)}",
            effect_label="hit rate cluster - mirror placebo (one-sided 95 % lower bound, inverting the sign-flip test)",
            ci_method="observed difference minus the sign-flip null's 5 % critical value (one-sided)",
            conclusion=conclude(self.permutation.pvalue, c["n"], m["n"]))]


def _targets(hm: LiquidationHeatmap, times, H: int, max_distance_pct: float, min_distance_pct: float) -> pl.DataFrame:
    """Per test time: the largest cluster in the band, its mirror placebo, and whether each was reached."""
    from numpy.lib.stride_tricks import sliding_window_view

    fmax = sliding_window_view(np.where(np.isfinite(hm.high), hm.high, -np.inf), H)  # rows t..t+H-1
    fmin = sliding_window_view(np.where(np.isfinite(hm.low), hm.low, np.inf), H)
    centers = hm.centers
    logc = np.log(centers)
    tot = hm.long_usd + hm.short_usd
    rows = []
    for t in times:  # one vector op per test time
        c = hm.close[t]
        if not np.isfinite(c):
            continue
        d = logc - math.log(c)
        band = (np.abs(d) <= math.log1p(max_distance_pct / 100)) & (np.abs(d) >= math.log1p(min_distance_pct / 100))
        dens = np.where(band, tot[t], 0.0)
        if dens.max() <= 0:
            continue
        j = int(np.argmax(dens))
        lvl = centers[j]
        mir = c * math.exp(-d[j])
        hi_f, lo_f = fmax[t + 1].max(), fmin[t + 1].min()
        hit = bool(hi_f >= lvl) if lvl > c else bool(lo_f <= lvl)
        hit_m = bool(hi_f >= mir) if mir > c else bool(lo_f <= mir)
        rows.append({"ts": hm.ts[int(t)], "price": c, "cluster_level": lvl, "cluster_usd": float(dens[j]),
                     "distance_pct": 100 * (lvl / c - 1), "side": "above" if lvl > c else "below",
                     "cluster_hit": hit, "mirror_level": mir, "mirror_hit": hit_m})
    schema = {"ts": hm.ts.dtype, "price": pl.Float64, "cluster_level": pl.Float64, "cluster_usd": pl.Float64,
              "distance_pct": pl.Float64, "side": pl.String, "cluster_hit": pl.Boolean, "mirror_level": pl.Float64,
              "mirror_hit": pl.Boolean}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _paired_tests(a: np.ndarray, b: np.ndarray, n_perm: int, seed: int, params: dict):
    """Random-side placebo (sign flips within pairs), exact McNemar, paired bootstrap CI and hit rates."""
    n = a.size
    rng = np.random.default_rng(seed)
    flips = rng.random((n_perm, n)) < 0.5
    placebo_rates = np.where(flips, b[None, :], a[None, :]).mean(axis=1) if n else np.zeros(n_perm)
    # sign-flip null: swapping labels within a pair; the statistic is mean(cluster) - mean(other)
    diff_obs = float(a.mean() - b.mean()) if n else float("nan")
    sw_a = np.where(flips, b[None, :], a[None, :])
    sw_b = np.where(flips, a[None, :], b[None, :])
    null = (sw_a.mean(axis=1) - sw_b.mean(axis=1)) if n else np.zeros(n_perm)
    p_perm = (1 + int(np.sum(null >= diff_obs - 1e-12))) / (1 + n_perm) if n else float("nan")
    disc_a, disc_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p_mc = float(sps.binomtest(disc_a, disc_a + disc_b, 0.5, alternative="greater").pvalue) if disc_a + disc_b else 1.0
    mcnemar = TestStat(name="mcnemar_exact", stat=float(disc_a), pvalue=p_mc, df=float(disc_a + disc_b),
                       null="cluster and mirror level equally likely to be reached (discordant pairs 50/50)",
                       dist="binomial", alternative="greater")
    perm = TestStat(name="random_side_placebo", stat=diff_obs, pvalue=float(p_perm), df=None,
                    null="the side of the target does not matter (pairs exchangeable)", dist="permutation",
                    alternative="greater")
    # the interval inverts the same one-sided sign-flip test: p < 5 % exactly when the observed
    # difference is above the null's critical value c, so the 95 % lower bound is diff - c (no upper
    # bound for a one-sided test); a bootstrap CI here would answer a different question
    if n:
        m = math.ceil(0.05 * (1 + n_perm)) - 2     # p < 5 % iff at most m null values reach diff
        c = float(np.sort(null)[::-1][m]) if 0 <= m < null.size else float("inf")
        params["diff_ci_low"], params["diff_ci_high"] = diff_obs - c, None
        params["critical_value"] = c
    rates = []
    for name, hits in (("largest cluster", a), ("mirror placebo", b)):
        k = int(hits.sum())
        lo, hi = wilson_ci(k, n)
        rates.append({"level": name, "n": n, "hits": k, "rate": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi})
    if n:
        lo, hi = np.quantile(placebo_rates, [0.025, 0.975])
        rates.append({"level": "random-side placebo", "n": n, "hits": int(round(placebo_rates.mean() * n)),
                      "rate": float(placebo_rates.mean()), "ci_low": float(lo), "ci_high": float(hi)})
    return mcnemar, perm, pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None))


def liquidation_heatmap_test(
    panel: pl.DataFrame,
    *,
    leverage_mix: dict | None = None,
    long_share: float = 0.5,
    bin_pct: float = 0.25,
    decay_on_oi_drop: bool = True,
    half_life_hours: float | None = None,
    max_oi_age_hours: float | None = None,
    max_distance_pct: float = 5.0,
    min_distance_pct: float = 0.5,
    horizon_hours: int = 72,
    every_hours: int | None = None,
    warmup_hours: int = 168,
    n_perm: int = 5000,
    seed: int = 7,
    max_cells: int = 3_500,
) -> LiquidationHeatmapResult:
    """Does price reach the largest nearby modelled liquidation cluster more often than placebo levels (H6)?

    At test times every ``every_hours`` (default: ``horizon_hours``, so outcome windows do not
    overlap) after ``warmup_hours`` of map building, the largest cluster (long + short USD) among bins
    between ``min_distance_pct`` and ``max_distance_pct`` % from the close is the target. It is hit
    when the highs (lows) of the next ``horizon_hours`` reach it. The mirror placebo is the level at
    the same log distance on the other side. Tests: exact McNemar on the discordant pairs, and a
    random-side placebo (each pair's side flipped at random, ``n_perm`` draws, seeded), both
    one-sided for "cluster hit more often". A cluster level is only looked at with the map known at
    the test time's close (no look-ahead). ``max_cells`` only sizes the figure.
    """
    who = "liquidation_heatmap_test"
    hm = liquidation_heatmap(panel, leverage_mix=leverage_mix, long_share=long_share, bin_pct=bin_pct,
                             decay_on_oi_drop=decay_on_oi_drop, half_life_hours=half_life_hours,
                             max_oi_age_hours=max_oi_age_hours)
    every = int(every_hours or horizon_hours)
    params = {"leverage_mix": hm.params["leverage_mix"], "long_share": long_share, "bin_pct": bin_pct,
              "decay_on_oi_drop": decay_on_oi_drop, "half_life_hours": half_life_hours,
              "max_oi_age_hours": max_oi_age_hours, "max_distance_pct": max_distance_pct, "min_distance_pct": min_distance_pct,
              "horizon_hours": horizon_hours, "every_hours": every, "warmup_hours": warmup_hours,
              "n_perm": n_perm, "seed": seed}
    T = hm.close.size
    H = int(horizon_hours)
    times = np.arange(warmup_hours, T - H, every)
    if times.size == 0:
        raise HypothesisError(f"{who}: the panel ({T} h) is shorter than warmup_hours + horizon_hours "
                              f"({warmup_hours} + {H}); widen start/end or lower them")
    tests = _targets(hm, times, H, max_distance_pct, min_distance_pct)
    a = tests["cluster_hit"].to_numpy().astype(bool) if tests.height else np.zeros(0, bool)
    b = tests["mirror_hit"].to_numpy().astype(bool) if tests.height else np.zeros(0, bool)
    mcnemar, perm, rates = _paired_tests(a, b, n_perm, seed, params)
    notes = [f"only {a.size} non-overlapping test times: the test has little power"] if a.size < 20 else []
    return LiquidationHeatmapResult(tests=tests, hit_rates=rates, mcnemar=mcnemar, permutation=perm, params=params,
                                    heatmap=hm, notes=notes, synthetic=is_synthetic(panel), max_cells=int(max_cells))


def heatmap_study(inputs, **params) -> LiquidationHeatmapResult:
    """Notebook 25: :func:`liquidation_heatmap_test` on ``inputs``' panel (``params`` are its keywords)."""
    return liquidation_heatmap_test(inputs.panel, **params)
