"""Entry point :func:`run`: abnormal returns and tests (:func:`profile` lives in :mod:`.profiles`)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from research.errors import EventStudyError

from . import chunks as _chunks
from . import contamination as _contam
from . import models as _models
from . import overlap as _overlap
from . import windows as W
from .profiles import profile  # noqa: F401 (re-exported)
from .results import EventStudyResult, caar_band, window_key
from .statistics import TestBattery, resolve_tests


@dataclass
class _Context:
    """What placebo inference needs to re-run the same design at other dates."""

    panel: W.Panel
    market: np.ndarray | None
    est: np.ndarray | None
    win: np.ndarray
    model: str
    compat: bool
    min_estimation: int
    asset_idx: np.ndarray
    bar_idx: np.ndarray


def _market_vector(panel: W.Panel, market) -> np.ndarray | None:
    if market is None:
        return None
    if isinstance(market, str):
        if market not in panel.asset_index:
            raise EventStudyError(f"market={market!r} is not an asset in returns (have {panel.assets[:10]}...)")
        return panel.values["return"][panel.asset_index[market]].copy()
    if isinstance(market, pl.DataFrame):
        col = "return" if "return" in market.columns else None
        if col is None:
            raise EventStudyError(f"market frame needs columns ts, return; it has {market.columns}")
        if "asset" in market.columns and market["asset"].n_unique() > 1:
            raise EventStudyError("market frame holds several assets; pass one benchmark series")
        return W.align_series(panel, market, col, what="market")
    raise EventStudyError(f"market must be None, an asset name or a polars frame (ts, return); got {type(market).__name__}")


def run(
    returns: pl.DataFrame,
    events: pl.DataFrame,
    *,
    estimation: tuple[int, int] | None = (-250, -11),
    window: tuple[int, int] = (-10, 10),
    model: str = "market",
    market: str | pl.DataFrame | None = None,
    anchor: str = "containing",
    bar_label: str = "open",
    overlap: str = "flag",
    event_overlap: str = "thin",
    min_spacing: int | None = None,
    min_coverage: float | None = None,
    min_estimation: int | None = None,
    tests=None,
    car_windows: list[tuple[int, int]] | None = None,
    level: float = 0.95,
    estudy2_compat: bool = False,
    chunk_size: int | None = _chunks.CHUNK,
) -> EventStudyResult:
    """Run an event study on bar returns.

    Parameters
    ----------
    returns : polars.DataFrame or Panel
        ``ts, asset, return`` on a regular bar grid per asset (bar size detected; missing bars
        are NaN, never shifted), or a :class:`Panel` from :func:`build_panel` to reuse one grid
        across several specifications.
    events : polars.DataFrame
        ``ts, asset`` and optional attribute columns (kept for :func:`car_regression`).
    estimation : (int, int) or None
        Estimation window ``(-L1, -L0)`` in bars relative to the event bar, inclusive. None only
        with ``model="raw"`` (then only the event-window tests run).
    window : (int, int)
        Event window ``(-a, +b)`` in bars, inclusive.
    model : {"market", "mean", "market_adjusted", "raw"}
        Normal-return model.
    market : str or polars.DataFrame, optional
        Benchmark: an asset of ``returns`` or a frame ``ts, return`` on the same grid.
    anchor : {"containing", "next"}
        Event bar = bar containing the event time, or the next bar. Reported in ``spec``.
    bar_label : {"open", "close"}
        Whether ``ts`` labels a bar's open (default) or close time.
    overlap : {"flag", "drop", "shorten", "keep"}
        Estimation windows containing another event's window (same asset): keep and flag (warns),
        drop the event, shorten the window to its clean part next to the event, or keep silently.
        The ``overlap`` column of ``events`` flags them in every case.
    event_overlap : {"thin", "drop", "keep"}
        Events whose *event* windows share a bar (same asset): keep the earliest of each chain
        and drop the later ones (default: no two CAR windows share a bar), drop every event of a
        chain, or keep them all (then use dependence-robust inference: ``bmp_kp``,
        ``calendar_hac``, or :func:`placebo`, whose dates keep the events' gaps). Events on the
        same bar as an earlier event are always merged into it and listed in ``merged``; dropped
        ones are listed in ``dropped`` (reason ``"event_window_overlap"``). ``events["cluster"]``
        numbers the chains that remain.
    min_spacing : int, optional
        Thin events to at least this many bars apart per asset (earliest kept).
    min_coverage : float, optional
        The missing-bar rule: an event stays only if at least this share of its event-window bars
        has an abnormal return (default 0.9; 0 under ``estudy2_compat``); others are dropped with
        reason ``"missing_window_bars"``. A kept event's CAR is the sum of its present ARs, with
        the CAR variances over those bars; CAAR, CAR tests and :func:`car_regression` all use
        this one sample.
    min_estimation : int, optional
        Minimum estimation observations (default: half the estimation window, at least k + 3).
    tests : sequence of str, optional
        Test names: None runs :data:`~research.eventstudy.statistics.DEFAULT_TESTS` (the set
        measured to hold its size for one asset with clustered events), ``"all"`` every test;
        :data:`~research.eventstudy.TESTS` documents each test's assumptions.
    car_windows : list of (int, int), optional
        Sub-windows for CAR tests (default: the whole event window).
    level : float
        Confidence level of the CAAR band.
    estudy2_compat : bool
        Reproduce estudy2 0.10.0's conventions (see :mod:`research.eventstudy.statistics`).
    chunk_size : int or None
        Studies with more events are gathered and fitted this many events at a time, keeping
        only the event-window ARs and per-event vectors (see :mod:`.chunks`): memory stays
        bounded at 100k events. None fits all events at once. The results agree to 1e-12.

    Returns
    -------
    EventStudyResult

    Raises
    ------
    EventStudyError
        Bad columns, windows, model/benchmark combinations or too few usable events.
    """
    if overlap not in W.OVERLAP_POLICIES:
        raise EventStudyError(f"overlap={overlap!r}; use one of {W.OVERLAP_POLICIES}")
    if model not in _models.MODELS:
        raise EventStudyError(f"model={model!r}; use one of {_models.MODELS}")
    if not 0 < level < 1:
        raise EventStudyError(f"level={level} must be in (0, 1)")
    win = W.offsets(window, "window")
    est = None if estimation is None else W.offsets(estimation, "estimation")
    if est is None and model != "raw":
        raise EventStudyError(f"model={model!r} needs estimation=(-L1, -L0)")
    if est is not None and est[-1] >= win[0] and est[0] <= win[-1]:
        warnings.warn(f"estimation window {estimation} overlaps the event window {window}", stacklevel=2)
    names = resolve_tests(tests, est is not None, estudy2_compat)
    if isinstance(returns, W.Panel):
        if "return" not in returns.values:
            raise EventStudyError("the Panel passed as returns has no 'return' column; build it with build_panel(returns)")
        panel = returns
    else:
        panel = W.build_panel(returns, ["return"])
    mvec = _market_vector(panel, market)
    if model in ("market", "market_adjusted") and mvec is None:
        raise EventStudyError(f"model={model!r} needs market=<asset name or frame (ts, return)>")
    anch = W.anchor_events(panel, events, anchor=anchor, bar_label=bar_label, value="return")
    anch = W.thin(anch, min_spacing)
    anch, merged, _ = _overlap.resolve_event_overlap(anch, (int(win[0]), int(win[-1])), event_overlap)
    if min_coverage is None:
        min_coverage = 0.0 if estudy2_compat else 0.9
    if not 0 <= min_coverage <= 1:
        raise EventStudyError(f"min_coverage={min_coverage} must be in [0, 1]")
    k = _models.N_PARAMS[model]
    if min_estimation is None:
        min_estimation = 0 if est is None else max(k + 3, est.size // 2)

    ov = None if est is None else overlap
    chunked = chunk_size is not None and anch.bar_idx.size > int(chunk_size)
    if chunk_size is not None and int(chunk_size) < 1:
        raise EventStudyError(f"chunk_size={chunk_size} must be a positive number of events or None")
    if chunked:  # bounded memory: ARs and per-event vectors only; windows regathered on demand
        fit, flag, wcover = _chunks.fit_chunked(panel, mvec, anch, est, win, model, estudy2_compat, ov, int(chunk_size))
    else:
        flag = np.zeros(anch.bar_idx.size, dtype=bool)
        wcover = None
        if ov is not None and anch.bar_idx.size:
            flag = _contam.overlap_flags(anch.asset_idx, anch.bar_idx, est, win)
            if ov == "shorten" and flag.any():
                wcover = _contam.window_cover(panel, anch.asset_idx, anch.bar_idx, (int(win[0]), int(win[-1])))
        # fit every anchored event, then drop: the fit counts each event's estimation observations
        fit = _models.fit(model, *_chunks.gather(panel, mvec, anch.asset_idx, anch.bar_idx, est, win, wcover),
                          full_market_term=estudy2_compat)
    n_est = None if est is None else fit.n_est
    keep = ~flag if overlap == "drop" else np.ones(flag.size, dtype=bool)
    reason = np.where(~keep, "overlap", "")
    if n_est is not None:
        short = keep & (n_est < min_estimation)
        reason = np.where(short, "insufficient_estimation", reason)
        keep &= ~short
    if min_coverage > 0:
        cover = np.isfinite(fit.evt_ar).sum(1) / max(1, win.size)
        gappy = keep & (cover < min_coverage)
        reason = np.where(gappy, "missing_window_bars", reason)
        keep &= ~gappy
    if not keep.all():
        for r in ("overlap", "insufficient_estimation", "missing_window_bars"):
            sel = reason != r  # drop one reason at a time so each is reported correctly
            if (~sel).any():
                anch = anch.subset(sel, r)
                fit = fit.take(sel)
                flag, reason = flag[sel], reason[sel]
                n_est = n_est[sel] if n_est is not None else None
    if anch.bar_idx.size == 0:
        raise EventStudyError(
            f"no usable events: {anch.dropped.height} dropped "
            f"({anch.dropped.group_by('reason').len().to_dicts()}); check event times, assets and windows"
        )
    if overlap == "flag" and flag.any():
        warnings.warn(f"{int(flag.sum())} event(s) have another event inside their estimation window "
                      "(see events['overlap']; choose overlap='drop' or 'shorten' to act on it)", stacklevel=2)
    loader = None
    if chunked:
        loader = _chunks.Loader(panel, mvec, est, win, model, estudy2_compat, anch.asset_idx, anch.bar_idx, wcover,
                                int(chunk_size))
    bat = TestBattery(fit, compat=estudy2_compat, loader=loader)
    bat.asset_idx, bat.bar_idx = anch.asset_idx, anch.bar_idx
    bat.est_window, bat.win0 = (None if est is None else (int(est[0]), int(est[-1]))), int(win[0])
    bar_tests = {t: bat.bar(t) for t in names}
    windows = [tuple(window)] if car_windows is None else [tuple(map(int, w)) for w in car_windows]
    car_tests, car_means = {}, {}
    aar = _aar(fit.evt_ar)
    lo, hi, _ = caar_band(fit.evt_ar, level)
    for w in windows:
        j1, j2 = int(w[0] - win[0]), int(w[1] - win[0])
        if not (0 <= j1 <= j2 < win.size):
            raise EventStudyError(f"car window {w} is not inside the event window {window}")
        wk = window_key(w)
        car_tests[wk] = {t: bat.car_test(t, j1, j2, f"CAAR{wk} = 0") for t in names}
        if estudy2_compat:
            car_means[wk] = float(np.nanmean(aar[j1 : j2 + 1]))
        else:
            car = bat.car(j1, j2)
            car_means[wk] = float(np.nanmean(car)) if np.isfinite(car).any() else math.nan
    ev = anch.events.clone()  # shares buffers; columns are inserted in place (no lazy select)
    for name in ("overlap", "n_est", "cluster"):
        if name in ev.columns:  # events passed back in from an earlier result
            ev.drop_in_place(name)
    ev.insert_column(4, pl.Series("overlap", flag))
    ev.insert_column(5, pl.Series("n_est", np.zeros(flag.size, dtype=np.int64) if n_est is None else n_est.astype(np.int64)))
    ev.insert_column(6, pl.Series("cluster", _overlap.clusters(anch.asset_idx, anch.bar_idx, (int(win[0]), int(win[-1])))))
    spec = {
        "model": model, "estimation": None if est is None else [int(est[0]), int(est[-1])],
        "window": [int(win[0]), int(win[-1])], "anchor": anchor, "bar_label": bar_label,
        "bar_size": panel.bar_size_str(), "overlap": overlap, "event_overlap": event_overlap,
        "min_spacing": min_spacing, "min_coverage": float(min_coverage),
        "min_estimation": int(min_estimation), "tests": list(names), "estudy2_compat": bool(estudy2_compat),
        "car_windows": [list(w) for w in windows],
        "market": market if isinstance(market, str) else ("frame" if market is not None else None),
    }
    ctx = _Context(panel, mvec, est, win, model, estudy2_compat, int(min_estimation), anch.asset_idx, anch.bar_idx)
    return EventStudyResult(
        spec=spec, event_time=win, events=ev, dropped=anch.dropped, ar=fit.evt_ar, aar=aar,
        caar=np.cumsum(aar), n=np.isfinite(fit.evt_ar).sum(0),
        caar_lo=lo, caar_hi=hi, bar_tests=bar_tests, car_tests=car_tests, car_means=car_means,
        level=level, merged=merged, _battery=bat, _context=ctx,
    )


def _aar(ar: np.ndarray, block: int = 8192) -> np.ndarray:
    """Mean AR per bar over the events with a value, in event blocks (no full-size masked copy)."""
    s, cnt = np.zeros(ar.shape[1]), np.zeros(ar.shape[1], dtype=np.int64)
    for i in range(0, max(ar.shape[0], 1), block):
        sub = ar[i : i + block]
        ok = np.isfinite(sub)
        s += np.where(ok, sub, 0.0).sum(0)
        cnt += ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / cnt, np.nan)
