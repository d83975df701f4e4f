"""Helpers for the detector tests: hand-built panels and the no-look-ahead (truncation) check."""
from __future__ import annotations

import datetime as dt

import polars as pl

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
REQUIRED = ["event_id", "ts", "symbol", "asset", "kind", "detected_ts"]


def hours(n: int, step: str = "1h") -> pl.Series:
    """``n`` bar labels from T0, ``step`` apart (``"1h"``, ``"4h"``, ``"1d"``)."""
    return pl.datetime_range(T0, T0 + (n - 1) * _td(step), step, eager=True, time_zone="UTC").alias("ts")


def _td(step: str) -> dt.timedelta:
    unit = {"h": "hours", "d": "days"}[step[-1]]
    return dt.timedelta(**{unit: int(step[:-1])})


def frame(step: str = "1h", **cols) -> pl.DataFrame:
    """A panel with ``ts`` every ``step`` from T0, symbol BTCUSDT and ``cols``."""
    n = len(next(iter(cols.values())))
    return pl.DataFrame({"ts": hours(n, step), "symbol": ["BTCUSDT"] * n, **cols})


def at(h: float) -> dt.datetime:
    """T0 + ``h`` hours."""
    return T0 + dt.timedelta(hours=h)


def assert_truncation_invariant(detect, panel: pl.DataFrame, t: dt.datetime, *, known_later: dict[str, list[str]],
                                ignore: tuple[str, ...] = ("cluster_size",)) -> int:
    """No look-ahead: the events with ``detected_ts <= t`` are the same on the panel cut at ``t``.

    ``known_later`` maps a time column (e.g. ``trough_detected_ts``) to the columns known only at
    that time: they are compared only for events whose time is <= t in the full run. Returns the
    number of events compared.
    """
    full = detect(panel)
    cut = detect(panel.filter(pl.col("ts") <= t))
    a = full.filter(pl.col("detected_ts") <= t)
    b = cut.filter(pl.col("detected_ts") <= t)
    assert a["detected_ts"].to_list() == b["detected_ts"].to_list(), (t, a["detected_ts"], b["detected_ts"])
    later = {c for cols in known_later.values() for c in cols} | set(known_later)
    now = [c for c in a.columns if c not in later and c not in ignore]
    assert a.select(now).equals(b.select(now)), (t, a.select(now), b.select(now))
    for when, cols in known_later.items():
        done = a[when].is_not_null() & (a[when] <= t)
        assert a.filter(done).select(when, *cols).equals(b.filter(done).select(when, *cols)), (t, when)
    return a.height
