"""The charts' common ground: altair (imported fast), the theme, the JupyterLab renderer (Vega-Lite plus a
static PNG), data and export."""
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


#: Set to "0" to leave the static PNG out of displayed charts (e.g. a kernel without vl-convert).
STATIC_FALLBACK_ENV = "TREADMILL_CHART_PNG"


def _static_png(spec: dict) -> bytes | None:
    """The chart as PNG (vl-convert, no browser), or None when that is switched off or fails."""
    if os.environ.get(STATIC_FALLBACK_ENV, "1") == "0":
        return None
    try:
        import vl_convert as vlc

        return vlc.svg_to_png(vlc.vegalite_to_svg(spec), scale=1.0)
    except Exception:  # a missing or failing converter must not break the display; the spec still renders
        return None


def _jupyterlab_renderer(spec: dict, **metadata) -> dict:
    # altair 6's default renderer loads vega from a CDN (no good offline), and its "mimetype"
    # renderer emits application/vnd.vegalite.v6+json, which JupyterLab 4's bundled vega extension
    # (Vega-Lite 5) does not claim. Our specs use nothing beyond Vega-Lite 5, so hand them to it.
    # A static PNG rides in the same bundle: JupyterLab picks the interactive Vega-Lite view, while
    # viewers without a Vega renderer (GitHub, nbviewer, VS Code, nbconvert) show the image.
    bundle = {"application/vnd.vegalite.v5+json": spec, "text/plain": "<altair chart>"}
    png = _static_png(spec)
    if png is not None:
        import base64

        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    return bundle


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


