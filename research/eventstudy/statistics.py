"""Parametric and nonparametric event-study test statistics, vectorised over events and bars.

Per-bar tests take a :class:`~research.eventstudy.models.ModelFit` and return arrays over the event
window; CAR tests take a sub-window. Definitions (``N_t`` = events with an AR at bar t, ``s_i`` =
estimation-window residual s.d., ``C_it`` = prediction-error factor, ``T`` = bars in a CAR window):

``brown_warner_1980``  AAR_t / (sqrt(sum_i s_i^2) / N_t), t with mean(n_est) - 1 df.
``brown_warner_1985``  AAR_t / sd(AAR over the estimation window) (crude dependence adjustment).
``cross_sectional_t``  AAR_t / (sd_t(AR) / sqrt(N_t)), t with N_t - 1 df.
``patell``             sum_i SAR_it / sqrt(sum_i (n_i - k)/(n_i - k - 2)), SAR = AR/(s_i sqrt(C_it)).
``bmp``                Boehmer-Musumeci-Poulsen: cross-sectional t of SAR.
``bmp_kp``             BMP times sqrt((1 - r)/(1 + (N - 1) r)), r = mean cross-correlation of
                       estimation residuals (Kolari-Pynnonen 2010).
``lamb``               AAR_t / (sd(estimation AAR) * sqrt(1 + 1/mean(n) + mean_i (m_it - mbar_i)^2/Sxx_i)).
``sign``               (N+ - N/2) / sqrt(N/4) (binomial sign test, normal approximation).
``generalized_sign``   (N+ - N p) / sqrt(N p (1 - p)), p = share of positive estimation ARs (Cowan 1992).
``corrado_sign``       Corrado-Zivney (1992) sign test on sign(AR - median_i) over estimation+event bars.
``corrado_rank``       Corrado (1989) rank test on ranks over estimation+event bars.
``modified_rank``      Corrado-Zivney (1992) standardised-rank test, U = rank/(n_i + 1).
``wilcoxon``           Wilcoxon signed-rank W+ across events (p-value from scipy).
``calendar_hac``       calendar-time portfolio of ARs with a Newey-West variance (see cartests).
``design_hc``          sum of ARs over a variance built from the design's exact weights (see robust).

CAR versions and their variances: :mod:`research.eventstudy.cartests`. Which tests hold for one
asset with many clustered events (measured): :mod:`research.eventstudy.sizes`.

``estudy2_compat=True`` switches to estudy2 0.10.0's conventions: Patell's market term from every
market observation of the estimation window and its s.d. with ``ddof=1`` (see models), cross-event
sums taken as ``mean * N_total`` (R's ``rowMeans(..., na.rm = TRUE) * ncol``), the generalized-sign
p pooled over all estimation cells, the rank/sign tests' T = mean number of non-missing
estimation+event bars, and the CAR ``car_mean`` reported as the mean (not the sum) of daily AARs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from research.errors import EventStudyError
from research.stats import TestStat

from .catalog import (  # noqa: F401 (re-exported)
    BAR_AGGREGATED,
    DEFAULT_NO_ESTIMATION,
    DEFAULT_TESTS,
    DIST,
    NO_ESTIMATION,
    NONPARAMETRIC,
    PARAMETRIC,
    TESTS,
)
from .colstats import _colsum, _nanmean0, _nanstd0, _p_norm, _p_t, _sum_count0, col_moments, kp_rbar  # noqa: F401 (re-exported)
from .models import ModelFit
from .ranks import estudy2_wilcoxon_signif, row_median, row_ranks, wilcoxon_columns


@dataclass
class BarStats:
    """One test over the event window: arrays of length ``window_len``."""

    name: str
    stat: np.ndarray
    pvalue: np.ndarray
    df: np.ndarray | None
    #: estudy2_compat Wilcoxon only: estudy2's significance codes ("", "*", "**", "***")
    signif: np.ndarray | None = None

    def at(self, j: int, null: str) -> TestStat:
        """The :class:`TestStat` at event-window column ``j``."""
        df = None if self.df is None or not np.isfinite(self.df[j]) else float(self.df[j])
        return TestStat(self.name, float(self.stat[j]), float(self.pvalue[j]), df, null, DIST[self.name])


def resolve_tests(tests, has_estimation: bool, compat: bool = False) -> tuple[str, ...]:
    """Validate a test selection (``None`` = :data:`DEFAULT_TESTS`, or every test under
    ``compat`` as estudy2 runs them all; ``"all"`` = every test the design allows)."""
    if tests is None and compat:
        tests = "all"
    if tests is None:
        return DEFAULT_TESTS if has_estimation else DEFAULT_NO_ESTIMATION
    if tests == "all":
        return tuple(TESTS) if has_estimation else NO_ESTIMATION
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(tests)
    bad = [t for t in tests if t not in TESTS]
    if bad:
        raise EventStudyError(f"unknown test(s) {bad}; choose from {tuple(TESTS)}")
    if not has_estimation:
        need = [t for t in tests if t not in NO_ESTIMATION]
        if need:
            raise EventStudyError(f"test(s) {need} need an estimation window; pass estimation=(-L1, -L0)")
    return tests



class TestBattery:
    """Compute the per-bar and CAR tests of one fitted study.

    Parameters
    ----------
    fit : ModelFit
        Abnormal returns and estimation quantities.
    compat : bool
        estudy2 conventions (see module docstring).
    loader : research.eventstudy.chunks.Loader, optional
        Set by a chunked :func:`run`: ``fit`` is then a light fit (ARs and per-event vectors),
        and the first test that needs the estimation matrices materialises the full fit from it;
        ``design_hc`` reads them block by block instead (:meth:`blocks`).
    """

    __test__ = False

    def __init__(self, fit: ModelFit, compat: bool = False, loader=None):
        self.light = fit
        self._fit = fit if loader is None else None
        self.loader = loader
        self.compat = compat
        self.ar = fit.evt_ar
        self.n, self.w = self.ar.shape
        self._cache: dict[str, BarStats] = {}
        self._rank_cache: dict[str, np.ndarray] = {}
        self._rbar: float | None = None
        #: anchors of the events and the window offsets (set by run): the overlap-aware tests
        #: need calendar positions
        self.asset_idx: np.ndarray | None = None
        self.bar_idx: np.ndarray | None = None
        self.est_window: tuple[int, int] | None = None
        self.win0: int = 0

    # ----- shared pieces -------------------------------------------------------------------
    @property
    def fit(self) -> ModelFit:
        """The full fit (materialised from the loader on first use in a chunked study)."""
        if self._fit is None:
            self._fit = self.loader.full(self.ar)
        return self._fit

    def blocks(self, size: int):
        """``(slice, ModelFit)`` over consecutive blocks of events, without materialising a
        chunked study's full fit (the blocks of a chunked study are the loader's chunks)."""
        if self._fit is None:
            yield from self.loader.blocks()
            return
        for i in range(0, self.n, size):
            sl = slice(i, min(i + size, self.n))
            yield sl, self._fit.take(sl)

    @property
    def s_patell(self) -> np.ndarray:
        return self.fit.sd1 if self.compat else self.fit.sigma

    @property
    def rbar(self) -> float:
        if self._rbar is None:
            self._rbar = kp_rbar(self.fit.est_ar)
        return self._rbar

    def _var_ratio(self) -> np.ndarray:
        nk = self.fit.n_est - self.fit.k
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(nk > 2, nk / (nk - 2), np.nan)

    def _sar(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.ar / (self.s_patell[:, None] * np.sqrt(self.fit.pe))

    def _est_aar_sd(self) -> tuple[float, int]:
        aar = _nanmean0(self.fit.est_ar)
        aar = aar[np.isfinite(aar)]
        return (float(np.std(aar, ddof=1)) if aar.size > 1 else np.nan), aar.size

    def _full(self) -> np.ndarray:
        if "_full" not in self._rank_cache:  # estimation + event bars, shared by the rank family
            self._rank_cache["_full"] = np.concatenate([self.fit.est_ar, self.ar], axis=1)
        return self._rank_cache["_full"]

    def _T(self, full: np.ndarray) -> float:
        if self.compat:
            return float(np.mean(np.isfinite(full).sum(1)))
        return float((np.isfinite(full).sum(0) > 0).sum())

    def _ranked(self, kind: str) -> np.ndarray:
        """Per-event transformed full-period matrix: centred ranks, uniform ranks or signs."""
        if kind not in self._rank_cache:
            full = self._full()
            cnt = np.isfinite(full).sum(1)
            if kind == "sign":
                med = row_median(full)
                out = np.sign(full - med[:, None])
            else:
                if "_ranks" not in self._rank_cache:  # one ranking serves both rank tests
                    self._rank_cache["_ranks"] = row_ranks(full)
                r = self._rank_cache["_ranks"]
                if kind == "rank":
                    out = r - (cnt[:, None] + 1) / 2.0
                else:
                    out = r / (cnt[:, None] + 1.0) - 0.5
            self._rank_cache[kind] = out
        return self._rank_cache[kind]

    def _rank_family(self, kind: str) -> np.ndarray:
        """Per-bar z for corrado_sign ('sign'), corrado_rank ('rank'), modified_rank ('mrank')."""
        x = self._ranked(kind)
        nt = np.isfinite(x).sum(0).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = _colsum(x, self.compat)
            col = s / nt if kind == "rank" else s / np.sqrt(nt)
            col = np.where(nt > 0, col, np.nan)
            sd = np.sqrt(np.nansum(col**2) / self._T(x))
            return col[-self.w :] / sd

    # ----- per-bar tests -------------------------------------------------------------------
    def bar(self, name: str) -> BarStats:
        """The per-bar statistics of test ``name`` over the event window."""
        if name not in self._cache:
            self._cache[name] = getattr(self, f"_bar_{name}")()
        return self._cache[name]

    def _bar_brown_warner_1980(self):
        f = self.fit
        s2 = f.sd1**2
        total, nt, complete = _sum_count0(self.ar)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.compat:
                den = np.full(self.w, np.sqrt(np.nansum(s2)) / self.n)
            elif complete:  # every event has every bar: one variance sum for all bars
                den = np.full(self.w, np.sqrt(np.nansum(s2))) / nt
            else:
                has = np.isfinite(self.ar)
                den = np.sqrt((has * np.nan_to_num(s2)[:, None]).sum(0)) / nt
            stat = np.where(nt > 0, total / nt, np.nan) / den
        df = np.full(self.w, float(np.mean(f.n_est)) - 1)
        return BarStats("brown_warner_1980", stat, _p_t(stat, df), df)

    def _bar_brown_warner_1985(self):
        sd, m = self._est_aar_sd()
        stat = _nanmean0(self.ar) / sd
        df = np.full(self.w, float(np.mean(self.fit.n_est)) - 1 if self.compat else m - 1.0)
        return BarStats("brown_warner_1985", stat, _p_t(stat, df), df)

    def _bar_cross_sectional_t(self):
        mean, sd, nt = col_moments(self.ar)
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = mean / sd * np.sqrt(nt)
        df = np.where(nt > 1, nt - 1.0, np.nan)
        return BarStats("cross_sectional_t", stat, _p_t(stat, df), df)

    def _bar_patell(self):
        sar = self._sar()
        vr = self._var_ratio()
        has = np.isfinite(sar)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.compat:
                den = np.full(self.w, np.sqrt(np.nansum(vr)))
            else:
                den = np.sqrt((has * np.nan_to_num(vr)[:, None]).sum(0))
            stat = _colsum(sar, self.compat) / den
        return BarStats("patell", stat, _p_norm(stat), None)

    def _bar_bmp(self):
        mean, sd, nt = col_moments(self._sar())
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = mean / sd * np.sqrt(nt)
        df = np.where(nt > 1, nt - 1.0, np.nan)
        return BarStats("bmp", stat, _p_t(stat, df), df)

    def _bar_bmp_kp(self):
        b = self.bar("bmp")
        nt = np.isfinite(self.ar).sum(0)
        r = self.rbar
        with np.errstate(invalid="ignore"):
            stat = b.stat * np.sqrt((1 - r) / (1 + (nt - 1) * r))
        return BarStats("bmp_kp", stat, _p_t(stat, b.df), b.df)

    def _lamb_factor(self) -> np.ndarray:
        f = self.fit
        if f.model == "market":
            with np.errstate(invalid="ignore", divide="ignore"):
                term = _nanmean0((f.evt_m - f.m_mean[:, None]) ** 2 / f.m_sxx[:, None])
            return 1 + 1 / float(np.mean(f.n_est)) + term
        if f.model == "mean":
            return np.full(self.w, 1 + 1 / float(np.mean(f.n_est)))
        return np.ones(self.w)

    def _bar_lamb(self):
        sd, _ = self._est_aar_sd()
        stat = _nanmean0(self.ar) / (sd * np.sqrt(self._lamb_factor()))
        return BarStats("lamb", stat, _p_norm(stat), None)

    def _sign_counts(self, x: np.ndarray):
        has = np.isfinite(x)
        return (has & (np.nan_to_num(x) > 0)).sum(0).astype(float), has.sum(0).astype(float)

    def _bar_sign(self):
        pos, nt = self._sign_counts(self.ar)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = pos - 0.5 * nt
            if not self.compat:  # continuity correction (estudy2 has none)
                d = np.sign(d) * np.maximum(np.abs(d) - 0.5, 0.0)
            stat = np.where(nt > 0, d / np.sqrt(0.25 * nt), np.nan)
        return BarStats("sign", stat, _p_norm(stat), None)

    def _phat(self) -> float:
        e = self.fit.est_ar
        has = np.isfinite(e)
        posi = has & (np.nan_to_num(e) > 0)
        if self.compat:
            return float(posi.sum() / has.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.nanmean(posi.sum(1) / has.sum(1)))

    def _bar_generalized_sign(self):
        pos, nt = self._sign_counts(self.ar)
        p = self._phat()
        with np.errstate(invalid="ignore", divide="ignore"):
            d = pos - nt * p
            if not self.compat:
                d = np.sign(d) * np.maximum(np.abs(d) - 0.5, 0.0)
            stat = np.where(nt > 0, d / np.sqrt(nt * p * (1 - p)), np.nan)
        return BarStats("generalized_sign", stat, _p_norm(stat), None)

    def _bar_corrado_sign(self):
        stat = self._rank_family("sign")
        return BarStats("corrado_sign", stat, _p_norm(stat), None)

    def _bar_corrado_rank(self):
        stat = self._rank_family("rank")
        return BarStats("corrado_rank", stat, _p_norm(stat), None)

    def _bar_modified_rank(self):
        stat = self._rank_family("mrank")
        return BarStats("modified_rank", stat, _p_norm(stat), None)

    def _bar_wilcoxon(self):
        stat, p = wilcoxon_columns(self.ar)
        out = BarStats("wilcoxon", stat, p, None)
        if self.compat:
            out.signif = estudy2_wilcoxon_signif(stat, np.isfinite(self.ar).sum(0) - (self.ar == 0).sum(0))
        return out

    def _bar_design_hc(self):
        from . import robust

        if self.bar_idx is None or self.est_window is None:
            raise EventStudyError("design_hc needs the events' bars and an estimation window (run it through run())")
        stat = robust.bar_stats(self)
        return BarStats("design_hc", stat, _p_norm(stat), None)

    def _bar_calendar_hac(self):
        from .cartests import calendar_portfolio, newey_west_var

        stat = np.full(self.w, np.nan)
        if self.bar_idx is not None:
            for j in range(self.w):  # one calendar series per event-time bar (w series, not w x n)
                P = calendar_portfolio(self.ar, self.asset_idx, self.bar_idx, j, j)
                v = newey_west_var(P, 1) if P.size > 2 else 0.0
                stat[j] = P.mean() / np.sqrt(v / P.size) if v > 0 else np.nan
        return BarStats("calendar_hac", stat, _p_norm(stat), None)

    # ----- CAR tests -----------------------------------------------------------------------
    def car(self, j1: int, j2: int) -> np.ndarray:
        """CAR per event over event columns ``j1..j2``: the sum of its present ARs (NaN if none)."""
        sub = self.ar[:, j1 : j2 + 1]
        s = sub.sum(1)
        if np.isfinite(s).all() or self.compat:  # estudy2: a gap makes the CAR missing
            return s
        ok = np.isfinite(sub)
        return np.where(ok.any(1), np.where(ok, sub, 0.0).sum(1), np.nan)

    def car_var(self, j1: int, j2: int) -> np.ndarray:
        """Prediction-error variance factor of each event's CAR over its present bars."""
        sub = self.ar[:, j1 : j2 + 1]
        ok = np.isfinite(sub)
        return self.fit.car_pe(j1, j2, None if ok.all() else ok)

    def full_length(self) -> float:
        """Bars ranked per event by the rank family (estimation + event window)."""
        return self._T(self._full())

    def car_test(self, name: str, j1: int, j2: int, null: str) -> TestStat:
        """Test ``name`` on the CAR over event columns ``j1..j2`` (see :mod:`.cartests`)."""
        from .cartests import car_test

        return car_test(self, name, j1, j2, null)

