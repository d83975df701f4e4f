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

CAR versions: ``cross_sectional_t``, ``sign``, ``generalized_sign`` and ``wilcoxon`` apply to CAR_i;
``patell``/``bmp``/``bmp_kp`` use SCAR_i = CAR_i / (s_i sqrt(V_i)) with the exact prediction-error
variance V_i of a sum (see :meth:`ModelFit.car_pe`); the bar-aggregated tests (``brown_warner_*``,
``lamb``, ``corrado_*``, ``modified_rank``) use sum_t z_t / sqrt(T), as estudy2's ``car_*`` do.

``estudy2_compat=True`` switches to estudy2 0.10.0's conventions: Patell's market term from every
market observation of the estimation window and its s.d. with ``ddof=1`` (see models), cross-event
sums taken as ``mean * N_total`` (R's ``rowMeans(..., na.rm = TRUE) * ncol``), the generalized-sign
p pooled over all estimation cells, the rank/sign tests' T = mean number of non-missing
estimation+event bars, and the CAR ``car_mean`` reported as the mean (not the sum) of daily AARs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from research.errors import EventStudyError
from research.stats import TestStat

from .models import ModelFit

PARAMETRIC = ("brown_warner_1980", "brown_warner_1985", "cross_sectional_t", "patell", "bmp", "bmp_kp", "lamb")
NONPARAMETRIC = ("sign", "generalized_sign", "corrado_sign", "corrado_rank", "modified_rank", "wilcoxon")
TESTS = PARAMETRIC + NONPARAMETRIC
#: Tests that only look at the event window (usable without an estimation window).
NO_ESTIMATION = ("cross_sectional_t", "sign", "wilcoxon")
#: Tests whose CAR version sums per-bar z statistics.
BAR_AGGREGATED = ("brown_warner_1980", "brown_warner_1985", "lamb", "corrado_sign", "corrado_rank", "modified_rank")

DIST = {
    "brown_warner_1980": "t", "brown_warner_1985": "t", "cross_sectional_t": "t", "patell": "normal",
    "bmp": "t", "bmp_kp": "t", "lamb": "normal", "sign": "normal", "generalized_sign": "normal",
    "corrado_sign": "normal", "corrado_rank": "normal", "modified_rank": "normal", "wilcoxon": "signed-rank",
}


@dataclass
class BarStats:
    """One test over the event window: arrays of length ``window_len``."""

    name: str
    stat: np.ndarray
    pvalue: np.ndarray
    df: np.ndarray | None

    def at(self, j: int, null: str) -> TestStat:
        """The :class:`TestStat` at event-window column ``j``."""
        df = None if self.df is None or not np.isfinite(self.df[j]) else float(self.df[j])
        return TestStat(self.name, float(self.stat[j]), float(self.pvalue[j]), df, null, DIST[self.name])


def resolve_tests(tests, has_estimation: bool) -> tuple[str, ...]:
    """Validate a test selection (``None`` = all that the design allows)."""
    if tests is None or tests == "all":
        return TESTS if has_estimation else NO_ESTIMATION
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(tests)
    bad = [t for t in tests if t not in TESTS]
    if bad:
        raise EventStudyError(f"unknown test(s) {bad}; choose from {TESTS}")
    if not has_estimation:
        need = [t for t in tests if t not in NO_ESTIMATION]
        if need:
            raise EventStudyError(f"test(s) {need} need an estimation window; pass estimation=(-L1, -L0)")
    return tests


# Two-sided p-values from scipy.special: the same functions scipy.stats' t and norm call, without
# their per-call argument checking (which costs more than the rest of a small study).
def _p_t(x, df):
    with np.errstate(invalid="ignore"):
        return 2.0 * special.stdtr(df, -np.abs(x))


def _p_norm(x):
    return 2.0 * special.ndtr(-np.abs(x))


def _colsum(x: np.ndarray, compat: bool) -> np.ndarray:
    """Sum over events (axis 0); NaN when no event has data. estudy2: nanmean * N_total."""
    cnt = np.isfinite(x).sum(0)
    with np.errstate(invalid="ignore"):
        if compat:
            return np.nanmean(np.where(cnt > 0, x, 0.0), 0) * x.shape[0] if x.size else np.full(x.shape[1], np.nan)
        return np.where(cnt > 0, np.nansum(x, 0), np.nan)


def _sum_count0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Column sums of the finite values, their counts, and whether every value is finite."""
    s = x.sum(0)
    if np.isfinite(s).all():  # a column sum is finite only if every value in it is: no mask
        return s, np.full(x.shape[1], x.shape[0]), True
    ok = np.isfinite(x)
    return np.where(ok, x, 0.0).sum(0), ok.sum(0), False


def _nanmean0(x):
    s, cnt, _ = _sum_count0(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / cnt, np.nan)


def col_moments(x: np.ndarray, ddof: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column mean, s.d. (``ddof``) and count of the finite values (axis 0), in one sum pass."""
    s, cnt, complete = _sum_count0(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(cnt > 0, s / cnt, np.nan)
        d = x - mu
        ss = np.einsum("ij,ij->j", d, d) if complete else np.nansum(d * d, 0)
        return mu, np.where(cnt > ddof, np.sqrt(ss / (cnt - ddof)), np.nan), cnt


def _nanstd0(x, ddof=1):
    return col_moments(x, ddof)[1]


def kp_rbar(est_ar: np.ndarray) -> float:
    """Average pairwise correlation of estimation-window residuals across events.

    Rows are standardised over their own bars (missing bars count as 0 after standardising), so
    the value is exact for complete windows and an approximation otherwise.
    """
    n = est_ar.shape[0]
    if n < 2 or est_ar.shape[1] < 3:
        return 0.0
    cnt = np.isfinite(est_ar).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(est_ar, 1) / cnt
        sd = np.sqrt(np.nansum((est_ar - mu[:, None]) ** 2, 1) / (cnt - 1))
        z = np.nan_to_num((est_ar - mu[:, None]) / sd[:, None], nan=0.0, posinf=0.0, neginf=0.0)
    s = z.sum(0)
    cross = float(s @ s - np.einsum("ij,ij->", z, z))
    ell = float(np.mean(cnt)) - 1.0
    return cross / (ell * n * (n - 1)) if ell > 0 else 0.0


class TestBattery:
    """Compute the per-bar and CAR tests of one fitted study.

    Parameters
    ----------
    fit : ModelFit
        Abnormal returns and estimation quantities.
    compat : bool
        estudy2 conventions (see module docstring).
    """

    __test__ = False

    def __init__(self, fit: ModelFit, compat: bool = False):
        self.fit = fit
        self.compat = compat
        self.ar = fit.evt_ar
        self.n, self.w = self.ar.shape
        self._cache: dict[str, BarStats] = {}
        self._rank_cache: dict[str, np.ndarray] = {}
        self._rbar: float | None = None

    # ----- shared pieces -------------------------------------------------------------------
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
            stat = np.where(nt > 0, (pos - 0.5 * nt) / np.sqrt(0.25 * nt), np.nan)
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
            stat = np.where(nt > 0, (pos - nt * p) / np.sqrt(nt * p * (1 - p)), np.nan)
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
        return BarStats("wilcoxon", stat, p, None)

    # ----- CAR tests -----------------------------------------------------------------------
    def car(self, j1: int, j2: int) -> np.ndarray:
        """CAR per event over event columns ``j1..j2`` (NaN if any bar is missing)."""
        return self.ar[:, j1 : j2 + 1].sum(1)

    def car_test(self, name: str, j1: int, j2: int, null: str) -> TestStat:
        """Test ``name`` on the CAR over event columns ``j1..j2``."""
        if name in BAR_AGGREGATED:
            z = self.bar(name).stat[j1 : j2 + 1]
            stat = float(np.nansum(z) / np.sqrt(np.isfinite(z).sum())) if np.isfinite(z).any() else np.nan
            return TestStat(name, stat, float(_p_norm(stat)), None, null, "normal")
        car = self.car(j1, j2)
        ok = np.isfinite(car)
        c = car[ok]
        n = c.size
        if name == "cross_sectional_t":
            stat = c.mean() / (c.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            return TestStat(name, float(stat), float(_p_t(stat, n - 1)), float(n - 1), null, "t")
        if name in ("patell", "bmp", "bmp_kp"):
            with np.errstate(invalid="ignore", divide="ignore"):
                scar = car / (self.s_patell * np.sqrt(self.fit.car_pe(j1, j2)))
            ok2 = np.isfinite(scar)
            sc = scar[ok2]
            if name == "patell":
                stat = sc.sum() / np.sqrt(np.nansum(self._var_ratio()[ok2])) if sc.size else np.nan
                return TestStat(name, float(stat), float(_p_norm(stat)), None, null, "normal")
            m = sc.size
            stat = sc.mean() / (sc.std(ddof=1) / np.sqrt(m)) if m > 1 else np.nan
            if name == "bmp_kp":
                r = self.rbar
                stat = stat * np.sqrt((1 - r) / (1 + (m - 1) * r))
            return TestStat(name, float(stat), float(_p_t(stat, m - 1)), float(m - 1), null, "t")
        if name in ("sign", "generalized_sign"):
            pos = float((c > 0).sum())
            p = 0.5 if name == "sign" else self._phat()
            stat = (pos - n * p) / np.sqrt(n * p * (1 - p)) if n else np.nan
            return TestStat(name, float(stat), float(_p_norm(stat)), None, null, "normal")
        if name == "wilcoxon":
            s, p = wilcoxon_columns(c[:, None])
            return TestStat(name, float(s[0]), float(p[0]), None, null, "signed-rank")
        raise EventStudyError(f"unknown test {name!r}")


def row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest) within each row, NaN where ``x`` is NaN.

    The values of ``scipy.stats.rankdata(x, axis=1, nan_policy="omit")`` from one sort; only the
    tie groups (rare in continuous returns) are averaged, in work proportional to their size.
    """
    n, L = x.shape
    # NaN sorts last, so finite values rank 1..count; tie groups are averaged, so any order within
    # a group gives the same ranks (no need for a slower stable sort)
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, axis=1)
    ranks_sorted = np.broadcast_to(np.arange(1.0, L + 1.0), (n, L))
    if L > 1:
        # tie[p]: sorted values p and p + 1 are equal (NaN == NaN is False: missing never ties).
        # Two False columns of padding keep runs from crossing rows in the flattened mask.
        tie = np.zeros((n, L + 1), dtype=np.int8)
        np.equal(xs[:, 1:], xs[:, :-1], out=tie[:, : L - 1].view(bool))
        edge = np.diff(tie.ravel(), prepend=np.int8(0))
        run_start = np.flatnonzero(edge == 1)  # a run of ties over flat positions [start, end)
        if run_start.size:
            run_end = np.flatnonzero(edge == -1)
            ranks_sorted = np.array(ranks_sorted)
            width = L + 1
            row, p0 = np.divmod(run_start, width)
            p1 = run_end - row * width  # the group spans sorted positions p0..p1 inclusive
            size = p1 - p0 + 1
            grp = np.repeat(np.arange(run_start.size), size)
            pos = p0[grp] + (np.arange(grp.size) - np.repeat(np.cumsum(size) - size, size))
            ranks_sorted[row[grp], pos] = ((p0 + p1) / 2.0 + 1.0)[grp]
    out = np.empty((n, L))
    np.put_along_axis(out, order, ranks_sorted, axis=1)
    out[np.isnan(x)] = np.nan
    return out


def row_median(x: np.ndarray) -> np.ndarray:
    """``np.nanmedian(x, axis=1)`` (NaN for a row without values, and no warning).

    Complete rows use numpy's partition-based median; only rows with gaps are sorted (numpy's
    own nan-median goes through masked arrays for rows shorter than 600, several times slower).
    """
    n, L = x.shape
    if L == 0:
        return np.full(n, np.nan)
    cnt = L - np.isnan(x).sum(1)
    out = np.empty(n)
    complete = cnt == L
    if complete.any():
        out[complete] = np.median(x[complete], axis=1)
    part = np.flatnonzero(~complete)
    if part.size:
        xs = np.sort(x[part], axis=1)  # NaN last: the c finite values come first
        c, i = cnt[part], np.arange(part.size)
        with np.errstate(invalid="ignore"):
            out[part] = np.where(c > 0, (xs[i, np.maximum((c - 1) // 2, 0)] + xs[i, np.maximum(c // 2, 0)]) / 2, np.nan)
    return out


def wilcoxon_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilcoxon signed-rank per column: W+ (sum of ranks of |x| over positive x, zeros dropped)
    and the two-sided p-value as scipy computes it: exact (scipy) for n <= 50, otherwise the
    normal approximation with tie correction and no continuity correction, vectorised."""
    a = np.abs(x)
    a = np.where(a == 0, np.nan, a)
    r = row_ranks(a.T).T
    has = np.isfinite(a)
    wplus = np.where(has & (np.nan_to_num(x) > 0), r, 0.0).sum(0)
    n = has.sum(0).astype(float)
    # sum of squared average ranks = n(n+1)(2n+1)/6 - sum(t^3 - t)/12, which gives the tie term
    r2 = np.where(has, r, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        var = r2.sum(0) / 4.0
        z = (wplus - n * (n + 1) / 4.0) / np.sqrt(var)
    p = _p_norm(z)
    for j in np.flatnonzero((n > 0) & (n <= 50)):  # small samples: scipy's exact/auto p-value
        col = x[:, j]
        p[j] = sps.wilcoxon(col[np.isfinite(col) & (col != 0)], zero_method="wilcox").pvalue
    p = np.where(n > 0, p, np.nan)
    wplus = np.where(n > 0, wplus, np.nan)
    return wplus.astype(float), p
