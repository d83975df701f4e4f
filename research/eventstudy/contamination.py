"""Estimation windows that contain another event's window: flags, bar-level masks, shortening.

Split from :mod:`.windows` (grids and gathers); used by ``run``'s ``overlap`` policy.
"""
from __future__ import annotations

import numpy as np

from .gather import gather_window
from .windows import Panel


def overlap_flags(asset_idx: np.ndarray, bar_idx: np.ndarray, est: np.ndarray, win: np.ndarray) -> np.ndarray:
    """True where another event's window (same asset) intersects the event's estimation window.

    Another event at bar c has window [c + win0, c + win1]; it meets the estimation window
    [b + est0, b + est1] iff c lies in [b + est0 - win1, b + est1 - win0]. Counted with sorted
    keys and ``searchsorted`` (no per-bar arrays).
    """
    n = bar_idx.size
    if n < 2:
        return np.zeros(n, dtype=bool)
    span = int(bar_idx.max() - bar_idx.min()) + 4 * (abs(int(est[0])) + abs(int(est[-1])) + abs(int(win[0])) + abs(int(win[-1]))) + 1
    base = bar_idx - bar_idx.min()
    key = asset_idx * span + base
    sk = np.sort(key)
    lo = key + int(est[0] - win[-1])
    hi = key + int(est[-1] - win[0])
    cnt = np.searchsorted(sk, hi, side="right") - np.searchsorted(sk, lo, side="left")
    own = (0 >= est[0] - win[-1]) & (0 <= est[-1] - win[0])  # the event's own bar in its range
    return (cnt - int(own)) > 0


def window_cover(panel: Panel, asset_idx: np.ndarray, bar_idx: np.ndarray, win: tuple[int, int]) -> np.ndarray:
    """Count, per (asset, bar), how many event windows ``win`` cover the bar."""
    n_a, n_b = len(panel.assets), panel.n_bars
    diff = np.zeros((n_a, n_b + 1), dtype=np.int32)
    lo = np.clip(bar_idx + win[0], 0, n_b)
    hi = np.clip(bar_idx + win[1] + 1, 0, n_b)
    np.add.at(diff, (asset_idx, lo), 1)
    np.add.at(diff, (asset_idx, hi), -1)
    return np.cumsum(diff[:, :n_b], axis=1)


def contamination(
    panel: Panel, asset_idx: np.ndarray, bar_idx: np.ndarray, est: np.ndarray, win: np.ndarray
) -> np.ndarray:
    """Boolean ``(n_events, len(est))``: estimation bars covered by *another* event's window."""
    cover = window_cover(panel, asset_idx, bar_idx, (int(win[0]), int(win[-1])))
    return contamination_from_cover(cover, asset_idx, bar_idx, est, win)


def contamination_from_cover(cover: np.ndarray, asset_idx: np.ndarray, bar_idx: np.ndarray, est: np.ndarray,
                             win: np.ndarray) -> np.ndarray:
    """:func:`contamination` from a :func:`window_cover` of *all* events, for any subset of them
    (``run`` computes the cover once and applies it chunk by chunk)."""
    c = gather_window(cover.astype(np.float64), asset_idx, bar_idx, int(est[0]), int(est[-1]))
    c = np.nan_to_num(c, nan=0.0)
    own = ((est >= win[0]) & (est <= win[-1])).astype(np.float64)  # own window inside own estimation
    return (c - own[None, :]) > 0


def shorten_mask(contam: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Estimation bars to blank so the window keeps only its clean part next to the event.

    For a pre-event window the bars up to the last contaminated one go; for a post-event window
    the bars from the first contaminated one on.
    """
    n, le = contam.shape
    j = np.arange(le)[None, :]
    if est[-1] < 0:
        last = np.where(contam.any(1), le - 1 - np.argmax(contam[:, ::-1], axis=1), -1)
        return j <= last[:, None]
    first = np.where(contam.any(1), np.argmax(contam, axis=1), le)
    return j >= first[:, None]
