"""Window offsets and gathers: ``(n_events, window_len)`` matrices by index arithmetic, no loops."""
from __future__ import annotations

import numpy as np

from research.errors import EventStudyError


def offsets(window: tuple[int, int], name: str) -> np.ndarray:
    """Bar offsets ``lo..hi`` (inclusive) of a window, validated."""
    try:
        lo, hi = (int(window[0]), int(window[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise EventStudyError(f"{name}={window!r} must be a pair of integers (first, last bar)") from exc
    if lo > hi:
        raise EventStudyError(f"{name}={window!r}: first bar {lo} is after last bar {hi}")
    return np.arange(lo, hi + 1, dtype=np.int64)


def gather(mat: np.ndarray, rows: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """``mat[rows, idx]`` for an ``(n, w)`` index matrix; indices off the grid give NaN.

    ``mat`` may be 1-D (a market series; ``rows`` ignored) or 2-D (assets x bars).
    """
    n_bars = mat.shape[-1]
    inside = idx.size == 0 or (idx.min() >= 0 and idx.max() < n_bars)
    cl = idx if inside else np.clip(idx, 0, n_bars - 1)
    out = mat[cl] if mat.ndim == 1 else mat[rows[:, None], cl]  # fancy indexing: already a copy
    out = out.astype(np.float64, copy=False)
    if not inside:
        out[(idx < 0) | (idx >= n_bars)] = np.nan
    return out


def gather_window(mat: np.ndarray, rows: np.ndarray | None, bars: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Bars ``bars + lo .. bars + hi`` (inclusive) of each row: an ``(n, hi - lo + 1)`` matrix.

    Same values as :func:`gather` with ``bars[:, None] + arange(lo, hi + 1)``, NaN off the grid,
    but each window is copied as one contiguous block of a strided view instead of element by
    element (about 30x faster on estimation windows of a few hundred bars).

    Parameters
    ----------
    mat : numpy.ndarray
        1-D series (``rows`` ignored) or 2-D ``(assets, bars)`` matrix.
    rows : numpy.ndarray or None
        Row of ``mat`` per window (2-D ``mat`` only).
    bars : numpy.ndarray
        Anchor bar per window.
    lo, hi : int
        First and last offset, inclusive.
    """
    width = int(hi) - int(lo) + 1
    n_bars = mat.shape[-1]
    start = np.asarray(bars, dtype=np.int64) + int(lo)
    if width > n_bars:  # every window runs off the grid: the element-wise path handles it
        return gather(mat, rows, start[:, None] + np.arange(width)[None, :])
    s = np.clip(start, 0, n_bars - width)
    # every length-`width` run of the last axis, as a read-only strided view (no copy)
    view = np.lib.stride_tricks.as_strided(
        mat, mat.shape[:-1] + (n_bars - width + 1, width), mat.strides + mat.strides[-1:], writeable=False
    )
    out = view[s] if mat.ndim == 1 else view[rows, s]  # fancy indexing: already a copy
    out = out.astype(np.float64, copy=False)
    off = np.flatnonzero(s != start)  # windows that run off the grid (rare): redo those exactly
    if off.size:
        idx = start[off, None] + np.arange(width)[None, :]
        out[off] = gather(mat, None if rows is None else rows[off], idx)
    return out
