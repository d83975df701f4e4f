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
from research.stats import NotTestable, t_interval

from .frames import events_for_plot, market_panel_frame, profile_frame, returns_frame

__all__ = ["CarStudyResult", "car_study", "event_type_study", "event_study", "event_profiles", "car_verdicts",
           "verdicts_frame", "CAR_DEFAULTS"]

#: the study's parameters (notebook names) and their defaults
CAR_DEFAULTS = {"event_window": [-24, 72], "estimation_window": [-240, -25], "model": "mean",
                "car_windows": [[-24, -1], [0, 24], [1, 24], [1, 72]], "profile_window": [-48, 72],
                "liq_profile_hours": 4}

_VERDICT_SCHEMA = {"hypothesis": pl.String, "effect": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
                   "pvalue": pl.Float64, "n_events": pl.Int64, "test": pl.String, "effect_label": pl.String,
                   "conclusion": pl.String}


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


def _fmt_window(w) -> str:
    a, b = int(w[0]), int(w[1])
    return f"({a:+d}h,{b:+d}h)" if a else f"(0,{b:+d}h)"


def _car_conclusion(p, mean: float, alpha: float) -> str:
    if p is None:
        return str(NotTestable("too few events", prefix="not tested"))
    if p < alpha:
        return f"reject CAR = 0 at {alpha:g} ({'positive' if mean > 0 else 'negative'})"
    return f"CAR = 0 not rejected at {alpha:g}"


def car_verdicts(result, car_windows, *, label: str, test: str = "cross_sectional_t",
                 level: float = 0.95, alpha: float = 0.05) -> list:
    """One :class:`~research.records.Verdict` per CAR window: ``CAR(w) after <label> != 0``.

    Effect = CAAR (mean CAR of perp log returns); CI = t interval of the per-event CARs at
    ``level``; p-value from the engine's ``test`` (default the cross-sectional t), with the Wilcoxon
    signed-rank p-value added to ``test`` when it was run. Without a result every verdict has
    ``n_events=0`` and is :class:`~research.stats.NotTestable`.
    """
    from research.records import Verdict

    out = []
    for w in car_windows:
        hyp = f"CAR{_fmt_window(w)} after {label} != 0"
        if result is None:
            out.append(Verdict(hypothesis=hyp, effect=None, n_events=0, test=test,
                               effect_label="CAAR of perp log returns",
                               conclusion=str(NotTestable("no usable events", prefix="not tested"))))
            continue
        car = result.car(tuple(w))["car"].to_numpy()
        car = car[np.isfinite(car)]
        mean, lo, hi = t_interval(car, level)
        tests = result.car_test(tuple(w))
        t = tests.get(test)
        p = None if t is None or not math.isfinite(t.pvalue) else float(t.pvalue)
        extra = ""
        if "wilcoxon" in tests and test != "wilcoxon" and math.isfinite(tests["wilcoxon"].pvalue):
            extra = f"; Wilcoxon signed-rank p = {tests['wilcoxon'].pvalue:.3g}"
        out.append(Verdict(hypothesis=hyp, effect=mean, ci_low=lo, ci_high=hi, pvalue=p, n_events=int(car.size),
                           test=f"{test} (engine, {result.spec['model']} model){extra}",
                           effect_label="CAAR of perp log returns", conclusion=_car_conclusion(p, mean, alpha)))
    return out


def verdicts_frame(verdicts: list) -> pl.DataFrame:
    """Verdicts as a table."""
    return pl.DataFrame([{k: getattr(v, k) for k in _VERDICT_SCHEMA} for v in verdicts], schema=_VERDICT_SCHEMA)


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

    def verdicts(self) -> list:
        return car_verdicts(self.study, self.car_windows, label=self.label)

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
        body = self.study.summary() if self.study is not None else "\n".join(f"note: {n}" for n in self.notes)
        return "\n".join(head + [body])

    def plot(self):
        """The CAAR chart (the engine's), titled for the event type."""
        from research import plots

        if self.study is None:
            raise EventStudyError(f"no event study around {self.label}: {'; '.join(self.notes)}")
        return self.study.plot(title=f"CAAR of perp log returns around {self.label} (n = {self.study.n_events})"
                               + (" - " + plots.SYNTHETIC_NOTE if self.synthetic else ""))

    def figures(self) -> dict:
        from research import plots

        out = {}
        if self.study is not None:
            out["caar"] = self.plot()
        if self.profiles.height:
            out["profiles"] = plots.plot_event_profiles(self.profiles, title=f"Around {self.label}: mean and 95% band",
                                                        synthetic=self.synthetic)
        if self.panel_frame is not None:
            out["market_panel"] = plots.plot_market_panel(self.panel_frame, events_for_plot(self.events),
                                                          title=f"{self.symbol} with {self.label} marked",
                                                          synthetic=self.synthetic)
        return out


def car_study(inputs, events: pl.DataFrame, *, key: str, label: str, event_window=(-24, 72),
              estimation_window=(-240, -25), model: str = "mean", car_windows=((-24, -1), (0, 24), (1, 24), (1, 72)),
              profile_window=(-48, 72), liq_profile_hours: int = 4) -> CarStudyResult:
    """The CAR study of perp log returns around ``events`` in ``inputs`` (:class:`research.panel.Inputs`)."""
    panel = inputs.panel
    study, note = event_study(panel, events, window=tuple(event_window), estimation=tuple(estimation_window),
                              model=model, car_windows=car_windows)
    profiles = event_profiles(panel, events, tuple(profile_window), liq_window_hours=liq_profile_hours)
    symbol = str(panel["symbol"][0]) if "symbol" in panel.columns and panel.height else ""
    return CarStudyResult(key=key, label=label, events=events, study=study, profiles=profiles,
                          car_windows=[list(w) for w in car_windows], symbol=symbol, synthetic=inputs.synthetic,
                          notes=[note] if note else [], panel_frame=market_panel_frame(panel))


def _accepted(fn, params: dict) -> dict:
    names = inspect.signature(fn).parameters
    return {k: v for k, v in params.items() if k in names}


def event_type_study(key: str, inputs, **params) -> CarStudyResult:
    """Detect the events of registry entry ``key`` and run :func:`car_study` around them.

    ``params`` are the run's parameters: those the detector accepts go to it, :data:`CAR_DEFAULTS`'
    names go to the study, the rest (loader and output parameters) are ignored. The entry's
    ``extras`` (if any) add tables and notes.
    """
    from .registry import get

    entry = get(key)
    detector = entry.detector_fn()
    events = detector(inputs.panel, **_accepted(detector, params))
    car = {k: params.get(k, v) for k, v in CAR_DEFAULTS.items()}
    res = car_study(inputs, events, key=key, label=entry.label, **car)
    if entry.extras is not None:
        tables, notes = entry.extras_fn()(inputs.panel, events, params)
        res.extra.update(tables)
        res.notes[:0] = notes  # the event type's notes describe the events, so they come first
    return res
