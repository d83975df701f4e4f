"""Event-study engine for many events on 24/7 markets (bars, not trading days).

Public API::

    run(returns, events, *, estimation=(-250, -11), window=(-10, 10), model="market", market=None,
        anchor="containing"|"next", overlap="flag"|"drop"|"shorten"|"keep",
        event_overlap="thin"|"drop"|"keep", min_spacing=None, min_coverage=0.9,
        tests=None (DEFAULT_TESTS) | "all" | names, estudy2_compat=False,
        chunk_size=8192 (events per gather/fit block; None = all at once)) -> EventStudyResult
    placebo_size(returns, events, window=, estimation=, test=, car_window=None, n_draws=200, ...)
    assumption_warnings(result) -> list of str (and AssumptionWarning)
    profile(frame, events, window, ...)   # tidy event_time, column, mean, median, lo, hi, n
    bootstrap(result, ...), placebo(result, ...), bh(pvalues)
    car_regression(result, attributes, ...)
    compare({"name": result, ...})

Validated against estudy2 0.10.0's published outputs and xKDR eventstudies' test expectations
(see ``tests/eventstudy``).
"""
from __future__ import annotations

from .core import profile, run
from .inference import InferenceResult, bh, bootstrap, placebo
from .models import MODELS
from .placebo import (
    AssumptionWarning,
    PlaceboSize,
    assumption_warnings,
    matched_shifts,
    placebo_size,
)
from .regression import CarRegressionResult, car_regression
from .results import EventStudyResult, compare
from .statistics import DEFAULT_TESTS, NONPARAMETRIC, PARAMETRIC, TESTS
from .windows import Panel


def build_panel(returns, columns=("return",)) -> Panel:
    """Put ``returns`` (ts, asset, return) on its bar grid once, to pass to several :func:`run` calls.

    Parameters
    ----------
    returns : polars.DataFrame
        ``ts, asset`` and the value columns.
    columns : sequence of str
        Value columns (``run`` needs ``"return"``).

    Returns
    -------
    Panel
    """
    from .windows import build_panel as _bp

    return _bp(returns, list(columns))

__all__ = [
    "DEFAULT_TESTS",
    "MODELS",
    "NONPARAMETRIC",
    "PARAMETRIC",
    "TESTS",
    "AssumptionWarning",
    "CarRegressionResult",
    "EventStudyResult",
    "InferenceResult",
    "Panel",
    "PlaceboSize",
    "assumption_warnings",
    "bh",
    "bootstrap",
    "build_panel",
    "car_regression",
    "compare",
    "matched_shifts",
    "placebo",
    "placebo_size",
    "profile",
    "run",
]
