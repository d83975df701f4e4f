"""Results objects of the event-study engine (arch/linearmodels style)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import special

from research.errors import EventStudyError
from research.results import Results
from research.stats import TestStat

from .statistics import col_moments


def _clean(v: Any) -> Any:
    """JSON-ready value: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, TestStat):
        return v.to_dict()
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if not math.isfinite(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def window_key(w: tuple[int, int]) -> str:
    """Stable label of a sub-window, e.g. ``"[-1,+1]"``."""
    return f"[{int(w[0]):+d},{int(w[1]):+d}]".replace("+0", "0")


@dataclass
class EventStudyResult(Results):
    """Outcome of :func:`research.eventstudy.run`.

    Attributes
    ----------
    spec : dict
        The specification: model, estimation and event windows (bars), anchor rule, bar label,
        bar size, overlap policy, minimum spacing, tests, ``estudy2_compat``.
    event_time : numpy.ndarray
        Event-window offsets in bars.
    events : polars.DataFrame
        Events in the study (``event_id, ts, asset, event_bar_ts, overlap, n_est`` + attributes).
    dropped : polars.DataFrame
        Events left out, with ``reason``.
    ar : numpy.ndarray
        Abnormal returns ``(n_events, window_len)``.
    aar, caar, n : numpy.ndarray
        Average AR, cumulative AAR from the window start, and events per bar.
    caar_lo, caar_hi : numpy.ndarray
        Confidence band of the CAAR (cross-sectional t on cumulative CARs at ``level``).
    bar_tests : dict
        ``name -> BarStats`` per-bar statistics.
    car_tests : dict
        ``window label -> {name -> TestStat}`` for every requested CAR window.
    car_means : dict
        ``window label -> CAAR`` (estudy2_compat: mean of the daily AARs, estudy2's ``car_mean``).
    level : float
        Confidence level of the bands.
    merged : polars.DataFrame or None
        Events merged into an earlier event on the same bar (``event_id, ts, asset,
        into_event_id, reason``).
    """

    spec: dict
    event_time: np.ndarray
    events: pl.DataFrame
    dropped: pl.DataFrame
    ar: np.ndarray
    aar: np.ndarray
    caar: np.ndarray
    n: np.ndarray
    caar_lo: np.ndarray
    caar_hi: np.ndarray
    bar_tests: dict
    car_tests: dict
    car_means: dict
    level: float = 0.95
    merged: pl.DataFrame | None = None
    _battery: Any = field(default=None, repr=False)
    _context: Any = field(default=None, repr=False)

    # --- access -----------------------------------------------------------------------------
    @property
    def n_events(self) -> int:
        """Number of events in the study."""
        return int(self.ar.shape[0])

    def _col(self, t: int) -> int:
        j = int(t) - int(self.event_time[0])
        if not 0 <= j < self.event_time.size:
            raise EventStudyError(f"event time {t} is outside the event window {self.spec['window']}")
        return j

    def test(self, name: str, event_time: int = 0) -> TestStat:
        """Per-bar test ``name`` at ``event_time``.

        Raises
        ------
        EventStudyError
            If the test was not run or the bar is outside the window.
        """
        if name not in self.bar_tests:
            raise EventStudyError(f"test {name!r} was not run; ran {list(self.bar_tests)}")
        return self.bar_tests[name].at(self._col(event_time), f"AAR({event_time}) = 0")

    def car(self, window: tuple[int, int] | None = None) -> pl.DataFrame:
        """Per-event CAR over ``window`` (default: the whole event window).

        Returns
        -------
        polars.DataFrame
            ``event_id, ts, asset, car`` (NaN when a bar of the window is missing).
        """
        w = tuple(self.spec["window"]) if window is None else tuple(window)
        j1, j2 = self._col(w[0]), self._col(w[1])
        return self.events.select("event_id", "ts", "asset").with_columns(
            pl.Series("car", self._battery.car(j1, j2))
        )

    def car_test(self, window: tuple[int, int], tests=None) -> dict[str, TestStat]:
        """CAR tests over any sub-window ``(first, last)`` of the event window.

        Parameters
        ----------
        window : tuple of int
            Sub-window in bars.
        tests : sequence of str, optional
            Test names (default: the tests of the run).
        """
        j1, j2 = self._col(window[0]), self._col(window[1])
        if j1 > j2:
            raise EventStudyError(f"window {window} runs backwards")
        names = self.spec["tests"] if tests is None else list(tests)
        null = f"CAAR{window_key(window)} = 0"
        return {t: self._battery.car_test(t, j1, j2, null) for t in names}

    # --- output -----------------------------------------------------------------------------
    def to_frame(self) -> pl.DataFrame:
        """Tidy per-bar table.

        Returns
        -------
        polars.DataFrame
            ``event_time, n, aar, caar, lo, hi`` (CAAR band) and ``<test>_stat``/``<test>_p``.
        """
        cols = {
            "event_time": self.event_time.astype(np.int64),
            "n": self.n.astype(np.int64),
            "aar": self.aar,
            "caar": self.caar,
            "lo": self.caar_lo,
            "hi": self.caar_hi,
        }
        for name, b in self.bar_tests.items():
            cols[f"{name}_stat"] = b.stat
            cols[f"{name}_p"] = b.pvalue
        return pl.DataFrame(cols).fill_nan(None)

    def tests_frame(self) -> pl.DataFrame:
        """Long table of CAR tests: ``window, test, stat, pvalue, df, caar``."""
        rows = []
        for wk, d in self.car_tests.items():
            for name, ts in d.items():
                rows.append({"window": wk, "test": name, "stat": ts.stat, "pvalue": ts.pvalue,
                             "df": ts.df, "caar": self.car_means[wk]})
        schema = {"window": pl.String, "test": pl.String, "stat": pl.Float64, "pvalue": pl.Float64,
                  "df": pl.Float64, "caar": pl.Float64}
        return pl.DataFrame(rows, schema=schema).fill_nan(None)

    def summary(self) -> str:
        """Plain-text summary: specification, sample, CAR tests."""
        s = self.spec
        lines = [
            "Event study",
            "=" * 72,
            f"model: {s['model']:<18} anchor: {s['anchor']} ({s['bar_label']}-labelled bars, bar {s['bar_size']})",
            f"estimation: {s['estimation']}   window: {s['window']}   overlap: {s['overlap']}"
            f"   min_spacing: {s['min_spacing']}",
            f"events: {self.n_events} used, {self.dropped.height} dropped"
            + (f" ({', '.join(f'{r}: {c}' for r, c in self.dropped.group_by('reason').len().sort('reason').iter_rows())})"
               if self.dropped.height else "")
            + f", {int(self.events['overlap'].sum()) if 'overlap' in self.events.columns else 0} with contaminated estimation window"
            + (f", {self.merged.height} merged into an event on the same bar" if self.merged is not None and self.merged.height else ""),
            f"estudy2_compat: {s['estudy2_compat']}",
            "-" * 72,
        ]
        for wk, d in self.car_tests.items():
            lines.append(f"CAR window {wk}: CAAR = {self.car_means[wk]:.6g}")
            lines.append(f"  {'test':<20}{'stat':>12}{'p-value':>12}{'df':>10}")
            for name, ts in d.items():
                df = "" if ts.df is None else f"{ts.df:g}"
                lines.append(f"  {name:<20}{ts.stat:>12.4f}{ts.pvalue:>12.4g}{df:>10}")
        lines.append("=" * 72)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, title: str | None = None, bar: str | None = None):
        """Altair CAAR chart with its confidence band (:func:`research.plots.plot_caar`); ``bar`` is the
        length of one event-time bar (``"1h"``), stated on the x axis."""
        from research.plots import plot_caar

        return plot_caar(self.to_frame(), title=title or f"CAAR, {self.spec['model']} model, n = {self.n_events}", bar=bar)

    def to_dict(self) -> dict:
        """JSON-serialisable record (spec, sample, per-bar table, CAR tests, dropped events)."""
        return _clean({
            "spec": self.spec,
            "n_events": self.n_events,
            "n_dropped": self.dropped.height,
            "dropped": [{k: (str(v) if k == "ts" else v) for k, v in r.items()} for r in self.dropped.to_dicts()],
            "bars": self.to_frame().to_dict(as_series=False),
            "car_tests": {wk: {n: t.to_dict() for n, t in d.items()} for wk, d in self.car_tests.items()},
            "car_means": self.car_means,
            "level": self.level,
        })

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)


def caar_band(ar: np.ndarray, level: float, block: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CAAR and its cross-sectional t band from per-event cumulative ARs (complete paths only).

    The cumulative paths are built ``block`` events at a time (two passes: sums, then squared
    deviations), so the temporaries stay bounded at scale; one block is :func:`col_moments`.
    """
    n_ev = ar.shape[0]
    if n_ev <= block:
        mu, sd, n = col_moments(np.cumsum(ar, axis=1))  # NaN propagates: an event leaves after a missing bar
    else:
        s, n = np.zeros(ar.shape[1]), np.zeros(ar.shape[1], dtype=np.int64)
        for i in range(0, n_ev, block):
            cum = np.cumsum(ar[i : i + block], axis=1)
            ok = np.isfinite(cum)
            s += np.where(ok, cum, 0.0).sum(0)
            n += ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(n > 0, s / n, np.nan)
            ss = np.zeros(ar.shape[1])
            for i in range(0, n_ev, block):
                d = np.cumsum(ar[i : i + block], axis=1) - mu
                ss += np.where(np.isfinite(d), d * d, 0.0).sum(0)
            sd = np.where(n > 1, np.sqrt(ss / (n - 1)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = special.stdtrit(np.where(n > 1, n - 1, np.nan), 0.5 + level / 2)
        half = q * sd / np.sqrt(n)
    return mu - half, mu + half, n


def compare(results: dict[str, EventStudyResult] | list[EventStudyResult], window: tuple[int, int] | None = None) -> pl.DataFrame:
    """Several specifications side by side.

    Parameters
    ----------
    results : dict of name -> EventStudyResult, or list
        The specifications (a list is named ``spec1``, ``spec2``, ...).
    window : tuple of int, optional
        CAR window to compare (default: each result's full event window).

    Returns
    -------
    polars.DataFrame
        ``quantity`` column (``n_events``, ``caar``, ``<test>.stat``, ``<test>.pvalue``) and one
        Float64 column per specification; a test a specification did not run is null.
    """
    if not isinstance(results, dict):
        results = {f"spec{i + 1}": r for i, r in enumerate(results)}
    if not results:
        raise EventStudyError("compare() needs at least one result")
    cols: dict[str, dict[str, float]] = {}
    order: list[str] = ["n_events", "caar"]
    for name, r in results.items():
        w = tuple(r.spec["window"]) if window is None else tuple(window)
        tests = r.car_test(w)
        j1, j2 = r._col(w[0]), r._col(w[1])
        car = r._battery.car(j1, j2)
        d = {"n_events": float(r.n_events), "caar": float(np.nanmean(car)) if np.isfinite(car).any() else float("nan")}
        for t, ts in tests.items():
            for q, v in ((f"{t}.stat", ts.stat), (f"{t}.pvalue", ts.pvalue)):
                d[q] = v
                if q not in order:
                    order.append(q)
        cols[name] = d
    data = {"quantity": order}
    for name, d in cols.items():
        data[name] = [d.get(q) for q in order]
    return pl.DataFrame(data, schema={"quantity": pl.String, **{n: pl.Float64 for n in cols}}).fill_nan(None)
