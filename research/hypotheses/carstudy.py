"""The CAR study around detector events (notebooks 10-12 and any new event type).

:func:`event_study` runs the event-study engine on perp log returns around a detector's events,
:func:`event_profiles` profiles price, OI, funding and liquidations in event time, and
:func:`car_verdicts` turns the engine's CAR tests into record verdicts. :func:`car_study` does all
three for one event table and returns a :class:`CarStudyResult`; :func:`event_type_study` first runs
the event type's detector named in :mod:`research.hypotheses.registry`.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.errors import EventStudyError
from research.results import Results
from research.stats import (
    MIN_CLASS_SIZE,
    NotTestable,
    finite_or_none,
    fmt,
    size_warning,
    t_interval,
)

from .frames import events_for_plot, market_panel_frame, profile_frame, returns_frame

__all__ = [
    "CAR_DEFAULTS",
    "CarStudyResult",
    "car_study",
    "car_verdicts",
    "event_profiles",
    "event_study",
    "event_type_study",
    "verdicts_frame",
]

#: the study's parameters (notebook names) and their defaults
CAR_DEFAULTS = {"event_window": [-24, 72], "estimation_window": [-240, -25], "model": "mean",
                "car_windows": [[-24, -1], [0, 24], [1, 24], [1, 72]], "profile_window": [-48, 72],
                "liq_profile_hours": 4, "primary_window": [1, 24], "primary_test": "cross_sectional_t"}

#: the CAR tests whose size held on placebo dates of real hourly BTC returns (#12: cross-sectional t
#: 4.7-6.0 %; rank/sign tests are conservative); the parametric Patell/BMP/Brown-Warner family is not
SIZE_HOLDS = ("cross_sectional_t",)


#: event types whose pre-event returns are mechanical (the event is defined by a price fall)
MECHANICAL = {"liquidation_print": "longs are liquidated because the price fell, so returns up to and including "
                                   "the print's bar are mechanical; the test is on what follows the print",
              "selloff": "a sell-off is defined by its price fall, so returns up to its detection are mechanical"}


def event_profiles(panel: pl.DataFrame, events: pl.DataFrame, window: tuple[int, int], *,
                   liq_window_hours: int = 4, level: float = 0.95) -> pl.DataFrame:
    """Event-time profiles (mean, band, n) of price, OI, funding and liquidations around ``events``.

    Price and OI are cumulated from the window start (``cum_ret_pct``, ``cum_oi_pct``); funding and
    liquidations are levels. Empty frame without events.
    """
    from research import eventstudy

    cols = ["event_time", "column", "mean", "median", "lo", "hi", "n"]
    if events.height == 0:
        return pl.DataFrame(schema={"event_time": pl.Int64, "column": pl.String, "mean": pl.Float64,
                                    "median": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "n": pl.Int64})
    fr = profile_frame(panel, liq_window_hours=liq_window_hours)
    ev = events.select("ts", "asset")
    cum = eventstudy.profile(fr.select("ts", "asset", "ret_pct", "oi_chg_pct"), ev, tuple(window),
                             cumulate=True, level=level, require_value="ret_pct")
    cum = cum.with_columns(pl.col("column").replace({"ret_pct": "cum_ret_pct", "oi_chg_pct": "cum_oi_pct"}))
    lev = eventstudy.profile(fr.select("ts", "asset", "funding_8h_bp", "liq_long_musd", "liq_short_musd"), ev,
                             tuple(window), level=level, require_value="funding_8h_bp")
    out = pl.concat([cum.select(cols), lev.select(cols)], how="vertical_relaxed")
    return out.with_columns(pl.col("n").cast(pl.Int64))


def event_study(panel: pl.DataFrame, events: pl.DataFrame, *, window=(-24, 72), estimation=(-240, -25),
                model: str = "mean", car_windows=None, tests=None, **engine):
    """Run the event study of perp log returns around ``events``; ``(result, note)``.

    ``result`` is None (and ``note`` says why) when there are no usable events, so a run still
    writes its record. The engine's own defaults apply (its overlap policy among them); ``engine``
    passes further keywords to :func:`research.eventstudy.run`.
    """
    from research import eventstudy

    if events.height == 0:
        return None, "no events detected with these parameters"
    cw = None if car_windows is None else [tuple(int(v) for v in w) for w in car_windows]
    attrs = [c for c in events.columns if c not in ("ts", "asset", "symbol", "kind", "event_id")
             and not isinstance(events.schema[c], pl.Datetime)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = eventstudy.run(returns_frame(panel), events.select("ts", "asset", *attrs),
                                 estimation=None if model == "raw" else tuple(estimation), window=tuple(window),
                                 model=model, car_windows=cw, tests=tests, **engine)
    except EventStudyError as exc:
        return None, f"event study not run: {exc}"
    return res, ""


def _fmt_window(w, bar: str = "1h") -> str:
    # windows count bars: on 1 h bars they read as hours, on coarser bars they say so
    a, b = int(w[0]), int(w[1])
    if bar == "1h":
        return f"({a:+d}h,{b:+d}h)" if a else f"(0,{b:+d}h)"
    return f"({a:+d},{b:+d} bars of {bar})" if a else f"(0,{b:+d} bars of {bar})"


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


def car_verdicts(result, car_windows, *, label: str, test: str = "cross_sectional_t",
                 level: float = 0.95, alpha: float = 0.05, primary_window=(1, 24), kind: str | None = None,
                 calibration: dict | None = None, bar: str = "1h") -> list:
    """One :class:`~research.records.Verdict` per CAR window: ``CAR(w) after <label> != 0``.

    Effect = CAAR (mean CAR of perp log returns). The test is the engine's ``test`` (default and
    primary: the cross-sectional t, whose size holds on this data); the CI is the t interval of the
    per-event CARs at ``level``, i.e. the inversion of that same test, so it excludes 0 exactly when
    p < 1 - level (for another ``test`` no CI is printed). ``primary_window`` marks the primary row; a
    window starting before +1 includes the event's own bar and earlier (known before or at
    detection), and for :data:`MECHANICAL` event types says so. ``calibration`` (e.g. from
    :mod:`research.hypotheses.calibration`) maps a window key (``"[+1,+24]"``) to ``{"size": ..,
    "p_calibrated": .., "n_placebo": ..}``; the size is recorded and a note warns when it lies outside
    :data:`SIZE_BAND`. Without a result every verdict is :class:`~research.stats.NotTestable`.
    """
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
        mean, lo, hi = t_interval(car, level)
        tests = result.car_test(wt)
        t = tests.get(test)
        p = None if t is None or not math.isfinite(t.pvalue) else float(t.pvalue)
        if test != "cross_sectional_t":
            lo = hi = math.nan      # a t interval would not be this test's interval
        extra = ""
        if "wilcoxon" in tests and test != "wilcoxon" and math.isfinite(tests["wilcoxon"].pvalue):
            extra = f"; Wilcoxon signed-rank p = {tests['wilcoxon'].pvalue:.3g} (not BH-adjusted, descriptive)"
        if test not in SIZE_HOLDS:
            extra += "; WARNING: this test's size is not known to hold on fat-tailed, clustered returns"
        extra += size_warning(cal.get("size")).replace("size", "empirical size on placebo dates", 1)
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
                           test=f"{test} (engine, {result.spec['model']} model){extra}",
                           ci_method="t interval of per-event CARs (inverts the cross-sectional t)"
                           if test == "cross_sectional_t" else "",
                           effect_label="CAAR of perp log returns", conclusion=conclusion,
                           size=cal.get("size"), p_calibrated=cal.get("p_calibrated"), n_placebo=cal.get("n_placebo")))
    return out


def verdicts_frame(verdicts: list) -> pl.DataFrame:
    """Verdicts as a table (:func:`research.records.verdicts_frame`: q-values beside p-values)."""
    from research.records import verdicts_frame as _vf

    return _vf(verdicts)


@dataclass
class CarStudyResult(Results):
    """CAR study around one event type.

    Attributes
    ----------
    key : str
        The event type (a :mod:`research.hypotheses.registry` key).
    label : str
        Its name in prose (e.g. ``"funding resets"``).
    events : polars.DataFrame
        The detector's events.
    study : research.eventstudy.EventStudyResult or None
        The engine's result (None without usable events; ``notes`` says why).
    profiles : polars.DataFrame
        :func:`event_profiles`.
    car_windows : list
    extra : dict
        Further tables of the event type (e.g. the funding distribution).
    panel_frame : polars.DataFrame
        :func:`research.hypotheses.frames.market_panel_frame` for the market-panel figure.
    """

    key: str
    label: str
    events: pl.DataFrame
    study: object
    profiles: pl.DataFrame
    car_windows: list
    symbol: str = ""
    synthetic: bool = False
    extra: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    panel_frame: pl.DataFrame | None = None
    primary_window: list = field(default_factory=lambda: [1, 24])
    primary_test: str = "cross_sectional_t"
    calibration: dict | None = None
    bar: str = "1h"

    def verdicts(self) -> list:
        return car_verdicts(self.study, self.car_windows, label=self.label, test=self.primary_test,
                            primary_window=self.primary_window, kind=self.key, calibration=self.calibration,
                            bar=self.bar)

    def attach_calibration(self, calibration: dict) -> CarStudyResult:
        """Record placebo calibration per window (``{"[+1,+24]": {"size", "p_calibrated", "n_placebo"}}``)."""
        self.calibration = dict(calibration)
        return self

    def to_frame(self) -> pl.DataFrame:
        return verdicts_frame(self.verdicts())

    def tables(self) -> dict[str, pl.DataFrame]:
        out = {"events": self.events, "verdicts": self.to_frame(), "profiles": self.profiles, **self.extra}
        if self.study is not None:
            out["caar"] = self.study.to_frame()
            out["car_tests"] = self.study.tests_frame()
        return out

    def summary(self) -> str:
        head = [f"CAR study around {self.label}: {self.events.height} events"]
        prim = [v for v in self.verdicts() if v.primary]
        if prim and self.study is not None:
            tab = self.verdict_table().filter(pl.col("primary"))
            r = tab.row(0, named=True) if tab.height else {}
            head.append(f"primary: {prim[0].hypothesis}: CAAR {fmt(r.get('effect'))} [{fmt(r.get('ci_low'))}, "
                        f"{fmt(r.get('ci_high'))}], {self.primary_test} p = {fmt(r.get('pvalue'))}, "
                        f"BH q = {fmt(r.get('q_value'))}, size on placebo = {fmt(r.get('size'), '.3f')}")
        body = self.study.summary() if self.study is not None else "\n".join(f"note: {n}" for n in self.notes)
        return "\n".join(head + [body])

    def plot(self):
        """The CAAR chart (the engine's), titled for the event type."""
        from research import plots

        if self.study is None:
            raise EventStudyError(f"no event study around {self.label}: {'; '.join(self.notes)}")
        return self.study.plot(title=f"CAAR of perp log returns around {self.label} (n = {self.study.n_events})"
                               + (" - " + plots.SYNTHETIC_NOTE if self.synthetic else ""), bar=self._bar)

    @property
    def _bar(self) -> str:
        # the study runs on the hourly panel unless the result says otherwise
        return getattr(self, "interval", None) or "1h"

    def figures(self) -> dict:
        from research import plots

        out = {}
        if self.study is not None:
            out["caar"] = self.plot()
        if self.profiles.height:
            out["profiles"] = plots.plot_event_profiles(self.profiles, title=f"Around {self.label}: mean and 95% band",
                                                        synthetic=self.synthetic, bar=self._bar)
        if self.panel_frame is not None:
            out["market_panel"] = plots.plot_market_panel(self.panel_frame, events_for_plot(self.events),
                                                          title=f"{self.symbol} with {self.label} marked",
                                                          synthetic=self.synthetic)
        return out


def car_study(inputs, events: pl.DataFrame, *, key: str, label: str, event_window=(-24, 72),
              estimation_window=(-240, -25), model: str = "mean", car_windows=((-24, -1), (0, 24), (1, 24), (1, 72)),
              profile_window=(-48, 72), liq_profile_hours: int = 4, primary_window=(1, 24),
              primary_test: str = "cross_sectional_t") -> CarStudyResult:
    """The CAR study of perp log returns around ``events`` in ``inputs`` (:class:`research.panel.Inputs`).

    Events are anchored at ``ts``, which every causal detector sets to ``detected_ts``; a table
    whose ``ts`` precedes its ``detected_ts`` (a lookahead choice) is re-anchored at ``detected_ts``
    so that windows from +1 measure only what follows the moment the event was known.
    """
    from research.errors import HypothesisError

    if primary_window is not None and list(primary_window) not in [list(w) for w in car_windows]:
        raise HypothesisError(f"car_study: primary_window={list(primary_window)} is not one of car_windows")
    if "detected_ts" in events.columns and events.height:
        late = events.filter(pl.col("detected_ts").is_not_null() & (pl.col("detected_ts") > pl.col("ts")))
        if late.height:
            events = events.with_columns(pl.max_horizontal("ts", "detected_ts").alias("ts"))
    panel = inputs.panel
    study, note = event_study(panel, events, window=tuple(event_window), estimation=tuple(estimation_window),
                              model=model, car_windows=car_windows)
    profiles = event_profiles(panel, events, tuple(profile_window), liq_window_hours=liq_profile_hours)
    symbol = str(panel["symbol"][0]) if "symbol" in panel.columns and panel.height else ""
    bar = str(getattr(inputs, "interval", None) or "1h")
    return CarStudyResult(key=key, label=label, events=events, study=study, profiles=profiles,
                          car_windows=[list(w) for w in car_windows], symbol=symbol, synthetic=inputs.synthetic,
                          notes=([note] if note else []) + _study_notes(key, primary_window, primary_test, bar),
                          panel_frame=market_panel_frame(panel), primary_window=list(primary_window),
                          primary_test=primary_test, bar=bar)


def _study_notes(key: str, primary_window, primary_test: str, bar: str = "1h") -> list[str]:
    out = [(f"primary test: {primary_test} on CAR{_fmt_window(primary_window, bar)} (from the bar after detection); "
            "CI = t interval of per-event CARs (same method); q-values by BH across the record's p-values")]
    if key in MECHANICAL:
        out.append(f"pre-event returns are mechanical: {MECHANICAL[key]}")
    return out


def _accepted(fn, params: dict) -> dict:
    names = inspect.signature(fn).parameters
    return {k: v for k, v in params.items() if k in names}


def event_type_study(key: str, inputs, **params) -> CarStudyResult:
    """Detect the events of registry entry ``key`` and run :func:`car_study` around them.

    ``params`` are the study's parameters (:func:`research.hypotheses.run` drops the loader's and
    ``output_dir``): those the detector accepts go to it, :data:`CAR_DEFAULTS`' names go to the
    study, any other name is a :class:`~research.errors.HypothesisError`. The entry's ``extras``
    (if any) add tables and notes.
    """
    from .registry import get

    entry = get(key)
    detector = entry.detector_fn()
    det_kw = _accepted(detector, params)
    unknown = sorted(set(params) - set(det_kw) - set(CAR_DEFAULTS))
    if unknown:
        from research.errors import HypothesisError

        raise HypothesisError(f"{key}: parameter(s) {unknown} are neither {detector.__name__}'s nor the CAR study's "
                              f"({', '.join(CAR_DEFAULTS)})")
    events = detector(inputs.panel, **det_kw)
    car = {k: params.get(k, v) for k, v in CAR_DEFAULTS.items()}
    res = car_study(inputs, events, key=key, label=entry.label, **car)
    if entry.extras is not None:
        tables, notes = entry.extras_fn()(inputs.panel, events, params)
        res.extra.update(tables)
        res.notes[:0] = notes  # the event type's notes describe the events, so they come first
    return res
