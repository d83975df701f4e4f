"""The CAR study around detector events (notebooks 10-12 and any new event type).

:func:`event_study` runs the event-study engine on perp log returns around a detector's events,
:func:`event_profiles` profiles price, OI, funding and liquidations in event time, and
:func:`car_verdicts` turns the engine's CAR tests into record verdicts. :func:`car_study` does all
three for one event table and returns a :class:`CarStudyResult`; :func:`event_type_study` first runs
the event type's detector named in :mod:`research.hypotheses.registry`.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import polars as pl

from research.errors import EventStudyError
from research.results import Results
from research.stats import fmt

from .carverdicts import (  # noqa: F401  (re-exported: the study's public names live here)
    MECHANICAL,
    PRIMARY_TEST,
    SECONDARY_TESTS,
    SIZE_HOLDS,
    _fmt_window,
    calibration_entry,
    car_verdicts,
)
from .frames import events_for_plot, market_panel_frame, profile_frame, returns_frame

__all__ = [
    "CAR_DEFAULTS",
    "CarStudyResult",
    "calibration_entry",
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
                "liq_profile_hours": 4, "primary_window": [1, 24], "primary_test": PRIMARY_TEST,
                "n_placebo": 200}

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
    writes its record; otherwise ``note`` carries the engine's warnings about the design. The engine's own defaults apply (its overlap policy among them); ``engine``
    passes further keywords to :func:`research.eventstudy.run`.
    """
    from research import eventstudy

    if events.height == 0:
        return None, "no events detected with these parameters"
    cw = None if car_windows is None else [tuple(int(v) for v in w) for w in car_windows]
    attrs = [c for c in events.columns if c not in ("ts", "asset", "symbol", "kind", "event_id")
             and not isinstance(events.schema[c], pl.Datetime)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = eventstudy.run(returns_frame(panel), events.select("ts", "asset", *attrs),
                                 estimation=None if model == "raw" else tuple(estimation), window=tuple(window),
                                 model=model, car_windows=cw, tests=tests, **engine)
    except EventStudyError as exc:
        return None, f"event study not run: {exc}"
    # the engine's design warnings (e.g. contaminated estimation windows) belong in the record
    said = dict.fromkeys(str(w.message) for w in caught if not issubclass(w.category, RuntimeWarning))
    return res, "; ".join(f"engine: {m}" for m in said)


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
    primary_test: str = PRIMARY_TEST
    calibration: dict | None = None
    bar: str = "1h"

    def verdicts(self) -> list:
        return car_verdicts(self.study, self.car_windows, label=self.label, test=self.primary_test,
                            primary_window=self.primary_window, kind=self.key, calibration=self.calibration,
                            bar=self.bar)

    def attach_calibration(self, calibration: dict) -> CarStudyResult:
        """Record placebo calibration per window (``{"[+1,+24]": {"size", "p_calibrated", "n_placebo"}}``,
        optionally ``"critical_value"`` for the calibrated interval; see :func:`calibration_entry`)."""
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
                               + (" - " + plots.SYNTHETIC_NOTE if self.synthetic else ""), bar=self.bar)

    def figures(self) -> dict:
        from research import plots

        out = {}
        if self.study is not None:
            out["caar"] = self.plot()
        if self.profiles.height:
            out["profiles"] = plots.plot_event_profiles(self.profiles, title=f"Around {self.label}: mean and 95% band",
                                                        synthetic=self.synthetic, bar=self.bar)
        if self.panel_frame is not None:
            out["market_panel"] = plots.plot_market_panel(self.panel_frame, events_for_plot(self.events),
                                                          title=f"{self.symbol} with {self.label} marked",
                                                          synthetic=self.synthetic)
        return out


def car_study(inputs, events: pl.DataFrame, *, key: str, label: str, event_window=(-24, 72),
              estimation_window=(-240, -25), model: str = "mean", car_windows=((-24, -1), (0, 24), (1, 24), (1, 72)),
              profile_window=(-48, 72), liq_profile_hours: int = 4, primary_window=(1, 24),
              primary_test: str = PRIMARY_TEST, n_placebo: int = 200, seed: int = 0) -> CarStudyResult:
    """The CAR study of perp log returns around ``events`` in ``inputs`` (:class:`research.panel.Inputs`).

    Events are anchored at ``ts``, which every causal detector sets to ``detected_ts``; a table
    whose ``ts`` precedes its ``detected_ts`` (a lookahead choice) is re-anchored at ``detected_ts``
    so that windows from +1 measure only what follows the moment the event was known. The engine
    runs ``primary_test`` and :data:`SECONDARY_TESTS`; the primary window is calibrated on
    ``n_placebo`` placebo studies (:func:`research.hypotheses.calibration.calibrate`; 0 skips it and
    leaves the nominal test), and its verdict is the calibrated test; the engine's assumption
    warnings join the notes.
    """
    from research.errors import HypothesisError

    if primary_window is not None and list(primary_window) not in [list(w) for w in car_windows]:
        raise HypothesisError(f"car_study: primary_window={list(primary_window)} is not one of car_windows")
    if int(n_placebo) < 0:
        raise HypothesisError(f"car_study: n_placebo={n_placebo} must be >= 0")
    if "detected_ts" in events.columns and events.height:
        late = events.filter(pl.col("detected_ts").is_not_null() & (pl.col("detected_ts") > pl.col("ts")))
        if late.height:
            events = events.with_columns(pl.max_horizontal("ts", "detected_ts").alias("ts"))
    panel = inputs.panel
    tests = [primary_test, *(t for t in SECONDARY_TESTS if t != primary_test)]
    if model == "raw":  # without an estimation window only the event-window tests can run
        from research.eventstudy.catalog import NO_ESTIMATION

        tests = [primary_test, *(t for t in tests[1:] if t in NO_ESTIMATION)]
    study, note = event_study(panel, events, window=tuple(event_window), estimation=tuple(estimation_window),
                              model=model, car_windows=car_windows, tests=tests)
    bar = str(getattr(inputs, "interval", None) or "1h")
    notes = ([note] if note else []) + _study_notes(key, primary_window, primary_test, bar)
    calibration = None
    if study is not None:
        from research.eventstudy import assumption_warnings

        checks = assumption_warnings(study)
        notes += ([f"engine assumption check: {m}" for m in checks] if checks else
                  [f"engine assumption check (fat tails, shared event-window bars): nothing flagged for {', '.join(tests)}"])
        if primary_window is not None and n_placebo:
            calibration, cal_note = calibration_entry(panel, events, study, primary_window, primary_test,
                                                      window=event_window, estimation=estimation_window, model=model,
                                                      n_placebo=int(n_placebo), seed=seed)
            notes += [cal_note] if cal_note else []
    profiles = event_profiles(panel, events, tuple(profile_window), liq_window_hours=liq_profile_hours)
    symbol = str(panel["symbol"][0]) if "symbol" in panel.columns and panel.height else ""
    res = CarStudyResult(key=key, label=label, events=events, study=study, profiles=profiles,
                         car_windows=[list(w) for w in car_windows], symbol=symbol, synthetic=inputs.synthetic,
                         notes=notes, panel_frame=market_panel_frame(panel), primary_window=list(primary_window),
                         primary_test=primary_test, bar=bar)
    return res.attach_calibration(calibration) if calibration else res


def _study_notes(key: str, primary_window, primary_test: str, bar: str = "1h") -> list[str]:
    ci = {"design_hc": "CAAR +- normal critical value x its SE", "cross_sectional_t": "t interval of per-event CARs"}
    out = [(f"primary test: {primary_test} on CAR{_fmt_window(primary_window, bar)} (from the bar after detection), "
            f"placebo-calibrated when placebo studies are drawn (p = the study's rank among them, CI = CAAR +- their "
            f"critical value x SE), else nominal (CI = {ci.get(primary_test, 'none')}); other windows nominal; "
            f"q-values by BH across the record's p-values; "
            f"secondary tests ({', '.join(t for t in SECONDARY_TESTS if t != primary_test)}) in car_tests")]
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
