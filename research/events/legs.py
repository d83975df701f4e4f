"""Causal drawdown legs (a zigzag on closes): the rule shared by sell-offs and OI collapses.

A leg starts at a *peak*, the highest value since the previous leg's trough was confirmed (the
start of the series for the first leg). It is *crossed* at the first bar whose value lies at least
``drop_pct`` % below that running peak. From the crossing on, the running minimum is tracked; the
trough is *confirmed* at the first bar whose value is at least ``rebound_pct`` % above the running
minimum, and the trough is the lowest value before that bar (the earliest of equal lows). The next
leg's running peak starts at the confirmation bar. So a recorded trough never has a lower value
before a rebound of ``rebound_pct`` %, and no window length cuts a leg short.

What is known when (bar indices, each known at its bar's close):

* ``peak_i`` and ``cross_i``: known at ``cross_i`` (only values up to it are used);
* ``trough_i`` and ``confirm_i``: known at ``confirm_i``; a leg the series ends in before its
  rebound has ``confirm_i = -1`` and a provisional trough (the lowest value so far).

:func:`triggered_legs` is the variant whose legs start at a per-bar causal condition (used by the
OI-collapse detector); the same rebound ends them.

Only the legs are looped over in Python (each step is a numpy scan over a window that grows until
it holds the leg's end, so a leg costs about its own length), never bars one by one.
"""
from __future__ import annotations

import numpy as np

__all__ = ["zigzag_legs", "triggered_legs"]


def zigzag_legs(values: np.ndarray, drop_pct: float, rebound_pct: float,
                trigger: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Drawdown legs of a positive series, causally.

    Parameters
    ----------
    values : numpy.ndarray
        Finite, positive values in time order (e.g. closes; nulls removed beforehand).
    drop_pct : float
        Fall from the running peak, in percent, that starts a leg.
    rebound_pct : float
        Rise from the running minimum, in percent, that confirms the trough and ends the leg.
    trigger : numpy.ndarray of bool, optional
        An extra causal condition per bar (e.g. "the fall from the rolling 48 h high is at least
        ``drop_pct``"). When given, a leg is an event only if the condition holds at some bar of
        its down phase (crossing up to, not including, the confirmation), and ``detect_i`` is the
        first such bar; without it ``detect_i = cross_i``. Legs without a trigger are reported
        with ``detect_i = -1``; the zigzag itself never depends on the trigger.

    Returns
    -------
    dict of numpy.ndarray
        Integer arrays ``peak_i, cross_i, detect_i, trough_i, confirm_i`` (one entry per leg, in
        time order; ``-1`` where there is none).
    """
    p = np.asarray(values, dtype=float)
    n = p.size
    drop, reb = 1.0 - drop_pct / 100.0, 1.0 + rebound_pct / 100.0
    trig_idx = np.flatnonzero(trigger) if trigger is not None else None
    out: dict[str, list[int]] = {k: [] for k in ("peak_i", "cross_i", "detect_i", "trough_i", "confirm_i")}
    start = 0
    while start < n:
        c, cm_c = _first_crossing(p, start, drop)
        if c < 0:
            break
        peak = start + int(np.flatnonzero(p[start:c + 1] == cm_c)[-1])  # the latest of equal highs
        cross = c
        confirm = _first_rebound(p, cross, reb)
        end = confirm if confirm >= 0 else n
        trough = cross + int(np.argmin(p[cross:end]))                   # the earliest of equal lows
        if trig_idx is None:
            detect = cross
        else:
            k = int(np.searchsorted(trig_idx, cross))
            detect = int(trig_idx[k]) if k < trig_idx.size and trig_idx[k] < end else -1
        for key, v in zip(out, (peak, cross, detect, trough, confirm)):
            out[key].append(v)
        if confirm < 0:
            break
        start = confirm
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _windows(lo: int, n: int):
    """Growing scan windows [lo, hi): each leg costs about its own length, not the series'."""
    w = 256
    while True:
        hi = min(n, lo + w)
        yield hi
        if hi == n:
            return
        w *= 2


def _first_crossing(p: np.ndarray, start: int, drop: float) -> tuple[int, float]:
    """First i >= start with p[i] <= max(p[start:i+1]) * drop, and that running max (-1 if none)."""
    for hi in _windows(start, p.size):
        seg = p[start:hi]
        cm = np.maximum.accumulate(seg)   # a prefix of the running max is the running max of the prefix
        hit = np.flatnonzero(seg <= cm * drop)
        if hit.size:
            return start + int(hit[0]), float(cm[hit[0]])
    return -1, float("nan")


def _first_rebound(p: np.ndarray, lo: int, reb: float) -> int:
    """First i > lo with p[i] >= min(p[lo:i+1]) * reb (-1 if none)."""
    for hi in _windows(lo, p.size):
        seg = p[lo:hi]
        up = np.flatnonzero(seg >= np.minimum.accumulate(seg) * reb)
        if up.size:
            return lo + int(up[0])
    return -1


def triggered_legs(values: np.ndarray, trigger: np.ndarray, rebound_pct: float) -> dict[str, np.ndarray]:
    """Legs started by a causal per-bar trigger and ended by a rebound, causally.

    A leg starts at the first bar of a run of ``trigger`` bars (the condition turns on) at or
    after the previous leg's confirmation; a run that began before the confirmation belongs to
    the previous leg (a collapse that keeps going is one event). The trough is the lowest value
    from the start before the first value ``rebound_pct`` % above the running low (``confirm_i``,
    -1 if the series ends first).

    Parameters
    ----------
    values : numpy.ndarray
        Finite, positive values in time order.
    trigger : numpy.ndarray of bool
        The start condition per bar, computed from data up to each bar only.
    rebound_pct : float
        Rise from the running low, in percent, that confirms the trough.

    Returns
    -------
    dict of numpy.ndarray
        Integer arrays ``detect_i, trough_i, confirm_i``.
    """
    p = np.asarray(values, dtype=float)
    reb = 1.0 + rebound_pct / 100.0
    trig = np.asarray(trigger, dtype=bool)
    starts = np.flatnonzero(trig & ~np.r_[False, trig[:-1]])
    out: dict[str, list[int]] = {"detect_i": [], "trough_i": [], "confirm_i": []}
    pos = 0
    while True:
        k = int(np.searchsorted(starts, pos))
        if k >= starts.size:
            break
        d = int(starts[k])
        confirm = _first_rebound(p, d, reb)
        trough = d + int(np.argmin(p[d:confirm if confirm >= 0 else p.size]))
        for key, v in zip(out, (d, trough, confirm)):
            out[key].append(v)
        if confirm < 0:
            break
        pos = confirm
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
