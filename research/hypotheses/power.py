"""Power of the primary tests: effects planted in placebo draws from the data itself.

* :func:`power` -- rejection rate of a :class:`~research.hypotheses.calibration.PrimaryDesign`'s
  test at each planted effect (the same null draws for every effect: common random numbers);
* :func:`minimum_detectable_effect` -- the smallest planted effect rejected in ``target`` (80 %) of
  the draws, by bisection on those draws;
* :func:`car_power` / :func:`car_mde` -- the same for an event-study test from the placebo studies
  of :func:`research.hypotheses.calibration.calibrate` (a constant CAR ``delta`` added to every
  placebo event shifts the CAAR by ``delta`` and leaves the cross-sectional spread unchanged, so
  no engine re-run is needed; approximate for estimation windows that hold other events' CARs).

``python -m research.hypotheses.power DATA_DIR [START END]`` prints the sizes and MDEs of H3, H4,
H5 and of the CAR studies' cross-sectional t on that lake (the README quotes its output).
Runtime is bounded: every evaluation is one vectorised pass over ``n_draws`` draws.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.results import Results
from research.stats import fmt
from research.stats_resampling import rank_critical_value

from .calibration import Calibration, PrimaryDesign

__all__ = ["PowerResult", "car_mde", "car_power", "design_mde", "fisher_mde", "mde_fields",
           "minimum_detectable_effect", "permutation_mde", "power"]


@dataclass
class PowerResult(Results):
    """Rejection rates of one test at planted effects.

    Attributes
    ----------
    test, effect_label : str
    table : polars.DataFrame
        ``effect, rejection_rate, n_draws``.
    alpha : float
    calibrated : bool
        Rejection at the placebo critical value (the calibrated test) instead of the nominal p.
    """

    test: str
    effect_label: str
    table: pl.DataFrame
    alpha: float = 0.05
    calibrated: bool = False
    notes: list = field(default_factory=list)

    _frame_fields = ("table",)
    key = "power"

    def to_frame(self) -> pl.DataFrame:
        return self.table

    def summary(self) -> str:
        rows = ", ".join(f"{fmt(r['effect'], '.4g')}: {r['rejection_rate']:.2f}" for r in self.table.iter_rows(named=True))
        return (f"power of {self.test} ({'calibrated' if self.calibrated else 'nominal'} {self.alpha:g} level), "
                f"effect in {self.effect_label}: {rows}")


def _reject(design: PrimaryDesign, draws, alpha: float, crit: float | None) -> np.ndarray:
    stat, p, _ = design.statistic(draws)
    if crit is None:
        return np.asarray(p) < alpha
    return np.abs(np.asarray(stat)) > crit


def _null_and_crit(design, n_draws, seed, alpha, calibrated):
    rng = np.random.default_rng(seed)
    null = design.null_draws(int(n_draws), rng)
    crit = None
    if calibrated:
        stat, _, _ = design.statistic(null)
        stat = np.abs(np.asarray(stat, float))
        crit = rank_critical_value(stat[np.isfinite(stat)], alpha)
    return null, crit


def power(design: PrimaryDesign, effects, *, n_draws: int = 200, seed: int = 0, alpha: float = 0.05,
          calibrated: bool = False) -> PowerResult:
    """Rejection rate of ``design``'s primary test with each effect in ``effects`` planted.

    Parameters
    ----------
    design : PrimaryDesign
        E.g. ``settlement_hours(panel)._design`` (H4), ``liquidation_waves(...)._design`` (H5),
        ``crowding_early_warning(...)._design`` (H3).
    effects : sequence of float
        Planted effects in ``design.effect_label`` units (0 gives the empirical size).
    n_draws, seed, alpha
        Placebo draws (shared by every effect), their seed, the level.
    calibrated : bool
        Reject at the placebo critical value (the calibrated test) rather than the nominal p-value.
    """
    null, crit = _null_and_crit(design, n_draws, seed, alpha, calibrated)
    rows = []
    for i, e in enumerate(effects):  # one vectorised pass per effect size
        rng = np.random.default_rng([seed, i])
        rej = _reject(design, design.plant(null, float(e), rng) if e else null, alpha, crit)
        rows.append({"effect": float(e), "rejection_rate": float(np.mean(rej)), "n_draws": int(rej.size)})
    return PowerResult(test=design.test, effect_label=design.effect_label, table=pl.DataFrame(rows), alpha=alpha,
                       calibrated=calibrated)


def minimum_detectable_effect(design: PrimaryDesign, *, target: float = 0.8, n_draws: int = 200, seed: int = 0,
                              alpha: float = 0.05, upper: float | None = None, max_effect: float | None = None,
                              iterations: int = 10, calibrated: bool = False) -> dict:
    """Smallest planted effect whose rejection rate reaches ``target``, by bisection on fixed draws.

    Parameters
    ----------
    design : PrimaryDesign
    target : float
        Power (0.8).
    upper : float, optional
        First upper bracket (default: 4 x the observed standard error, or 0.25 for probabilities);
        doubled until the target is reached or ``max_effect`` is passed.
    max_effect : float, optional
        Largest effect tried (default: 1 for effects that are probabilities, else 64 x ``upper``).
    iterations : int
        Bisection steps (the bracket shrinks 2^iterations-fold).

    Returns
    -------
    dict
        ``mde`` (None when even ``max_effect`` has less power), ``power_at_mde``, ``target``,
        ``effect_label``, ``estimate_shift`` (how far the planted MDE moves the test's own effect
        estimate, e.g. the risk difference for H3), ``n_draws``, ``calibrated``, ``evaluations``.
    """
    null, crit = _null_and_crit(design, n_draws, seed, alpha, calibrated)
    prob = "share" in design.effect_label or "P(" in design.effect_label
    se = design.observed.get("se")
    hi = upper if upper is not None else (0.25 if prob or not se or not math.isfinite(se) else 4 * float(se))
    cap = max_effect if max_effect is not None else (1.0 if prob else 64 * hi)
    evals: dict[float, float] = {}
    shift: dict[float, float] = {}
    base = float(np.nanmean(design.statistic(null)[2]))

    def pw(e: float) -> float:
        if e not in evals:
            rng = np.random.default_rng([seed, len(evals)])
            stat, p, eff = design.statistic(design.plant(null, e, rng))
            rej = (np.asarray(p) < alpha) if crit is None else (np.abs(np.asarray(stat)) > crit)
            evals[e], shift[e] = float(np.mean(rej)), float(np.nanmean(eff)) - base
        return evals[e]

    while pw(hi) < target and hi < cap:
        hi = min(2 * hi, cap)
    if pw(hi) < target:
        return {"mde": None, "power_at_mde": pw(hi), "target": target, "effect_label": design.effect_label,
                "n_draws": int(n_draws), "calibrated": calibrated, "evaluations": len(evals), "max_effect": cap}
    lo = 0.0
    for _ in range(int(iterations)):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if pw(mid) >= target else (mid, hi)
    return {"mde": hi, "power_at_mde": pw(hi), "target": target, "effect_label": design.effect_label,
            "estimate_shift": shift[hi], "n_draws": int(n_draws), "calibrated": calibrated, "evaluations": len(evals)}


# --------------------------------------------------------------------------------------------------
# event studies
# --------------------------------------------------------------------------------------------------
def car_power(cal: Calibration, effects, *, calibrated: bool = True) -> pl.DataFrame:
    """Power of an event-study test at planted CAARs ``effects`` (log return over the CAR window).

    Uses the placebo studies of :func:`~research.hypotheses.calibration.calibrate` (``cal.extra``):
    each placebo t becomes ``(caar + delta) / se`` with ``se = caar / t``, and rejects when its size
    is beyond the placebo critical value (``calibrated``) or the normal 5 % value.
    """
    from scipy import stats as sps

    caar, t = np.asarray(cal.extra["caar"], float), np.asarray(cal.extra["stat"], float)
    ok = np.isfinite(caar) & np.isfinite(t) & (t != 0)
    se = caar[ok] / t[ok]
    crit = cal.critical_value if calibrated else float(sps.norm.ppf(1 - cal.alpha / 2))
    rows = [{"effect": float(d), "rejection_rate": float(np.mean(np.abs((caar[ok] + d) / se) > crit)),
             "n_draws": int(ok.sum())} for d in effects]
    return pl.DataFrame(rows)


def car_mde(cal: Calibration, *, target: float = 0.8, calibrated: bool = True) -> float | None:
    """Smallest positive planted CAAR detected in ``target`` of the placebo studies (grid of 400 steps)."""
    caar, t = np.asarray(cal.extra["caar"], float), np.asarray(cal.extra["stat"], float)
    ok = np.isfinite(caar) & np.isfinite(t) & (t != 0)
    if not ok.any():
        return None
    se = np.abs(caar[ok] / t[ok])
    grid = np.linspace(0, 10 * float(np.median(se)) * max(cal.critical_value, 2.0), 401)[1:]
    tab = car_power(cal, grid, calibrated=calibrated)
    hit = tab.filter(pl.col("rejection_rate") >= target)
    return float(hit["effect"][0]) if hit.height else None


# --------------------------------------------------------------------------------------------------
# two-class tests (H1's permutation test, H2's Fisher test) and the designs' MDE on a result
# --------------------------------------------------------------------------------------------------
def permutation_mde(a, b, *, n_draws: int = 400, seed: int = 0, alpha: float = 0.05, target: float = 0.8,
                    steps: int = 400) -> float | None:
    """Smallest difference of means (``a`` - ``b``) the two-sided permutation test detects in ``target`` of draws.

    The null is ``n_draws`` relabellings of the pooled sample (class sizes kept); a planted shift
    ``delta`` of class ``a`` moves each relabelled difference by ``delta`` (a location shift keeps the
    permutation spread, as in :func:`research.stats.permutation_shift_test`), and a draw rejects when
    it passes the relabellings' own critical value. None when the classes are empty.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not (a.size and b.size):
        return None
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    x = pooled[np.argsort(rng.random((int(n_draws), pooled.size)), axis=1)]
    d = x[:, :a.size].mean(axis=1) - x[:, a.size:].mean(axis=1)
    crit = float(rank_critical_value(np.abs(d), alpha))
    if not np.isfinite(crit):
        return None
    grid = np.linspace(0, 4 * crit + 1e-12, steps + 1)[1:]
    pw = np.mean(np.abs(d[:, None] + grid[None, :]) > crit, axis=0)
    hit = np.flatnonzero(pw >= target)
    return float(grid[hit[0]]) if hit.size else None


def fisher_mde(n_yes: int, n_no: int, base_rate: float, *, alpha: float = 0.05, target: float = 0.8,
               step: float = 0.0025) -> float | None:
    """Smallest rise of P(outcome) with the condition over ``base_rate`` that the two-sided Fisher test detects.

    Exact: the tables ``(x_yes, x_no)`` the test rejects at ``alpha`` are enumerated once, and the
    power at a risk difference ``d`` is their probability when ``x_yes ~ Bin(n_yes, base + d)`` and
    ``x_no ~ Bin(n_no, base)``. None when no rise up to certainty reaches ``target``, or for a
    design too large to enumerate (over 40,000 tables).
    """
    import scipy.stats as sps

    n1, n2 = int(n_yes), int(n_no)
    if min(n1, n2) < 1 or (n1 + 1) * (n2 + 1) > 40_000 or not 0 <= base_rate < 1:
        return None
    rej = np.zeros((n1 + 1, n2 + 1))
    for x1 in range(n1 + 1):
        for x2 in range(n2 + 1):
            rej[x1, x2] = sps.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue < alpha
    p2 = sps.binom.pmf(np.arange(n2 + 1), n2, base_rate)
    grid = np.arange(step, 1 - base_rate + step / 2, step)
    p1 = sps.binom.pmf(np.arange(n1 + 1)[None, :], n1, np.minimum(base_rate + grid, 1.0)[:, None])
    pw = np.einsum("gi,ij,j->g", p1, rej, p2)
    hit = np.flatnonzero(pw >= target)
    return float(grid[hit[0]]) if hit.size else None


def design_mde(res, *, n_draws: int = 200, method: str = "plant", target: float = 0.8) -> dict:
    """The MDE at 80 % power of a hypothesis result's primary design (H3/H4/H5), cached on ``res``.

    Uses ``res._design`` and ``res.calibration`` (the calibrated critical value when the nominal
    size was out of band, as the verdict does); ``{}`` when the design or its calibration is missing
    (no placebo draws were asked for: power is not measured either). ``method="plant"`` plants
    effects in fresh null draws (:func:`minimum_detectable_effect`); ``"shift"`` moves the
    calibration's own placebo statistics (an upper-tail statistic: the MDE is the critical value
    minus the null's ``1 - target`` quantile), for designs whose draws are too slow to re-plant.
    """
    cached = getattr(res, "_mde_cache", None)
    if cached is not None:
        return cached
    design, cal = getattr(res, "_design", None), getattr(res, "calibration", None)
    out: dict = {}
    if method == "shift" and cal is not None and cal.n_draws > 1:
        null = np.asarray(cal.null_stats, float)
        mde = float(cal.critical_value - np.quantile(null, 1 - target))
        out = {"mde": mde if np.isfinite(mde) and mde > 0 else None, "target": target, "calibrated": True,
               "effect_label": "P(print within k | print) - null mean (location shift of the placebo draws)", "n_draws": int(cal.n_draws)}
    elif design is not None and cal is not None and cal.n_draws:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = minimum_detectable_effect(design, n_draws=min(int(n_draws), int(cal.n_draws)),
                                            seed=int(getattr(res, "params", {}).get("seed", 0) or 0),
                                            calibrated=not cal.ok)
    object.__setattr__(res, "_mde_cache", out)
    return out


def mde_fields(m: dict) -> dict:
    """``mde``/``mde_label`` keywords of a :class:`~research.records.Verdict` from :func:`design_mde`'s result."""
    if not m:
        return {"mde": None, "mde_label": ""}
    if m.get("mde") is None or not math.isfinite(m["mde"]):
        return {"mde": None, "mde_label": f"no effect up to {fmt(m.get('max_effect'), '.3g')} has 80 % power with "
                                           "these data" if m.get("max_effect") is not None else "not reached"}
    return {"mde": float(m["mde"]), "mde_label": m.get("effect_label", "")}


def _report(data_dir: str, start: str | None = None, end: str | None = None, n_draws: int = 400, seed: int = 7) -> None:
    """Print the sizes and MDEs the README quotes (see the module docstring)."""
    from research import events as E
    from research.panel import load

    from . import crowding_study, settlement_study, waves_study
    from .calibration import calibrate
    from .frames import returns_frame

    inp = load(data_dir, start=start, end=end, daily=False)
    print(f"lake {data_dir} {inp.coverage.get('start')} .. {inp.coverage.get('end')} ({inp.panel.height} hours)")
    for name, study, kw in (("H3", crowding_study, {}), ("H4", settlement_study, {}), ("H5", waves_study, {})):
        res = study(inp, n_draws=n_draws, seed=seed, **kw)
        cal, design = res.calibration, res._design
        print(f"{name} size: {cal.summary() if cal is not None else 'not testable'}")
        if design is not None:
            m = minimum_detectable_effect(design, n_draws=min(n_draws, 200), seed=seed,
                                          calibrated=cal is not None and not cal.ok)
            print(f"{name} MDE at 80 % power: {fmt(m['mde'], '.4g')} ({m['effect_label']}; moves the estimate by "
                  f"{fmt(m.get('estimate_shift'), '.4g')}; power {m['power_at_mde']:.2f}, "
                  f"{'calibrated' if m['calibrated'] else 'nominal'} test, {m['n_draws']} draws)")
    rf = returns_frame(inp.panel)
    for label, ev in (("liquidation prints", E.detect_liquidation_prints(inp.panel)),
                      ("selloffs", E.detect_selloffs(inp.panel)), ("OI collapses", E.detect_oi_collapses(inp.panel))):
        if ev.height < 2:
            print(f"CAR {label}: {ev.height} events, not testable")
            continue
        for cw in ((1, 24), (1, 72)):
            with warnings.catch_warnings():  # the summary prints the warning
                warnings.simplefilter("ignore")
                cal = calibrate(rf, ev, (-24, 72), "cross_sectional_t", car_window=cw, n_draws=n_draws, seed=seed)
            mde = car_mde(cal, calibrated=True)   # the CAR studies' primary test is the calibrated t
            print(f"CAR{cw} {label} ({ev.height} events): {cal.summary()}; MDE at 80 % of the calibrated t "
                  f"{fmt(mde, '.4g')} log return")


if __name__ == "__main__":  # pragma: no cover - the README's reproduction command
    import sys

    a = sys.argv[1:]
    _report(a[0], *(a[1:3] if len(a) >= 3 else (None, None)))
