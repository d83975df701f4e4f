"""Placebo dates that keep the events' clustering and volatility regime, and what they measure.

A placebo set is the real event pattern *shifted* by one offset: every gap between events (and so
every cluster and every overlap) is kept exactly. Offsets are ranked by how close the placebo
events' trailing realised volatility (log of the RMS return over the ``vol_window`` bars before
each event, averaged over events) is to the real events', and the closest ``n_draws`` are used.

* :func:`matched_shifts` -- the offsets (used by :func:`research.eventstudy.placebo` too).
* :func:`placebo_size` -- the empirical rejection rate of a test at placebo dates: the size of the
  test on *this* series with *this* design, to compare with its nominal level.
* :func:`assumption_warnings` -- plain-language warnings when a result's parametric tests rest on
  normal, independent ARs that the data do not have (fat tails, clustered events).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from research.errors import EventStudyError

from . import windows as W


class AssumptionWarning(UserWarning):
    """A test's assumptions do not hold for the data it was run on."""


def trailing_log_vol(R: np.ndarray, vol_window: int) -> np.ndarray:
    """``(n_assets, n_bars)`` log RMS return over the ``vol_window`` bars before each bar (NaN
    where fewer than half of them are present)."""
    ok = np.isfinite(R)
    sq = np.concatenate([np.zeros((R.shape[0], 1)), np.cumsum(np.where(ok, R * R, 0.0), 1)], 1)
    cnt = np.concatenate([np.zeros((R.shape[0], 1)), np.cumsum(ok, 1)], 1)
    out = np.full(R.shape, np.nan)
    k = int(vol_window)
    if R.shape[1] > k:
        s = sq[:, k:-1] - sq[:, :-k - 1]
        c = cnt[:, k:-1] - cnt[:, :-k - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k:] = np.where(c >= k / 2, 0.5 * np.log(s / c), np.nan)
    return out


def matched_shifts(panel: W.Panel, asset_idx: np.ndarray, bar_idx: np.ndarray, span: tuple[int, int],
                   width: int, n_draws: int, rng, vol_window: int = 168) -> np.ndarray:
    """Offsets (bars) for ``n_draws`` placebo sets: the real pattern shifted, vol-matched.

    Parameters
    ----------
    panel : Panel
        The return grid.
    asset_idx, bar_idx : numpy.ndarray
        The real events.
    span : (int, int)
        First and last offset any window of the design reaches (estimation and event).
    width : int
        Event-window length: offsets shorter than this are excluded (a placebo event would sit in
        its own real event's window).
    n_draws : int
        Placebo sets wanted (drawn with replacement when fewer offsets qualify).
    rng : numpy.random.Generator
        Seeded generator.
    vol_window : int
        Bars of the trailing realised volatility.

    Raises
    ------
    EventStudyError
        When no offset keeps every window inside the data.
    """
    lo = int(-bar_idx.min() - span[0])
    hi = int(panel.n_bars - 1 - bar_idx.max() - span[1])
    cand = np.arange(lo, hi + 1)
    cand = cand[np.abs(cand) >= width]
    if cand.size == 0:
        raise EventStudyError("no placebo offset keeps the shifted events and their windows inside the data; "
                              "use a longer series or shorter windows")
    lv = trailing_log_vol(panel.values["return"], vol_window)
    target = np.nanmean(lv[asset_idx, bar_idx])
    if not np.isfinite(target):
        return rng.choice(cand, size=n_draws, replace=cand.size < n_draws)
    # mean trailing log-vol of the shifted pattern for every candidate, events in blocks (memory)
    tot = np.zeros(int(cand[-1] - cand[0]) + 1)
    cnt = np.zeros_like(tot)
    for i in range(0, bar_idx.size, 64):
        v = W.gather_window(lv, asset_idx[i : i + 64], bar_idx[i : i + 64], int(cand[0]), int(cand[-1]))
        ok = np.isfinite(v)
        tot += np.where(ok, v, 0.0).sum(0)
        cnt += ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (tot / cnt)[cand - cand[0]]
    order = np.argsort(np.where(np.isfinite(m), np.abs(m - target), np.inf), kind="stable")
    best = cand[order[: max(n_draws, 1)]]
    if best.size >= n_draws:
        return rng.permutation(best)[:n_draws]
    return rng.choice(best, size=n_draws, replace=True)


@dataclass
class PlaceboSize:
    """Empirical size of one test at vol-matched placebo dates.

    Attributes
    ----------
    test, window : str
        The test and what it tested (``"AR(0)"`` or ``"CAR[a,b]"``).
    rate : float
        Share of placebo sets where the test rejected at ``level``.
    lo, hi : float
        95 % Wilson interval of ``rate``.
    n_draws, seed : int
        Placebo sets run (those with no usable event excluded) and the seed.
    level : float
        Nominal level.
    """

    test: str
    window: str
    rate: float
    lo: float
    hi: float
    n_draws: int
    seed: int
    level: float

    def summary(self) -> str:
        """One line: the measured size against the nominal level."""
        return (f"{self.test} {self.window}: rejects {100 * self.rate:.1f} % of {self.n_draws} placebo sets "
                f"(95 % CI {100 * self.lo:.1f}-{100 * self.hi:.1f} %) at nominal {100 * self.level:.0f} %")

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return dict(self.__dict__)


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p, z = k / n, 1.96
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def placebo_size(returns, events: pl.DataFrame, *, window=(-24, 72), estimation=(-240, -25), test="design_hc",
                 car_window: tuple[int, int] | None = None, n_draws: int = 200, level: float = 0.05,
                 seed: int = 0, vol_window: int = 168, **run_kwargs) -> PlaceboSize:
    """Rejection rate of ``test`` at placebo dates drawn from the same series with the same design.

    Parameters
    ----------
    returns : polars.DataFrame or Panel
        As for :func:`research.eventstudy.run` (a Panel from ``build_panel`` avoids rebuilding).
    events : polars.DataFrame
        The real events (``ts, asset``); their pattern is shifted, never reused.
    window, estimation : (int, int)
        The design, as in ``run``.
    test : str
        A test name (:data:`research.eventstudy.TESTS`).
    car_window : (int, int), optional
        Test the CAR over this sub-window; None tests the AR at event time 0.
    n_draws : int
        Placebo sets.
    level : float
        Nominal level.
    seed : int
        Seed of ``numpy.random.default_rng``.
    vol_window : int
        Bars of trailing realised volatility the placebo sets are matched on.
    **run_kwargs
        Passed to ``run`` (``model``, ``market``, ``event_overlap``, ...).

    Returns
    -------
    PlaceboSize
    """
    from .core import run

    panel = returns if isinstance(returns, W.Panel) else W.build_panel(returns, ["return"])
    anch = W.anchor_events(panel, events, value="return")
    if anch.bar_idx.size == 0:
        raise EventStudyError("placebo_size: no event maps to a bar with a return")
    est0 = estimation[0] if estimation is not None else window[0]
    est1 = estimation[1] if estimation is not None else window[1]
    span = (min(window[0], est0), max(window[1], est1))
    rng = np.random.default_rng(seed)
    shifts = matched_shifts(panel, anch.asset_idx, anch.bar_idx, span, window[1] - window[0] + 1,
                            n_draws, rng, vol_window)
    assets = pl.Series("asset", [panel.assets[a] for a in anch.asset_idx])
    hits = done = 0
    for s in shifts:  # one run per placebo set: each is a full, independent study
        ev = pl.DataFrame([panel.bar_ts(anch.bar_idx + s).alias("ts"), assets])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run(panel, ev, window=window, estimation=estimation, tests=[test],
                          car_windows=None if car_window is None else [car_window], **run_kwargs)
        except EventStudyError:
            continue  # every shifted event fell on missing data: not a draw
        ts = res.car_test(car_window, [test])[test] if car_window is not None else res.test(test, 0)
        if np.isfinite(ts.pvalue):
            done += 1
            hits += bool(ts.pvalue < level)
    lo, hi = _wilson(hits, done)
    label = "AR(0)" if car_window is None else f"CAR[{car_window[0]},{car_window[1]}]"
    return PlaceboSize(test, label, hits / done if done else math.nan, lo, hi, done, seed, level)


#: Tests that assume normal ARs or independent events (see TESTS).
_NORMAL = ("brown_warner_1980", "brown_warner_1985", "patell", "lamb")
_INDEPENDENT = ("brown_warner_1980", "cross_sectional_t", "patell", "bmp", "sign", "generalized_sign",
                "corrado_sign", "corrado_rank", "modified_rank", "wilcoxon")


def assumption_warnings(result, *, kurtosis_limit: float = 1.0, warn: bool = True) -> list[str]:
    """Warnings for parametric tests run on fat-tailed or clustered returns.

    Parameters
    ----------
    result : EventStudyResult
        A finished study.
    kurtosis_limit : float
        Excess kurtosis of the pooled, standardised estimation residuals above which normal-theory
        tests are flagged.
    warn : bool
        Also emit each message as an :class:`AssumptionWarning`.

    Returns
    -------
    list of str
        One sentence per problem (empty when none applies).
    """
    msgs = []
    tests = set(result.spec["tests"])
    fit = result._battery.fit if result._battery is not None else None
    if fit is not None and fit.est_ar.shape[1] > 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (fit.est_ar / fit.sigma[:, None]).ravel()
        z = z[np.isfinite(z)]
        kurt = float(np.mean(z**4) / np.mean(z**2) ** 2 - 3) if z.size > 10 else math.nan
        bad = sorted(tests & set(_NORMAL))
        if bad and np.isfinite(kurt) and kurt > kurtosis_limit:
            msgs.append(f"estimation residuals have excess kurtosis {kurt:.1f}: {', '.join(bad)} assume normal "
                        "abnormal returns; prefer bmp/design_hc or check with placebo_size()")
    if "cluster" in result.events.columns and result.events.height:
        n_cl = result.events["cluster"].n_unique()
        if n_cl < result.events.height:
            bad = sorted(tests & set(_INDEPENDENT))
            if bad:
                msgs.append(f"{result.events.height - n_cl} event(s) share event-window bars with another event: "
                            f"{', '.join(bad)} treat events as independent; use design_hc, calendar_hac or "
                            "placebo_size(), or event_overlap='thin'")
    if warn:
        for m in msgs:
            warnings.warn(m, AssumptionWarning, stacklevel=2)
    return msgs
