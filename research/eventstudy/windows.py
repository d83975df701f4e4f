"""Bar grids, event anchoring, window extraction and thinning.

Everything here works in *bars*: returns live on a regular grid per asset (24/7 markets have no
trading calendar), the bar size is detected from the data, and a missing bar is a NaN, never a
reason to shift later bars (estimation-window contamination lives in :mod:`.contamination`). Windows are gathered as ``(n_events, window_len)`` float64 matrices by
index arithmetic, without a Python loop over events or bars.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from research.errors import EventStudyError

from .gather import gather, gather_window, offsets  # noqa: F401 (re-exported: callers use W.gather_window)

ANCHORS = ("containing", "next")
BAR_LABELS = ("open", "close")
OVERLAP_POLICIES = ("flag", "drop", "shorten", "keep")

#: Reasons an event can leave the study (``dropped`` frames use these strings).
DROP_REASONS = (
    "unknown_asset",
    "missing_ts",
    "outside_data",
    "no_return_at_event",
    "thinned",
    "overlap",
    "insufficient_estimation",
    "event_window_overlap",
    "missing_window_bars",
)

#: Reasons :func:`anchor_events` gives, by code (0 = kept).
_ANCHOR_REASONS = np.array(["", "unknown_asset", "missing_ts", "outside_data", "no_return_at_event"])

_MAX_CELLS = 400_000_000  # dense panel guard (3.2 GB of float64)


@dataclass
class Panel:
    """Values of one or more columns on a common regular bar grid.

    Attributes
    ----------
    assets : list of str
        Asset names; row ``i`` of every matrix belongs to ``assets[i]``.
    origin : int
        Physical value (integer units of ``ts_dtype``) of bar 0.
    bar : int
        Bar size in the same integer units.
    ts_dtype : polars.DataType
        Dtype of the ``ts`` column the grid was built from.
    values : dict of str to numpy.ndarray
        ``(n_assets, n_bars)`` float64 matrices, NaN where a bar is missing.
    first, last : numpy.ndarray
        First and last bar index with data, per asset.
    """

    assets: list[str]
    origin: int
    bar: int
    ts_dtype: pl.DataType
    values: dict[str, np.ndarray]
    first: np.ndarray
    last: np.ndarray
    asset_index: dict[str, int] = field(default_factory=dict)

    @property
    def n_bars(self) -> int:
        """Number of bars on the grid."""
        return next(iter(self.values.values())).shape[1]

    def bar_ts(self, idx: np.ndarray) -> pl.Series:
        """Timestamps (as ``ts_dtype``) of bar indices ``idx``."""
        phys = pl.Series("ts", self.origin + np.asarray(idx, dtype=np.int64) * self.bar)
        return phys.cast(self.ts_dtype)

    def bar_size_str(self) -> str:
        """Human-readable bar size, e.g. ``"1h"`` or ``"1d"`` (or units of the raw dtype)."""
        dt = self.ts_dtype
        if isinstance(dt, pl.Date):
            return f"{self.bar}d"
        if isinstance(dt, pl.Datetime):
            per_s = {"ns": 10**9, "us": 10**6, "ms": 10**3}[dt.time_unit]
            secs = self.bar / per_s
            for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
                if secs % size == 0:
                    return f"{int(secs // size)}{unit}"
            return f"{secs:g}s"
        return f"{self.bar} units"


def _require(frame: pl.DataFrame, cols: list[str], what: str) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise EventStudyError(f"{what} must be a polars DataFrame, got {type(frame).__name__}")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise EventStudyError(
            f"{what} lacks column(s) {missing}; it has {frame.columns}. Rename the columns to "
            f"{cols} before calling."
        )


def _physical(s: pl.Series, what: str) -> np.ndarray:
    if not (s.dtype.is_temporal() or s.dtype.is_integer()):
        raise EventStudyError(f"{what}.ts must be Datetime, Date or integer, got {s.dtype}")
    if s.null_count():
        raise EventStudyError(f"{what}.ts has {s.null_count()} null value(s); drop them first")
    return _int64(s)


def _int64(s: pl.Series) -> np.ndarray:
    """Physical values of a null-free Datetime, Date or integer series as int64 (UTC instants).

    ``to_numpy`` of a temporal series is a zero-copy datetime64 view; reading it as int64 skips
    polars' lazy ``to_physical`` round trip, which costs more than a small study's arithmetic.
    """
    a = s.to_numpy()
    return a.view(np.int64) if a.dtype.kind in "mM" else a.astype(np.int64, copy=False)


def build_panel(frame: pl.DataFrame, value_cols: list[str], *, what: str = "returns") -> Panel:
    """Put ``frame`` (ts, asset, <value_cols>) on a dense regular bar grid.

    Parameters
    ----------
    frame : polars.DataFrame
        Long frame with ``ts``, ``asset`` and the value columns.
    value_cols : list of str
        Numeric columns to place on the grid.
    what : str
        Name used in error messages.

    Returns
    -------
    Panel
        The grid; the bar size is the most common spacing between consecutive bars of an asset.

    Raises
    ------
    EventStudyError
        Missing columns, duplicate (asset, ts) rows, assets with different bar sizes, or
        timestamps off the common grid.
    """
    _require(frame, ["ts", "asset", *value_cols], what)
    if frame.height == 0:
        raise EventStudyError(f"{what} is empty")
    ts_dtype = frame.schema["ts"]
    f = frame.select("ts", pl.col("asset").cast(pl.String), *value_cols).sort("asset", "ts")
    if f["asset"].null_count():
        raise EventStudyError(f"{what}.asset has null values; every row needs an asset")
    ts = _physical(f["ts"], what)
    asset_s = f["asset"]
    change = (asset_s != asset_s.shift(1)).fill_null(True).to_numpy()
    a_idx = np.cumsum(change) - 1  # rows are sorted by asset, so codes follow the sorted names
    assets = asset_s.filter(pl.Series(change)).to_list()
    same = ~change[1:]
    d = np.diff(ts)
    if (same & (d == 0)).any():
        i = int(np.argmax(same & (d == 0)))
        raise EventStudyError(f"{what} has duplicate (asset, ts) rows, first asset {assets[a_idx[i]]!r} at "
                              f"{f['ts'][i]}; deduplicate first")
    d = d[same]
    if d.size == 0:
        raise EventStudyError(f"{what}: every asset has a single bar; the bar size cannot be detected")
    bar = int(np.median(d))  # the mode when most bars are present (cheap check before the full count)
    if (d == bar).sum() * 2 <= d.size:
        vals, counts = np.unique(d, return_counts=True)
        bar = int(vals[np.argmax(counts)])
    bad = d % bar != 0
    if bad.any():
        raise EventStudyError(
            f"{what}: spacing {int(d[bad][0])} is not a multiple of the detected bar size {bar} "
            "(assets must share one regular grid; resample first)"
        )
    origin = int(ts.min())
    off = (ts - origin) % bar
    if (off != 0).any():
        raise EventStudyError(
            f"{what}: timestamps are not on one common grid (asset {assets[a_idx[np.argmax(off != 0)]]!r} "
            f"is offset by {int(off[off != 0][0])} units); align the bars first"
        )
    pos = (ts - origin) // bar
    n_bars = int(pos.max()) + 1
    if len(assets) * n_bars > _MAX_CELLS:
        raise EventStudyError(f"{what}: {len(assets)} assets x {n_bars} bars is too large for a dense panel")
    values = {}
    for c in value_cols:
        m = np.full((len(assets), n_bars), np.nan)
        v = f[c].cast(pl.Float64, strict=False)
        if v.dtype != pl.Float64:
            raise EventStudyError(f"{what}.{c} is not numeric ({f.schema[c]})")
        m[a_idx, pos] = v.fill_null(np.nan).to_numpy()
        values[c] = m
    first = np.full(len(assets), n_bars, dtype=np.int64)
    last = np.full(len(assets), -1, dtype=np.int64)
    np.minimum.at(first, a_idx, pos)
    np.maximum.at(last, a_idx, pos)
    names = [str(a) for a in assets]
    return Panel(names, origin, bar, ts_dtype, values, first, last, {a: i for i, a in enumerate(names)})


def align_series(panel: Panel, frame: pl.DataFrame, col: str, *, what: str) -> np.ndarray:
    """Place a single series (ts, <col>) on ``panel``'s grid (NaN where it has no bar).

    Raises
    ------
    EventStudyError
        If the series is off the grid or has duplicate timestamps.
    """
    _require(frame, ["ts", col], what)
    try:
        ts = _physical(frame["ts"].cast(panel.ts_dtype), what)
    except pl.exceptions.PolarsError as exc:  # e.g. time-zone mismatch
        raise EventStudyError(f"{what}.ts ({frame.schema['ts']}) cannot be compared with returns.ts ({panel.ts_dtype})") from exc
    rel = ts - panel.origin
    if (rel % panel.bar != 0).any():
        raise EventStudyError(f"{what}: timestamps are not on the returns' bar grid (bar size {panel.bar_size_str()})")
    pos = rel // panel.bar
    ok = (pos >= 0) & (pos < panel.n_bars)
    if ok.any() and np.bincount(pos[ok]).max() > 1:
        raise EventStudyError(f"{what} has duplicate timestamps")
    out = np.full(panel.n_bars, np.nan)
    out[pos[ok]] = frame[col].cast(pl.Float64).fill_null(np.nan).to_numpy()[ok]
    return out


@dataclass
class Anchored:
    """Events mapped to bars.

    Attributes
    ----------
    events : polars.DataFrame
        Kept events: ``event_id`` (row in the input), ``ts``, ``asset``, ``event_bar_ts`` and the
        input's attribute columns.
    asset_idx, bar_idx : numpy.ndarray
        Row in the panel and anchored bar index per kept event.
    dropped : polars.DataFrame
        ``event_id, ts, asset, reason`` for every event that left the study.
    """

    events: pl.DataFrame
    asset_idx: np.ndarray
    bar_idx: np.ndarray
    dropped: pl.DataFrame

    def subset(self, keep: np.ndarray, reason: str) -> "Anchored":
        """Keep rows where ``keep`` is True; the others join ``dropped`` with ``reason``."""
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return self
        gone = self.events[np.flatnonzero(~keep)]
        return Anchored(
            self.events[np.flatnonzero(keep)],
            self.asset_idx[keep],
            self.bar_idx[keep],
            _concat_dropped(self.dropped, _dropped_frame(gone, [reason] * gone.height)),
        )


def _dropped_frame(gone: pl.DataFrame, reasons) -> pl.DataFrame:
    """``event_id, ts, asset, reason`` of dropped events (built column-wise: no lazy select)."""
    return pl.DataFrame([gone.get_column("event_id"), gone.get_column("ts"), gone.get_column("asset"),
                         pl.Series("reason", reasons, dtype=pl.String)])


def _concat_dropped(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    if b.height == 0:
        return a
    if a.height == 0:
        return b.cast(a.schema) if a.width else b
    return pl.concat([a, b.cast(a.schema)], how="vertical")


def anchor_events(
    panel: Panel,
    events: pl.DataFrame,
    *,
    anchor: str = "containing",
    bar_label: str = "open",
    value: str | None = None,
) -> Anchored:
    """Map event times to bars.

    Parameters
    ----------
    panel : Panel
        The grid (from :func:`build_panel`).
    events : polars.DataFrame
        ``ts``, ``asset`` and optional attribute columns.
    anchor : {"containing", "next"}
        Event bar = the bar containing the event time, or the bar after it.
    bar_label : {"open", "close"}
        Whether a bar's ``ts`` is its open time (bar covers ``[ts, ts + bar)``) or its close time
        (bar covers ``(ts - bar, ts]``).
    value : str, optional
        Panel column that must be non-NaN at the event bar (events without it are dropped as
        ``"no_return_at_event"``); None skips the check.

    Returns
    -------
    Anchored
        Kept events and the dropped ones with reasons (unknown asset, outside the asset's data,
        no value at the event bar) -- bad rows never raise.
    """
    if anchor not in ANCHORS:
        raise EventStudyError(f"anchor={anchor!r}; use one of {ANCHORS}")
    if bar_label not in BAR_LABELS:
        raise EventStudyError(f"bar_label={bar_label!r}; use one of {BAR_LABELS}")
    _require(events, ["ts", "asset"], "events")
    if "event_id" in events.columns:
        raise EventStudyError("events must not have an 'event_id' column (it is assigned from the row order)")
    n = events.height
    ts_in = events.get_column("ts")
    try:
        ts_cast = ts_in if ts_in.dtype == panel.ts_dtype else ts_in.cast(panel.ts_dtype)
    except pl.exceptions.PolarsError as exc:
        raise EventStudyError(f"events.ts ({events.schema['ts']}) cannot be compared with returns.ts ({panel.ts_dtype})") from exc
    if ts_cast.null_count():
        null_ts = ts_cast.is_null().to_numpy()
        phys = ts_cast.to_physical().cast(pl.Int64).fill_null(0).to_numpy()
    else:
        null_ts, phys = np.zeros(n, dtype=bool), _int64(ts_cast)
    rel = phys - panel.origin
    if bar_label == "open":
        pos = np.floor_divide(rel, panel.bar)
    else:
        pos = -np.floor_divide(-rel, panel.bar)
    if anchor == "next":
        pos = pos + 1
    asset_s = events.get_column("asset")
    if asset_s.dtype != pl.String:
        asset_s = asset_s.cast(pl.String)
    get = panel.asset_index.get  # one dict look-up per event (None and unknown names give -1)
    a_idx = np.fromiter((get(a, -1) for a in asset_s.to_list()), dtype=np.int64, count=n)
    # reason codes index _ANCHOR_REASONS (0 = kept); the first reason that applies wins
    code = np.where(a_idx < 0, 1, np.where(null_ts, 2, 0)).astype(np.int8)
    ok = code == 0
    first = panel.first[np.clip(a_idx, 0, None)]
    last = panel.last[np.clip(a_idx, 0, None)]
    code[ok & ((pos < first) | (pos > last))] = 3
    ok = code == 0
    if value is not None:
        v = np.full(n, np.nan)
        v[ok] = panel.values[value][a_idx[ok], pos[ok]]
        code[ok & ~np.isfinite(v)] = 4
    keep = code == 0
    # eager column-wise construction: each lazy with_columns/select/filter costs more than the
    # arithmetic above on a few hundred events
    rest = [events.get_column(c) for c in events.columns if c not in ("ts", "asset", "event_bar_ts")]
    base = pl.DataFrame([pl.Series("event_id", np.arange(n, dtype=np.int64)), ts_in, asset_s.alias("asset"), *rest])
    if keep.all():
        kept, gone = base, base.clear()
    else:
        kept, gone = base[np.flatnonzero(keep)], base[np.flatnonzero(~keep)]
    kept.insert_column(3, panel.bar_ts(pos[keep]).alias("event_bar_ts"))
    return Anchored(kept, a_idx[keep], pos[keep], _dropped_frame(gone, _ANCHOR_REASONS[code[~keep]]))


def thin(anch: Anchored, min_spacing: int | None) -> Anchored:
    """Keep events at least ``min_spacing`` bars apart per asset (earliest first, greedy).

    Returns
    -------
    Anchored
        Thinned events; removed ones are reported with reason ``"thinned"``.
    """
    if not min_spacing:
        return anch
    if min_spacing < 0:
        raise EventStudyError(f"min_spacing={min_spacing} must be a positive number of bars")
    n = anch.bar_idx.size
    if n == 0:
        return anch
    span = int(anch.bar_idx.max() - anch.bar_idx.min()) + 2 * int(min_spacing) + 1
    key = anch.asset_idx * span + (anch.bar_idx - anch.bar_idx.min())
    order = np.argsort(key, kind="stable")
    sk = key[order]
    keep_sorted = np.zeros(n, dtype=bool)
    i = 0
    # one iteration per *kept* event: jump to the first event at least min_spacing later
    while i < n:
        keep_sorted[i] = True
        i = int(np.searchsorted(sk, sk[i] + min_spacing, side="left"))
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted
    return anch.subset(keep, "thinned")
