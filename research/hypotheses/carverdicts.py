"""Verdict rows of the CAR study: the placebo-calibrated primary test, its interval from the same method, its power.

:func:`car_verdicts` turns an engine result into one :class:`~research.records.Verdict` per CAR
window; :func:`calibration_entry` measures the primary test's empirical size on placebo dates of the
same series (:func:`research.hypotheses.calibration.calibrate`) in the form
:meth:`research.hypotheses.carstudy.CarStudyResult.attach_calibration` takes.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import scipy.stats as sps

from research.errors import EventStudyError
from research.stats import (
    MIN_CLASS_SIZE,
    SIZE_BAND,
    NotTestable,
    finite_or_none,
    size_warning,
    t_interval,
)

from .frames import returns_frame

__all__ = ["MECHANICAL", "PRIMARY_TEST", "SECONDARY_TESTS", "SIZE_HOLDS", "calibration_entry", "car_verdicts"]

#: the CAR tests whose size held on placebo dates of real hourly BTC returns (#12 and the README's
#: CAR-studies bullet); the parametric Patell/BMP/Brown-Warner family is not
SIZE_HOLDS = ("cross_sectional_t", "design_hc")
#: the primary CAR statistic, placebo-calibrated on every run (README, Verdicts: sizes on the real pack)
PRIMARY_TEST = "cross_sectional_t"
#: tests the engine also runs, reported in the ``car_tests`` table and as descriptive p-values
SECONDARY_TESTS = ("design_hc", "wilcoxon", "corrado_rank")


#: event types whose pre-event returns are mechanical (the event is defined by a price fall)
MECHANICAL = {"liquidation_print": "longs are liquidated because the price fell, so returns up to and including "
                                   "the print's bar are mechanical; the test is on what follows the print",
              "selloff": "a sell-off is defined by its price fall, so returns up to its detection are mechanical"}


def _fmt_window(w, bar: str = "1h") -> str:
    # windows count bars: on 1 h bars they read as hours, on coarser bars they say so
    a, b = int(w[0]), int(w[1])
    if bar == "1h":
        return f"({a:+d}h,{b:+d}h)" if a else f"(0,{b:+d}h)"
    return f"({a:+d},{b:+d} bars of {bar})" if a else f"(0,{b:+d} bars of {bar})"


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _car_conclusion(p, mean: float, alpha: float) -> str:
    if p is None:
        return str(NotTestable("too few events", prefix="not tested"))
    if p < alpha:
        return f"reject CAR = 0 at {alpha:g} ({'positive' if mean > 0 else 'negative'})"
    return f"CAR = 0 not rejected at {alpha:g}"


def _calibration_for(calibration: dict | None, w) -> dict:
    """The placebo calibration of window ``w`` (keys ``[a,b]`` as :func:`research.eventstudy.results.window_key`)."""
    from research.eventstudy.results import window_key

    if not calibration:
        return {}
    return dict(calibration.get(window_key(tuple(w)), calibration.get(str(list(w)), {})) or {})


def _interval(test: str, car: np.ndarray, effect: float, stat: float, level: float, cal: dict):
    """``(lo, hi, method)`` from the method that gave the verdict's p-value (NaN bounds: none)."""
    se = abs(effect / stat) if math.isfinite(stat) and stat != 0 else math.nan
    if cal.get("calibrated"):
        c = cal.get("critical_value")
        if c is None or not math.isfinite(se):
            return math.nan, math.nan, ""
        return (effect - c * se, effect + c * se,
                f"CAAR +- placebo critical value {c:.3g} x SE (inverts the placebo-calibrated {test})")
    if test == "cross_sectional_t":
        _, lo, hi = t_interval(car, level)
        return lo, hi, "t interval of per-event CARs (inverts the cross-sectional t)"
    if test == "design_hc":
        z = float(sps.norm.ppf(0.5 + level / 2))
        return (effect - z * se, effect + z * se,
                "CAAR +- normal critical value x design_hc SE (= CAAR/stat; inverts design_hc)")
    return math.nan, math.nan, ""


def car_verdicts(result, car_windows, *, label: str, test: str = PRIMARY_TEST,
                 level: float = 0.95, alpha: float = 0.05, primary_window=(1, 24), kind: str | None = None,
                 calibration: dict | None = None, bar: str = "1h") -> list:
    """One :class:`~research.records.Verdict` per CAR window: ``CAR(w) after <label> != 0``.

    Effect = CAAR (mean CAR of perp log returns). The test is the engine's ``test`` (default:
    :data:`PRIMARY_TEST`); the CI inverts that same test (design_hc: CAAR +- normal critical value x
    its SE; the cross-sectional t: the t interval of the per-event CARs), so it excludes 0 exactly
    when p < 1 - level; for a rank or sign test no CI is printed. ``primary_window`` marks the
    primary row; a window starting before +1 includes the event's own bar and earlier (known before
    or at detection), and for :data:`MECHANICAL` event types says so. ``calibration`` (from
    :func:`calibration_entry`) maps a window key (``"[+1,+24]"``) to ``{"size", "nominal_size",
    "p_calibrated", "n_placebo"[, "critical_value", "mde"]}``. The primary row with a calibration is
    always the placebo-calibrated test: its p is ``p_calibrated``, its interval CAAR +- the placebo
    critical value x SE (none without one), its ``size`` that of the calibrated test and its ``mde``
    the CAAR detected in 80 % of the placebo studies; the nominal test's size is in the ``test``
    text, flagged when outside :data:`~research.stats.SIZE_BAND`. Without a result every verdict is
    :class:`~research.stats.NotTestable`.
    """
    from research.eventstudy.results import window_key
    from research.records import Verdict

    out = []
    pw = tuple(int(v) for v in primary_window) if primary_window is not None else None
    for w in car_windows:
        wt = tuple(int(v) for v in w)
        hyp = f"CAR{_fmt_window(w, bar)} after {label} != 0"
        primary = wt == pw
        pre = wt[0] < 1
        mech = MECHANICAL.get(kind or "", "") if pre else ""
        cal = _calibration_for(calibration, wt)
        if result is None:
            out.append(Verdict(hypothesis=hyp, effect=None, n_events=0, test=test, primary=primary,
                               effect_label="CAAR of perp log returns",
                               conclusion=str(NotTestable("no usable events", prefix="not tested"))))
            continue
        car = result.car(wt)["car"].to_numpy()
        car = car[np.isfinite(car)]
        tests = result.car_test(wt, sorted({test, *(t for t in result.spec["tests"])}))
        t = tests.get(test)
        stat = float(t.stat) if t is not None and math.isfinite(t.stat) else math.nan
        p = None if t is None or not math.isfinite(t.pvalue) else float(t.pvalue)
        mean = float(result.car_means.get(window_key(wt), np.mean(car) if car.size else math.nan))
        # the primary row always uses the placebo-calibrated test when placebo studies exist: a test
        # chosen after seeing whether the nominal size held would itself be a pre-test with unknown size
        nominal_size = cal.get("nominal_size", cal.get("size"))
        out_of_band = size_warning(nominal_size) != ""
        cal["calibrated"] = bool(primary and cal.get("p_calibrated") is not None)
        if cal["calibrated"]:
            p = float(cal["p_calibrated"])
        lo, hi, ci_method = _interval(test, car, mean, stat, level, cal)
        extra = "".join(f"; {o} p = {tests[o].pvalue:.3g} (secondary, descriptive)" for o in tests
                        if o != test and math.isfinite(tests[o].pvalue))
        if test not in SIZE_HOLDS:
            extra += "; WARNING: this test's size is not known to hold on fat-tailed, clustered returns"
        if cal["calibrated"]:
            extra += (f"; p = rank of the study's t among {cal.get('n_placebo')} placebo studies (random dates, same "
                      f"clusters and volatility quintile): size {_pct(cal.get('size'))} (each placebo study ranked "
                      f"among the others); the nominal t's size there is {_pct(nominal_size)}")
            if out_of_band:
                extra += f" (outside {SIZE_BAND[0]:.1%}-{SIZE_BAND[1]:.1%}: the nominal p would mislead)"
        elif nominal_size is not None:
            extra += f"; empirical size {nominal_size:.3f} on {cal.get('n_placebo')} placebo dates"
            if out_of_band:
                extra += size_warning(nominal_size) + ": no calibrated p-value, nominal p shown"
        elif primary:
            extra += "; size not measured (no placebo studies): nominal p"
        testable = car.size >= MIN_CLASS_SIZE
        conclusion = (_car_conclusion(p, mean, alpha) if testable else
                      str(NotTestable(f"n = {car.size} events; needs >= {MIN_CLASS_SIZE}")))
        if mech:
            conclusion += f" (mechanical: {mech})"
        elif pre:
            conclusion += " (window includes the event bar or earlier: not what follows the event)"
        out.append(Verdict(hypothesis=hyp, effect=mean if car.size else None,
                           ci_low=finite_or_none(lo) if testable else None,
                           ci_high=finite_or_none(hi) if testable else None, pvalue=p if testable else None,
                           n_events=int(car.size), primary=primary,
                           test=f"{test}{' (placebo-calibrated)' if cal['calibrated'] else ''} "
                                f"(engine, {result.spec['model']} model){extra}",
                           ci_method=ci_method if testable else "",
                           effect_label="CAAR of perp log returns", conclusion=conclusion,
                           size=cal.get("size"), p_calibrated=cal.get("p_calibrated"), n_placebo=cal.get("n_placebo"),
                           mde=cal.get("mde") if testable else None,
                           mde_label="CAAR (log return) detected in 80 % of placebo studies" if cal.get("mde") else ""))
    return out


def calibration_entry(panel: pl.DataFrame, events: pl.DataFrame, study, car_window, test: str, *, window, estimation,
                      model: str, n_placebo: int = 200, seed: int = 0) -> tuple[dict | None, str]:
    """Placebo calibration of ``test`` on ``car_window``: ``({window_key: entry}, note)``.

    ``entry`` has ``size``, ``p_calibrated`` (the study's own statistic ranked among the placebo
    statistics, so it agrees with ``critical_value``), ``n_placebo``, ``critical_value`` and
    ``warning``, as :meth:`CarStudyResult.attach_calibration` takes it. The note says when the size
    is outside the band; ``(None, reason)`` when calibration is not possible.
    """
    from research.eventstudy.results import window_key
    from research.stats_resampling import rank_pvalue

    from .calibration import calibrate

    cw = tuple(int(v) for v in car_window)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cal = calibrate(returns_frame(panel), events.select("ts"), tuple(window), test, car_window=cw,
                            estimation=tuple(estimation), model=model, n_draws=n_placebo, seed=seed)
    except EventStudyError as exc:
        return None, f"placebo calibration not run: {exc}"
    from .power import car_mde

    stat = float(study.car_test(cw, [test])[test].stat)
    p_cal = rank_pvalue(stat, cal.null_stats) if cal.n_draws else None
    mde = car_mde(cal, calibrated=True) if cal.n_draws > 1 else None
    entry = {"size": finite_or_none(cal.calibrated_size), "nominal_size": finite_or_none(cal.size),
             "p_calibrated": finite_or_none(p_cal), "n_placebo": int(cal.n_draws),
             "critical_value": finite_or_none(cal.critical_value), "warning": cal.warning, "mde": finite_or_none(mde)}
    note = (f"placebo calibration of {test} on CAR{_fmt_window(cw)} on {cal.n_draws} placebo studies (random dates, "
            f"same clusters and trailing-volatility quintile): the verdict's p is the study's rank among them (size "
            f"{cal.calibrated_size:.3f}, each placebo study ranked among the others); the nominal t's empirical size "
            f"is {cal.size:.3f} at 0.05; 80 % power at a CAAR of {'n/a' if mde is None else f'{mde:.4g}'} (log return)")
    if cal.warning:
        note = (f"WARNING: {note}; the nominal size is outside {SIZE_BAND[0]:.3f}-{SIZE_BAND[1]:.3f}, so only the "
                f"calibrated p is a valid test")
    return {window_key(cw): entry}, note
