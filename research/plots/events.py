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
    bar: str | None = None,
    band_label: str = "95% CI",
    y_title: str = "CAAR (cumulative log return)",
) -> alt.LayerChart:
    """CAAR line over event time with its labelled confidence band and a zero line.

    Parameters
    ----------
    frame : polars.DataFrame
        Tidy per-bar table holding ``x``, ``y``, ``lo`` and ``hi`` (e.g.
        ``EventStudyResult.to_frame()``); nothing is computed here.
    x, y, lo, hi : str
        Column names of event time, CAAR and the band.
    title : str, optional
        Chart title.
    bar : str, optional
        Bar length of event time (``"1h"``, ``"4h"``), stated in the x-axis title.
    band_label : str
        What the band is, shown in the legend (the interval the frame's ``lo``/``hi`` hold).
    y_title : str
        The y-axis title; the axis is labelled in % (log returns x 100).

    Returns
    -------
    altair.LayerChart
    """
    missing = [c for c in (x, y, lo, hi) if c not in frame.columns]
    if missing:
        raise ValueError(f"plot_caar: frame lacks column(s) {missing}; it has {frame.columns}")
    src = data(frame.select(x, y, lo, hi))
    x_title = f"event time ({bar} bars from the event)" if bar else "event time (bars from the event)"
    base = alt.Chart(src).encode(x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(nice=False)))
    # one legend names the line and the band (a constant series name, not a statistic)
    series = alt.Color("series:N", title=None, scale=alt.Scale(domain=["CAAR", band_label], range=["#1f77b4", "#9ecae1"]))
    band = base.transform_calculate(series=f"{band_label!r}").mark_area(opacity=0.5).encode(
        y=alt.Y(f"{lo}:Q", title=f"{y_title}, %", axis=alt.Axis(format="%")), y2=f"{hi}:Q", color=series)
    line = base.transform_calculate(series="'CAAR'").mark_line(point=True).encode(
        y=f"{y}:Q", color=series, tooltip=[f"{x}:Q", alt.Tooltip(f"{y}:Q", format=".3%"),
                                           alt.Tooltip(f"{lo}:Q", format=".3%"), alt.Tooltip(f"{hi}:Q", format=".3%")])
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
#: an event kind with more markers than this is drawn as a tick strip under the panel, not as rules on every row
MAX_MARKERS = 20


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
    counts = events["kind"].value_counts() if kinds else None
    dense = sorted(counts.filter(pl.col("count") > MAX_MARKERS)["kind"].to_list()) if kinds else []
    sparse = [k for k in kinds if k not in dense]
    ev = data(events.filter(pl.col("kind").is_in(sparse)).select("ts", "kind")) if sparse else None
    color = alt.Color("kind:N", title="event",
                      scale=alt.Scale(domain=kinds, range=[_kind_colors().get(k, "#333") for k in kinds])) if kinds else None
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
            layers.append(alt.Chart(ev).mark_rule(opacity=0.6).encode(x="ts:T", color=color, tooltip=["ts:T", "kind:N"]))
        charts.append(alt.layer(*layers).properties(width=width, height=row_height))
    if dense:  # many markers would hide the series: one tick per event in a strip of its own
        strip = data(events.filter(pl.col("kind").is_in(dense)).select("ts", "kind"))
        charts.append(alt.Chart(strip).mark_tick(thickness=1, opacity=0.7).encode(
            x=alt.X("ts:T", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("kind:N", title=None), color=color, tooltip=["ts:T", "kind:N"]).properties(
            width=width, height=18 * len(dense)))
    chart = alt.vconcat(*charts, data=src, spacing=4).resolve_scale(x="shared")
    t = title or "Market panel"
    if synthetic:
        t = f"{t} - {SYNTHETIC_NOTE}"
    if dense:
        n = ", ".join(f"{int(counts.filter(pl.col('kind') == k)['count'][0])} {k}" for k in dense)
        return chart.properties(title=alt.TitleParams(text=t, subtitle=[f"{n}: one tick each in the bottom strip "
                                                                     f"(more than {MAX_MARKERS} markers)"]))
    return chart.properties(title=t)


#: column -> (panel title, y-axis unit)
_PROFILE_LABELS = {
    "cum_ret_pct": ("cumulative perp return", "%"),
    "cum_oi_pct": ("cumulative OI change", "%"),
    "funding_8h_bp": ("funding per 8 h", "bp"),
    "liq_long_musd": ("long liquidations (trailing)", "$M"),
    "liq_short_musd": ("short liquidations (trailing)", "$M"),
}


def plot_event_profiles(
    profiles: pl.DataFrame,
    *,
    columns: list[str] | None = None,
    title: str | None = None,
    synthetic: bool = False,
    width: int = 320,
    height: int = 150,
    bar: str | None = None,
) -> alt.VConcatChart:
    """Event-time profiles: mean with its band per column, one small panel each, event at 0.

    Parameters
    ----------
    profiles : polars.DataFrame
        Tidy ``event_time, column, mean, lo, hi`` (+ ``n``), e.g. :func:`research.eventstudy.profile`
        or :func:`research.hypotheses.carstudy.event_profiles`; nothing is computed here.
    columns : list of str, optional
        Which ``column`` values to draw, in order (default: all, in order of appearance).
    bar : str, optional
        Bar length of event time, stated in the x-axis title.

    Returns
    -------
    altair.VConcatChart
        Two panels a row; an odd last panel spans the row, so no grid cell is left empty.
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
        name, unit = _PROFILE_LABELS.get(c, (c, ""))
        x_title = f"event time ({bar} bars from the event)" if bar else "event time (bars from the event)"
        base = alt.Chart(src).encode(x=alt.X("event_time:Q", title=x_title, scale=alt.Scale(nice=False)))
        band = base.mark_area(opacity=0.25).encode(y=alt.Y("lo:Q", title=unit or "value"), y2="hi:Q")
        line = base.mark_line().encode(y="mean:Q", tooltip=["event_time:Q", "mean:Q", "lo:Q", "hi:Q"]
                                       + (["n:Q"] if "n" in sub.columns else []))
        zero_x = alt.Chart(src).mark_rule(color="#666", strokeDash=[4, 4]).encode(x=alt.datum(0))
        panels.append((alt.layer(band, line, zero_x), name))
    if not panels:
        raise ValueError("plot_event_profiles: no rows to draw (no events?)")
    rows = []
    for i in range(0, len(panels), 2):
        pair = panels[i:i + 2]
        w = width if len(pair) == 2 or len(panels) == 1 else 2 * width + 20
        rows.append(alt.hconcat(*[p.properties(width=w, height=height, title=t) for p, t in pair], spacing=20))
    chart = alt.vconcat(*rows, spacing=12)
    t = title or "Event-time profiles (mean and 95% band)"
    if synthetic:
        t = f"{t} - {SYNTHETIC_NOTE}"
    return chart.properties(title=t)


