"""Altair chart builders and figure export.

Every ``plot_*`` function takes a tidy polars frame that already holds the numbers to draw and returns
an ``alt.Chart``; none computes statistics (that happens in ``eventstudy``/``hypotheses``). Charts use
one theme for write-ups (:data:`THEME`), and :func:`export` writes PNG (2x), SVG and PDF through
vl-convert, without a browser.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import altair as alt
import polars as pl

THEME = "treadmill"
SYNTHETIC_NOTE = "SYNTHETIC DATA (simulated market)"

# Frames reaching a chart are small (aggregated first); the row limit would only hide that mistake
# behind an exception at render time, so charts embed their rows and we cap sizes in the builders.
alt.data_transformers.disable_max_rows()


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
    written = []
    for fmt in formats:
        if fmt == "png":
            blob = vlc.vegalite_to_png(spec, scale=scale)
        elif fmt == "svg":
            blob = vlc.vegalite_to_svg(spec).encode()
        elif fmt == "pdf":
            blob = vlc.vegalite_to_pdf(spec)
        else:
            raise ValueError(f"unknown figure format {fmt!r}; use png, svg or pdf")
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
