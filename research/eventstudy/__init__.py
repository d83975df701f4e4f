"""Event-study engine for many events on 24/7 markets (bars, not trading days).

Public API::

    run(returns, events, *, estimation=(-250, -11), window=(-10, 10), model="market", market=None,
        anchor="containing"|"next", overlap="flag"|"drop"|"shorten"|"keep", min_spacing=None,
        tests=None, estudy2_compat=False) -> EventStudyResult
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
from .regression import CarRegressionResult, car_regression
from .results import EventStudyResult, compare
from .statistics import NONPARAMETRIC, PARAMETRIC, TESTS
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
    "run", "profile", "build_panel", "Panel", "bootstrap", "placebo", "bh", "car_regression", "compare",
    "EventStudyResult", "InferenceResult", "CarRegressionResult",
    "MODELS", "TESTS", "PARAMETRIC", "NONPARAMETRIC",
]
