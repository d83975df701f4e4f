"""Altair chart builders and figure export.

Every ``plot_*`` function takes a tidy polars frame that already holds the numbers to draw and returns
an ``alt.Chart``; none computes statistics (that happens in ``eventstudy``/``hypotheses``). Charts use
one theme for write-ups (:data:`THEME`), and :func:`export` writes PNG (2x), SVG and PDF through
vl-convert, without a browser.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import polars as pl


def _import_altair():
    # altair imports jsonschema, whose format checker compiles an Earley grammar for the optional
    # "iri" formats when rfc3987_syntax is installed: ~3 s in every notebook kernel, for checks
    # Vega-Lite specs never use. Hide that optional module while jsonschema loads for the first time.
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import altair
        return altair
    sys.modules["rfc3987_syntax"] = None  # makes `import rfc3987_syntax` raise ImportError
    try:
        import altair
    finally:
        del sys.modules["rfc3987_syntax"]
    return altair


alt = _import_altair()

THEME = "treadmill"
SYNTHETIC_NOTE = "SYNTHETIC DATA (simulated market)"

# Frames reaching a chart are small (aggregated first); the row limit would only hide that mistake
# behind an exception at render time, so charts embed their rows and we cap sizes in the builders.
alt.data_transformers.disable_max_rows()

JUPYTERLAB_RENDERER = "treadmill"


def _jupyterlab_renderer(spec: dict, **metadata) -> dict:
    # altair 6's default renderer loads vega from a CDN (no good offline), and its "mimetype"
    # renderer emits application/vnd.vegalite.v6+json, which JupyterLab 4's bundled vega extension
    # (Vega-Lite 5) does not claim. Our specs use nothing beyond Vega-Lite 5, so hand them to it.
    return {"application/vnd.vegalite.v5+json": spec, "text/plain": "<altair chart>"}


alt.renderers.register(JUPYTERLAB_RENDERER, _jupyterlab_renderer)
alt.renderers.enable(JUPYTERLAB_RENDERER)


@alt.theme.register(THEME, enable=True)
def _theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "font": "DejaVu Sans",
            "view": {"continuousWidth": 640, "continuousHeight": 220, "stroke": None},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "grid": True, "gridColor": "#e6e6e6"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "orient": "bottom"},
            "title": {"fontSize": 14, "anchor": "start", "subtitleColor": "#666"},
            "range": {"category": ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]},
        }
    }


def _values(df: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (datetimes as ISO strings, which Vega-Lite parses)."""
    out = df.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(df.schema[c], pl.Datetime) else pl.col(c).cast(pl.String)
        for c in df.columns if isinstance(df.schema[c], (pl.Datetime, pl.Date))
    )
    return out.to_dicts()


def data(df: pl.DataFrame) -> alt.Data:
    """Inline Vega-Lite data from a polars frame."""
    return alt.Data(values=_values(df))


def export(chart: alt.TopLevelMixin, stem, formats=("png", "svg", "pdf"), scale: float = 2.0) -> list[Path]:
    """Write ``chart`` as ``stem.png`` (``scale``x), ``stem.svg`` and ``stem.pdf`` via vl-convert.

    Files are written to a temp name and renamed, so a failed export leaves no broken figure.
    """
    import vl_convert as vlc

    spec = chart.to_dict()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    unknown = [f for f in formats if f not in ("png", "svg", "pdf")]
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; use png, svg or pdf")
    # Render once in vl-convert's JavaScript engine (the slow part); PNG and PDF are then
    # rasterised/converted from that SVG in Rust, giving the same bytes as rendering each format.
    svg = vlc.vegalite_to_svg(spec)
    written = []
    for fmt in formats:
        if fmt == "png":
            blob = vlc.svg_to_png(svg, scale=scale)
        elif fmt == "svg":
            blob = svg.encode()
        else:
            blob = vlc.svg_to_pdf(svg)
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        written.append(path)
    return written


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


# --- market panel and event-time profiles (events notebooks) -------------------------------------
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


# --- hypotheses (research.hypotheses) -------------------------------------------------------------
def _fd(df: pl.DataFrame) -> pl.DataFrame:
    """A frame for ``alt.Chart`` with datetimes as ISO strings.

    Altair embeds a DataFrame as a dataset without validating every row, which is orders of
    magnitude faster than ``alt.Data(values=...)`` for the few thousand cells of a heatmap.
    """
    return df.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(df.schema[c], pl.Datetime) else pl.col(c).cast(pl.String)
        for c in df.columns if isinstance(df.schema[c], (pl.Datetime, pl.Date))
    )


def _titled(title: str, synthetic: bool, subtitle: str | None = None) -> alt.TitleParams:
    sub = [s for s in (subtitle, SYNTHETIC_NOTE if synthetic else None) if s]
    return alt.TitleParams(text=title, subtitle=sub or alt.Undefined)


def _need(frame: pl.DataFrame, cols, who: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{who}: frame lacks column(s) {missing}; it has {frame.columns}")


def plot_flush_vs_exodus(
    forward: pl.DataFrame,
    means: pl.DataFrame,
    *,
    title: str = "Forward returns after the trough: leverage flush vs spot exodus",
    synthetic: bool = False,
) -> alt.LayerChart:
    """Forward returns per event (dots) and class means with 95 % CIs, per horizon, by class.

    Parameters
    ----------
    forward : polars.DataFrame
        ``event_id, label, horizon_h, car`` (one row per event and horizon).
    means : polars.DataFrame
        ``horizon_h, label, mean, ci_low, ci_high`` (computed in :mod:`research.hypotheses`).
    """
    _need(forward, ["label", "horizon_h", "car"], "plot_flush_vs_exodus")
    _need(means, ["label", "horizon_h", "mean", "ci_low", "ci_high"], "plot_flush_vs_exodus")
    colors = alt.Scale(domain=["flush", "exodus"], range=["#d62728", "#1f77b4"])
    x = alt.X("horizon_h:O", title="hours after the trough (decision hour)")
    off = alt.XOffset("label:N", scale=alt.Scale(domain=["flush", "exodus"]))
    col = alt.Color("label:N", title="class", scale=colors)
    pts = alt.Chart(_fd(forward.select("event_id", "label", "horizon_h", "car"))).mark_circle(
        size=40, opacity=0.55).encode(x=x, xOffset=off, color=col,
                                      y=alt.Y("car:Q", title="cumulative log return"),
                                      tooltip=["event_id:Q", "label:N", "horizon_h:O", alt.Tooltip("car:Q", format=".4f")])
    m = _fd(means.select("label", "horizon_h", "mean", "ci_low", "ci_high"))
    err = alt.Chart(m).mark_rule(strokeWidth=2.5).encode(x=x, xOffset=off, color=col, y="ci_low:Q", y2="ci_high:Q")
    mid = alt.Chart(m).mark_point(shape="diamond", size=140, filled=True, opacity=1).encode(
        x=x, xOffset=off, color=col, y="mean:Q",
        tooltip=["label:N", "horizon_h:O", alt.Tooltip("mean:Q", format=".4f"),
                 alt.Tooltip("ci_low:Q", format=".4f"), alt.Tooltip("ci_high:Q", format=".4f")])
    zero = alt.Chart(m).mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0))
    return alt.layer(zero, pts, err, mid).properties(
        width=560, height=280, title=_titled(title, synthetic, "dots: sell-offs; diamonds: class mean with 95% bootstrap CI"))


def plot_conditional_rates(
    rates: pl.DataFrame,
    *,
    title: str,
    y_title: str = "share",
    baseline_group: str | None = None,
    synthetic: bool = False,
) -> alt.LayerChart:
    """Bar chart of proportions by group with their CIs (``group, n, rate, ci_low, ci_high``).

    ``baseline_group`` names the row drawn as a dashed reference line (e.g. the base rate).
    """
    _need(rates, ["group", "rate", "ci_low", "ci_high", "n"], "plot_conditional_rates")
    src = _fd(rates.select("group", "n", "rate", "ci_low", "ci_high"))
    order = rates["group"].to_list()
    x = alt.X("group:N", sort=order, title=None, axis=alt.Axis(labelAngle=-20, labelLimit=220))
    bars = alt.Chart(src).mark_bar(opacity=0.8).encode(
        x=x, y=alt.Y("rate:Q", title=y_title), tooltip=["group:N", "n:Q", alt.Tooltip("rate:Q", format=".3f"),
                                                        alt.Tooltip("ci_low:Q", format=".3f"),
                                                        alt.Tooltip("ci_high:Q", format=".3f")])
    err = alt.Chart(src).mark_rule(color="#333", strokeWidth=1.5).encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    txt = alt.Chart(src).mark_text(dy=-6, fontSize=10, color="#333", baseline="bottom").encode(
        x=x, y="ci_high:Q", text=alt.Text("n:Q", format="d"))
    layers = [bars, err, txt]
    if baseline_group is not None:
        base = rates.filter(pl.col("group") == baseline_group).select("rate")
        if base.height:
            layers.append(alt.Chart(_fd(base)).mark_rule(strokeDash=[5, 4], color="#d62728").encode(y="rate:Q"))
    return alt.layer(*layers).properties(width=520, height=240,
                                         title=_titled(title, synthetic, "bars: share with 95% CI; labels: n"))


def plot_hour_profile(profile: pl.DataFrame, *, title: str = "Hour-of-day profile (UTC) around funding settlements",
                      synthetic: bool = False) -> alt.VConcatChart:
    """Per metric, the mean by UTC hour with HAC 95 % CIs; settlement-window hours highlighted.

    ``profile``: ``metric, hour, mean, ci_low, ci_high, in_window`` (from :func:`research.hypotheses.settlement_hours`).
    """
    _need(profile, ["metric", "hour", "mean", "ci_low", "ci_high", "in_window"], "plot_hour_profile")
    labels = {"log_volume": "log perp volume", "abs_ret": "|log return|", "ret": "log return"}
    charts = []
    for m in dict.fromkeys(profile["metric"].to_list()):
        sub = profile.filter(pl.col("metric") == m).select("hour", "mean", "ci_low", "ci_high", "in_window")
        src = _fd(sub.with_columns(pl.when(pl.col("in_window")).then(pl.lit("settlement ±window"))
                                    .otherwise(pl.lit("other hours")).alias("hours")))
        col = alt.Color("hours:N", scale=alt.Scale(domain=["settlement ±window", "other hours"],
                                                   range=["#d62728", "#1f77b4"]), title=None)
        x = alt.X("hour:O", title="hour of day (UTC, bar open)")
        err = alt.Chart(src).mark_rule().encode(x=x, y=alt.Y("ci_low:Q", title=labels.get(m, m),
                                                              scale=alt.Scale(zero=False)), y2="ci_high:Q", color=col)
        pt = alt.Chart(src).mark_point(filled=True, size=50).encode(
            x=x, y="mean:Q", color=col, tooltip=["hour:O", alt.Tooltip("mean:Q", format=".5f")])
        charts.append(alt.layer(err, pt).properties(width=600, height=140))
    return alt.vconcat(*charts, spacing=6).properties(title=_titled(title, synthetic, "mean with HAC 95% CI"))


def plot_acf(acf: pl.DataFrame, *, title: str = "Autocorrelation of liquidations", synthetic: bool = False) -> alt.LayerChart:
    """ACF bars of log1p(liquidation USD) and of the print indicator with the ±1.96/sqrt(n) band.

    ``acf``: ``lag, acf_usd, acf_print, band`` (from :func:`research.hypotheses.liquidation_waves`).
    """
    _need(acf, ["lag", "acf_usd", "acf_print", "band"], "plot_acf")
    sub = acf.filter(pl.col("lag") > 0)
    long = pl.concat([
        sub.select("lag", pl.lit("log1p(USD)").alias("series"), pl.col("acf_usd").alias("acf")),
        sub.select("lag", pl.lit("print indicator").alias("series"), pl.col("acf_print").alias("acf")),
    ])
    src = _fd(long)
    bars = alt.Chart(src).mark_bar().encode(
        x=alt.X("lag:O", title="lag (buckets)"), xOffset="series:N", y=alt.Y("acf:Q", title="autocorrelation"),
        color=alt.Color("series:N", title=None), tooltip=["series:N", "lag:O", alt.Tooltip("acf:Q", format=".3f")])
    b = float(acf["band"][0]) if acf.height else 0.0
    band = _fd(pl.DataFrame({"y": [b, -b]}))
    rules = alt.Chart(band).mark_rule(strokeDash=[4, 4], color="#666").encode(y="y:Q")
    return alt.layer(bars, rules).properties(width=560, height=220,
                                             title=_titled(title, synthetic, "dashed: ±1.96/sqrt(n)"))


MAX_HEATMAP_CELLS = 20_000


def plot_liquidation_heatmap(
    heat: pl.DataFrame,
    price: pl.DataFrame,
    *,
    targets: pl.DataFrame | None = None,
    title: str = "Modelled liquidation levels under price",
    synthetic: bool = False,
) -> alt.LayerChart:
    """Heatmap of modelled liquidation USD (price bins x time blocks) with the price line on top.

    Parameters
    ----------
    heat : polars.DataFrame
        ``t0, t1, p0, p1, usd`` cells, already aggregated (at most :data:`MAX_HEATMAP_CELLS`),
        e.g. ``LiquidationHeatmap.frame()``.
    price : polars.DataFrame
        ``ts, close`` (thinned).
    targets : polars.DataFrame, optional
        ``ts, cluster_level, cluster_hit``: the test targets, drawn as points.
    """
    _need(heat, ["t0", "t1", "p0", "p1", "usd"], "plot_liquidation_heatmap")
    _need(price, ["ts", "close"], "plot_liquidation_heatmap")
    if heat.height > MAX_HEATMAP_CELLS:
        raise ValueError(f"plot_liquidation_heatmap: {heat.height} cells > {MAX_HEATMAP_CELLS}; aggregate first "
                         "(LiquidationHeatmap.frame(max_cells=...))")
    lo = float(min(price["close"].min(), heat["p0"].min())) if heat.height else float(price["close"].min())
    hi = float(max(price["close"].max(), heat["p1"].max())) if heat.height else float(price["close"].max())
    y_scale = alt.Scale(domain=[lo, hi], zero=False)
    rect = alt.Chart(_fd(heat)).mark_rect().encode(
        x=alt.X("t0:T", title=None, axis=alt.Axis(format="%Y-%m-%d", labelAngle=0)), x2="t1:T",
        y=alt.Y("p0:Q", title="price (USD)", scale=y_scale), y2="p1:Q",
        color=alt.Color("usd:Q", title=["modelled", "liquidations (USD)"], scale=alt.Scale(type="sqrt", scheme="inferno"),
                        legend=alt.Legend(orient="right", format="~s")))
    line = alt.Chart(_fd(price)).mark_line(color="#00e5ff", strokeWidth=1.2).encode(x="ts:T", y=alt.Y("close:Q", scale=y_scale))
    layers = [rect, line]
    if targets is not None and targets.height:
        t = targets.with_columns(pl.when(pl.col("cluster_hit")).then(pl.lit("reached")).otherwise(pl.lit("not reached"))
                                 .alias("target"))
        layers.append(alt.Chart(_fd(t.select("ts", "cluster_level", "target"))).mark_point(
            shape="triangle-right", filled=True, size=60).encode(
            x="ts:T", y=alt.Y("cluster_level:Q", scale=y_scale),
            color=alt.Color("target:N", scale=alt.Scale(domain=["reached", "not reached"], range=["#7CFC00", "#bbbbbb"]),
                            title="largest nearby cluster"),
            tooltip=["ts:T", alt.Tooltip("cluster_level:Q", format=",.0f"), "target:N"]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        width=720, height=340, title=_titled(title, synthetic, "cells: time blocks x price bins, aggregated before plotting"))
