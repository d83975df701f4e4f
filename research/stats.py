"""Generic statistics and test records shared by the event-study engine and the hypotheses.

* records: :class:`TestStat` (one test), :class:`NotTestable` (a test that could not run, and why)
  and :func:`conclude` (the conclusion sentence of a two-group test);
* two-sample and proportion statistics: :func:`hedges_g`, :func:`bootstrap_diff_ci`,
  :func:`bootstrap_mean_ci`, :func:`permutation_pvalue`, :func:`wilson_ci`, :func:`t_interval`;
* binary outcomes: :func:`fisher_row`, :func:`separated`, :func:`fit_logit`.

Randomness is seeded by a ``seed`` argument: the same inputs and seed give the same numbers.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from scipy import stats as sps


@dataclass(frozen=True)
class TestStat:
    """One hypothesis test.

    Parameters
    ----------
    name : str
        Test name, e.g. ``"patell"``.
    stat : float
        The test statistic.
    pvalue : float
        Two-sided p-value unless ``alternative`` says otherwise.
    df : float or None
        Degrees of freedom where the reference distribution has them.
    null : str
        The null hypothesis in words, e.g. ``"CAAR = 0"``.
    dist : str
        Reference distribution (``"t"``, ``"normal"``, ``"binomial"``, ``"permutation"``, ...).
    alternative : str
        ``"two-sided"``, ``"greater"`` or ``"less"``.
    """

    __test__ = False  # not a pytest test class

    name: str
    stat: float
    pvalue: float
    df: float | None = None
    null: str = ""
    dist: str = ""
    alternative: str = "two-sided"

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        df = "" if self.df is None else f", df={self.df:g}"
        return f"{self.name}: stat={self.stat:.4f}, p={self.pvalue:.4g}{df} (H0: {self.null})"


# --------------------------------------------------------------------------------------------------
# "not testable": one record type, not free text
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotTestable:
    """A test that could not be run, and why (too few observations, an input missing, ...).

    A conclusion is either a sentence about a test that ran or ``str(NotTestable(...))``; the
    string form always starts with :attr:`prefix` so a record can be filtered on it.

    Parameters
    ----------
    reason : str
        Why, e.g. ``"n = 1 vs 3"`` or ``"no usable events"``.
    prefix : str
        ``"not testable"`` (a hypothesis test) or ``"not tested"`` (a CAR test without events).
    """

    __test__ = False

    reason: str
    prefix: str = "not testable"

    def __str__(self) -> str:
        return f"{self.prefix}: {self.reason}" if self.prefix == "not tested" else f"{self.prefix} ({self.reason})"

    @staticmethod
    def matches(conclusion: str | None) -> bool:
        """True when ``conclusion`` is the string form of a :class:`NotTestable`."""
        return bool(conclusion) and str(conclusion).startswith(("not testable", "not tested"))


def conclude(p, n1: int, n2: int, alpha: float = 0.05) -> str:
    """The conclusion of a two-group test with p-value ``p`` and group sizes ``n1``, ``n2``.

    Fewer than two observations in a group, or no finite p-value, give ``NotTestable``'s text.
    """
    if n1 < 2 or n2 < 2 or p is None or not np.isfinite(p):
        return str(NotTestable(f"n = {n1} vs {n2}"))
    return f"difference at the {alpha:.0%} level" if p < alpha else f"no difference detected at the {alpha:.0%} level"


# --------------------------------------------------------------------------------------------------
# small generic statistics
# --------------------------------------------------------------------------------------------------
def finite_or_none(x) -> float | None:
    """``float(x)`` when finite, else None (for JSON records)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt(x, spec: str = ".4g") -> str:
    """Format a number for a summary; ``"nan"`` for missing."""
    x = finite_or_none(x)
    return "nan" if x is None else format(x, spec)


def nanmean(x: np.ndarray) -> float:
    """Mean of the finite values (NaN when there are none)."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def hedges_g(a, b) -> float:
    """Hedges' g of ``mean(a) - mean(b)``: Cohen's d with the pooled SD, times ``1 - 3/(4(na+nb)-9)``."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return float("nan")
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if sp == 0:
        return float("nan")
    return float((a.mean() - b.mean()) / sp * (1 - 3 / (4 * (na + nb) - 9)))


def bootstrap_diff_ci(a, b, *, n_boot: int = 2000, seed: int = 7, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(a) - mean(b)``, resampling within each group (seeded)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, a.size, (n_boot, a.size))].mean(axis=1)
    db_ = b[rng.integers(0, b.size, (n_boot, b.size))].mean(axis=1)
    lo, hi = np.quantile(da - db_, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_mean_ci(x: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of ``mean(x)`` (seeded); NaN for an empty sample."""
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    m = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(m, [0.025, 0.975])
    return float(lo), float(hi)


def permutation_pvalue(a, b, *, n_perm: int = 5000, seed: int = 7) -> float:
    """Two-sided permutation p-value of ``mean(a) - mean(b)`` (labels shuffled, seeded), ``(1+k)/(1+n)``."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
    perm = pooled[idx]
    d = perm[:, : a.size].mean(axis=1) - perm[:, a.size:].mean(axis=1)
    obs = a.mean() - b.mean()
    k = int(np.sum(np.abs(d) >= abs(obs) - 1e-12))
    return (1 + k) / (1 + n_perm)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k/n`` (NaN when ``n == 0``)."""
    if n == 0:
        return float("nan"), float("nan")
    z = sps.norm.ppf((1 + level) / 2)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def t_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the t interval of the mean of ``x`` (NaN bounds with fewer than 2 values)."""
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


FISHER_SCHEMA = {"condition": pl.String, "n": pl.Int64, "n_yes": pl.Int64, "n_no": pl.Int64,
                 "leg_if_yes": pl.Int64, "leg_if_no": pl.Int64, "risk_diff": pl.Float64, "rd_ci_low": pl.Float64,
                 "rd_ci_high": pl.Float64, "odds_ratio": pl.Float64, "pvalue": pl.Float64}


def fisher_row(cond: np.ndarray, y: np.ndarray, name: str) -> dict:
    """Fisher exact test of a binary outcome ``y`` on a binary condition, with the risk difference.

    Returns one row of :data:`FISHER_SCHEMA`: counts, risk difference with its Wald 95 % CI, odds
    ratio and two-sided p-value (NaN when one of the groups is empty).
    """
    a = int(np.sum(cond & y))
    b = int(np.sum(cond & ~y))
    c = int(np.sum(~cond & y))
    d = int(np.sum(~cond & ~y))
    n_yes, n_no = a + b, c + d
    if n_yes and n_no:
        res = sps.fisher_exact([[a, b], [c, d]])
        orr, p = float(res.statistic), float(res.pvalue)
        rd = a / n_yes - c / n_no
        se = math.sqrt((a / n_yes) * (1 - a / n_yes) / n_yes + (c / n_no) * (1 - c / n_no) / n_no)
        lo, hi = (rd - 1.96 * se, rd + 1.96 * se) if se > 0 else (np.nan, np.nan)
    else:
        orr = p = rd = lo = hi = np.nan
    return {"condition": name, "n": n_yes + n_no, "n_yes": n_yes, "n_no": n_no, "leg_if_yes": a, "leg_if_no": c,
            "risk_diff": rd, "rd_ci_low": lo, "rd_ci_high": hi, "odds_ratio": orr, "pvalue": p}


def separated(x: np.ndarray, y: np.ndarray) -> bool:
    """(Quasi-)complete separation of a binary outcome by a binary regressor: an empty cell."""
    x = x.astype(bool)
    return any(int(np.sum((x == xv) & (y == yv))) == 0 for xv in (False, True) for yv in (False, True)
               if np.any(x == xv))


def fit_logit(y: np.ndarray, X: np.ndarray, names: list[str], notes: list, *, cov_type: str, cov_kwds=None):
    """statsmodels Logit with robust errors as a table; None (and a note) when the MLE does not exist."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = sm.Logit(y.astype(float), X).fit(disp=0, cov_type=cov_type, cov_kwds=cov_kwds or {}, maxiter=200)
    except (PerfectSeparationError, np.linalg.LinAlgError, ValueError) as exc:
        notes.append(f"logit not estimable ({type(exc).__name__}: {str(exc)[:160]}); report the exact tests instead")
        return None
    sep = [w for w in caught if "separation" in str(w.message).lower() or "Separation" in type(w.message).__name__]
    if sep:
        notes.append(f"logit: {str(sep[0].message)[:160]} - coefficients are not identified; report the exact tests instead")
        return None
    if not fit.mle_retvals.get("converged", True) or not np.all(np.isfinite(fit.bse)):
        notes.append("logit did not converge (likely quasi-separation); report the exact tests instead")
        return None
    return pl.DataFrame({
        "term": names, "coef": fit.params, "se": fit.bse, "z": fit.tvalues, "pvalue": fit.pvalues,
        "odds_ratio": np.exp(fit.params), "ci_low": fit.conf_int()[:, 0], "ci_high": fit.conf_int()[:, 1],
        "n": np.full(len(names), int(fit.nobs)), "cov_type": [cov_type] * len(names),
    })


# --------------------------------------------------------------------------------------------------
# one method per verdict: tests and the intervals got by inverting them
# --------------------------------------------------------------------------------------------------
# A CI "from the same method as its test" is the set of null values the test does not reject at
# alpha = 1 - level (test inversion). Acceptance is p >= alpha and rejection p < alpha, so "the CI
# excludes the null" and "p < alpha" are the same statement (up to a non-convex acceptance set,
# which :func:`ci_agrees` would catch).

#: smallest group size for which a two-group test is run (smaller: NotTestable, no CI)
MIN_CLASS_SIZE = 3


def newcombe_rd_ci(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of ``k1/n1 - k2/n2``; inside [-1, 1] by construction.

    Descriptive: it is not the inversion of Fisher's exact test (see :func:`fisher_exact_or`).
    """
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, level)
    l2, u2 = wilson_ci(k2, n2, level)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def _fisher_minlike_p(a: int, row1: int, col1: int, n: int, psi: np.ndarray) -> np.ndarray:
    """Two-sided conditional p-value of cell ``a`` under odds ratio ``psi`` (each value of an array).

    Fisher's noncentral hypergeometric distribution of ``a`` given the margins; the p-value sums the
    probabilities of tables no more likely than the observed one ("minlike", as
    :func:`scipy.stats.fisher_exact` does at ``psi = 1``).
    """
    lo, hi = max(0, row1 + col1 - n), min(row1, col1)
    x = np.arange(lo, hi + 1)
    logc = (sps.hypergeom.logpmf(x, n, col1, row1))[None, :]     # central weights
    logw = logc + x[None, :] * np.log(psi)[:, None]
    logw -= logw.max(axis=1, keepdims=True)
    w = np.exp(logw)
    pmf = w / w.sum(axis=1, keepdims=True)
    obs = pmf[:, a - lo][:, None]
    return np.minimum(1.0, np.sum(np.where(pmf <= obs * (1 + 1e-7), pmf, 0.0), axis=1))


def fisher_exact_or(a: int, b: int, c: int, d: int, level: float = 0.95, grid: int = 2001) -> dict:
    """Fisher's exact test of the 2x2 table ``[[a, b], [c, d]]`` and the CI got by inverting it.

    Returns ``odds_ratio`` (sample), ``pvalue`` (two-sided, minlike; equals scipy's
    ``fisher_exact``), ``ci_low``/``ci_high``: the odds ratios whose conditional (noncentral
    hypergeometric) test has p >= 1 - level, so the CI excludes 1 exactly when p < 1 - level.
    An unbounded side is 0 or ``inf``.
    """
    alpha = 1 - level
    row1, col1, n = a + b, a + c, a + b + c + d
    p = float(sps.fisher_exact([[a, b], [c, d]]).pvalue)
    orr = (a * d) / (b * c) if b * c else (math.inf if a * d else math.nan)
    psi = np.exp(np.linspace(-12, 12, grid))
    psi = np.union1d(psi, [1.0])
    pv = _fisher_minlike_p(a, row1, col1, n, psi)
    acc = psi[pv >= alpha]
    if acc.size == 0:
        return {"odds_ratio": orr, "pvalue": p, "ci_low": math.nan, "ci_high": math.nan}
    lo = 0.0 if acc[0] == psi[0] else float(acc[0])
    hi = math.inf if acc[-1] == psi[-1] else float(acc[-1])
    if p < alpha and lo <= 1.0 <= hi:    # non-convex acceptance set: report what the test says
        lo, hi = (lo, min(hi, float(np.nextafter(1.0, 0)))) if orr < 1 else (max(lo, float(np.nextafter(1.0, 2))), hi)
    return {"odds_ratio": orr, "pvalue": p, "ci_low": lo, "ci_high": hi}


def permutation_shift_test(a, b, *, n_perm: int = 5000, seed: int = 7, level: float = 0.95,
                           grid: int = 801) -> dict:
    """Permutation test of ``mean(a) - mean(b) = 0`` and its inverted CI (location-shift model).

    The p-value is :func:`permutation_pvalue`'s (same draws). The CI is the set of shifts ``delta``
    for which the permutation test of ``(a - delta, b)`` with the *same* permutations has
    p >= 1 - level, so it excludes 0 exactly when p < 1 - level. Vectorised: shifting ``a`` moves
    each permuted difference by ``-delta * c`` with ``c`` the permutation's share of ``a`` rows.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    na, nb = a.size, b.size
    if na == 0 or nb == 0:
        return {"diff": math.nan, "pvalue": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    alpha = 1 - level
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
    in1 = idx[:, :na]
    d0 = pooled[in1].mean(axis=1) - pooled[idx[:, na:]].mean(axis=1)
    m1 = (in1 < na).sum(axis=1)                       # original a-rows drawn into group 1
    c = m1 / na - (na - m1) / nb
    obs = a.mean() - b.mean()

    def pval(delta: np.ndarray) -> np.ndarray:
        dp = d0[None, :] - delta[:, None] * c[None, :]
        ob = np.abs(obs - delta)[:, None]
        return (1 + np.sum(np.abs(dp) >= ob - 1e-12, axis=1)) / (1 + n_perm)

    p0 = float(pval(np.zeros(1))[0])
    spread = np.concatenate([a - a.mean(), b - b.mean()])
    se = math.sqrt(max(spread.var() * (1 / na + 1 / nb), 1e-24))
    deltas = np.union1d(obs + np.linspace(-8 * se, 8 * se, grid), [0.0])
    acc = deltas[pval(deltas) >= alpha]
    lo, hi = (float(acc[0]), float(acc[-1])) if acc.size else (math.nan, math.nan)
    if p0 < alpha and acc.size and lo <= 0.0 <= hi:   # non-convex acceptance set: keep the side of obs
        lo, hi = (max(lo, float(np.nextafter(0.0, 1))), hi) if obs > 0 else (lo, min(hi, float(np.nextafter(0.0, -1))))
    return {"diff": float(obs), "pvalue": p0, "ci_low": lo, "ci_high": hi}


def ci_agrees(pvalue, ci_low, ci_high, null: float = 0.0, alpha: float = 0.05) -> bool:
    """True when "the CI excludes ``null``" and "``pvalue < alpha``" say the same (or either is missing)."""
    p = finite_or_none(pvalue)
    if p is None or ci_low is None or ci_high is None:
        return True
    lo = -math.inf if ci_low is None else float(ci_low)
    hi = math.inf if ci_high is None else float(ci_high)
    if math.isnan(lo) or math.isnan(hi):
        return True
    return (not lo <= null <= hi) == (p < alpha)


def fisher_size(n: int, k: int, m: int, alpha: float = 0.05) -> float:
    """Exact size of the two-sided Fisher test at a design: ``n`` units, ``k`` outcomes, ``m`` with the condition.

    Under the null the count ``a`` of outcomes among the ``m`` is hypergeometric given both margins;
    the size is the probability of the tables with p < ``alpha`` (no simulation: the test is
    discrete, and with few events its size is often well below ``alpha``).
    """
    if min(k, n - k, m, n - m) < 0 or n <= 0:
        return math.nan
    lo, hi = max(0, k + m - n), min(k, m)
    x = np.arange(lo, hi + 1)
    pmf = sps.hypergeom.pmf(x, n, k, m)
    rej = 0.0
    for ai, pa in zip(x, pmf):
        if sps.fisher_exact([[ai, m - ai], [k - ai, n - m - k + ai]]).pvalue < alpha:
            rej += pa
    return float(rej)


def permutation_size(a, b, *, n_placebo: int = 200, n_perm: int = 999, seed: int = 7, alpha: float = 0.05) -> float:
    """Rejection rate of :func:`permutation_pvalue` when the pooled values are relabelled at random.

    Placebo labels keep the group sizes and the observed values (their tails and dependence), so
    this is the test's empirical size on the data at hand.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    rej = 0
    for i in range(n_placebo):    # a loop over placebo draws; each test is vectorised over permutations
        x = rng.permutation(pooled)
        rej += permutation_pvalue(x[: a.size], x[a.size:], n_perm=n_perm, seed=seed + 1 + i) < alpha
    return rej / n_placebo


#: the band a 5 %-level test's empirical size must fall in (Monte-Carlo band of >= 200 placebo draws)
SIZE_BAND = (0.035, 0.075)


def size_warning(size) -> str:
    """``"; WARNING: ..."`` when an empirical or exact size lies outside :data:`SIZE_BAND`, else ``""``."""
    s = finite_or_none(size)
    if s is None or SIZE_BAND[0] <= s <= SIZE_BAND[1]:
        return ""
    kind = "conservative" if s < SIZE_BAND[0] else "over-rejects"
    return f"; WARNING: size {s:.3f} is outside {SIZE_BAND[0]:.3f}-{SIZE_BAND[1]:.3f} ({kind})"
