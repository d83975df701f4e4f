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

Only the legs are looped over in Python (each step is a numpy scan), never bars one by one.
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
        seg = p[start:]
        cm = np.maximum.accumulate(seg)
        hit = np.flatnonzero(seg <= cm * drop)
        if hit.size == 0:
            break
        c = int(hit[0])
        peak = start + int(np.flatnonzero(seg[:c + 1] == cm[c])[-1])  # the latest of equal highs
        cross = start + c
        down = p[cross:]
        rm = np.minimum.accumulate(down)
        up = np.flatnonzero(down >= rm * reb)
        if up.size:
            confirm = cross + int(up[0])
            trough = cross + int(np.argmin(down[:up[0]]))
        else:
            confirm = -1
            trough = cross + int(np.argmin(down))
        end = confirm if confirm >= 0 else n
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
        down = p[d:]
        up = np.flatnonzero(down >= np.minimum.accumulate(down) * reb)
        confirm = d + int(up[0]) if up.size else -1
        trough = d + int(np.argmin(down[:up[0]] if up.size else down))
        for key, v in zip(out, (d, trough, confirm)):
            out[key].append(v)
        if confirm < 0:
            break
        pos = confirm
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
