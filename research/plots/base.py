"""The charts' common ground: altair (imported fast), the theme, the JupyterLab renderer (Vega-Lite plus a
static PNG), data and export."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import polars as pl


from research._imports import jsonschema_without_iri

jsonschema_without_iri()  # altair imports jsonschema: without its IRI grammar, ~1 s sooner
import altair as alt  # noqa: E402

THEME = "treadmill"
SYNTHETIC_NOTE = "SYNTHETIC DATA (simulated market)"

# Frames reaching a chart are small (aggregated first); the row limit would only hide that mistake
# behind an exception at render time, so charts embed their rows and we cap sizes in the builders.
alt.data_transformers.disable_max_rows()

JUPYTERLAB_RENDERER = "treadmill"


#: Set to "0" to leave the static PNG out of displayed charts (e.g. a kernel without vl-convert).
STATIC_FALLBACK_ENV = "TREADMILL_CHART_PNG"


#: SVGs rendered in this process, by spec: a notebook displays a figure (PNG from this SVG) and then
#: records it (the SVG), and vl-convert's JavaScript render is the slow step of both
_SVG_CACHE: dict[str, str] = {}
_SVG_CACHE_SIZE = 32


def _spec_key(spec: dict) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _svg(spec: dict, *, render: bool = True) -> str | None:
    """The SVG of ``spec`` from vl-convert, rendered at most once per process (None: not rendered
    yet and ``render`` is False)."""
    key = _spec_key(spec)
    svg = _SVG_CACHE.get(key)
    if svg is None and render:
        import vl_convert as vlc

        svg = vlc.vegalite_to_svg(spec)
        if len(_SVG_CACHE) >= _SVG_CACHE_SIZE:
            _SVG_CACHE.pop(next(iter(_SVG_CACHE)))
        _SVG_CACHE[key] = svg
    return svg


#: validated specs of charts built in this process, by object, with the chart's state they were made
#: from (the chart is kept alive with it, so its id cannot be reused while the entry exists)
_SPEC_CACHE: dict[int, tuple] = {}


def _leaves(obj, out: list) -> list:
    """The chart's state, flattened: its attribute names and the values they hold (by reference).

    A chart changed in place (``chart.title = ...``, ``chart.encoding.x.title = ...``) changes one
    of these; a few thousand references cost about a millisecond, the spec about 0.2 s.
    """
    if isinstance(obj, alt.SchemaBase):
        out.append(type(obj))
        for v in obj._args:
            _leaves(v, out)
        for k, v in obj._kwds.items():
            out.append(k)
            _leaves(v, out)
    elif isinstance(obj, (list, tuple)):
        out.append(len(obj))
        for v in obj:
            _leaves(v, out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.append(k)
            _leaves(v, out)
    else:  # a string, number, frame...: compared by identity, so a new value is a change
        out.append(obj)
    return out


_SCALARS = (str, int, float, bool)


def _same_state(a: list, b: list) -> bool:
    """Two states of :func:`_leaves` hold the same values: scalars equal, anything else the same object."""
    return len(a) == len(b) and all(x is y or (type(x) is type(y) and type(x) in _SCALARS and x == y) for x, y in zip(a, b))


def spec_of(chart) -> dict:
    """``chart.to_dict()`` (validated against the Vega-Lite schema), computed once per chart and state.

    A chart is displayed and then recorded, and validation is most of the cost of a spec: the spec
    is reused for as long as the chart is not changed in place.
    """
    state = _leaves(chart, [alt.theme.active])  # the spec carries the theme's config too
    hit = _SPEC_CACHE.get(id(chart))
    if hit is not None and hit[0] is chart and _same_state(hit[1], state):
        return hit[2]
    spec = chart.to_dict()
    _SPEC_CACHE.pop(id(chart), None)
    if len(_SPEC_CACHE) >= _SVG_CACHE_SIZE:
        _SPEC_CACHE.pop(next(iter(_SPEC_CACHE)))
    _SPEC_CACHE[id(chart)] = (chart, state, spec)
    return spec


def display_bundle(chart) -> dict | None:
    """The mime bundle our renderer gives ``chart``, from :func:`spec_of`; None when another altair
    renderer is enabled (then altair displays the chart itself)."""
    if alt.renderers.active != JUPYTERLAB_RENDERER:
        return None
    return _jupyterlab_renderer(spec_of(chart))


def _static_png(spec: dict) -> bytes | None:
    """The chart as PNG (vl-convert, no browser), or None when that is switched off or fails."""
    if os.environ.get(STATIC_FALLBACK_ENV, "1") == "0":
        return None
    try:
        import vl_convert as vlc

        return vlc.svg_to_png(_svg(spec), scale=1.0)
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


#: every format :func:`export` and :func:`render` write; ``json`` is the Vega-Lite spec (``stem.vl.json``)
FORMATS = ("png", "svg", "pdf", "json")
SPEC_SUFFIX = ".vl.json"
#: set (to ``1``) by the batch runner in its workers: records then store only the spec and the runner
#: renders the SVG in the long-lived worker process, so vl-convert's JavaScript engine starts once
#: per worker instead of once per notebook kernel
DEFER_ENV = "RESEARCH_DEFER_FIGURES"


def record_formats() -> tuple[str, ...]:
    """Formats a results record writes per figure: the spec, plus the SVG unless the runner renders it."""
    return ("json",) if os.environ.get(DEFER_ENV) == "1" else ("json", "svg")


def _path(stem: Path, fmt: str) -> Path:
    return stem.with_name(stem.name + SPEC_SUFFIX) if fmt == "json" else stem.with_suffix(f".{fmt}")


def _check_formats(formats) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; use {', '.join(FORMATS)}")


def _write(path: Path, blob: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return path


def _convert(spec: dict | None, svg: str | None, fmt: str, scale: float) -> tuple[bytes, str | None]:
    """``fmt`` bytes from the spec or an SVG already rendered from it (returned for reuse)."""
    import vl_convert as vlc

    if fmt == "json":
        return json.dumps(spec, separators=(",", ":")).encode(), svg
    if svg is None:
        # the JavaScript render is the slow part; PNG and PDF are rasterised/converted from this SVG
        # in Rust, giving the same bytes as rendering each format from the spec
        svg = _svg(spec)
    if fmt == "svg":
        return svg.encode(), svg
    return (vlc.svg_to_png(svg, scale=scale) if fmt == "png" else vlc.svg_to_pdf(svg)), svg


def export(chart: alt.TopLevelMixin, stem, formats=("png", "svg", "pdf"), scale: float = 2.0,
           cached_svg: bool = False) -> list[Path]:
    """Write ``chart`` as ``stem.png`` (``scale``x), ``stem.svg``, ``stem.pdf`` and/or ``stem.vl.json``.

    The chart is converted to a (validated) Vega-Lite spec once and rendered at most once in
    vl-convert's JavaScript engine, whatever the formats (and at most once per process: a figure
    displayed inline first is not rendered again). ``cached_svg`` also writes ``stem.svg`` when that
    render already happened in this process, at no cost. Files are written to a temp name and
    renamed, so a failed export leaves no broken figure.
    """
    _check_formats(formats)
    spec = spec_of(chart)
    if cached_svg and "svg" not in formats and _svg(spec, render=False) is not None:
        formats = (*formats, "svg")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    svg, written = None, []
    for fmt in formats:
        blob, svg = _convert(spec, svg, fmt, scale)
        written.append(_write(_path(stem, fmt), blob))
    return written


def render(stem, formats=("svg",), scale: float = 2.0) -> list[Path]:
    """Render ``formats`` of a figure exported earlier, on demand, writing only the missing files.

    ``stem`` is the figure's path without suffix (``figures/caar``); its ``stem.vl.json`` spec (or,
    for PNG/PDF, its SVG) must exist. Returns the paths of all ``formats``, in order.

    Raises
    ------
    FileNotFoundError
        Neither the spec nor an SVG to convert from exists.
    """
    _check_formats(formats)
    stem = Path(stem)
    svg_path, spec_path = _path(stem, "svg"), _path(stem, "json")
    svg = svg_path.read_text() if svg_path.exists() else None
    spec = None
    out = []
    for fmt in formats:
        path = _path(stem, fmt)
        if not path.exists():
            if spec is None and (fmt in ("json", "svg") or svg is None):
                if not spec_path.exists():
                    raise FileNotFoundError(f"{spec_path}: no Vega-Lite spec to render {path.name} from")
                spec = json.loads(spec_path.read_text())
            blob, svg = _convert(spec, svg, fmt, scale)
            _write(path, blob)
        out.append(path)
    return out


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


