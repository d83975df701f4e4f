"""Gathering and fitting events in chunks, so memory stays bounded at 100k+ events.

:func:`run` keeps only the event-window abnormal returns (``n_events x window``) and per-event
vectors (n_est, sigma, alpha, beta, ...) for the whole study. The estimation-window matrices and
the event-window market returns are gathered ``chunk`` events at a time: once to fit, and again
by :class:`Loader` whenever a test needs them (``design_hc`` accumulates its calendar sums block
by block; any other test materialises the full fit once, on first use). Every per-event quantity
is a row-wise function of that event's own bars, so a chunk's fit equals the same rows of the
all-at-once fit; only cross-event sums change their summation order (tests check 1e-12).
"""
from __future__ import annotations

import numpy as np

from . import contamination as C
from . import models as _models
from . import windows as W

#: events per chunk (about 16 MB per 250-bar float64 matrix)
CHUNK = 8192

#: per-event vectors kept from each chunk's fit (the rest is regathered on demand)
_VECTORS = ("n_est", "sigma", "sd1", "m_mean", "m_sxx", "alpha", "beta")


def gather(panel, mvec, a_idx, b_idx, est, win, cover=None):
    """Estimation and event windows of events ``(a_idx, b_idx)``; with ``cover`` (a
    :func:`~.contamination.window_cover` of every event), contaminated estimation bars are blanked
    (``overlap="shorten"``)."""
    R = panel.values["return"]
    w0, w1 = int(win[0]), int(win[-1])
    evt_r = W.gather_window(R, a_idx, b_idx, w0, w1)
    evt_m = W.gather_window(mvec, None, b_idx, w0, w1) if mvec is not None else None
    est_r = est_m = None
    if est is not None:
        e0, e1 = int(est[0]), int(est[-1])
        est_r = W.gather_window(R, a_idx, b_idx, e0, e1)
        est_m = W.gather_window(mvec, None, b_idx, e0, e1) if mvec is not None else None
        if cover is not None:
            cut = C.shorten_mask(C.contamination_from_cover(cover, a_idx, b_idx, est, win), est)
            est_r[cut] = np.nan
            if est_m is not None:
                est_m[cut] = np.nan
    return est_r, evt_r, est_m, evt_m


class Loader:
    """Regathers and refits events of a study, in blocks or all at once.

    Parameters
    ----------
    panel, mvec, est, win, model, compat
        The design (as in :func:`run`).
    asset_idx, bar_idx : numpy.ndarray
        The events in the study.
    cover : numpy.ndarray or None
        Window cover of the events before any drop (``overlap="shorten"`` only).
    chunk : int
        Events per block.
    """

    def __init__(self, panel, mvec, est, win, model, compat, asset_idx, bar_idx, cover, chunk=CHUNK):
        self.panel, self.mvec, self.est, self.win = panel, mvec, est, win
        self.model, self.compat, self.cover, self.chunk = model, compat, cover, int(chunk)
        self.asset_idx, self.bar_idx = asset_idx, bar_idx

    @property
    def n(self) -> int:
        return int(self.bar_idx.size)

    def fit(self, sl) -> _models.ModelFit:
        """The model fit of events ``sl`` (a slice of the study's rows)."""
        mats = gather(self.panel, self.mvec, self.asset_idx[sl], self.bar_idx[sl], self.est, self.win, self.cover)
        return _models.fit(self.model, *mats, full_market_term=self.compat)

    def blocks(self):
        """``(slice, ModelFit)`` for consecutive blocks of ``chunk`` events."""
        for i in range(0, self.n, self.chunk):
            sl = slice(i, min(i + self.chunk, self.n))
            yield sl, self.fit(sl)

    def full(self, ar: np.ndarray) -> _models.ModelFit:
        """Every event's fit at once, sharing ``ar`` (already computed) as its abnormal returns."""
        f = self.fit(slice(None))
        f.evt_ar = ar
        return f


def fit_chunked(panel, mvec, anch, est, win, model, compat, overlap, chunk=CHUNK):
    """Fit every anchored event ``chunk`` at a time.

    Returns
    -------
    (ModelFit, numpy.ndarray, numpy.ndarray or None)
        A *light* fit (event-window ARs and per-event vectors; ``pe``, ``evt_m`` and the
        estimation matrices left out), the estimation-overlap flags, and the window cover used
        to shorten (``overlap="shorten"`` with flagged events) or None.
    """
    a_idx, b_idx = anch.asset_idx, anch.bar_idx
    n = b_idx.size
    flag = np.zeros(n, dtype=bool)
    cover = None
    if est is not None and overlap is not None and n:
        flag = C.overlap_flags(a_idx, b_idx, est, win)
        if overlap == "shorten" and flag.any():
            cover = C.window_cover(panel, a_idx, b_idx, (int(win[0]), int(win[-1])))
    ar = np.empty((n, win.size))
    vec: dict[str, list] = {k: [] for k in _VECTORS}
    k = _models.N_PARAMS[model]
    for i in range(0, max(n, 1), chunk):
        sl = slice(i, min(i + chunk, n))
        mats = gather(panel, mvec, a_idx[sl], b_idx[sl], est, win, cover)
        f = _models.fit(model, *mats, full_market_term=compat)
        ar[sl] = f.evt_ar
        k = f.k
        for name in _VECTORS:
            vec[name].append(getattr(f, name))
        del f, mats
    out = {name: (None if any(v is None for v in vs) else np.concatenate(vs)) for name, vs in vec.items()}
    light = _models.ModelFit(model, ar, out["n_est"], k, out["sigma"], out["sd1"], None,
                             m_mean=out["m_mean"], m_sxx=out["m_sxx"], alpha=out["alpha"], beta=out["beta"])
    return light, flag, cover

