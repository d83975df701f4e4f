"""Placebo calibration of primary tests: empirical size and placebo-calibrated p-values.

A test's nominal 5 % is a claim about its null distribution; on one fat-tailed, clustered series it
is measured here instead of assumed. Two entry points:

* :func:`calibrate` -- for an event-study verdict (the CAR study around detector events): the
  primary test of :func:`research.eventstudy.run` on ``n_draws`` placebo studies of random event
  dates from the same series and design (same number of events, same window and estimation window,
  the events' own gaps inside each cluster, each cluster placed where the trailing realised
  volatility is in the same quintile as at the real cluster);
* :func:`calibrate_design` -- for a hypothesis's primary test described by a :class:`PrimaryDesign`
  (H3/H4/H5 build theirs from placebo or shuffled-time data of the same panel).

Both return a :class:`Calibration`: ``size`` (rejection rate at ``alpha`` on the placebo draws),
``calibrated_p`` (rank of the observed statistic among the placebo statistics), ``n_draws`` and a
``warning`` when the size is outside :data:`research.stats_resampling.SIZE_BAND` (3.5-7.5 %). A
verdict should then use ``calibrated_p`` (:meth:`Calibration.verdict_pvalue`) and the matching
placebo critical value for its interval (:meth:`Calibration.interval`).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from research.errors import EventStudyError
from research.stats_resampling import (
    SIZE_BAND,
    mc_band,
    rank_critical_value,
    rank_pvalue,
    rejection_rate,
)

__all__ = ["Calibration", "CalibrationWarning", "PrimaryDesign", "calibrate", "calibrate_design", "holdout_size",
           "placebo_dates"]


class CalibrationWarning(UserWarning):
    """Issued by :func:`calibrate` when a test's empirical size is outside the band."""


@dataclass
class Calibration:
    """The empirical size of one primary test and the observed statistic's placebo rank.

    Attributes
    ----------
    test : str
        The test calibrated.
    size : float
        Share of placebo draws rejecting at ``alpha`` with the test's own p-value.
    calibrated_p : float
        ``(1 + #{|placebo stat| >= |observed stat|}) / (1 + n_draws)``.
    n_draws : int
        Placebo draws used (finite statistics).
    warning : str or None
        Set when ``size`` is outside ``band``.
    alpha, band : float, (float, float)
    observed_stat, observed_p : float
        The statistic and nominal p-value on the real events/data.
    critical_value : float
        The calibrated critical value: ``|observed stat| > critical_value`` exactly when
        ``calibrated_p < alpha`` (:func:`research.stats_resampling.rank_critical_value`).
    mc_band : (float, float)
        Where an exact test's size would fall with this many draws (95 %).
    design : dict
        How the placebo draws were made.
    calibrated_size : float
        Size of the calibrated test itself, each placebo draw ranked among the others (exact by
        construction when the draws are exchangeable: a check of the bookkeeping, not of the null).
    """

    test: str
    size: float
    calibrated_p: float
    n_draws: int
    warning: str | None
    alpha: float = 0.05
    band: tuple = SIZE_BAND
    observed_stat: float = float("nan")
    observed_p: float = float("nan")
    critical_value: float = float("nan")
    mc_band: tuple = (float("nan"), float("nan"))
    design: dict = field(default_factory=dict)
    calibrated_size: float = float("nan")
    null_stats: np.ndarray = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when the empirical size is inside the band."""
        return self.warning is None

    def verdict_pvalue(self) -> float:
        """The p-value a verdict should show: nominal when the size holds, else the calibrated one."""
        return self.observed_p if self.ok else self.calibrated_p

    def interval(self, effect: float, se: float) -> tuple[float, float]:
        """``effect ± c se`` with ``c`` the placebo critical value (agrees with :attr:`calibrated_p`)."""
        c = self.critical_value
        if not (np.isfinite(effect) and np.isfinite(se) and np.isfinite(c)):
            return float("nan"), float("nan")
        return effect - c * se, effect + c * se

    def label(self) -> str:
        """One line for a verdict's ``test`` field."""
        s = (f"empirical size {self.size:.1%} on {self.n_draws} placebo draws"
             if np.isfinite(self.size) else "empirical size not measured")
        return s + ("" if self.ok else f" (outside {self.band[0]:.1%}-{self.band[1]:.1%}: calibrated p used)")

    def to_dict(self) -> dict:
        from research.fileio import clean_json

        d = {k: getattr(self, k) for k in ("test", "size", "calibrated_p", "n_draws", "warning", "alpha", "band",
                                           "observed_stat", "observed_p", "critical_value", "mc_band", "calibrated_size",
                                           "design")}
        return clean_json(d)

    def summary(self) -> str:
        lo, hi = self.mc_band
        out = (f"{self.test}: size {self.size:.3f} at alpha {self.alpha:g} on {self.n_draws} placebo draws "
               f"(exact-test band {lo:.3f}-{hi:.3f}); observed stat {self.observed_stat:.3f}, nominal p "
               f"{self.observed_p:.3g}, calibrated p {self.calibrated_p:.3g}")
        return out + (f"\n  WARNING: {self.warning}" if self.warning else "")

    __str__ = summary


def _finish(test, stats, pvals, observed_stat, observed_p, alpha, design, extra=None) -> Calibration:
    stats = np.asarray(stats, float)
    pvals = np.asarray(pvals, float)
    ok = np.isfinite(stats) & np.isfinite(pvals)
    n = int(ok.sum())
    size = rejection_rate(pvals[ok], alpha)
    crit = rank_critical_value(stats[ok], alpha) if n else float("nan")
    warn = None
    if not n:
        warn = "no placebo draw produced a statistic: size not measured"
    elif not SIZE_BAND[0] <= size <= SIZE_BAND[1]:
        warn = (f"{test}: empirical size {size:.1%} on {n} placebo draws is outside {SIZE_BAND[0]:.1%}-"
                f"{SIZE_BAND[1]:.1%}; use the calibrated p-value")
    a = np.abs(stats[ok])
    # leave-one-out rank of every draw among the others: #{j != i: |a_j| >= |a_i|}
    k = n - np.searchsorted(np.sort(a), a - 1e-12, side="left") - 1
    cal_size = float(np.mean((1 + k) / max(n, 1) < alpha)) if n > 1 else float("nan")
    return Calibration(test=test, size=size, calibrated_p=rank_pvalue(observed_stat, stats[ok]), n_draws=n,
                       warning=warn, alpha=alpha, observed_stat=float(observed_stat), observed_p=float(observed_p),
                       critical_value=crit, mc_band=mc_band(max(n, 1), alpha), design=design,
                       calibrated_size=cal_size, null_stats=stats[ok], extra=extra or {})


# --------------------------------------------------------------------------------------------------
# hypotheses' primary tests
# --------------------------------------------------------------------------------------------------
@dataclass
class PrimaryDesign:
    """A hypothesis's primary test, with a way to make null data and to plant an effect in it.

    Attributes
    ----------
    test : str
        Name of the test (for records).
    effect_label : str
        What the effect measures (its units).
    observed : dict
        ``effect, se, stat, pvalue`` on the real data.
    null_draws : callable ``(n_draws, rng) -> draws``
        Placebo/shuffled-time data where the null holds (an opaque object ``statistic`` reads).
    statistic : callable ``(draws) -> (stat, pvalue, effect)``
        The primary test on every draw at once (arrays of length ``n_draws``).
    plant : callable ``(draws, effect, rng) -> draws``
        The same draws with an effect of size ``effect`` (in ``effect_label`` units) planted.
    design : dict
        How the null draws are made (for the record).
    """

    test: str
    effect_label: str
    observed: dict
    null_draws: Callable[[int, np.random.Generator], Any]
    statistic: Callable[[Any], tuple]
    plant: Callable[[Any, float, np.random.Generator], Any]
    design: dict = field(default_factory=dict)


def calibrate_design(design: PrimaryDesign, *, n_draws: int = 400, seed: int = 0, alpha: float = 0.05) -> Calibration:
    """Empirical size and calibrated p-value of ``design``'s primary test on ``n_draws`` null draws."""
    rng = np.random.default_rng(seed)
    stats, pvals, _ = design.statistic(design.null_draws(int(n_draws), rng))
    obs = design.observed
    return _finish(design.test, stats, pvals, obs.get("stat", float("nan")), obs.get("pvalue", float("nan")),
                   alpha, {**design.design, "n_draws_requested": int(n_draws), "seed": int(seed)})


# --------------------------------------------------------------------------------------------------
# event studies
# --------------------------------------------------------------------------------------------------
def _trailing_vol(r: np.ndarray, hours: int) -> np.ndarray:
    """Std of ``r`` over the previous ``hours`` bars (t-hours .. t-1), NaN-aware; NaN at the start."""
    x = np.where(np.isfinite(r), r, 0.0)
    m = np.isfinite(r).astype(float)
    c1, c2, cn = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, x * x, m))
    t = np.arange(r.size)
    lo = t - hours
    ok = lo >= 0
    lo = np.maximum(lo, 0)
    n = cn[t] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[t] - c1[lo]) / n
        var = (c2[t] - c2[lo]) / n - mean ** 2
    return np.where(ok & (n > hours // 2), np.sqrt(np.maximum(var, 0)), np.nan)


def placebo_dates(ret: np.ndarray, event_bars: np.ndarray, *, window: tuple[int, int], reach: tuple[int, int],
                  n_draws: int, seed=0, vol_hours: int = 168, n_vol_strata: int = 5,
                  exclude_events: bool = True) -> tuple[np.ndarray, dict]:
    """Placebo event bars, ``(n_draws, n_events)``, in the design of ``event_bars``.

    Events closer than the event-window length form a cluster that keeps its own gaps; each cluster
    is placed at a random bar whose trailing ``vol_hours`` realised volatility is in the same
    quantile stratum (``n_vol_strata``) as at the real cluster's first event (a chain longer than a
    quarter of the series is cut into clusters of at most that extent), where the whole
    ``reach`` (the earliest and latest bar the study reads, relative to the event) fits in the
    series, (``exclude_events``) away from the real events' windows, and -- like the real clusters,
    which are apart by construction -- without its event windows overlapping those of the clusters
    already placed in the same draw. Constraints are dropped in that order (``info`` counts it)
    when no bar satisfies them.
    """
    from research.stats_resampling import strata_of

    rng = np.random.default_rng(seed)
    n = ret.size
    e = np.sort(np.asarray(event_bars, dtype=np.int64))
    span = int(window[1] - window[0] + 1)
    # a chain of close events longer than a quarter of the usable series could not be placed whole:
    # it is cut into clusters of at most that extent (one step per event, not per bar)
    max_extent = max(span, (n - (reach[1] - reach[0] + 1)) // 4)
    cid = np.zeros(e.size, dtype=np.int64)
    split, first = 0, e[0] if e.size else 0
    for i in range(1, e.size):
        new = e[i] - e[i - 1] >= span
        if not new and e[i] - first > max_extent:
            new, split = True, split + 1
        cid[i] = cid[i - 1] + new
        first = e[i] if new else first
    n_cl = int(cid.max()) + 1 if e.size else 0
    strata = strata_of(_trailing_vol(ret, vol_hours), n_vol_strata)
    near = np.zeros(n, bool)
    if exclude_events:
        for lo, hi in zip(e + window[0], e + window[1]):  # one slice per event (not per bar)
            near[max(lo, 0): min(hi, n - 1) + 1] = True
    b = np.arange(n)
    offs, masks, relaxed = [], [], 0
    for c in range(n_cl):
        members = e[cid == c]
        offs.append(members - members[0])
        fits = (b + reach[0] >= 0) & (b + offs[-1][-1] + reach[1] <= n - 1)
        m = fits & (strata == strata[members[0]]) & ~near
        if m.sum() < 20:  # too few look-alike bars: drop the exclusion, then the volatility match
            relaxed += 1
            m = fits & (strata == strata[members[0]])
            if m.sum() < 20:
                m = fits
        if not m.any():
            raise EventStudyError(f"placebo_dates: the series ({n} bars) is too short for the design reach {reach}")
        masks.append(m)
    out = np.empty((n_draws, e.size), dtype=np.int64)
    overlapped = 0
    for d in range(n_draws):  # sequential placement: one O(bars) step per cluster and draw
        occupied = np.zeros(n + 1, np.int64)
        for c in rng.permutation(n_cl):
            cs = np.concatenate([[0], np.cumsum(occupied[:n])])
            lo = np.clip(b + window[0], 0, n)
            hi = np.clip(b + offs[c][-1] + window[1] + 1, 0, n)
            ok = masks[c] & (cs[hi] - cs[lo] == 0)
            if not ok.any():
                overlapped += 1
                ok = masks[c]
            pos = rng.choice(np.flatnonzero(ok))
            out[d, cid == c] = pos + offs[c]
            occupied[max(pos + window[0], 0): min(pos + offs[c][-1] + window[1], n - 1) + 1] = 1
    info = {"clusters": n_cl, "clusters_split": split, "vol_hours": int(vol_hours), "n_vol_strata": int(n_vol_strata),
            "exclude_events": bool(exclude_events), "clusters_relaxed": relaxed, "placements_overlapping": overlapped}
    return out, info


def calibrate(returns: pl.DataFrame, events: pl.DataFrame, window=(-24, 72), test: str = "cross_sectional_t", *,
              car_window=None, estimation=(-240, -25), model: str = "mean", n_draws: int = 200, seed: int = 0,
              alpha: float = 0.05, vol_hours: int = 168, n_vol_strata: int = 5, exclude_events: bool = True,
              **engine) -> Calibration:
    """Empirical size of an event-study test on placebo dates, and the observed study's calibrated p.

    Parameters
    ----------
    returns : polars.DataFrame
        ``ts, asset, return`` of one asset (e.g. :func:`research.hypotheses.frames.returns_frame`).
    events : polars.DataFrame
        The real events (``ts``; ``asset`` optional).
    window, estimation, model
        The study's design, as passed to :func:`research.eventstudy.run`.
    test : str
        The primary test (an engine test name).
    car_window : (int, int), optional
        The CAR window the verdict reads (default: the whole event window).
    n_draws, seed, alpha
        Placebo studies, their seed, the level.
    vol_hours, n_vol_strata, exclude_events
        See :func:`placebo_dates`.
    **engine
        Further :func:`research.eventstudy.run` keywords (overlap, min_spacing, ...), used for the
        real and every placebo study alike.

    Returns
    -------
    Calibration
        ``extra`` holds the placebo CAARs and statistics (``caar``, ``stat``) for
        :func:`research.hypotheses.power.car_power`. For a t-type test the verdict's interval is
        ``cal.interval(caar, caar / stat)``.

    Warns
    -----
    CalibrationWarning
        When the empirical size is outside 3.5-7.5 % (``cal.warning`` says the same).
    """
    from research import eventstudy

    if returns.height == 0 or events.height == 0:
        raise EventStudyError("calibrate: no returns or no events")
    asset = str(returns["asset"][0])
    rf = returns.filter(pl.col("asset") == asset).sort("ts")
    ts = rf["ts"]
    ret = rf["return"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    cw = tuple(int(v) for v in (car_window or window))
    est = None if model == "raw" else tuple(int(v) for v in estimation)
    reach = (min(window[0], est[0] if est else window[0]), window[1])
    # bar of each event: the bar containing it (the engine's default anchor)
    bars = np.searchsorted(ts.dt.epoch("us").to_numpy(), events["ts"].dt.epoch("us").to_numpy(), side="right") - 1
    bars = bars[(bars >= 0) & (bars < ts.len())]
    panel = eventstudy.build_panel(rf)
    kw = {"estimation": est, "window": tuple(window), "model": model, "tests": [test], "car_windows": [cw], **engine}

    def one(bar_idx) -> tuple[float, float, float]:
        ev = pl.DataFrame({"ts": ts.gather(np.sort(bar_idx)), "asset": [asset] * len(bar_idx)})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = eventstudy.run(panel, ev, **kw)
        except EventStudyError:
            return math.nan, math.nan, math.nan
        t = r.car_test(cw, [test])[test]
        return float(t.stat), float(t.pvalue), float(r.car_means[next(iter(r.car_means))])

    obs_stat, obs_p, obs_caar = one(bars)
    draws, info = placebo_dates(ret, bars, window=tuple(window), reach=reach, n_draws=int(n_draws), seed=seed,
                                vol_hours=vol_hours, n_vol_strata=n_vol_strata, exclude_events=exclude_events)
    res = np.array([one(d) for d in draws]).reshape(-1, 3)  # one engine run per placebo study
    design = {"kind": "placebo event dates", "n_events": int(bars.size), "window": list(window),
              "estimation": list(est) if est else None, "car_window": list(cw), "model": model,
              "n_draws_requested": int(n_draws), "seed": int(seed), **info,
              **{k: v for k, v in engine.items() if isinstance(v, (int, float, str, type(None)))}}
    cal = _finish(test, res[:, 0], res[:, 1], obs_stat, obs_p, alpha, design,
                  extra={"caar": res[:, 2], "stat": res[:, 0], "observed_caar": obs_caar})
    if cal.warning:
        warnings.warn(f"CAR{list(cw)}: {cal.warning}", CalibrationWarning, stacklevel=2)
    return cal


def holdout_size(returns: pl.DataFrame, events: pl.DataFrame, window=(-24, 72), test: str = "cross_sectional_t", *,
                 n_cal: int = 1000, n_eval: int = 1000, seed: int = 0, alpha: float = 0.05, **kwargs) -> dict:
    """Size of the placebo-calibrated test, measured on placebo studies it was not calibrated on.

    ``n_cal`` placebo studies (seed ``seed``) give the null the calibrated p-value ranks against;
    ``n_eval`` further placebo studies (seed ``seed + 1``) are each tested as if real. Returns
    ``size`` (their rejection rate at ``alpha``), ``nominal_size`` (the uncalibrated test's rate on
    the same evaluation studies), ``n_cal``, ``n_eval`` and ``mc_band`` (where an exact test's rate
    falls with ``n_eval`` studies). ``kwargs`` go to :func:`calibrate` (``car_window``, ``estimation``,
    ``model``, engine keywords).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        ref = calibrate(returns, events, window, test, n_draws=n_cal, seed=seed, alpha=alpha, **kwargs)
        ev = calibrate(returns, events, window, test, n_draws=n_eval, seed=seed + 1, alpha=alpha, **kwargs)
    p = np.array([rank_pvalue(s, ref.null_stats) for s in ev.null_stats])
    return {"size": float(np.mean(p < alpha)) if p.size else float("nan"), "nominal_size": ev.size,
            "n_cal": ref.n_draws, "n_eval": int(p.size), "mc_band": mc_band(max(int(p.size), 1), alpha)}
