"""Charts of the events notebooks: CAAR, the market panel with event markers, event-time profiles."""
from __future__ import annotations

import polars as pl

from .base import SYNTHETIC_NOTE, alt, data

def plot_caar(
    frame: pl.DataFrame,
    *,
    x: str = "event_time",
    y: str = "caar",
    lo: str = "lo",
    hi: str = "hi",
    title: str | None = None,
) -> alt.LayerChart:
    """CAAR line over event time with its confidence band and a zero line.

    Parameters
    ----------
    frame : polars.DataFrame
        Tidy per-bar table holding ``x``, ``y``, ``lo`` and ``hi`` (e.g.
        ``EventStudyResult.to_frame()``); nothing is computed here.
    x, y, lo, hi : str
        Column names of event time, CAAR and the band.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
    """
    missing = [c for c in (x, y, lo, hi) if c not in frame.columns]
    if missing:
        raise ValueError(f"plot_caar: frame lacks column(s) {missing}; it has {frame.columns}")
    src = data(frame.select(x, y, lo, hi))
    base = alt.Chart(src).encode(x=alt.X(f"{x}:Q", title="event time (bars)"))
    band = base.mark_area(opacity=0.25).encode(y=alt.Y(f"{lo}:Q", title="CAAR"), y2=f"{hi}:Q")
    line = base.mark_line(point=True).encode(y=f"{y}:Q", tooltip=[f"{x}:Q", f"{y}:Q", f"{lo}:Q", f"{hi}:Q"])
    zero = alt.Chart(src).mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0))
    chart = alt.layer(band, line, zero)
    return chart.properties(title=title) if title else chart


_PANEL_ROWS = (
    # column, title, mark
    ("price", "perp close (USD)", "line"),
    ("oi_bn", "open interest", "line"),
    ("funding_8h_bp", "funding per 8 h (bp)", "line"),
    ("liq_long_musd", "long liquidations ($M)", "bar"),
)
MAX_PANEL_ROWS = 5000


def _kind_colors() -> dict[str, str]:
    """Event kind -> colour, from the registry (the one place for them)."""
    from research.hypotheses.registry import kind_colors

    return kind_colors()


def plot_market_panel(
    frame: pl.DataFrame,
    events: pl.DataFrame | None = None,
    *,
    title: str | None = None,
    synthetic: bool = False,
    width: int = 720,
    row_height: int = 110,
) -> alt.VConcatChart:
    """Price, open interest, funding and long liquidations stacked on one time axis, events marked.

    Parameters
    ----------
    frame : polars.DataFrame
        Wide frame ``ts`` plus any of ``price, oi_bn, funding_8h_bp, liq_long_musd`` (and
        ``oi_unit``), e.g. :func:`research.hypotheses.frames.market_panel_frame`; at most
        :data:`MAX_PANEL_ROWS` rows (downsample first).
    events : polars.DataFrame, optional
        ``ts, kind``: drawn as vertical rules on every row, coloured by kind.
    title : str, optional
    synthetic : bool
        Adds the synthetic-data note to the title.

    Returns
    -------
    altair.VConcatChart
    """
    if "ts" not in frame.columns:
        raise ValueError(f"plot_market_panel: frame needs a 'ts' column; it has {frame.columns}")
    if frame.height > MAX_PANEL_ROWS:
        raise ValueError(f"plot_market_panel: {frame.height} rows > {MAX_PANEL_ROWS}; aggregate first "
                         "(research.hypotheses.frames.market_panel_frame downsamples)")
    rows = [r for r in _PANEL_ROWS if r[0] in frame.columns and frame[r[0]].is_not_null().any()]
    if not rows:
        raise ValueError("plot_market_panel: frame has none of " + ", ".join(r[0] for r in _PANEL_ROWS))
    unit = str(frame["oi_unit"][0]) if "oi_unit" in frame.columns and frame.height else ""
    src = data(frame.select("ts", *[r[0] for r in rows]))
    kinds = sorted(set(events["kind"].to_list())) if events is not None and events.height else []
    ev = data(events.select("ts", "kind")) if kinds else None
    x_dom = alt.X("ts:T", title=None, axis=alt.Axis(format="%Y-%m-%d", labelAngle=0))
    charts = []
    for i, (col, label, mark) in enumerate(rows):
        label = f"{label} ({unit})" if col == "oi_bn" and unit else label
        x = x_dom if i == len(rows) - 1 else alt.X("ts:T", title=None, axis=alt.Axis(labels=False, ticks=False))
        # the rows inherit the data from the top level, so the spec holds it once
        base = alt.Chart()
        if mark == "bar":
            c = base.mark_bar(color="#d62728").encode(x=x, y=alt.Y(f"{col}:Q", title=label))
        else:
            c = base.mark_line(strokeWidth=1).encode(
                x=x, y=alt.Y(f"{col}:Q", title=label, scale=alt.Scale(zero=False)))
        layers = [c]
        if col == "funding_8h_bp":
            layers.append(alt.Chart().mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(1.0)))
        if ev is not None:
            layers.append(alt.Chart(ev).mark_rule(opacity=0.6).encode(
                x="ts:T",
                color=alt.Color("kind:N", title="event",
                                scale=alt.Scale(domain=kinds, range=[_kind_colors().get(k, "#333") for k in kinds])),
                tooltip=["ts:T", "kind:N"]))
        charts.append(alt.layer(*layers).properties(width=width, height=row_height))
    chart = alt.vconcat(*charts, data=src, spacing=4).resolve_scale(x="shared")
    t = title or "Market panel"
    if synthetic:
        t = f"{t} - {SYNTHETIC_NOTE}"
    return chart.properties(title=t)


_PROFILE_LABELS = {
    "cum_ret_pct": "cumulative perp return (%)",
    "cum_oi_pct": "cumulative OI change (%)",
    "funding_8h_bp": "funding per 8 h (bp)",
    "liq_long_musd": "long liquidations ($M, trailing)",
    "liq_short_musd": "short liquidations ($M, trailing)",
}


def plot_event_profiles(
    profiles: pl.DataFrame,
    *,
    columns: list[str] | None = None,
    title: str | None = None,
    synthetic: bool = False,
    width: int = 320,
    height: int = 150,
) -> alt.ConcatChart:
    """Event-time profiles: mean with its band per column, one small panel each, event at 0.

    Parameters
    ----------
    profiles : polars.DataFrame
        Tidy ``event_time, column, mean, lo, hi`` (+ ``n``), e.g. :func:`research.eventstudy.profile`
        or :func:`research.hypotheses.carstudy.event_profiles`; nothing is computed here.
    columns : list of str, optional
        Which ``column`` values to draw, in order (default: all, in order of appearance).

    Returns
    -------
    altair.ConcatChart
    """
    need = ["event_time", "column", "mean", "lo", "hi"]
    missing = [c for c in need if c not in profiles.columns]
    if missing:
        raise ValueError(f"plot_event_profiles: frame lacks column(s) {missing}; it has {profiles.columns}")
    cols = columns or list(dict.fromkeys(profiles["column"].to_list()))
    panels = []
    for c in cols:
        sub = profiles.filter(pl.col("column") == c).select(need + (["n"] if "n" in profiles.columns else []))
        if sub.height == 0:
            continue
        src = data(sub)
        base = alt.Chart(src).encode(x=alt.X("event_time:Q", title="hours from event"))
        band = base.mark_area(opacity=0.25).encode(y=alt.Y("lo:Q", title=_PROFILE_LABELS.get(c, c)), y2="hi:Q")
        line = base.mark_line().encode(y="mean:Q", tooltip=["event_time:Q", "mean:Q", "lo:Q", "hi:Q"]
                                       + (["n:Q"] if "n" in sub.columns else []))
        zero_x = alt.Chart(src).mark_rule(color="#666", strokeDash=[4, 4]).encode(x=alt.datum(0))
        panels.append(alt.layer(band, line, zero_x).properties(width=width, height=height,
                                                                  title=_PROFILE_LABELS.get(c, c)))
    if not panels:
        raise ValueError("plot_event_profiles: no rows to draw (no events?)")
    chart = alt.concat(*panels, columns=2)
    t = title or "Event-time profiles (mean and 95% band)"
    if synthetic:
        t = f"{t} - {SYNTHETIC_NOTE}"
    return chart.properties(title=t)


