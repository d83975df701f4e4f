"""The one input loader of the analysis layer: the hourly (and daily) panel, its coverage, and the
open-interest unit policy.

Every notebook, hypothesis and plot reads its data through :func:`load` (or
:func:`from_parameters`, which takes a notebook's parameters), so there is one empty-lake policy,
one coverage dict and one OI unit.

Empty-lake policy
-----------------
``data_dir=None`` means ``$RESEARCH_DATA_DIR`` (else ``./data``). When that lake holds no bars, the
seeded simulated market (:func:`research.simulate.write_sample`) is written into a **temporary
directory owned by the returned** :class:`Inputs`: it is removed when the ``Inputs`` object is
garbage-collected or the interpreter (kernel) exits, so nothing is left behind and the user's lake
is never written. Every row is then labelled ``synthetic``. (``research report`` writes the
simulated market into ``<report>/synthetic-data`` itself and passes that lake explicitly, so its
runs keep the data they used.) An explicit ``data_dir`` without bars for the symbol is an error
that says how to fill it.

OI measure
----------
Open interest is :mod:`research.oi`'s one measure, in **coins**: ``oi_base`` where present, else
``oi_usd`` divided by the close at the OI observation instant (flagged approximate). Staleness is the panel's own: the
``panel`` query blanks an OI value older than ``stale_after`` of the OI series' own intervals and says
so in ``has_oi``; rows without ``has_oi`` count as missing (a stale value would fake a change). There
is no constant age limit, so daily OI is not blanked half of every day; an explicit
``max_age_hours`` still tightens it.

Frequency and price
-------------------
``interval`` (``1h``, ``4h``, ``8h``, ``1d``) and ``price`` (``perp``, ``spot``, ``index``; None: perp,
else spot, else index) go to the ``panel`` query; the choice is in ``Inputs.interval``/``price_market``,
in the panel's ``inputs`` and in every record's ``coverage``.

Coverage
--------
:meth:`Inputs.record_coverage` is what a record states: the requested span, and per input the
notebook requires (:data:`REQUIRED_INPUTS`) the first and last usable bar
(:func:`research.coverage.panel_coverage`); ``start``/``end`` are the span where every required
input is usable (the span analysed), and ``uncovered`` lists each required input that does not reach
across the requested span. :func:`oi_measure` gives the array and the record of
the method, :func:`oi_coins` a Series, :func:`oi_units` the array.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from research.errors import PanelError

__all__ = [
    "LOADER_PARAMETERS",
    "REQUIRED_INPUTS",
    "Inputs",
    "PanelError",
    "coverage",
    "from_parameters",
    "load",
    "oi_coins",
    "oi_measure",
    "oi_series",
    "oi_units",
    "panel_gaps",
]

#: The notebook parameters :func:`from_parameters` passes to :func:`load`.
LOADER_PARAMETERS = ("data_dir", "symbol", "start", "end", "interval", "price", "oi_venue", "liq_venue",
                     "sample_seed")

#: Panel inputs (:data:`research.coverage.PANEL_INPUTS`) each notebook's analysis cannot do without;
#: the record's coverage is the span where all of them are usable.
REQUIRED_INPUTS = {
    "00-data-overview": ("price",),
    "10-funding-resets": ("price", "funding"),
    "11-oi-collapses": ("price", "oi"),
    "12-liquidation-prints": ("price", "liquidations"),
    "20-flush-vs-exodus": ("price", "oi", "funding", "liquidations"),
    "21-second-leg": ("price", "oi", "funding"),
    "22-crowding-early-warning": ("price", "funding", "positioning", "liquidations"),
    "23-funding-settlement-hours": ("price",),
    "24-liquidation-waves": ("price", "liquidations"),
    "25-liquidation-heatmap": ("price", "oi"),
}


@dataclass
class Inputs:
    """What an analysis reads: the hourly and daily panels, coverage, and the truth of a simulated market.

    Attributes
    ----------
    panel : polars.DataFrame
        ``queries/hourly_panel.sql`` for the symbol and span.
    daily : polars.DataFrame
        ``queries/daily_panel.sql`` (empty when not asked for).
    data_dir : str
        The lake read (a temporary directory for the empty-lake fallback, see the module docstring).
    synthetic : bool
        True when any row comes from the simulated market.
    truth : polars.DataFrame or None
        The planted episodes of a simulated market (:func:`research.simulate.read_truth`).
    coverage : dict
        :func:`coverage` of the panel.
    lake_coverage : polars.DataFrame or None
        :func:`research.coverage.coverage` of the lake (read while the lake exists).
    interval : str
        The panel's bar length (``"1h"``, ``"4h"``, ``"8h"``, ``"1d"``, ...).
    price : str or None
        The price series asked for (None: the fallback perp, else spot, else index).
    requested_start, requested_end : str or None
        The span asked for (``end`` exclusive); None: the whole lake.
    """

    panel: pl.DataFrame
    daily: pl.DataFrame
    data_dir: str
    synthetic: bool
    truth: pl.DataFrame | None = None
    coverage: dict = field(default_factory=dict)
    lake_coverage: pl.DataFrame | None = None
    interval: str = "1h"
    price: str | None = None
    requested_start: str | None = None
    requested_end: str | None = None
    _tmp: Any = field(default=None, repr=False, compare=False)

    @property
    def bar_hours(self) -> float:
        """Clock hours per panel bar."""
        return _bar_hours(self.panel)

    @property
    def price_market(self) -> str | None:
        """The price series behind ``close``/``ret`` (``perp``, ``spot`` or ``index``)."""
        got = self.coverage.get("price_market")
        return got if got is not None else self.price

    def input_coverage(self, required=("price",)) -> pl.DataFrame:
        """:func:`research.coverage.panel_coverage` of the panel for ``required`` over the requested span."""
        from research.coverage import panel_coverage

        return panel_coverage(self.panel, tuple(required), self.requested_start, self.requested_end)

    def record_coverage(self, notebook: str | None = None, required=None) -> dict:
        """The coverage a record states: what the analysis of ``notebook`` actually used.

        ``required`` defaults to :data:`REQUIRED_INPUTS` of ``notebook`` (else ``("price",)``).
        Keys of :attr:`coverage`, with ``start``/``end`` replaced by the span where every required
        input is usable (first/last usable bar; null when an input is never usable), plus
        ``requested`` (the span asked for), ``panel_span`` (the panel's rows), ``analysed`` (per
        input: series, first, last, usable_bars, covered) and ``uncovered`` (one line per required
        input that does not cover the requested span; empty when all do).
        """
        req = tuple(required) if required is not None else REQUIRED_INPUTS.get(notebook or "", ("price",))
        out = dict(self.coverage)
        if self.panel.height == 0:
            return out | {"analysed": {}, "uncovered": [], "required": list(req)}
        cov = self.input_coverage(req)
        analysed, uncovered = {}, []
        for r in cov.to_dicts():
            first, last = r["first"], r["last"]
            analysed[r["input"]] = {"series": r["series"], "first": _iso(first), "last": _iso(last),
                                    "usable_bars": r["usable_bars"], "covered": r["covered"]}
            if not r["covered"]:
                what = "no usable bar" if first is None else f"usable {_iso(first)} .. {_iso(last)}"
                uncovered.append(f"{r['input']} ({r['series'] or 'no series'}): {what}; requested "
                                 f"{_iso(r['requested_start'])} .. {_iso(r['requested_end'])}")
        firsts = [cov["first"][i] for i in range(cov.height)]
        lasts = [cov["last"][i] for i in range(cov.height)]
        none = any(f is None for f in firsts)
        out["panel_span"] = {"start": out.get("start"), "end": out.get("end")}
        out["start"] = None if none else _iso(max(firsts))
        out["end"] = None if none else _iso(min(lasts))
        if out["start"] is not None and out["end"] is not None and out["start"] > out["end"]:
            out["start"] = out["end"] = None  # the required inputs never overlap
        out["requested"] = {"start": self.requested_start, "end": self.requested_end}
        out["required"] = list(req)
        out["analysed"] = analysed
        out["uncovered"] = uncovered
        return out

    @property
    def simulated_fallback(self) -> bool:
        """True when the lake was empty and the simulated market was generated for this load."""
        return self._tmp is not None


def load(data_dir=None, *, symbol: str = "BTCUSDT", start: str | None = None, end: str | None = None,
         interval: str = "1h", price: str | None = None,
         oi_venue: str | None = None, liq_venue: str | None = None, sample_seed: int = 7,
         sample_days: int = 180, daily: bool = True, lake_coverage: bool = False) -> Inputs:
    """Load the panels for one symbol, span and frequency.

    Parameters
    ----------
    data_dir : path, optional
        The lake; None uses the default lake, or the simulated market when that holds no bars
        (see the module docstring).
    symbol, start, end : str
        Symbol and UTC span (``end`` exclusive); None means the whole lake.
    interval : str
        Bar length of the panel (``1h``, ``4h``, ``8h``, ``1d``; ``queries/panel.sql``).
    price : str, optional
        ``perp``, ``spot`` or ``index`` behind ``close``/``ret``; None falls back perp, else spot, else index.
    oi_venue, liq_venue : str, optional
        Venue of the OI / liquidation series (e.g. ``"all"``, ``"binance"``); None picks the best.
    sample_seed, sample_days : int
        Seed and length of the simulated market (used only when it is generated).
    daily : bool
        Also load the daily panel (ETF flows).
    lake_coverage : bool
        Also compute the lake's coverage table (:func:`research.coverage.coverage`).

    Returns
    -------
    Inputs

    Raises
    ------
    PanelError
        No bars for ``symbol`` in ``[start, end)`` in the lake (names the lake and says how to fill it),
        or a bad ``interval``/``price``.
    """
    from research import db, lake, paths, simulate

    tmp = None
    if data_dir is None:
        data_dir = paths.data_dir()
        if not lake.table_files("bars", data_dir):
            # nothing downloaded or imported: run on the simulated market, in a directory this
            # Inputs owns (removed with it or at exit)
            tmp = tempfile.TemporaryDirectory(prefix="treadmill-sim-")
            data_dir = tmp.name
            simulate.write_sample(data_dir, seed=sample_seed, days=sample_days)
    interval = _check_interval(interval)
    if price is not None and str(price).lower() not in PRICES:
        raise PanelError(f"price={price!r}: use one of {', '.join(PRICES)} or None (perp, else spot, else index)")
    kw: dict[str, Any] = {"symbol": symbol, "oi_venue": oi_venue, "liq_venue": liq_venue}
    if price is not None:
        kw["price"] = str(price).lower()
    if start:
        kw["start"] = str(start)
    if end:
        kw["end"] = str(end)
    # the table versions this load reads, so a record names them and a run can be reproduced (read
    # just before the views are built; a commit in between would show as a newer version)
    from research import lake

    versions = {t: v for t, v in lake.versions(data_dir).items() if v}
    # each panel opens its own connection with views over just the files it reads
    panel = db.query("panel", data_dir, interval=interval, **kw)
    daily_df = db.query("daily_panel", data_dir, **kw) if daily else pl.DataFrame()
    if panel.height == 0:
        raise PanelError(
            f"no {interval} bars for {symbol} between {start} and {end} in {data_dir}: import data "
            "(`research import ...` or `research fetch ...`), write the simulated market (`research sample`), "
            "or pass data_dir=None with an empty lake to use the simulated market")
    synthetic = db.is_synthetic(panel)
    truth = None
    if synthetic:
        try:
            truth = simulate.read_truth(data_dir)
        except FileNotFoundError:
            truth = None
    lake_cov = None
    if lake_coverage:
        from research.coverage import coverage as _lake_cov

        lake_cov = _lake_cov(data_dir)
    return Inputs(panel=panel, daily=daily_df, data_dir=str(data_dir), synthetic=synthetic, truth=truth,
                  coverage=coverage(panel) | {"lake_versions": versions}, lake_coverage=lake_cov, interval=interval,
                  price=kw.get("price"), requested_start=str(start) if start else None,
                  requested_end=str(end) if end else None, _tmp=tmp)


#: price series the loader accepts (``queries/panel.sql``'s ``price``)
PRICES = ("perp", "spot", "index")


def _check_interval(interval) -> str:
    from research.schema import INTERVALS

    iv = str(interval or "1h")
    if iv not in INTERVALS or INTERVALS[iv] < 60:
        raise PanelError(f"interval={interval!r}: use a bar length such as 1h, 4h, 8h or 1d "
                         f"(known: {', '.join(k for k, v in INTERVALS.items() if v >= 60)})")
    return iv


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _bar_hours(panel: pl.DataFrame) -> float:
    if "bar_hours" in panel.columns and panel["bar_hours"].drop_nulls().len():
        return float(panel["bar_hours"].drop_nulls().max())
    if panel.height >= 2:
        return float(panel["ts"].sort().diff().drop_nulls().median().total_seconds() / 3600)
    return 1.0


def from_parameters(params: dict, **kwargs) -> Inputs:
    """:func:`load` with the :data:`LOADER_PARAMETERS` found in a notebook's parameters ``params``."""
    kw = {k: params[k] for k in LOADER_PARAMETERS if k in params}
    return load(kw.pop("data_dir", None), **kw, **kwargs)


def coverage(panel: pl.DataFrame) -> dict:
    """JSON-ready summary of what the panel holds (the record's ``coverage``).

    Keys: ``symbol, start, end`` (the panel's first and last bar), ``interval``, ``bar_hours``,
    ``bars``, ``hours`` (clock hours: bars x bar_hours), ``price_market`` (the series behind
    ``close``), ``oi_interval_hours``, ``liq_interval_hours``, ``share_with_<series>`` (perp, spot, funding, oi,
    liquidations, positioning), ``funding_settlements``, ``liquidation_buckets``, ``inputs`` (the
    series chosen), ``synthetic``, and ``has_<series>`` (hours with that series).
    """
    from research.db import is_synthetic

    if panel.height == 0:
        return {"rows": 0}

    def frac(col):
        return float(panel[col].fill_null(False).mean()) if col in panel.columns else None

    def nonnull(col):
        return int(panel[col].is_not_null().sum()) if col in panel.columns else 0

    def first(col):
        if col not in panel.columns:
            return None
        s = panel[col].drop_nulls()
        return s[0] if s.len() else None

    bh = _bar_hours(panel)
    return {
        "symbol": str(panel["symbol"][0]) if "symbol" in panel.columns else None,
        "start": panel["ts"].min().isoformat(),
        "end": panel["ts"].max().isoformat(),
        "interval": first("interval"),
        "bar_hours": bh,
        "bars": panel.height,
        "hours": panel.height * bh,
        "price_market": first("price_market"),
        "oi_interval_hours": first("oi_interval_hours"),
        "liq_interval_hours": first("liq_interval_hours"),
        **{f"share_with_{name}": frac(col) for name, col in (
            ("perp", "has_perp"), ("spot", "has_spot"), ("funding", "has_funding"), ("oi", "has_oi"),
            ("liquidations", "has_liq"), ("positioning", "has_positioning"))},
        "funding_settlements": nonnull("funding_settled"),
        "liquidation_buckets": nonnull("liq_long_usd"),
        "inputs": str(panel["inputs"][0]) if "inputs" in panel.columns else "",
        "synthetic": is_synthetic(panel),
        **{c: int(panel[c].sum()) for c in panel.columns if c.startswith("has_")},
    }


def panel_gaps(panel: pl.DataFrame, col: str = "has_perp") -> pl.DataFrame:
    """Runs of consecutive panel bars where ``col`` is false: ``start, end, hours`` (clock hours)."""
    bh = _bar_hours(panel)
    return (panel.select("ts", (~pl.col(col).fill_null(False)).alias("gap"))
            .with_columns((pl.col("gap") != pl.col("gap").shift(1)).fill_null(True).cum_sum().alias("run"))
            .filter(pl.col("gap"))
            .group_by("run").agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"),
                                 (pl.len() * bh).cast(pl.Int64).alias("hours"))
            .sort("start").drop("run"))


# --------------------------------------------------------------------------------------------------
# the OI measure: research.oi's, the one every detector, hypothesis, profile and plot uses
# --------------------------------------------------------------------------------------------------
def oi_series(panel: pl.DataFrame, max_age_hours: float | None = None):
    """:func:`research.oi.oi_coins` of ``panel``; None without OI columns.

    Rows the panel marks ``has_oi`` false (no OI, or older than the panel's ``stale_after`` of the
    OI series' own interval) are missing; ``max_age_hours`` optionally tightens that.
    """
    from research.errors import EventDetectionError
    from research.oi import oi_coins as _oi_coins

    if "oi_base" not in panel.columns and "oi_usd" not in panel.columns:
        return None
    # NaN (not null) OI from numpy-built panels means "not observed", as null does in the lake's panels
    fresh = pl.col("has_oi").fill_null(False) if "has_oi" in panel.columns else pl.lit(True)
    fix = [pl.when(fresh).then(pl.col(c).cast(pl.Float64).fill_nan(None)).alias(c)
           for c in ("oi_base", "oi_usd") if c in panel.columns]
    try:
        return _oi_coins(panel.with_columns(fix), max_age_hours=max_age_hours)
    except EventDetectionError as exc:
        raise PanelError(str(exc)) from None


def oi_measure(panel: pl.DataFrame, max_age_hours: float | None = None) -> tuple[np.ndarray, dict]:
    """``(oi, record)``: OI in coins per row (NaN where missing) and the measure used, for the record.

    The record is :meth:`research.oi.OISeries.to_dict` (``oi_measure, oi_method, oi_approximate,
    oi_price_col``), ``oi_method = "none"`` without OI columns.
    """
    s = oi_series(panel, max_age_hours)
    if s is None:
        return np.full(panel.height, np.nan), {"oi_measure": "coins", "oi_method": "none", "oi_approximate": False,
                                                "oi_price_col": None}
    return s.frame["oi_coins"].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(float), s.to_dict()


def oi_coins(panel: pl.DataFrame, max_age_hours: float | None = None) -> pl.Series:
    """OI in coins (:func:`research.oi.oi_coins`) as a polars Series in the panel's row order.

    Usable inside ``panel.select(...)`` like a column; all-null without OI columns.
    """
    s = oi_series(panel, max_age_hours)
    if s is None:
        return pl.Series("oi_coins", [None] * panel.height, dtype=pl.Float64)
    return s.frame["oi_coins"].cast(pl.Float64)


def oi_units(panel: pl.DataFrame, max_age_hours: float | None = None) -> np.ndarray:
    """:func:`oi_measure`'s array: OI in coins as float numpy (NaN where missing)."""
    return oi_measure(panel, max_age_hours)[0]
