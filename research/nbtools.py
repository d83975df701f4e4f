"""Small helpers shared by the notebooks: load the panel, describe coverage, shape frames for the
event-study engine and the plots, turn CAR tests into verdicts, and the notebook-set parameters.

Data preparation lives here (and in :mod:`research.events`/:mod:`research.eventstudy`) so plot
functions only draw, and notebooks stay thin.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats as _st

from research import db, paths
from research.db import is_synthetic  # noqa: F401 - notebooks call nbtools.is_synthetic
from research.errors import EventStudyError
from research.records import Verdict

#: Charts get at most this many time rows (altair embeds every row in the spec).
MAX_PLOT_ROWS = 5000

#: Notebooks built on the hourly panel and their titles.
NOTEBOOKS = {
    "00-data-overview": "Data overview: coverage, gaps, sources",
    "10-funding-resets": "Funding resets: returns and positioning around them",
    "11-oi-collapses": "Open-interest collapses: returns, funding and liquidations around them",
    "12-liquidation-prints": "Long-liquidation prints: what follows a flush",
}

#: The real pack's span and the series the notebooks use on it (CoinGlass aggregate OI,
#: CoinGlass Binance liquidations).
REAL_PACK = {"start": "2025-10-01", "end": "2026-04-01", "oi_venue": "all", "liq_venue": "binance"}


def load_panel(data_dir=None, symbol: str = "BTCUSDT", start: str | None = None, end: str | None = None, *,
               oi_venue: str | None = None, liq_venue: str | None = None, source: str | None = None,
               venue: str = "binance") -> pl.DataFrame:
    """The hourly panel (``queries/hourly_panel.sql``) for one symbol and span.

    ``start``/``end`` are UTC strings (``end`` exclusive); ``None`` means the whole lake. Raises
    :class:`ValueError` naming the lake when the panel is empty (nothing imported for the symbol).
    """
    params = {"symbol": symbol, "venue": venue, "oi_venue": oi_venue, "liq_venue": liq_venue, "source": source}
    if start is not None:
        params["start"] = str(start)
    if end is not None:
        params["end"] = str(end)
    panel = db.query("hourly_panel", data_dir, **params)
    if panel.height == 0:
        raise ValueError(
            f"the hourly panel for {symbol} in [{start}, {end}) is empty: the lake in "
            f"{paths.data_dir(data_dir)} has no 1h perp/spot bars for it. Import data first "
            "(research.sources.importer.import_real_pack or research.simulate.write_sample).")
    return panel


def coverage_summary(panel: pl.DataFrame) -> dict:
    """JSON-ready summary of what the panel holds (for ``RecordWriter.record.coverage``)."""
    if panel.height == 0:
        return {"rows": 0}
    n = panel.height

    def frac(col):
        return float(panel[col].fill_null(False).mean()) if col in panel.columns else None

    out = {
        "symbol": str(panel["symbol"][0]) if "symbol" in panel.columns else None,
        "start": panel["ts"].min().isoformat(),
        "end": (panel["ts"].max()).isoformat(),
        "hours": n,
        "share_with_perp": frac("has_perp"),
        "share_with_spot": frac("has_spot"),
        "share_with_funding": frac("has_funding"),
        "share_with_oi": frac("has_oi"),
        "share_with_liquidations": frac("has_liq"),
        "share_with_positioning": frac("has_positioning"),
        "funding_settlements": int(panel["funding_settled"].is_not_null().sum()) if "funding_settled" in panel.columns else 0,
        "liquidation_buckets": int(panel["liq_long_usd"].is_not_null().sum()) if "liq_long_usd" in panel.columns else 0,
        "inputs": str(panel["inputs"][0]) if "inputs" in panel.columns else "",
        "synthetic": is_synthetic(panel),
    }
    return out


def panel_gaps(panel: pl.DataFrame, col: str = "has_perp") -> pl.DataFrame:
    """Runs of consecutive panel hours where ``col`` is false: ``start, end, hours``."""
    runs = (panel.select("ts", (~pl.col(col).fill_null(False)).alias("gap"))
            .with_columns((pl.col("gap") != pl.col("gap").shift(1)).fill_null(True).cum_sum().alias("run"))
            .filter(pl.col("gap"))
            .group_by("run").agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"),
                                 pl.len().cast(pl.Int64).alias("hours"))
            .sort("start").drop("run"))
    return runs


# --------------------------------------------------------------------------------------------------
# frames for the engine
# --------------------------------------------------------------------------------------------------
def returns_frame(panel: pl.DataFrame, col: str = "perp_ret", asset: str | None = None) -> pl.DataFrame:
    """``ts, asset, return`` for :func:`research.eventstudy.run` (log returns, NaN where missing)."""
    a = asset or (str(panel["symbol"][0]) if "symbol" in panel.columns else "asset")
    return panel.select("ts", pl.lit(a).alias("asset"), pl.col(col).cast(pl.Float64).alias("return"))


def profile_frame(panel: pl.DataFrame, *, liq_window_hours: int = 4, asset: str | None = None) -> pl.DataFrame:
    """Hourly columns to profile in event time: ``ts, asset`` and

    * ``ret_pct``: perp log return in percent (profile with ``cumulate=True`` for the price path),
    * ``oi_chg_pct``: hourly OI log change in percent (cumulate for the OI path); hours without a
      new OI observation are 0, so the 4 h CoinGlass series steps,
    * ``funding_8h_bp``: funding in force per 8 h, in basis points,
    * ``liq_long_musd``/``liq_short_musd``: liquidations in the trailing ``liq_window_hours``
      (observed buckets only), in $ million; null outside liquidation coverage.
    """
    a = asset or (str(panel["symbol"][0]) if "symbol" in panel.columns else "asset")
    oi = pl.coalesce(pl.col("oi_base"), pl.col("oi_usd")) if "oi_base" in panel.columns else pl.col("oi_usd")
    w = f"{int(liq_window_hours)}h"
    df = panel.sort("ts").select(
        "ts", pl.lit(a).alias("asset"),
        (100 * pl.col("perp_ret")).alias("ret_pct"),
        (100 * (oi.log() - oi.log().shift(1))).alias("oi_chg_pct"),
        (1e4 * pl.col("funding_rate_8h")).alias("funding_8h_bp"),
        pl.col("liq_long_usd"), pl.col("liq_short_usd"), pl.col("has_liq"),
    )
    df = df.with_columns(
        (pl.col(c).fill_null(0.0).rolling_sum_by("ts", window_size=w) / 1e6).alias(n)
        for c, n in (("liq_long_usd", "liq_long_musd"), ("liq_short_usd", "liq_short_musd"))
    ).with_columns(
        pl.when(pl.col("has_liq").fill_null(False)).then(pl.col(c)).alias(c) for c in ("liq_long_musd", "liq_short_musd")
    )
    return df.drop("liq_long_usd", "liq_short_usd", "has_liq")


def event_profiles(panel: pl.DataFrame, events: pl.DataFrame, window: tuple[int, int], *,
                   liq_window_hours: int = 4, level: float = 0.95) -> pl.DataFrame:
    """Event-time profiles (mean, band, n) of price, OI, funding and liquidations around ``events``.

    Price and OI are cumulated from the window start (``cum_ret_pct``, ``cum_oi_pct``); funding and
    liquidations are levels. Empty frame without events.
    """
    from research import eventstudy

    cols = ["event_time", "column", "mean", "median", "lo", "hi", "n"]
    if events.height == 0:
        return pl.DataFrame(schema={"event_time": pl.Int64, "column": pl.String, "mean": pl.Float64,
                                    "median": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "n": pl.Int64})
    fr = profile_frame(panel, liq_window_hours=liq_window_hours)
    ev = events.select("ts", "asset")
    cum = eventstudy.profile(fr.select("ts", "asset", "ret_pct", "oi_chg_pct"), ev, tuple(window),
                             cumulate=True, level=level, require_value="ret_pct")
    cum = cum.with_columns(pl.col("column").replace({"ret_pct": "cum_ret_pct", "oi_chg_pct": "cum_oi_pct"}))
    lev = eventstudy.profile(fr.select("ts", "asset", "funding_8h_bp", "liq_long_musd", "liq_short_musd"), ev,
                             tuple(window), level=level, require_value="funding_8h_bp")
    out = pl.concat([cum.select(cols), lev.select(cols)], how="vertical_relaxed")
    return out.with_columns(pl.col("n").cast(pl.Int64))


def event_study(panel: pl.DataFrame, events: pl.DataFrame, *, window=(-24, 72), estimation=(-240, -25),
                model: str = "mean", car_windows=None, overlap: str = "keep", tests=None):
    """Run the event study of perp log returns around ``events``; ``(result, note)``.

    ``result`` is None (and ``note`` says why) when there are no usable events, so a notebook still
    writes its record.
    """
    from research import eventstudy

    if events.height == 0:
        return None, "no events detected with these parameters"
    cw = None if car_windows is None else [tuple(int(v) for v in w) for w in car_windows]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = eventstudy.run(returns_frame(panel), events.select("ts", "asset", *[
                c for c in events.columns if c not in ("ts", "asset", "symbol", "kind", "event_id")
                and not isinstance(events.schema[c], pl.Datetime)]),
                estimation=None if model == "raw" else tuple(estimation), window=tuple(window),
                model=model, overlap=overlap, car_windows=cw, tests=tests)
    except EventStudyError as exc:
        return None, f"event study not run: {exc}"
    return res, ""


def _fmt_window(w) -> str:
    a, b = int(w[0]), int(w[1])
    return f"({a:+d}h,{b:+d}h)" if a else f"(0,{b:+d}h)"


def car_verdicts(result, car_windows, *, label: str, test: str = "cross_sectional_t",
                 level: float = 0.95, alpha: float = 0.05) -> list[Verdict]:
    """One :class:`~research.records.Verdict` per CAR window: ``CAR(w) after <label> != 0``.

    Effect = CAAR (mean CAR of perp log returns); CI = t interval of the per-event CARs at
    ``level``; p-value from the engine's ``test`` (default the cross-sectional t), with the Wilcoxon
    signed-rank p-value added to ``test`` when it was run. Without a result every verdict has
    ``n_events=0`` and says why.
    """
    out = []
    for w in car_windows:
        hyp = f"CAR{_fmt_window(w)} after {label} != 0"
        if result is None:
            out.append(Verdict(hypothesis=hyp, effect=None, n_events=0, test=test,
                               effect_label="CAAR of perp log returns", conclusion="not tested: no usable events"))
            continue
        car = result.car(tuple(w))["car"].to_numpy()
        car = car[np.isfinite(car)]
        n = int(car.size)
        mean = float(car.mean()) if n else math.nan
        if n > 1:
            half = float(_st.t.ppf(0.5 + level / 2, n - 1) * car.std(ddof=1) / math.sqrt(n))
            lo, hi = mean - half, mean + half
        else:
            lo = hi = math.nan
        tests = result.car_test(tuple(w))
        t = tests.get(test)
        p = None if t is None or not math.isfinite(t.pvalue) else float(t.pvalue)
        extra = ""
        if "wilcoxon" in tests and test != "wilcoxon" and math.isfinite(tests["wilcoxon"].pvalue):
            extra = f"; Wilcoxon signed-rank p = {tests['wilcoxon'].pvalue:.3g}"
        if p is None:
            concl = "not tested: too few events"
        elif p < alpha:
            concl = f"reject CAR = 0 at {alpha:g} ({'positive' if mean > 0 else 'negative'})"
        else:
            concl = f"CAR = 0 not rejected at {alpha:g}"
        out.append(Verdict(hypothesis=hyp, effect=mean, ci_low=lo, ci_high=hi, pvalue=p, n_events=n,
                           test=f"{test} (engine, {result.spec['model']} model){extra}",
                           effect_label="CAAR of perp log returns", conclusion=concl))
    return out


def verdicts_frame(verdicts: list[Verdict]) -> pl.DataFrame:
    """Verdicts as a table (for ``RecordWriter.table``)."""
    schema = {"hypothesis": pl.String, "effect": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
              "pvalue": pl.Float64, "n_events": pl.Int64, "test": pl.String, "effect_label": pl.String,
              "conclusion": pl.String}
    rows = [{k: getattr(v, k) for k in schema} for v in verdicts]
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------------------------------
# frames for the plots
# --------------------------------------------------------------------------------------------------
def market_panel_frame(panel: pl.DataFrame, *, max_rows: int = 1500) -> pl.DataFrame:
    """The wide frame :func:`research.plots.plot_market_panel` draws, at most ``max_rows`` rows.

    Columns: ``ts, price, oi_bn`` (OI in billions of USD or thousands of coins, see ``oi_unit``),
    ``funding_8h_bp``, ``liq_long_musd``, ``liq_short_musd``, ``oi_unit``. Longer spans are
    aggregated to coarser buckets (last price/OI/funding, summed liquidations).
    """
    p = panel.sort("ts")
    use_usd = "oi_usd" in p.columns and p["oi_usd"].is_not_null().any() and (
        "oi_base" not in p.columns or p["oi_base"].is_null().all())
    oi = (pl.col("oi_usd") / 1e9) if use_usd else (pl.col("oi_base") / 1e3)
    df = p.select("ts", pl.col("perp_close").alias("price"), oi.alias("oi_bn"),
                  (1e4 * pl.col("funding_rate_8h")).alias("funding_8h_bp"),
                  (pl.col("liq_long_usd") / 1e6).alias("liq_long_musd"),
                  (pl.col("liq_short_usd") / 1e6).alias("liq_short_musd"))
    if df.height > max_rows:
        hours = math.ceil(df.height / max_rows)
        df = (df.group_by_dynamic("ts", every=f"{hours}h")
              .agg(pl.col("price").drop_nulls().last(), pl.col("oi_bn").drop_nulls().last(),
                   pl.col("funding_8h_bp").drop_nulls().last(),
                   pl.when(pl.col("liq_long_musd").count() > 0).then(pl.col("liq_long_musd").sum()),
                   pl.when(pl.col("liq_short_musd").count() > 0).then(pl.col("liq_short_musd").sum())))
    return df.with_columns(pl.lit("USD bn" if use_usd else "k coins").alias("oi_unit"))


def events_for_plot(*tables: pl.DataFrame) -> pl.DataFrame:
    """Concatenate event tables to ``ts, kind`` for event markers."""
    parts = [t.select("ts", "kind") for t in tables if t is not None and t.height]
    if not parts:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "kind": pl.String})
    return pl.concat(parts).sort("ts")


# --------------------------------------------------------------------------------------------------
# notebook-set parameters
# --------------------------------------------------------------------------------------------------
def output_dir_for(output_dir: str | None, stem: str) -> Path:
    """The run's output directory (``reports/runs/manual/<stem>`` when not given)."""
    return Path(output_dir) if output_dir else paths.reports_dir() / "runs" / "manual" / stem


def notebook_parameters(kind: str = "synthetic", *, data_dir=None, out_root=None, start=None, end=None) -> dict[str, dict]:
    """Papermill parameters for the notebook set, ``{stem: params}``.

    ``kind="synthetic"``: the simulated market (whole lake, best series). ``kind="real"``: the real
    pack's span with CoinGlass aggregate OI (``oi_venue="all"``) and CoinGlass Binance liquidations
    (``liq_venue="binance"``). ``start``/``end`` override the span; ``out_root`` sets
    ``output_dir = out_root/<stem>``.
    """
    if kind not in ("synthetic", "real"):
        raise ValueError(f"kind={kind!r}; use 'synthetic' or 'real'")
    base: dict = {"symbol": "BTCUSDT"}
    if kind == "real":
        base.update(REAL_PACK)
    if start is not None:
        base["start"] = str(start)
    if end is not None:
        base["end"] = str(end)
    if data_dir is not None:
        base["data_dir"] = str(data_dir)
    out = {}
    for stem in NOTEBOOKS:
        p = dict(base)
        if out_root is not None:
            p["output_dir"] = str(Path(out_root) / stem)
        out[stem] = p
    return out
