"""Tests of the articles' claims, one function per hypothesis.

Every function takes the hourly panel (``research.db.query("hourly_panel", ...)``) and, where it
needs them, event tables from :mod:`research.events`; it returns a results object in the style of
arch/linearmodels: named fields, ``summary()``, ``to_frame()`` (polars), ``plot()`` (an
``alt.Chart`` built by :mod:`research.plots`, which never computes statistics), ``to_dict()`` (JSON
ready), plus ``tables()`` and ``verdicts()`` for :class:`research.records.RecordWriter`.

=================================  =========================================================
:func:`flush_vs_exodus`            H1: classify sell-offs as leverage flush or spot exodus and
                                   compare forward returns between the classes
:func:`second_leg`                 H2: after a sell-off and a bounce, how often a second leg
                                   makes a new low, and whether OI/funding raise that odds
:func:`crowding_early_warning`     H3: do funding extremes and long/short ratios > 1.5 precede
                                   liquidation cascades?
:func:`settlement_hours`           H4: volume, volatility and returns around 00/08/16 UTC
:func:`liquidation_waves`          H5: do liquidation prints cluster?
:func:`liquidation_heatmap_test`   H6: modelled liquidation levels, and does price reach the
                                   largest nearby cluster more often than placebo levels?
=================================  =========================================================

Randomness (bootstrap, permutation, placebo) is seeded by a ``seed`` parameter; the same inputs and
seed give the same numbers. All p-values are two-sided unless the TestStat says otherwise.
"""
from __future__ import annotations

import datetime as dt
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as sps

from research.db import is_synthetic
from research.errors import ResearchError
from research.stats import TestStat

__all__ = [
    "HypothesisError", "Inputs", "load_inputs",
    "hedges_g", "bootstrap_diff_ci", "permutation_pvalue", "wilson_ci",
    "FlushExodusResult", "flush_vs_exodus", "match_truth",
    "SecondLegResult", "second_leg",
    "CrowdingResult", "crowding_early_warning",
    "SettlementResult", "settlement_hours",
    "LiquidationWavesResult", "liquidation_waves",
    "LiquidationHeatmapResult", "liquidation_heatmap", "liquidation_heatmap_test",
]

_HOUR_US = 3_600_000_000


class HypothesisError(ResearchError, ValueError):
    """Bad input to a hypothesis test (names the column or parameter and what to do)."""


# ================================================================================================
# inputs for the notebooks
# ================================================================================================
@dataclass
class Inputs:
    """What a hypothesis notebook reads: the hourly and daily panels, and the truth of a simulated market."""

    panel: pl.DataFrame
    daily: pl.DataFrame
    data_dir: str
    synthetic: bool
    truth: pl.DataFrame | None = None
    coverage: dict = field(default_factory=dict)


def load_inputs(data_dir=None, *, symbol: str = "BTCUSDT", start: str | None = None, end: str | None = None,
                oi_venue: str | None = None, liq_venue: str | None = None, seed: int = 7,
                days: int = 180, daily: bool = True) -> Inputs:
    """Load the panels for a notebook.

    ``data_dir=None`` uses ``$RESEARCH_DATA_DIR`` (or ``./data``); when that holds no bars it writes
    the seeded simulated market (:func:`research.simulate.write_sample`) into a temporary directory
    and reads that, so a notebook runs without any download; its rows are labelled ``synthetic``. A data directory without bars for ``symbol`` is an error that says how
    to fill it.
    """
    from research import db, lake, paths, simulate

    if data_dir is None:
        data_dir = paths.data_dir()
        if not lake.table_files("bars", data_dir):
            # nothing downloaded or imported: run on the simulated market (labelled synthetic)
            data_dir = tempfile.mkdtemp(prefix="treadmill-sim-")
            simulate.write_sample(data_dir, seed=seed, days=days)
    kw: dict[str, Any] = {"symbol": symbol, "oi_venue": oi_venue, "liq_venue": liq_venue}
    if start:
        kw["start"] = start
    if end:
        kw["end"] = end
    con = db.connect(data_dir)
    try:
        panel = db.query("hourly_panel", con=con, **kw)
        daily_df = db.query("daily_panel", con=con, **kw) if daily else pl.DataFrame()
    finally:
        con.close()
    if panel.height == 0:
        raise HypothesisError(
            f"no hourly bars for {symbol} between {start} and {end} in {data_dir}: import data "
            "(`research import-real ...`), write the simulated market (`research sample`), or pass "
            "data_dir=None to use the simulated market")
    synthetic = bool(panel["synthetic"].any())
    truth = None
    if synthetic:
        try:
            truth = simulate.read_truth(data_dir)
        except FileNotFoundError:
            truth = None
    cov = {
        "start": panel["ts"].min().isoformat(), "end": panel["ts"].max().isoformat(), "hours": panel.height,
        "inputs": panel["inputs"][0] if "inputs" in panel.columns else "",
        **{c: int(panel[c].sum()) for c in panel.columns if c.startswith("has_")},
    }
    return Inputs(panel=panel, daily=daily_df, data_dir=str(data_dir), synthetic=synthetic, truth=truth, coverage=cov)


# ================================================================================================
# small statistics shared by the hypotheses
# ================================================================================================
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


def _f(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _jsonable(obj):
    if isinstance(obj, pl.DataFrame):
        return _jsonable(obj.to_dicts())
    if isinstance(obj, TestStat):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, (np.generic,)):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def _require(panel: pl.DataFrame, cols, who: str) -> None:
    if not isinstance(panel, pl.DataFrame):
        raise HypothesisError(f"{who}: panel must be a polars DataFrame (the hourly panel), got {type(panel).__name__}")
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise HypothesisError(f"{who}: panel has no column(s) {missing}; pass research.db.query('hourly_panel', ...)")


def _col(panel: pl.DataFrame, name: str) -> np.ndarray:
    """A panel column as float numpy (null -> NaN); all-NaN when the column is absent."""
    if name not in panel.columns:
        return np.full(panel.height, np.nan)
    return panel[name].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(float)


#: OI observations older than this (hours) count as missing: the panel carries the last value
#: forward, and a stale USD value divided by a moving close would fake an OI change.
OI_MAX_AGE_HOURS = 12


def _oi_units(panel: pl.DataFrame) -> np.ndarray:
    """Open interest in base units; USD-only series are divided by the close so price moves do not count.

    Hours whose OI observation is older than :data:`OI_MAX_AGE_HOURS` are NaN (missing).
    """
    base = _col(panel, "oi_base")
    usd = _col(panel, "oi_usd") / _col(panel, "perp_close")
    oi = np.where(np.isfinite(base), base, usd)
    if "oi_age_hours" in panel.columns:
        oi = np.where(_col(panel, "oi_age_hours") <= OI_MAX_AGE_HOURS, oi, np.nan)
    return oi


def _hours(panel: pl.DataFrame) -> np.ndarray:
    return panel["ts"].dt.epoch("us").to_numpy() // _HOUR_US


def _rows_of(panel_hours: np.ndarray, ts: pl.Series) -> np.ndarray:
    """Row index of each timestamp in the (hourly, sorted) panel; -1 when absent."""
    h = ts.dt.epoch("us").fill_null(-1).to_numpy() // _HOUR_US
    i = np.searchsorted(panel_hours, h)
    i = np.clip(i, 0, len(panel_hours) - 1)
    ok = (len(panel_hours) > 0) & (panel_hours[i] == h) & (h >= 0)
    return np.where(ok, i, -1)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _sorted_panel(panel: pl.DataFrame) -> pl.DataFrame:
    return panel if panel["ts"].is_sorted() else panel.sort("ts")


class _Result:
    """Shared plumbing of the results objects."""

    _frame_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if k.startswith("_"):
                continue
            out[k] = _jsonable(v)
        return out

    def tables(self) -> dict[str, pl.DataFrame]:
        """Tables for the results record (name -> frame)."""
        return {k: getattr(self, k) for k in self._frame_fields if isinstance(getattr(self, k), pl.DataFrame)}

    def __str__(self) -> str:
        return self.summary()


def _fmt(x, spec=".4g") -> str:
    x = _f(x)
    return "nan" if x is None else format(x, spec)


# ================================================================================================
# H1: flush versus spot exodus
# ================================================================================================
FLUSH_RULE = """\
Each sell-off (peak -> trough) gets one vote per criterion; +1 = flush, -1 = spot exodus, 0 = no
vote (also when the input is missing). Label = flush if the sum >= 1, exodus if <= -1, else mixed.
  OI         : change peak->trough (base units) <= -oi_drop_pct: +1; > -oi_hold_pct: -1
  funding    : funding_before - funding_after >= funding_reset_bps (bp per 8 h): +1;
               funding_after > 0 and no reset (drop < funding_reset_bps / 2): -1
  liquidation: long liquidations per hour during the sell-off (peak -> decision hour) >= liq_spike x
               baseline AND the rate after the liquidation peak is <= liq_decay_max x that rate: +1;
               rate < liq_quiet x baseline: -1
  spot share : mean spot share of volume during - baseline >= spot_share_rise: -1
  taker flow : mean spot taker imbalance during <= -taker_sell: -1
  ETF flows  : sum of daily net flows over the sell-off days <= -etf_outflow_usd: -1
(baseline = the baseline_hours before the peak; funding_before = mean 8h-rate over the
funding_lookback_hours before the peak; funding_after = the rate in force at the decision hour,
trough + post_hours; every input ends at the decision hour.)"""


@dataclass
class FlushExodusResult(_Result):
    """H1 results.

    Attributes
    ----------
    events : polars.DataFrame
        One row per sell-off: features, votes, ``score`` and ``label`` (flush/exodus/mixed).
    forward : polars.DataFrame
        Long: ``event_id, label, horizon_h, car`` (forward log return from the decision hour).
    comparison : polars.DataFrame
        Per horizon: n and mean per class, ``diff`` (flush - exodus), Hedges' g, bootstrap CI,
        permutation p-value, Welch p-value.
    confusion : polars.DataFrame or None
        ``truth`` x ``predicted`` counts against the simulated market's planted episodes.
    matches : polars.DataFrame or None
        Detected sell-offs matched to planted episodes (and missed episodes).
    accuracy : float or None
        Share of planted episodes detected *and* labelled as planted.
    accuracy_detected : float or None
        Share of the detected planted episodes labelled as planted (classifier alone).
    params : dict
    """

    events: pl.DataFrame
    forward: pl.DataFrame
    comparison: pl.DataFrame
    params: dict
    confusion: pl.DataFrame | None = None
    matches: pl.DataFrame | None = None
    accuracy: float | None = None
    accuracy_detected: float | None = None
    synthetic: bool = False
    rule: str = FLUSH_RULE

    _frame_fields = ("events", "forward", "comparison", "confusion", "matches")

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        n = self.events["label"].value_counts().sort("label") if self.events.height else None
        lines = ["H1 flush vs spot exodus", "=" * 23,
                 f"sell-offs: {self.events.height}  " + (", ".join(f"{r['label']}={r['count']}" for r in n.iter_rows(named=True)) if n is not None else "")]
        for r in self.comparison.iter_rows(named=True):
            lines.append(
                f"  CAR {r['horizon_h']:>4} h: flush {_fmt(r['mean_flush'])} (n={r['n_flush']}) vs exodus "
                f"{_fmt(r['mean_exodus'])} (n={r['n_exodus']}); diff {_fmt(r['diff'])} "
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], g={_fmt(r['hedges_g'], '.2f')}, "
                f"perm p={_fmt(r['p_perm'])}")
        if self.accuracy is not None:
            lines.append(f"recovery of planted labels: accuracy {self.accuracy:.2f} (misses count as errors); "
                         f"among detected episodes {_fmt(self.accuracy_detected, '.2f')}")
            lines.append(str(self.confusion))
        return "\n".join(lines)

    def plot(self):
        from research import plots

        means = self.comparison.select(
            "horizon_h", pl.lit("flush").alias("label"), pl.col("mean_flush").alias("mean"),
            pl.col("ci_flush_low").alias("ci_low"), pl.col("ci_flush_high").alias("ci_high"),
        ).vstack(self.comparison.select(
            "horizon_h", pl.lit("exodus").alias("label"), pl.col("mean_exodus").alias("mean"),
            pl.col("ci_exodus_low").alias("ci_low"), pl.col("ci_exodus_high").alias("ci_high"),
        ))
        return plots.plot_flush_vs_exodus(self.forward.filter(pl.col("label").is_in(["flush", "exodus"])),
                                          means, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        for r in self.comparison.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"Forward return {r['horizon_h']} h after the trough differs between leverage "
                           "flushes and spot exoduses",
                effect=_f(r["diff"]), ci_low=_f(r["ci_low"]), ci_high=_f(r["ci_high"]), pvalue=_f(r["p_perm"]),
                n_events=int(r["n_flush"] + r["n_exodus"]),
                test=f"permutation of class labels ({self.params['n_perm']} draws, seed {self.params['seed']}); "
                     f"Hedges g = {_fmt(r['hedges_g'], '.2f')}",
                effect_label="mean CAR flush - exodus (log return)",
                conclusion=_conclude(r["p_perm"], r["n_flush"], r["n_exodus"]),
            ))
        if self.accuracy is not None:
            n_true = int(self.matches.filter(pl.col("truth") != "none").height) if self.matches is not None else None
            out.append(Verdict(
                hypothesis="The rule-based classifier recovers the planted flush/exodus labels of the simulated market",
                effect=self.accuracy, n_events=n_true, test="confusion matrix vs planted episodes",
                effect_label="accuracy (share of planted episodes detected and labelled correctly)",
                conclusion="recovered" if self.accuracy >= 0.8 else "NOT recovered (accuracy < 0.8)"))
        return out


def _conclude(p, n1, n2, alpha: float = 0.05) -> str:
    if n1 < 2 or n2 < 2 or p is None or not np.isfinite(p):
        return f"not testable (n = {n1} vs {n2})"
    return f"difference at the {alpha:.0%} level" if p < alpha else f"no difference detected at the {alpha:.0%} level"


def _window_sum(cs: np.ndarray, i0: int, i1: int) -> float:
    """Sum of x[i0..i1] (inclusive) from the cumulative sum ``cs`` with a leading 0."""
    if i1 < i0:
        return 0.0
    return float(cs[i1 + 1] - cs[i0])


def flush_vs_exodus(
    panel: pl.DataFrame,
    selloffs: pl.DataFrame,
    daily: pl.DataFrame | None = None,
    *,
    horizons=(24, 72, 168),
    post_hours: int = 12,
    baseline_hours: int = 168,
    funding_lookback_hours: int = 48,
    oi_drop_pct: float = 4.0,
    oi_hold_pct: float = 2.0,
    funding_reset_bps: float = 1.0,
    liq_spike: float = 3.0,
    liq_decay_max: float = 0.5,
    liq_quiet: float = 1.5,
    spot_share_rise: float = 0.02,
    taker_sell: float = 0.10,
    etf_outflow_usd: float = 0.0,
    n_boot: int = 2000,
    n_perm: int = 5000,
    seed: int = 7,
    truth: pl.DataFrame | None = None,
    match_tolerance_hours: float = 48,
) -> FlushExodusResult:
    """Classify sell-offs as leverage flush or spot exodus and compare forward returns (H1).

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel.
    selloffs : polars.DataFrame
        :func:`research.events.detect_selloffs` output (``event_id, peak_ts, trough_ts``).
    daily : polars.DataFrame, optional
        Daily panel (``date, etf_flow_usd``) for the ETF-flow vote.
    horizons : sequence of int
        Forward-return horizons in hours, measured from the decision hour ``trough + post_hours``.
    post_hours : int
        Hours after the trough the classifier may look at; returns start there (no look-ahead).
    oi_drop_pct, oi_hold_pct, funding_reset_bps, liq_spike, liq_decay_max, liq_quiet,
    spot_share_rise, taker_sell, etf_outflow_usd, baseline_hours, funding_lookback_hours
        Classifier thresholds, see :data:`FLUSH_RULE`.
    n_boot, n_perm, seed
        Bootstrap draws, permutation draws, seed.
    truth, match_tolerance_hours
        Planted episodes (:func:`research.simulate.read_truth`); detected troughs within the
        tolerance of a planted trough are matched to it for the confusion matrix.

    Returns
    -------
    FlushExodusResult

    Notes
    -----
    Forward returns are raw cumulative log returns (BTC has no benchmark here; a constant-mean
    model would subtract a drift estimated mostly from the rally before a flush). Returns measured
    from a trough are positive on average by construction (the trough is the lowest close); the
    comparison between classes, not their level, is the test.
    """
    who = "flush_vs_exodus"
    _require(panel, ["ts", "perp_close"], who)
    for c in ("peak_ts", "trough_ts"):
        if c not in selloffs.columns:
            raise HypothesisError(f"{who}: selloffs has no column {c!r}; pass research.events.detect_selloffs(panel)")
    if post_hours < 0:
        raise HypothesisError(f"{who}: post_hours={post_hours} must be >= 0")
    horizons = tuple(int(h) for h in horizons)
    params = {k: v for k, v in locals().items() if k not in ("panel", "selloffs", "daily", "truth", "who")}
    params["horizons"] = list(horizons)
    panel = _sorted_panel(panel)
    hours = _hours(panel)
    n = panel.height
    close = _col(panel, "perp_close")
    oi = _oi_units(panel)
    fund = _col(panel, "funding_rate_8h")
    liq = _col(panel, "liq_long_usd")
    has_liq = panel["has_liq"].to_numpy() if "has_liq" in panel.columns else np.isfinite(liq)
    liq0 = np.where(np.isfinite(liq), liq, 0.0)
    cs_liq = np.concatenate([[0.0], np.cumsum(liq0)])
    cs_cov = np.concatenate([[0.0], np.cumsum(has_liq.astype(float))])
    share = _col(panel, "spot_share")
    taker = _col(panel, "spot_taker_imbalance")
    if not np.isfinite(taker).any():
        taker = _col(panel, "taker_imbalance")

    ev = selloffs.sort("peak_ts")
    ip_all = _rows_of(hours, ev["peak_ts"])
    it_all = _rows_of(hours, ev["trough_ts"])
    etf = None
    if daily is not None and "etf_flow_usd" in daily.columns and daily.height:
        etf = daily.select("date", "etf_flow_usd")

    rows = []
    for k, r in enumerate(ev.iter_rows(named=True)):  # a loop over events (tens), not bars
        ip, it = int(ip_all[k]), int(it_all[k])
        if ip < 0 or it < 0:
            continue
        idc = min(it + post_hours, n - 1)
        b0 = max(ip - baseline_hours, 0)
        # --- OI
        oi_chg = 100 * (oi[idc] / oi[ip] - 1) if np.isfinite(oi[ip]) and oi[ip] > 0 else np.nan
        # --- funding
        f_before = _nanmean(fund[max(ip - funding_lookback_hours, 0): ip + 1])
        f_after = fund[idc]
        f_drop = 1e4 * (f_before - f_after)
        # --- liquidations (per covered hour)
        cov_base = _window_sum(cs_cov, b0, ip - 1)
        cov_dur = _window_sum(cs_cov, ip, idc)
        base_rate = _window_sum(cs_liq, b0, ip - 1) / cov_base if cov_base > 0 else np.nan
        dur_rate = _window_sum(cs_liq, ip, idc) / cov_dur if cov_dur > 0 else np.nan
        spike = dur_rate / base_rate if base_rate and base_rate > 0 else np.nan
        seg = liq[ip: idc + 1]
        decay = np.nan
        liq_peak_ts = None
        if np.isfinite(seg).any() and cov_dur > 0:
            lp = ip + int(np.nanargmax(seg))
            liq_peak_ts = panel["ts"][lp]
            cov_after = _window_sum(cs_cov, lp + 1, idc)
            after = _window_sum(cs_liq, lp + 1, idc) / cov_after if cov_after > 0 else np.nan
            decay = after / dur_rate if dur_rate and dur_rate > 0 else np.nan
        # --- spot share, taker flow
        share_chg = _nanmean(share[ip: idc + 1]) - _nanmean(share[b0:ip])
        taker_m = _nanmean(taker[ip: idc + 1])
        # --- ETF flows over the sell-off days
        etf_sum = np.nan
        if etf is not None:
            d0, d1 = r["peak_ts"].date(), panel["ts"][idc].date()
            sub = etf.filter((pl.col("date") >= d0) & (pl.col("date") <= d1))["etf_flow_usd"].drop_nulls()
            etf_sum = float(sub.sum()) if sub.len() else np.nan
        # --- votes
        v_oi = 0 if not np.isfinite(oi_chg) else (1 if oi_chg <= -oi_drop_pct else (-1 if oi_chg > -oi_hold_pct else 0))
        if not np.isfinite(f_drop):
            v_f = 0
        elif f_drop >= funding_reset_bps:
            v_f = 1
        elif f_after > 0 and f_drop < funding_reset_bps / 2:
            v_f = -1
        else:
            v_f = 0
        if not np.isfinite(spike):
            v_l = 0
        elif spike >= liq_spike and np.isfinite(decay) and decay <= liq_decay_max:
            v_l = 1
        elif spike < liq_quiet:
            v_l = -1
        else:
            v_l = 0
        v_s = -1 if np.isfinite(share_chg) and share_chg >= spot_share_rise else 0
        v_t = -1 if np.isfinite(taker_m) and taker_m <= -taker_sell else 0
        v_e = -1 if np.isfinite(etf_sum) and etf_sum <= -etf_outflow_usd and etf_sum < 0 else 0
        score = v_oi + v_f + v_l + v_s + v_t + v_e
        label = "flush" if score >= 1 else ("exodus" if score <= -1 else "mixed")
        rows.append({
            "event_id": r.get("event_id", k), "peak_ts": r["peak_ts"], "trough_ts": r["trough_ts"],
            "decision_ts": panel["ts"][idc], "drawdown_pct": r.get("drawdown_pct"),
            "oi_change_pct": oi_chg, "funding_before": f_before, "funding_after": f_after,
            "funding_drop_bps": f_drop, "liq_rate_baseline": base_rate, "liq_rate_during": dur_rate,
            "liq_spike": spike, "liq_peak_ts": liq_peak_ts, "liq_decay": decay,
            "spot_share_change": share_chg, "spot_taker_imbalance": taker_m, "etf_flow_usd": etf_sum,
            "vote_oi": v_oi, "vote_funding": v_f, "vote_liquidations": v_l, "vote_spot_share": v_s,
            "vote_taker": v_t, "vote_etf": v_e, "score": score, "label": label, "_idc": idc,
        })
    schema_ts = panel.schema["ts"]
    if rows:
        events = pl.DataFrame(rows, schema_overrides={"liq_peak_ts": schema_ts}, strict=False)
    else:
        events = pl.DataFrame(schema={"event_id": pl.Int64, "peak_ts": schema_ts, "trough_ts": schema_ts,
                                      "decision_ts": schema_ts, "score": pl.Int64, "label": pl.String,
                                      "_idc": pl.Int64})
    events = events.with_columns(pl.col(pl.Float64).fill_nan(None))

    # --- forward returns from the decision hour (vectorised over events x horizons)
    idc = events["_idc"].to_numpy().astype(int) if events.height else np.zeros(0, int)
    fwd_rows = []
    logp = np.log(close)
    for h in horizons:
        j = idc + h
        ok = j < n
        car = np.where(ok, logp[np.minimum(j, n - 1)] - logp[idc], np.nan) if idc.size else np.zeros(0)
        fwd_rows.append(pl.DataFrame({"event_id": events["event_id"], "label": events["label"],
                                      "horizon_h": np.full(idc.size, h, dtype=np.int64), "car": car}))
    forward = (pl.concat(fwd_rows) if fwd_rows else pl.DataFrame(
        schema={"event_id": pl.Int64, "label": pl.String, "horizon_h": pl.Int64, "car": pl.Float64}))
    forward = forward.with_columns(pl.col("car").fill_nan(None)).drop_nulls("car")
    events = events.drop("_idc")

    comp = []
    for i, h in enumerate(horizons):
        sub = forward.filter(pl.col("horizon_h") == h)
        a = sub.filter(pl.col("label") == "flush")["car"].to_numpy()
        b = sub.filter(pl.col("label") == "exodus")["car"].to_numpy()
        lo, hi = bootstrap_diff_ci(a, b, n_boot=n_boot, seed=seed + i)
        fa = _mean_ci(a, n_boot, seed + 100 + i)
        fb = _mean_ci(b, n_boot, seed + 200 + i)
        welch = sps.ttest_ind(a, b, equal_var=False).pvalue if a.size >= 2 and b.size >= 2 else np.nan
        comp.append({
            "horizon_h": h, "n_flush": int(a.size), "n_exodus": int(b.size),
            "mean_flush": _nanmean(a), "mean_exodus": _nanmean(b),
            "ci_flush_low": fa[0], "ci_flush_high": fa[1], "ci_exodus_low": fb[0], "ci_exodus_high": fb[1],
            "diff": (a.mean() - b.mean()) if a.size and b.size else np.nan,
            "hedges_g": hedges_g(a, b), "ci_low": lo, "ci_high": hi,
            "p_perm": permutation_pvalue(a, b, n_perm=n_perm, seed=seed + i) if a.size and b.size else np.nan,
            "p_welch": float(welch),
        })
    comparison = pl.DataFrame(comp, schema_overrides={"n_flush": pl.Int64, "n_exodus": pl.Int64}).with_columns(
        pl.col(pl.Float64).fill_nan(None))

    res = FlushExodusResult(events=events, forward=forward, comparison=comparison, params=params,
                            synthetic=is_synthetic(panel))
    if truth is not None:
        res.matches = match_truth(events, truth, tolerance_hours=match_tolerance_hours)
        res.confusion = _confusion(res.matches)
        planted = res.matches.filter(pl.col("truth") != "none")
        res.accuracy = float((planted["truth"] == planted["predicted"]).mean()) if planted.height else None
        found = planted.filter(pl.col("predicted") != "missed")
        res.accuracy_detected = float((found["truth"] == found["predicted"]).mean()) if found.height else None
    return res


def _mean_ci(x: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    m = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(m, [0.025, 0.975])
    return float(lo), float(hi)


def match_truth(events: pl.DataFrame, truth: pl.DataFrame, *, tolerance_hours: float = 48) -> pl.DataFrame:
    """Match classified sell-offs to planted episodes by trough time (one-to-one, nearest first).

    Returns one row per detected sell-off (``truth = "none"`` when it matches no planted episode)
    plus one row per planted episode nobody matched (``predicted = "missed"``).
    """
    for c in ("trough_ts", "kind"):
        if c not in truth.columns:
            raise HypothesisError(f"match_truth: truth has no column {c!r}; pass research.simulate.read_truth(data_dir)")
    d_t = events["trough_ts"].dt.epoch("us").to_numpy() / _HOUR_US if events.height else np.zeros(0)
    t_t = truth["trough_ts"].dt.epoch("us").to_numpy() / _HOUR_US
    dist = np.abs(d_t[:, None] - t_t[None, :]) if d_t.size and t_t.size else np.zeros((d_t.size, t_t.size))
    pairs = sorted((dist[i, j], i, j) for i in range(d_t.size) for j in range(t_t.size) if dist[i, j] <= tolerance_hours)
    di, tj = {}, set()
    for dd, i, j in pairs:
        if i not in di and j not in tj:
            di[i] = (j, dd)
            tj.add(j)
    kinds = truth["kind"].to_list()
    eids = truth["episode_id"].to_list() if "episode_id" in truth.columns else list(range(truth.height))
    rows = []
    for i, r in enumerate(events.iter_rows(named=True)):
        j, dd = di.get(i, (None, None))
        rows.append({"event_id": r["event_id"], "trough_ts": r["trough_ts"], "episode_id": None if j is None else eids[j],
                     "truth": "none" if j is None else kinds[j], "predicted": r["label"], "hours_apart": dd})
    for j in range(truth.height):
        if j not in tj:
            rows.append({"event_id": None, "trough_ts": truth["trough_ts"][j], "episode_id": eids[j],
                         "truth": kinds[j], "predicted": "missed", "hours_apart": None})
    schema = {"event_id": pl.Int64, "trough_ts": truth.schema["trough_ts"], "episode_id": pl.Int64,
              "truth": pl.String, "predicted": pl.String, "hours_apart": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def _confusion(matches: pl.DataFrame) -> pl.DataFrame:
    preds = ["flush", "exodus", "mixed", "missed"]
    out = []
    for t in ["flush", "exodus", "none"]:
        sub = matches.filter(pl.col("truth") == t)
        out.append({"truth": t, **{p: int((sub["predicted"] == p).sum()) for p in preds}})
    return pl.DataFrame(out)


# ================================================================================================
# H2: the second leg
# ================================================================================================
@dataclass
class SecondLegResult(_Result):
    """H2 results.

    Attributes
    ----------
    events : polars.DataFrame
        Per sell-off: bounce, ``second_leg`` (bool), ``oi_held``, ``funding_positive`` and their values.
    rates : polars.DataFrame
        P(second leg) overall and by condition, with Wilson CIs.
    fisher : polars.DataFrame
        Fisher exact tests (2x2) per condition: odds ratio, p-value, risk difference.
    logit : polars.DataFrame or None
        Logit coefficients with HC1 errors (None when not estimable; see ``notes``).
    notes : list of str
    """

    events: pl.DataFrame
    rates: pl.DataFrame
    fisher: pl.DataFrame
    logit: pl.DataFrame | None
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("events", "rates", "fisher", "logit")

    def to_frame(self) -> pl.DataFrame:
        return self.rates

    def summary(self) -> str:
        lines = ["H2 second leg", "=" * 13]
        for r in self.rates.iter_rows(named=True):
            lines.append(f"  {r['group']:<28} {r['k']}/{r['n']} = {_fmt(r['rate'], '.2f')} "
                         f"[{_fmt(r['ci_low'], '.2f')}, {_fmt(r['ci_high'], '.2f')}]")
        for r in self.fisher.iter_rows(named=True):
            lines.append(f"  Fisher {r['condition']}: risk diff {_fmt(r['risk_diff'], '.2f')}, OR {_fmt(r['odds_ratio'])}, p={_fmt(r['pvalue'])}")
        if self.logit is not None:
            lines.append("  Logit (HC1):")
            for r in self.logit.iter_rows(named=True):
                lines.append(f"    {r['term']:<18} {_fmt(r['coef'])} (se {_fmt(r['se'])}, p={_fmt(r['pvalue'])})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_conditional_rates(self.rates, title="P(second down-leg makes a new low)",
                                            y_title="share of sell-offs with a second leg", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        all_ = self.rates.filter(pl.col("group") == "all")
        if all_.height:
            r = all_.row(0, named=True)
            out.append(Verdict(
                hypothesis=f"After a sell-off and a bounce a second leg makes a new low within {self.params['horizon_days']} days",
                effect=_f(r["rate"]), ci_low=_f(r["ci_low"]), ci_high=_f(r["ci_high"]), n_events=int(r["n"]),
                test="share with Wilson 95% CI", effect_label="P(second leg)", conclusion=""))
        for r in self.fisher.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"{r['condition']} raises the probability of a second leg",
                effect=_f(r["risk_diff"]), ci_low=_f(r.get("rd_ci_low")), ci_high=_f(r.get("rd_ci_high")),
                pvalue=_f(r["pvalue"]), n_events=int(r["n"]),
                test="Fisher exact test (two-sided) on the 2x2 table", effect_label="risk difference",
                conclusion=_conclude(r["pvalue"], r["n_yes"], r["n_no"])))
        return out


def _fisher_row(cond: np.ndarray, y: np.ndarray, name: str) -> dict:
    a = int(np.sum(cond & y)); b = int(np.sum(cond & ~y)); c = int(np.sum(~cond & y)); d = int(np.sum(~cond & ~y))
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


def _separated(x: np.ndarray, y: np.ndarray) -> bool:
    """(Quasi-)complete separation of a binary outcome by a binary regressor: an empty cell."""
    x = x.astype(bool)
    return any(int(np.sum((x == xv) & (y == yv))) == 0 for xv in (False, True) for yv in (False, True)
               if np.any(x == xv))


def _fit_logit(y: np.ndarray, X: np.ndarray, names: list[str], notes: list, *, cov_type: str, cov_kwds=None):
    """statsmodels Logit with robust errors; None (and a note) when the MLE does not exist."""
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


def second_leg(
    panel: pl.DataFrame,
    selloffs: pl.DataFrame,
    *,
    bounce_pct: float = 2.0,
    bounce_hours: int = 72,
    horizon_days: float = 7,
    oi_hold_pct: float = 3.0,
    funding_positive: float = 0.0,
) -> SecondLegResult:
    """After a sell-off and a bounce, how often does a second leg make a new low (H2)?

    For each sell-off: the bounce is the first close at least ``bounce_pct`` % above the trough
    close within ``bounce_hours`` (before any close below the trough); sell-offs without a bounce
    are left out. The second leg happens when a close after the bounce, within ``horizon_days`` of
    the trough, is below the trough close. Conditions, known when the bounce is confirmed:
    ``oi_held`` = OI (base units) at the bounce is above ``-oi_hold_pct`` % of its peak level;
    ``funding_positive`` = mean 8h funding rate from trough to bounce > ``funding_positive``.

    A logit of ``second_leg ~ oi_held + funding_positive`` with HC1 errors is reported when it
    exists; with separation (an empty cell, usual with few events) it is skipped with a note and
    the Fisher exact tests stand alone.
    """
    who = "second_leg"
    _require(panel, ["ts", "perp_close"], who)
    params = {"bounce_pct": bounce_pct, "bounce_hours": bounce_hours, "horizon_days": horizon_days,
              "oi_hold_pct": oi_hold_pct, "funding_positive": funding_positive}
    panel = _sorted_panel(panel)
    hours = _hours(panel)
    n = panel.height
    close = _col(panel, "perp_close")
    oi = _oi_units(panel)
    fund = _col(panel, "funding_rate_8h")
    ev = selloffs.sort("trough_ts")
    ip_all = _rows_of(hours, ev["peak_ts"])
    it_all = _rows_of(hours, ev["trough_ts"])
    H = int(round(horizon_days * 24))
    rows = []
    for k, r in enumerate(ev.iter_rows(named=True)):
        ip, it = int(ip_all[k]), int(it_all[k])
        if ip < 0 or it < 0 or it + 1 >= n:
            continue
        pt = close[it]
        seg = close[it + 1: min(it + 1 + bounce_hours, n)]
        up = np.flatnonzero(seg >= pt * (1 + bounce_pct / 100))
        below = np.flatnonzero(seg < pt)
        if up.size == 0 or (below.size and below[0] < up[0]):
            rows.append({"event_id": r["event_id"], "trough_ts": r["trough_ts"], "bounce": False})
            continue
        ib = it + 1 + int(up[0])
        end = min(it + H, n - 1)
        after = close[ib + 1: end + 1]
        lows = np.flatnonzero(after < pt)
        leg = bool(lows.size)
        complete = it + H <= n - 1 or leg
        oi_chg = 100 * (oi[ib] / oi[ip] - 1) if np.isfinite(oi[ip]) and oi[ip] > 0 else np.nan
        f_mean = _nanmean(fund[it: ib + 1])
        rows.append({
            "event_id": r["event_id"], "trough_ts": r["trough_ts"], "bounce": True,
            "bounce_ts": panel["ts"][ib], "bounce_pct": 100 * (close[ib] / pt - 1),
            "second_leg": leg, "second_leg_ts": panel["ts"][ib + 1 + int(lows[0])] if leg else None,
            "complete": complete, "oi_change_pct": oi_chg, "funding_mean": f_mean,
            "oi_held": bool(oi_chg > -oi_hold_pct) if np.isfinite(oi_chg) else None,
            "funding_positive": bool(f_mean > funding_positive) if np.isfinite(f_mean) else None,
        })
    ts_t = panel.schema["ts"]
    schema = {"event_id": pl.Int64, "trough_ts": ts_t, "bounce": pl.Boolean, "bounce_ts": ts_t,
              "bounce_pct": pl.Float64, "second_leg": pl.Boolean, "second_leg_ts": ts_t, "complete": pl.Boolean,
              "oi_change_pct": pl.Float64, "funding_mean": pl.Float64, "oi_held": pl.Boolean,
              "funding_positive": pl.Boolean}
    events = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    notes: list[str] = []
    n_nob = int((~events["bounce"]).sum()) if events.height else 0
    if n_nob:
        notes.append(f"{n_nob} sell-off(s) without a {bounce_pct}% bounce within {bounce_hours} h left out")
    use = events.filter(pl.col("bounce") & pl.col("complete"))
    n_inc = int(events.filter(pl.col("bounce") & ~pl.col("complete")).height)
    if n_inc:
        notes.append(f"{n_inc} sell-off(s) too close to the end of the data to observe {horizon_days} days left out")
    y = use["second_leg"].to_numpy().astype(bool) if use.height else np.zeros(0, bool)
    rates = []

    def rate(name, mask):
        kk, nn = int(np.sum(y[mask])), int(np.sum(mask))
        lo, hi = wilson_ci(kk, nn)
        rates.append({"group": name, "n": nn, "k": kk, "rate": kk / nn if nn else np.nan, "ci_low": lo, "ci_high": hi})

    rate("all", np.ones(y.size, bool))
    fisher = []
    conds = {}
    for c in ("oi_held", "funding_positive"):
        v = use[c].to_numpy() if use.height else np.zeros(0)
        ok = np.array([x is not None for x in v], bool)
        x = np.array([bool(x) if x is not None else False for x in v], bool)
        conds[c] = (x, ok)
        rate(f"{c}", ok & x)
        rate(f"not {c}", ok & ~x)
        if ok.sum():
            fisher.append(_fisher_row(x[ok], y[ok], c))
    xo, oko = conds["oi_held"]
    xf, okf = conds["funding_positive"]
    both_ok = oko & okf
    rate("oi_held and funding_positive", both_ok & xo & xf)
    rate("neither/one of them", both_ok & ~(xo & xf))
    if both_ok.sum():
        fisher.append(_fisher_row((xo & xf)[both_ok], y[both_ok], "oi_held and funding_positive"))
    rates_df = pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None))
    fisher_schema = {"condition": pl.String, "n": pl.Int64, "n_yes": pl.Int64, "n_no": pl.Int64,
                     "leg_if_yes": pl.Int64, "leg_if_no": pl.Int64, "risk_diff": pl.Float64, "rd_ci_low": pl.Float64,
                     "rd_ci_high": pl.Float64, "odds_ratio": pl.Float64, "pvalue": pl.Float64}
    fisher_df = (pl.DataFrame(fisher, schema=fisher_schema) if fisher else pl.DataFrame(schema=fisher_schema)
                 ).with_columns(pl.col(pl.Float64).fill_nan(None))

    logit = None
    if both_ok.sum() >= 4 and 0 < y[both_ok].sum() < both_ok.sum():
        X, names = [np.ones(int(both_ok.sum()))], ["const"]
        for c, (x, _) in (("oi_held", conds["oi_held"]), ("funding_positive", conds["funding_positive"])):
            xv = x[both_ok]
            if xv.min() == xv.max():
                notes.append(f"{c} takes one value in every usable sell-off: left out of the logit")
                continue
            if _separated(xv, y[both_ok]):
                notes.append(f"perfect/quasi-separation: {c} has an empty cell against second_leg, so its logit "
                             "coefficient is infinite; the Fisher exact test is reported instead")
                continue
            X.append(xv.astype(float))
            names.append(c)
        if len(names) > 1:
            logit = _fit_logit(y[both_ok], np.column_stack(X), names, notes, cov_type="HC1")
    else:
        notes.append("logit skipped: fewer than 4 usable sell-offs or the outcome takes one value")
    if y.size < 20:
        notes.append(f"only {y.size} sell-offs: exact tests are the primary evidence, the logit is descriptive")
    return SecondLegResult(events=events, rates=rates_df, fisher=fisher_df, logit=logit, params=params, notes=notes,
                           synthetic=is_synthetic(panel))


# ================================================================================================
# H3: crowding as early warning
# ================================================================================================
@dataclass
class CrowdingResult(_Result):
    """H3 results.

    Attributes
    ----------
    rates : polars.DataFrame
        P(cascade within H hours) overall (base rate) and conditional on each signal, lift, Wilson CIs.
    logit : polars.DataFrame or None
        Logit ``cascade_next_H ~ funding_extreme + ls_extreme`` with HAC errors (maxlags = H).
    rule : dict
        Precision, recall and counts of the chosen rule.
    thresholds : dict
        The funding and long/short thresholds used.
    """

    rates: pl.DataFrame
    logit: pl.DataFrame | None
    rule: dict
    thresholds: dict
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("rates", "logit")

    def to_frame(self) -> pl.DataFrame:
        return self.rates

    def summary(self) -> str:
        lines = ["H3 crowding as early warning", "=" * 28,
                 f"thresholds: {self.thresholds}"]
        for r in self.rates.iter_rows(named=True):
            lines.append(f"  {r['condition']:<22} hours={r['n']:>5}  P(cascade in {self.params['horizon_hours']} h)="
                         f"{_fmt(r['rate'], '.3f')} [{_fmt(r['ci_low'], '.3f')}, {_fmt(r['ci_high'], '.3f')}]  lift={_fmt(r['lift'], '.2f')}")
        lines.append(f"  rule '{self.rule['signal']}': precision {_fmt(self.rule['precision'], '.3f')}, recall "
                     f"{_fmt(self.rule['recall'], '.3f')} ({self.rule['cascades_warned']}/{self.rule['cascades']} cascades warned)")
        if self.logit is not None:
            for r in self.logit.iter_rows(named=True):
                lines.append(f"    {r['term']:<18} {_fmt(r['coef'])} (HAC se {_fmt(r['se'])}, p={_fmt(r['pvalue'])})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_conditional_rates(
            self.rates.rename({"condition": "group"}),
            title=f"P(liquidation cascade within {self.params['horizon_hours']} h) given crowding",
            y_title="share of hours", baseline_group="all hours", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        sig = self.rule["signal"]
        row = self.rates.filter(pl.col("condition") == sig)
        base = self.rates.filter(pl.col("condition") == "all hours")
        if row.height and base.height:
            r, b = row.row(0, named=True), base.row(0, named=True)
            p = None
            if self.logit is not None:
                t = self.logit.filter(pl.col("term") == "signal")
                p = _f(t["pvalue"][0]) if t.height else None
            out.append(Verdict(
                hypothesis=f"Crowding ({sig}) precedes liquidation cascades within {self.params['horizon_hours']} h",
                effect=_f(r["rate"] - b["rate"]) if r["rate"] is not None and b["rate"] is not None else None,
                ci_low=_f(r["ci_low"] - b["rate"]) if r["ci_low"] is not None and b["rate"] is not None else None,
                ci_high=_f(r["ci_high"] - b["rate"]) if r["ci_high"] is not None and b["rate"] is not None else None,
                pvalue=p, n_events=int(self.rule["cascades"]),
                test="logit of cascade-within-H on the signal, HAC (Newey-West) errors",
                effect_label="P(cascade | signal) - base rate",
                conclusion=(f"precision {_fmt(self.rule['precision'], '.2f')}, recall {_fmt(self.rule['recall'], '.2f')}; "
                            + (_conclude(p, 2, 2) if p is not None else "logit not estimable"))))
        return out


def _forward_any(ind: np.ndarray, h: int) -> np.ndarray:
    """1 where ``ind`` is true in any of the next ``h`` rows (t+1..t+h); NaN where the window runs off the end."""
    n = ind.size
    cs = np.concatenate([[0], np.cumsum(ind.astype(int))])
    t = np.arange(n)
    hi = t + h
    out = np.full(n, np.nan)
    ok = hi <= n - 1
    out[ok] = (cs[hi[ok] + 1] - cs[t[ok] + 1]) > 0
    return out


def _backward_any(ind: np.ndarray, h: int) -> np.ndarray:
    """True where ``ind`` is true in any of the previous ``h`` rows (t-h..t-1)."""
    cs = np.concatenate([[0], np.cumsum(ind.astype(int))])
    t = np.arange(ind.size)
    lo = np.maximum(t - h, 0)
    return (cs[t] - cs[lo]) > 0


def crowding_early_warning(
    panel: pl.DataFrame,
    cascades: pl.DataFrame,
    *,
    horizon_hours: int = 24,
    ls_threshold: float = 1.5,
    ls_column: str = "auto",
    funding_threshold: float | None = None,
    funding_quantile: float = 0.9,
    signal: str = "both",
    hac_lags: int | None = None,
) -> CrowdingResult:
    """Do funding extremes and long/short ratios above a threshold precede liquidation cascades (H3)?

    Parameters
    ----------
    panel : polars.DataFrame
        Hourly panel (``funding_rate_8h`` and a long/short ratio column).
    cascades : polars.DataFrame
        Cascade events with ``ts`` (the row at whose close the cascade is known), e.g.
        :func:`research.events.detect_liquidation_prints`.
    horizon_hours : int
        Outcome: a cascade in rows ``t+1 .. t+H`` after the signal row ``t``.
    ls_threshold : float
        Long/short ratio threshold (the article names 1.5).
    ls_column : str
        ``"auto"`` (``account_ls_ratio``, else ``top_trader_ls_ratio``) or a column name.
    funding_threshold : float, optional
        8h funding rate above which funding is "extreme"; default: the ``funding_quantile`` quantile
        of the sample (the article's 0.5 % per period is never reached in BTCUSDT).
    signal : {"both", "either", "funding", "ls"}
        The rule whose precision and recall are reported.
    hac_lags : int, optional
        Newey-West lags for the logit (default ``horizon_hours``: the outcome windows overlap).
    """
    who = "crowding_early_warning"
    _require(panel, ["ts", "funding_rate_8h"], who)
    if signal not in ("both", "either", "funding", "ls"):
        raise HypothesisError(f"{who}: signal={signal!r}; use 'both', 'either', 'funding' or 'ls'")
    if "ts" not in cascades.columns:
        raise HypothesisError(f"{who}: cascades has no column 'ts'; pass research.events.detect_liquidation_prints(panel)")
    if ls_column == "auto":
        cands = [c for c in ("account_ls_ratio", "top_trader_ls_ratio") if c in panel.columns and panel[c].drop_nulls().len()]
        ls_column = cands[0] if cands else "account_ls_ratio"
    params = {"horizon_hours": horizon_hours, "ls_threshold": ls_threshold, "ls_column": ls_column,
              "funding_threshold": funding_threshold, "funding_quantile": funding_quantile, "signal": signal,
              "hac_lags": hac_lags}
    panel = _sorted_panel(panel)
    hours = _hours(panel)
    n = panel.height
    notes: list[str] = []
    f = _col(panel, "funding_rate_8h")
    ls = _col(panel, ls_column)
    if funding_threshold is None:
        fin = f[np.isfinite(f)]
        funding_threshold = float(np.quantile(fin, funding_quantile)) if fin.size else float("nan")
        notes.append(f"funding threshold = {funding_quantile:.0%} quantile of the sample = {funding_threshold:.6f} per 8 h "
                     f"(the article's 0.5 % = 0.005 is exceeded in {int(np.sum(fin >= 0.005))} of {fin.size} hours)")
    idx = _rows_of(hours, cascades["ts"]) if cascades.height else np.zeros(0, int)
    ind = np.zeros(n, bool)
    ind[idx[idx >= 0]] = True
    liq_cov = panel["has_liq"].to_numpy() if "has_liq" in panel.columns else np.ones(n, bool)
    y = _forward_any(ind, horizon_hours)
    has_ls = bool(np.isfinite(ls).any())
    if not has_ls:
        notes.append(f"no long/short ratio in the data ({ls_column} is empty: positioning not imported): only the "
                     "funding signal is tested")
        if signal in ("both", "ls"):
            signal = "funding"
            params["signal_used"] = signal
    fe = f >= funding_threshold
    le = ls >= ls_threshold
    ok = np.isfinite(y) & np.isfinite(f) & (np.isfinite(ls) if has_ls else True) & liq_cov
    # the outcome needs liquidation coverage over the whole forward window
    ok &= _forward_any(~liq_cov, horizon_hours) == 0
    sigs = {"funding": fe, "ls": le, "both": fe & le, "either": fe | le}
    yb = y == 1
    base = float(np.mean(yb[ok])) if ok.sum() else float("nan")
    rates = []
    for name, m in [("all hours", np.ones(n, bool)), (f"funding >= {funding_threshold:.6f}", fe),
                    (f"{ls_column} >= {ls_threshold}", le), ("both", fe & le), ("either", fe | le),
                    ("neither", ~(fe | le))]:
        mm = ok & m
        kk, nn = int(np.sum(yb[mm])), int(mm.sum())
        lo, hi = wilson_ci(kk, nn)
        r = kk / nn if nn else float("nan")
        rates.append({"condition": name, "n": nn, "k": kk, "rate": r, "ci_low": lo, "ci_high": hi,
                      "lift": r / base if base and base > 0 else float("nan")})
    # rename for the rule lookup
    rates[1]["condition"], rates[2]["condition"] = "funding", "ls"
    rates[1]["label"] = f"funding_rate_8h >= {funding_threshold:.6f}"
    rates[2]["label"] = f"{ls_column} >= {ls_threshold}"
    for r in rates:
        r.setdefault("label", r["condition"])
    rates_df = pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None))
    s = sigs[signal]
    casc_rows = np.flatnonzero(ind & liq_cov)
    s_def = s & np.isfinite(f) & (np.isfinite(ls) if has_ls else True)
    warned = _backward_any(s_def, horizon_hours)[casc_rows] if casc_rows.size else np.zeros(0, bool)
    tp = int(np.sum(yb[ok & s]))
    rule = {"signal": signal, "precision": tp / int((ok & s).sum()) if (ok & s).sum() else float("nan"),
            "recall": float(np.mean(warned)) if warned.size else float("nan"),
            "cascades": int(casc_rows.size), "cascades_warned": int(np.sum(warned)),
            "signal_hours": int((ok & s).sum()), "hours": int(ok.sum()), "base_rate": base}
    logit = None
    if ok.sum() < 50:
        notes.append(f"only {int(ok.sum())} hours with funding, long/short ratio and liquidation coverage: logit skipped")
    elif yb[ok].min() == yb[ok].max():
        notes.append("the outcome takes one value in every usable hour: logit skipped")
    else:
        lags = int(hac_lags if hac_lags is not None else horizon_hours)
        xs = s[ok].astype(float)
        if xs.min() == xs.max():
            notes.append(f"signal '{signal}' takes one value in every usable hour: logit skipped")
        elif _separated(xs, yb[ok]):
            notes.append(f"perfect/quasi-separation of the outcome by signal '{signal}': logit skipped")
        else:
            X = np.column_stack([np.ones(int(ok.sum())), xs])
            logit = _fit_logit(yb[ok], X, ["const", "signal"], notes, cov_type="HAC",
                               cov_kwds={"maxlags": lags})
    return CrowdingResult(rates=rates_df, logit=logit, rule=rule,
                          thresholds={"funding_rate_8h": funding_threshold, ls_column: ls_threshold},
                          params=params, notes=notes,
                          synthetic=is_synthetic(panel))


# ================================================================================================
# H4: funding settlement hours
# ================================================================================================
@dataclass
class SettlementResult(_Result):
    """H4 results.

    Attributes
    ----------
    comparison : polars.DataFrame
        Per metric: mean in/out of the settlement windows, difference, Welch t, Mann-Whitney U and
        the HAC OLS estimate of the difference with its CI and p-value.
    profile : polars.DataFrame
        Per metric and UTC hour: mean with HAC 95 % CI (OLS on hour dummies), ``settlement`` flag.
    contrast : polars.DataFrame
        Per metric: settlement hours vs the hours 2-3 away (a local contrast that absorbs smooth
        intraday seasonality), HAC, and the joint F-test of no hour-of-day effect.
    """

    comparison: pl.DataFrame
    profile: pl.DataFrame
    contrast: pl.DataFrame
    params: dict
    synthetic: bool = False

    _frame_fields = ("comparison", "profile", "contrast")

    def to_frame(self) -> pl.DataFrame:
        return self.comparison

    def summary(self) -> str:
        lines = ["H4 funding settlement hours", "=" * 27]
        for r in self.comparison.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} in {_fmt(r['mean_in'])} vs out {_fmt(r['mean_out'])}: diff {_fmt(r['diff'])} "
                         f"(HAC CI [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], p={_fmt(r['p_hac'])}; Welch p={_fmt(r['p_welch'])}, "
                         f"MW p={_fmt(r['p_mannwhitney'])})")
        for r in self.contrast.iter_rows(named=True):
            lines.append(f"  {r['metric']:<12} settlement vs hours 2-3 away: {_fmt(r['contrast'])} (p={_fmt(r['pvalue'])}); "
                         f"hour-of-day F p={_fmt(r['p_hour_f'])}")
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_hour_profile(self.profile, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        out = []
        labels = {"log_volume": "log perp volume", "abs_ret": "|hourly log return|", "ret": "hourly log return"}
        for r in self.comparison.iter_rows(named=True):
            out.append(Verdict(
                hypothesis=f"{labels.get(r['metric'], r['metric'])} differs in the settlement hours ±{self.params['window']} "
                           f"({', '.join(f'{h:02d}' for h in self.params['settlement_hours'])} UTC) from other hours",
                effect=_f(r["diff"]), ci_low=_f(r["ci_low"]), ci_high=_f(r["ci_high"]), pvalue=_f(r["p_hac"]),
                n_events=int(r["n_in"]), test=f"OLS on a settlement-window dummy, HAC ({self.params['hac_lags']} lags); "
                f"Welch p={_fmt(r['p_welch'])}, Mann-Whitney p={_fmt(r['p_mannwhitney'])}",
                effect_label="mean in window - mean outside", conclusion=_conclude(r["p_hac"], r["n_in"], r["n_out"])))
        return out


def settlement_hours(
    panel: pl.DataFrame,
    *,
    settlement_hours=(0, 8, 16),
    window: int = 1,
    hac_lags: int = 24,
) -> SettlementResult:
    """Are volume, |return| and return different around the funding settlements (H4)?

    Hours within ``window`` of a settlement hour (circularly: 23, 0, 1 for 00 UTC and ``window=1``)
    are compared with all other hours: difference of means, Welch t-test, Mann-Whitney U, and OLS
    of the metric on a window dummy with HAC errors (``hac_lags``). An OLS on 24 hour dummies (HAC)
    gives the hour-of-day profile, a joint F-test of equal hour means, and a local contrast of the
    settlement hours against the hours 2-3 away from them.
    """
    import statsmodels.api as sm

    who = "settlement_hours"
    _require(panel, ["ts", "perp_ret", "perp_volume"], who)
    sh = sorted({int(h) % 24 for h in settlement_hours})
    params = {"settlement_hours": sh, "window": int(window), "hac_lags": int(hac_lags)}
    panel = _sorted_panel(panel)
    hod = panel["ts"].dt.hour().to_numpy().astype(int)
    dist = np.min(np.stack([np.minimum((hod - s) % 24, (s - hod) % 24) for s in sh]), axis=0)
    inw = dist <= window
    vol = _col(panel, "perp_volume")
    ret = _col(panel, "perp_ret")
    metrics = {"log_volume": np.where(vol > 0, np.log(np.where(vol > 0, vol, 1.0)), np.nan),
               "abs_ret": np.abs(ret), "ret": ret}
    comp, prof, con = [], [], []
    D = (hod[:, None] == np.arange(24)[None, :]).astype(float)
    near = np.isin(np.arange(24), sh)
    ring = np.array([(min(np.min([(h - s) % 24, (s - h) % 24]) for s in sh) in (2, 3)) for h in range(24)])
    for name, y in metrics.items():
        ok = np.isfinite(y)
        a, b = y[ok & inw], y[ok & ~inw]
        welch = sps.ttest_ind(a, b, equal_var=False) if a.size > 1 and b.size > 1 else None
        mw = sps.mannwhitneyu(a, b, alternative="two-sided") if a.size and b.size else None
        X = np.column_stack([np.ones(int(ok.sum())), inw[ok].astype(float)])
        fit = sm.OLS(y[ok], X).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lags})
        ci = fit.conf_int()[1]
        comp.append({"metric": name, "n_in": int(a.size), "n_out": int(b.size), "mean_in": _nanmean(a),
                     "mean_out": _nanmean(b), "diff": float(fit.params[1]), "se_hac": float(fit.bse[1]),
                     "ci_low": float(ci[0]), "ci_high": float(ci[1]), "p_hac": float(fit.pvalues[1]),
                     "t_welch": float(welch.statistic) if welch else np.nan,
                     "p_welch": float(welch.pvalue) if welch else np.nan,
                     "u_mannwhitney": float(mw.statistic) if mw else np.nan,
                     "p_mannwhitney": float(mw.pvalue) if mw else np.nan})
        Dk = D[ok]
        present = Dk.sum(axis=0) > 0
        fit_h = sm.OLS(y[ok], Dk[:, present]).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lags})
        cis = fit_h.conf_int()
        hrs = np.arange(24)[present]
        for j, h in enumerate(hrs):
            prof.append({"metric": name, "hour": int(h), "mean": float(fit_h.params[j]), "ci_low": float(cis[j, 0]),
                         "ci_high": float(cis[j, 1]), "n": int(Dk[:, present][:, j].sum()),
                         "settlement": bool(near[h]), "in_window": bool(np.any(inw[hod == h]))})
        k = int(present.sum())
        # joint F-test: all hour means equal
        R = np.zeros((k - 1, k))
        R[np.arange(k - 1), 0] = 1
        R[np.arange(k - 1), np.arange(1, k)] = -1
        f_p = float(fit_h.f_test(R).pvalue) if k > 1 else np.nan
        c = np.zeros(k)
        sel_s = near[present]
        sel_r = ring[present]
        contrast_val, c_p = np.nan, np.nan
        if sel_s.any() and sel_r.any():
            c[sel_s] = 1 / sel_s.sum()
            c[sel_r] = -1 / sel_r.sum()
            tt = fit_h.t_test(c)
            contrast_val, c_p = float(np.squeeze(tt.effect)), float(np.squeeze(tt.pvalue))
        con.append({"metric": name, "contrast": contrast_val, "pvalue": c_p, "p_hour_f": f_p})
    comparison = pl.DataFrame(comp).with_columns(pl.col(pl.Float64).fill_nan(None))
    return SettlementResult(comparison=comparison, profile=pl.DataFrame(prof), contrast=pl.DataFrame(con).with_columns(
        pl.col(pl.Float64).fill_nan(None)), params=params,
        synthetic=is_synthetic(panel))


# ================================================================================================
# H5: liquidation waves
# ================================================================================================
@dataclass
class LiquidationWavesResult(_Result):
    """H5 results.

    Attributes
    ----------
    acf : polars.DataFrame
        ``lag, acf_usd, acf_print, band`` (autocorrelations of log1p(USD) and of the print indicator,
        with the ±1.96/sqrt(n) band).
    ljung_box : dict of TestStat
        Ljung-Box Q at ``lags`` for both series.
    conditional : dict
        P(another print within k bars | print) vs the unconditional P(print within k bars), with a
        binomial test and a shuffle permutation test.
    series : polars.DataFrame
        The bucket series (``ts, usd, print``).
    """

    acf: pl.DataFrame
    ljung_box: dict
    conditional: dict
    series: pl.DataFrame
    params: dict
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("acf", "series")

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"measure": k, "value": _f(v) if not isinstance(v, str) else None}
                             for k, v in self.conditional.items() if not isinstance(v, (dict, TestStat))])

    def summary(self) -> str:
        c = self.conditional
        lines = ["H5 liquidation waves", "=" * 20,
                 f"buckets: {self.series.height} of {self.params['bucket_hours']} h; prints: {int(self.series['print'].sum())} "
                 f"({self.params['print_rule']})"]
        for k, t in self.ljung_box.items():
            lines.append(f"  Ljung-Box {k}: {t}")
        lines.append(f"  P(print within {self.params['k_bars']} bars | print) = {_fmt(c['p_conditional'], '.3f')} vs "
                     f"unconditional {_fmt(c['p_unconditional'], '.3f')} (ratio {_fmt(c['ratio'], '.2f')}); "
                     f"binomial p={_fmt(c['p_binomial'])}, shuffle p={_fmt(c['p_permutation'])}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        return plots.plot_acf(self.acf, synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        c = self.conditional
        lb = self.ljung_box.get("print")
        return [
            Verdict(hypothesis=f"Liquidation prints cluster: another print follows within {self.params['k_bars']} bars more often than unconditionally",
                    effect=_f(c["p_conditional"] - c["p_unconditional"]) if c["p_conditional"] is not None else None,
                    ci_low=_f(c.get("ci_low") - c["p_unconditional"]) if c.get("ci_low") is not None else None,
                    ci_high=_f(c.get("ci_high") - c["p_unconditional"]) if c.get("ci_high") is not None else None,
                    pvalue=_f(c["p_permutation"]), n_events=int(c["n_prints"]),
                    test=f"shuffle permutation ({self.params['n_perm']} draws, seed {self.params['seed']}); binomial p={_fmt(c['p_binomial'])}",
                    effect_label="P(print within k | print) - P(print within k)",
                    conclusion=_conclude(c["p_permutation"], c["n_prints"], c["n_prints"])),
            Verdict(hypothesis=f"The print indicator is autocorrelated (Ljung-Box, {self.params['lags']} lags)",
                    effect=_f(self.acf["acf_print"][1]) if self.acf.height > 1 else None,
                    pvalue=_f(lb.pvalue) if lb else None, n_events=int(c["n_prints"]),
                    test="Ljung-Box Q", effect_label="lag-1 autocorrelation of the print indicator",
                    conclusion=_conclude(lb.pvalue if lb else None, 2, 2)),
        ]


def liquidation_waves(
    panel: pl.DataFrame,
    *,
    side: str = "total",
    prints: pl.DataFrame | None = None,
    print_quantile: float = 0.95,
    k_bars: int = 3,
    lags: int = 10,
    n_perm: int = 2000,
    seed: int = 7,
) -> LiquidationWavesResult:
    """Do liquidation prints cluster in time (H5)?

    The liquidation series is taken at its native bucket size (rows of the panel where a bucket
    ends; 1 h on the simulated market, 4 h for CoinGlass). A *print* is a bucket whose USD
    (``side``: long, short or total) is at or above the ``print_quantile`` quantile, or, when
    ``prints`` (e.g. :func:`research.events.detect_liquidation_prints`) is given, a bucket holding
    one of its ``ts``. Tests: Ljung-Box on log1p(USD) and on the indicator; P(another print within
    ``k_bars`` | print) vs the unconditional P(a print within ``k_bars``), with a one-sided binomial
    test and a permutation test that shuffles the indicator (seeded; destroys clustering, keeps the
    count).
    """
    from statsmodels.stats.diagnostic import acorr_ljungbox
    from statsmodels.tsa.stattools import acf as sm_acf

    who = "liquidation_waves"
    _require(panel, ["ts", "liq_long_usd", "liq_short_usd"], who)
    if side not in ("long", "short", "total"):
        raise HypothesisError(f"{who}: side={side!r}; use 'long', 'short' or 'total'")
    panel = _sorted_panel(panel)
    usd_expr = {"long": pl.col("liq_long_usd"), "short": pl.col("liq_short_usd"),
                "total": pl.col("liq_long_usd") + pl.col("liq_short_usd")}[side]
    s = panel.select("ts", usd_expr.cast(pl.Float64).alias("usd")).filter(
        pl.col("usd").is_not_null() & pl.col("usd").is_not_nan())
    if s.height < 3 * max(lags, k_bars) + 10:
        raise HypothesisError(f"{who}: only {s.height} liquidation buckets in the panel; import liquidations "
                              "(research import-real / research sample) or widen start/end")
    step_h = float(np.median(np.diff(s["ts"].dt.epoch("us").to_numpy())) / _HOUR_US)
    usd = s["usd"].to_numpy().astype(float)
    notes = []
    if prints is not None and prints.height:
        b = s["ts"].dt.epoch("us").to_numpy()
        p_t = prints["ts"].dt.epoch("us").to_numpy()
        # the bucket that ends in the print's hour: last bucket ending at or before the print row's close
        j = np.searchsorted(b, p_t, side="right") - 1
        ind = np.zeros(s.height, bool)
        ind[j[j >= 0]] = True
        rule = f"buckets holding a detected print ({prints.height} events)"
    else:
        thr = float(np.quantile(usd, print_quantile))
        ind = usd >= thr
        rule = f"{side} USD >= {print_quantile:.0%} quantile = {thr:,.0f}"
    s = s.with_columns(pl.Series("print", ind))
    n = usd.size
    x = np.log1p(usd)
    nl = min(lags, n // 4)
    acf_usd = sm_acf(x, nlags=nl, fft=True)
    acf_p = sm_acf(ind.astype(float), nlags=nl, fft=True) if ind.any() and not ind.all() else np.full(nl + 1, np.nan)
    band = 1.96 / math.sqrt(n)
    acf_df = pl.DataFrame({"lag": np.arange(nl + 1), "acf_usd": acf_usd, "acf_print": acf_p,
                           "band": np.full(nl + 1, band)}).with_columns(pl.col(pl.Float64).fill_nan(None))
    lb = {}
    for name, series in (("usd", x), ("print", ind.astype(float))):
        if np.nanvar(series) == 0:
            continue
        t = acorr_ljungbox(series, lags=[nl])
        lb[name] = TestStat(name=f"ljung_box_{name}", stat=float(t["lb_stat"].iloc[0]), pvalue=float(t["lb_pvalue"].iloc[0]),
                            df=float(nl), null=f"no autocorrelation up to lag {nl}", dist="chi2")
    fwd = _forward_any(ind, k_bars)
    okf = np.isfinite(fwd)
    cond_mask = ind & okf
    n_pr = int(cond_mask.sum())
    k_cond = int(np.sum(fwd[cond_mask] == 1))
    p_unc = float(np.mean(fwd[okf] == 1)) if okf.sum() else float("nan")
    p_cond = k_cond / n_pr if n_pr else float("nan")
    binom = sps.binomtest(k_cond, n_pr, p_unc, alternative="greater").pvalue if n_pr and 0 < p_unc < 1 else float("nan")
    # shuffle permutation: same number of prints, random positions
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((n_perm, n)), axis=1)
    P = ind[perm]
    cs = np.concatenate([np.zeros((n_perm, 1), int), np.cumsum(P, axis=1)], axis=1)
    t = np.arange(n)
    hi = t + k_bars
    valid = hi <= n - 1
    tv = t[valid]
    fw = (cs[:, hi[valid] + 1] - cs[:, tv + 1]) > 0
    pv = P[:, valid]
    denom = pv.sum(axis=1)
    perm_rate = np.where(denom > 0, (fw & pv).sum(axis=1) / np.maximum(denom, 1), np.nan)
    p_perm = (1 + int(np.sum(perm_rate >= p_cond - 1e-12))) / (1 + n_perm) if n_pr else float("nan")
    lo, hi_ = wilson_ci(k_cond, n_pr)
    conditional = {"n_prints": n_pr, "k_followed": k_cond, "p_conditional": p_cond, "ci_low": lo, "ci_high": hi_,
                   "p_unconditional": p_unc, "ratio": p_cond / p_unc if p_unc else float("nan"),
                   "p_binomial": float(binom), "p_permutation": float(p_perm),
                   "perm_mean": float(np.nanmean(perm_rate)) if np.isfinite(perm_rate).any() else float("nan")}
    params = {"side": side, "print_quantile": print_quantile, "k_bars": k_bars, "lags": nl, "n_perm": n_perm,
              "seed": seed, "bucket_hours": step_h, "print_rule": rule}
    return LiquidationWavesResult(acf=acf_df, ljung_box=lb, conditional=conditional, series=s, params=params,
                                  notes=notes,
                                  synthetic=is_synthetic(panel))


# ================================================================================================
# H6: liquidation heatmap
# ================================================================================================
@dataclass
class LiquidationHeatmap:
    """Modelled liquidation levels: USD per price bin per hour (long and short positions).

    Attributes
    ----------
    ts : polars.Series
        Hours (rows of the panel).
    edges : numpy.ndarray
        Price bin edges (log-spaced), ``len(centers) + 1``.
    long_usd, short_usd : numpy.ndarray
        ``(hours, bins)`` USD of long (short) positions whose liquidation price lies in the bin,
        after the hour's close.
    """

    ts: pl.Series
    edges: np.ndarray
    long_usd: np.ndarray
    short_usd: np.ndarray
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    params: dict

    @property
    def centers(self) -> np.ndarray:
        return np.sqrt(self.edges[:-1] * self.edges[1:])

    def frame(self, *, max_cells: int = 3_500, band_pct: float = 10.0) -> pl.DataFrame:
        """Aggregate for plotting: ``t0, t1, p0, p1, usd`` with at most ``max_cells`` cells.

        Time blocks average the hourly maps; price bins are merged; the price range is trimmed to
        ``band_pct`` % around the traded range.
        """
        T, B = self.long_usd.shape
        lo_p = np.nanmin(self.low) * (1 - band_pct / 100)
        hi_p = np.nanmax(self.high) * (1 + band_pct / 100)
        keep = (self.edges[1:] >= lo_p) & (self.edges[:-1] <= hi_p)
        b_idx = np.flatnonzero(keep)
        tot = (self.long_usd + self.short_usd)[:, b_idx]
        edges = self.edges[b_idx[0]: b_idx[-1] + 2]
        nb = tot.shape[1]
        # about 60 price rows; time blocks so that rows x blocks <= max_cells
        bm = max(1, -(-nb // 60))
        nbm = -(-nb // bm)
        tb = max(1, -(-T // max(1, max_cells // nbm)))
        nt = -(-T // tb)
        pad_t, pad_b = nt * tb - T, nbm * bm - nb
        m = np.pad(tot, ((0, pad_t), (0, pad_b)))
        cnt = np.pad(np.ones(T), (0, pad_t)).reshape(nt, tb).sum(axis=1)
        m = m.reshape(nt, tb, nbm * bm).sum(axis=1) / cnt[:, None]
        m = m.reshape(nt, nbm, bm).sum(axis=2)
        e = np.concatenate([edges, np.full(pad_b, edges[-1])])
        p0 = e[:-1][::bm][:nbm]
        p1 = e[np.minimum(np.arange(1, nbm + 1) * bm, len(e) - 1)]
        t_us = self.ts.dt.epoch("us").to_numpy()
        t0 = t_us[np.arange(nt) * tb]
        t1 = t_us[np.minimum(np.arange(1, nt + 1) * tb, T) - 1] + _HOUR_US
        grid_t0 = np.repeat(t0, nbm)
        grid_t1 = np.repeat(t1, nbm)
        out = pl.DataFrame({
            "t0": grid_t0, "t1": grid_t1, "p0": np.tile(p0, nt), "p1": np.tile(p1, nt), "usd": m.ravel(),
        }).with_columns(pl.from_epoch("t0", "us").dt.replace_time_zone("UTC"),
                        pl.from_epoch("t1", "us").dt.replace_time_zone("UTC"))
        return out.filter(pl.col("usd") > 0)

    def price_frame(self, *, max_points: int = 2000) -> pl.DataFrame:
        """Hourly closes thinned to at most ``max_points`` rows (last close of each block)."""
        T = self.close.size
        step = max(1, -(-T // max_points))
        idx = np.arange(step - 1, T, step)
        return pl.DataFrame({"ts": self.ts.gather(idx), "close": self.close[idx]})


def liquidation_heatmap(
    panel: pl.DataFrame,
    *,
    leverage_mix: dict | None = None,
    long_share: float = 0.5,
    bin_pct: float = 0.25,
    decay_on_oi_drop: bool = True,
    half_life_hours: float | None = None,
    max_oi_age_hours: float | None = 12,
) -> LiquidationHeatmap:
    """Estimate where liquidations would sit from OI increases and a leverage mix.

    Each hour's OI increase (base units x close, USD) opens positions at the close: a share
    ``long_share`` long, the rest short, spread over ``leverage_mix`` (leverage -> weight). A long
    with leverage L is liquidated at ``close * (1 - 1/L)``, a short at ``close * (1 + 1/L)``
    (maintenance margin ignored). Positions leave the map when the hour's low (high) crosses their
    level; with ``decay_on_oi_drop`` an OI decrease closes all positions proportionally, and with
    ``half_life_hours`` they also decay exponentially. One numpy step per hour over all bins.

    The map covers only the hours from the first to the last fresh OI observation (``oi_age_hours``
    at most ``max_oi_age_hours``; None keeps every hour): the panel carries the last OI value forward,
    and without new OI the modelled clusters would be stale guesses.
    """
    who = "liquidation_heatmap"
    _require(panel, ["ts", "perp_close", "perp_high", "perp_low"], who)
    mix = {float(k): float(v) for k, v in (leverage_mix or {10: 0.3, 25: 0.4, 50: 0.2, 100: 0.1}).items()}
    if not mix or any(k <= 1 for k in mix) or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise HypothesisError(f"{who}: leverage_mix={leverage_mix!r} needs leverages > 1 and non-negative weights")
    if not 0 <= long_share <= 1:
        raise HypothesisError(f"{who}: long_share={long_share} must be in [0, 1]")
    if bin_pct <= 0:
        raise HypothesisError(f"{who}: bin_pct={bin_pct} must be > 0")
    panel = _sorted_panel(panel).filter(pl.col("perp_close").is_not_null())
    if max_oi_age_hours is not None and "oi_age_hours" in panel.columns:
        fresh = np.flatnonzero((panel["oi_age_hours"] <= max_oi_age_hours).fill_null(False).to_numpy())
        if fresh.size == 0:
            raise HypothesisError(f"{who}: no open-interest observation younger than max_oi_age_hours="
                                  f"{max_oi_age_hours} in the panel; import OI for this span or raise the limit")
        panel = panel.slice(int(fresh[0]), int(fresh[-1] - fresh[0] + 1))
    close = _col(panel, "perp_close")
    high = _col(panel, "perp_high")
    low = _col(panel, "perp_low")
    oi = _oi_units(panel)
    if not np.isfinite(oi).any():
        raise HypothesisError(f"{who}: no open interest in the panel (oi_base/oi_usd); import OI or pick another span")
    lev = np.array(list(mix.keys()))
    w = np.array(list(mix.values()))
    w = w / w.sum()
    step = math.log1p(bin_pct / 100)
    lo_edge = math.log(np.nanmin(low) * (1 - 1 / lev.min()) * 0.98)
    hi_edge = math.log(np.nanmax(high) * (1 + 1 / lev.min()) * 1.02)
    nb = int(math.ceil((hi_edge - lo_edge) / step))
    edges = np.exp(lo_edge + step * np.arange(nb + 1))
    T = close.size
    L = np.zeros((T, nb))
    S = np.zeros((T, nb))
    cur_l = np.zeros(nb)
    cur_s = np.zeros(nb)
    decay = 0.5 ** (1 / half_life_hours) if half_life_hours else 1.0
    d_oi = np.diff(oi, prepend=np.nan)
    ratio = np.where(np.isfinite(d_oi) & (oi > 0), oi / np.where(np.isfinite(oi - d_oi), oi - d_oi, np.nan), 1.0)
    lvl_l = np.log1p(-1 / lev)
    lvl_s = np.log1p(1 / lev)
    centers_log = np.log(np.sqrt(edges[:-1] * edges[1:]))
    for t in range(T):  # one step per hour, numpy over bins
        if np.isfinite(low[t]):
            cur_l[centers_log >= math.log(low[t])] = 0.0
        if np.isfinite(high[t]):
            cur_s[centers_log <= math.log(high[t])] = 0.0
        if decay_on_oi_drop and np.isfinite(ratio[t]) and ratio[t] < 1:
            cur_l *= ratio[t]
            cur_s *= ratio[t]
        if decay != 1.0:
            cur_l *= decay
            cur_s *= decay
        if np.isfinite(d_oi[t]) and d_oi[t] > 0 and np.isfinite(close[t]):
            usd = d_oi[t] * close[t]
            lp = math.log(close[t])
            il = ((lp + lvl_l - lo_edge) / step).astype(int)
            is_ = ((lp + lvl_s - lo_edge) / step).astype(int)
            np.add.at(cur_l, np.clip(il, 0, nb - 1), usd * long_share * w)
            np.add.at(cur_s, np.clip(is_, 0, nb - 1), usd * (1 - long_share) * w)
        L[t] = cur_l
        S[t] = cur_s
    params = {"leverage_mix": {str(int(k) if k.is_integer() else k): v for k, v in mix.items()},
              "long_share": long_share, "bin_pct": bin_pct, "decay_on_oi_drop": decay_on_oi_drop,
              "half_life_hours": half_life_hours, "max_oi_age_hours": max_oi_age_hours}
    return LiquidationHeatmap(ts=panel["ts"], edges=edges, long_usd=L, short_usd=S, close=close, high=high, low=low,
                              params=params)


@dataclass
class LiquidationHeatmapResult(_Result):
    """H6 results.

    Attributes
    ----------
    tests : polars.DataFrame
        One row per test time: price, largest cluster level within the band, its distance, whether
        price reached it within the horizon, the mirror placebo level and whether that was reached.
    hit_rates : polars.DataFrame
        ``level, n, hits, rate, ci_low, ci_high`` for cluster, mirror placebo, random-side placebo.
    mcnemar : TestStat
        Exact McNemar (binomial on discordant pairs) of cluster vs mirror, one-sided (greater).
    permutation : TestStat
        Random-side placebo: sign-flip permutation of the pairs (seeded), one-sided (greater).
    heatmap : LiquidationHeatmap
    """

    tests: pl.DataFrame
    hit_rates: pl.DataFrame
    mcnemar: TestStat
    permutation: TestStat
    params: dict
    heatmap: LiquidationHeatmap | None = None
    notes: list = field(default_factory=list)
    synthetic: bool = False

    _frame_fields = ("tests", "hit_rates")

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("heatmap", None)
        return d

    def tables(self) -> dict[str, pl.DataFrame]:
        out = super().tables()
        if self.heatmap is not None:
            out["heatmap"] = self.heatmap.frame()
        return out

    def to_frame(self) -> pl.DataFrame:
        return self.hit_rates

    def summary(self) -> str:
        lines = ["H6 liquidation heatmap: does price reach the largest nearby cluster?", "=" * 68,
                 f"test times: {self.tests.height}; band ±{self.params['max_distance_pct']}%, horizon {self.params['horizon_hours']} h"]
        for r in self.hit_rates.iter_rows(named=True):
            lines.append(f"  {r['level']:<22} {r['hits']}/{r['n']} = {_fmt(r['rate'], '.3f')} [{_fmt(r['ci_low'], '.3f')}, {_fmt(r['ci_high'], '.3f')}]")
        lines.append(f"  {self.mcnemar}")
        lines.append(f"  {self.permutation}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self):
        from research import plots

        if self.heatmap is None:
            raise HypothesisError("plot(): this result carries no heatmap (it was loaded from a record)")
        return plots.plot_liquidation_heatmap(self.heatmap.frame(), self.heatmap.price_frame(),
                                              targets=self.tests.select("ts", "price", "cluster_level", "cluster_hit"),
                                              synthetic=self.synthetic)

    def plot_hits(self):
        from research import plots

        return plots.plot_conditional_rates(self.hit_rates.rename({"level": "group"}),
                                            title="Price reaches the level within the horizon",
                                            y_title="share of test times", synthetic=self.synthetic)

    def verdicts(self):
        from research.records import Verdict

        r = {x["level"]: x for x in self.hit_rates.iter_rows(named=True)}
        c, m = r.get("largest cluster"), r.get("mirror placebo")
        if not c or not m:
            return []
        return [Verdict(
            hypothesis=f"Price reaches the largest modelled liquidation cluster within ±{self.params['max_distance_pct']}% "
                       f"more often than a placebo level at the same distance on the other side (within {self.params['horizon_hours']} h)",
            effect=_f(c["rate"] - m["rate"]) if c["rate"] is not None and m["rate"] is not None else None,
            ci_low=_f(self.params.get("diff_ci_low")), ci_high=_f(self.params.get("diff_ci_high")),
            pvalue=_f(self.permutation.pvalue), n_events=int(c["n"]),
            test=f"random-side placebo (sign-flip permutation, seeded, one-sided); exact McNemar p={_fmt(self.mcnemar.pvalue)}",
            effect_label="hit rate cluster - mirror placebo",
            conclusion=_conclude(self.permutation.pvalue, c["n"], m["n"]))]


def liquidation_heatmap_test(
    panel: pl.DataFrame,
    *,
    leverage_mix: dict | None = None,
    long_share: float = 0.5,
    bin_pct: float = 0.25,
    decay_on_oi_drop: bool = True,
    half_life_hours: float | None = None,
    max_oi_age_hours: float | None = 12,
    max_distance_pct: float = 5.0,
    min_distance_pct: float = 0.5,
    horizon_hours: int = 72,
    every_hours: int | None = None,
    warmup_hours: int = 168,
    n_perm: int = 5000,
    seed: int = 7,
) -> LiquidationHeatmapResult:
    """Does price reach the largest nearby modelled liquidation cluster more often than placebo levels (H6)?

    At test times every ``every_hours`` (default: ``horizon_hours``, so outcome windows do not
    overlap) after ``warmup_hours`` of map building, the largest cluster (long + short USD) among bins
    between ``min_distance_pct`` and ``max_distance_pct`` % from the close is the target. It is hit
    when the highs (lows) of the next ``horizon_hours`` reach it. The mirror placebo is the level at
    the same log distance on the other side. Tests: exact McNemar on the discordant pairs, and a
    random-side placebo (each pair's side flipped at random, ``n_perm`` draws, seeded), both
    one-sided for "cluster hit more often". A cluster level is only looked at with the map known at
    the test time's close (no look-ahead).
    """
    who = "liquidation_heatmap_test"
    hm = liquidation_heatmap(panel, leverage_mix=leverage_mix, long_share=long_share, bin_pct=bin_pct,
                             decay_on_oi_drop=decay_on_oi_drop, half_life_hours=half_life_hours,
                             max_oi_age_hours=max_oi_age_hours)
    every = int(every_hours or horizon_hours)
    params = {"leverage_mix": hm.params["leverage_mix"], "long_share": long_share, "bin_pct": bin_pct,
              "decay_on_oi_drop": decay_on_oi_drop, "half_life_hours": half_life_hours,
              "max_oi_age_hours": max_oi_age_hours, "max_distance_pct": max_distance_pct, "min_distance_pct": min_distance_pct,
              "horizon_hours": horizon_hours, "every_hours": every, "warmup_hours": warmup_hours,
              "n_perm": n_perm, "seed": seed}
    T = hm.close.size
    H = int(horizon_hours)
    times = np.arange(warmup_hours, T - H, every)
    if times.size == 0:
        raise HypothesisError(f"{who}: the panel ({T} h) is shorter than warmup_hours + horizon_hours "
                              f"({warmup_hours} + {H}); widen start/end or lower them")
    from numpy.lib.stride_tricks import sliding_window_view

    fmax = sliding_window_view(np.where(np.isfinite(hm.high), hm.high, -np.inf), H)  # rows t..t+H-1
    fmin = sliding_window_view(np.where(np.isfinite(hm.low), hm.low, np.inf), H)
    centers = hm.centers
    logc = np.log(centers)
    tot = hm.long_usd + hm.short_usd
    rows = []
    for t in times:  # one vector op per test time
        c = hm.close[t]
        if not np.isfinite(c):
            continue
        d = logc - math.log(c)
        band = (np.abs(d) <= math.log1p(max_distance_pct / 100)) & (np.abs(d) >= math.log1p(min_distance_pct / 100))
        dens = np.where(band, tot[t], 0.0)
        if dens.max() <= 0:
            continue
        j = int(np.argmax(dens))
        lvl = centers[j]
        mir = c * math.exp(-d[j])
        hi_f, lo_f = fmax[t + 1].max(), fmin[t + 1].min()
        hit = bool(hi_f >= lvl) if lvl > c else bool(lo_f <= lvl)
        hit_m = bool(hi_f >= mir) if mir > c else bool(lo_f <= mir)
        rows.append({"ts": hm.ts[int(t)], "price": c, "cluster_level": lvl, "cluster_usd": float(dens[j]),
                     "distance_pct": 100 * (lvl / c - 1), "side": "above" if lvl > c else "below",
                     "cluster_hit": hit, "mirror_level": mir, "mirror_hit": hit_m})
    schema = {"ts": hm.ts.dtype, "price": pl.Float64, "cluster_level": pl.Float64, "cluster_usd": pl.Float64,
              "distance_pct": pl.Float64, "side": pl.String, "cluster_hit": pl.Boolean, "mirror_level": pl.Float64,
              "mirror_hit": pl.Boolean}
    tests = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    notes = []
    a = tests["cluster_hit"].to_numpy().astype(bool) if tests.height else np.zeros(0, bool)
    b = tests["mirror_hit"].to_numpy().astype(bool) if tests.height else np.zeros(0, bool)
    n = a.size
    rng = np.random.default_rng(seed)
    flips = rng.random((n_perm, n)) < 0.5
    placebo_rates = np.where(flips, b[None, :], a[None, :]).mean(axis=1) if n else np.zeros(n_perm)
    # sign-flip null: swapping labels within a pair; the statistic is mean(cluster) - mean(other)
    diff_obs = float(a.mean() - b.mean()) if n else float("nan")
    sw_a = np.where(flips, b[None, :], a[None, :])
    sw_b = np.where(flips, a[None, :], b[None, :])
    null = (sw_a.mean(axis=1) - sw_b.mean(axis=1)) if n else np.zeros(n_perm)
    p_perm = (1 + int(np.sum(null >= diff_obs - 1e-12))) / (1 + n_perm) if n else float("nan")
    disc_a, disc_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p_mc = float(sps.binomtest(disc_a, disc_a + disc_b, 0.5, alternative="greater").pvalue) if disc_a + disc_b else 1.0
    mcnemar = TestStat(name="mcnemar_exact", stat=float(disc_a), pvalue=p_mc, df=float(disc_a + disc_b),
                       null="cluster and mirror level equally likely to be reached (discordant pairs 50/50)",
                       dist="binomial", alternative="greater")
    perm = TestStat(name="random_side_placebo", stat=diff_obs, pvalue=float(p_perm), df=None,
                    null="the side of the target does not matter (pairs exchangeable)", dist="permutation",
                    alternative="greater")
    # paired bootstrap CI of the difference
    if n:
        bi = rng.integers(0, n, (2000, n))
        dd = a[bi].mean(axis=1) - b[bi].mean(axis=1)
        params["diff_ci_low"], params["diff_ci_high"] = (float(x) for x in np.quantile(dd, [0.025, 0.975]))
    rates = []
    for name, hits in (("largest cluster", a), ("mirror placebo", b)):
        k = int(hits.sum())
        lo, hi = wilson_ci(k, n)
        rates.append({"level": name, "n": n, "hits": k, "rate": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi})
    if n:
        lo, hi = np.quantile(placebo_rates, [0.025, 0.975])
        rates.append({"level": "random-side placebo", "n": n, "hits": int(round(placebo_rates.mean() * n)),
                      "rate": float(placebo_rates.mean()), "ci_low": float(lo), "ci_high": float(hi)})
    if n < 20:
        notes.append(f"only {n} non-overlapping test times: the test has little power")
    return LiquidationHeatmapResult(tests=tests, hit_rates=pl.DataFrame(rates).with_columns(pl.col(pl.Float64).fill_nan(None)),
                                    mcnemar=mcnemar, permutation=perm, params=params, heatmap=hm, notes=notes,
                                    synthetic=is_synthetic(panel))
