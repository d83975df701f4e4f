"""Figures a researcher can read: units and bar lengths on the axes, labelled bands, no empty panel,
dense markers thinned, and a static PNG beside the Vega-Lite spec when a chart is displayed."""
from __future__ import annotations

import base64
import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from research import plots

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _walk(spec):
    """Every dict inside a Vega-Lite spec."""
    if isinstance(spec, dict):
        yield spec
        for v in spec.values():
            yield from _walk(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from _walk(v)


def _axis_titles(spec) -> list[str]:
    return [d["title"] for d in _walk(spec) if isinstance(d.get("title"), str) and "field" in d and "type" in d]


def _caar_frame():
    et = np.arange(-3, 5)
    return pl.DataFrame({"event_time": et, "caar": et * 0.001, "lo": et * 0.001 - 0.01, "hi": et * 0.001 + 0.01})


def test_caar_axes_state_units_bar_length_and_the_band():
    spec = plots.plot_caar(_caar_frame(), bar="1h").to_dict()
    titles = _axis_titles(spec)
    assert "event time (1h bars from the event)" in titles
    assert any("%" in t and "CAAR" in t for t in titles), titles
    domains = [d["domain"] for d in _walk(spec) if "domain" in d]
    assert ["CAAR", "95% CI"] in domains, "the band is named in the legend"
    assert any(d.get("format") == "%" for d in _walk(spec)), "y axis labelled in %"


def test_profiles_leave_no_empty_panel_and_do_not_repeat_titles():
    et = np.arange(-2, 3)
    cols = ["cum_ret_pct", "cum_oi_pct", "funding_8h_bp", "liq_long_musd", "liq_short_musd"]
    prof = pl.concat([pl.DataFrame({"event_time": et, "column": [c] * et.size, "mean": et * 1.0, "lo": et - 1.0,
                                    "hi": et + 1.0}) for c in cols])
    spec = plots.plot_event_profiles(prof, bar="1h").to_dict()
    rows = spec["vconcat"]
    assert [len(r["hconcat"]) for r in rows] == [2, 2, 1]
    assert rows[-1]["hconcat"][0]["width"] > rows[0]["hconcat"][0]["width"], "the odd last panel spans its row"
    for row in rows:
        for panel in row["hconcat"]:
            y_titles = [d["title"] for d in _walk(panel["layer"]) if d.get("field") == "lo" and "title" in d]
            assert y_titles and y_titles[0] != panel["title"], "the axis gives the unit, not the panel title again"
    assert "event time (1h bars from the event)" in _axis_titles(spec)


def test_dense_markers_become_a_tick_strip():
    n = 300
    ts = pl.datetime_range(T0, T0 + dt.timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC")
    market = pl.DataFrame({"ts": ts, "price": np.linspace(90e3, 80e3, n)})
    events = pl.DataFrame({"ts": ts[::10], "kind": ["liquidation_print"] * len(ts[::10])})  # 30 > MAX_MARKERS
    events = pl.concat([events, pl.DataFrame({"ts": [ts[5]], "kind": ["selloff"]})])
    spec = plots.plot_market_panel(market, events).to_dict()
    rules = [d for d in _walk(spec) if d.get("mark") == {"type": "rule", "opacity": 0.6}]
    ticks = [d for d in _walk(spec) if isinstance(d.get("mark"), dict) and d["mark"].get("type") == "tick"]
    assert len(spec["vconcat"]) == 2 and ticks, "a strip of ticks under the series"
    assert rules, "the sparse kind keeps its rules"
    assert "30 liquidation_print" in json.dumps(spec["title"])


def test_acf_states_the_bucket_length():
    acf = pl.DataFrame({"lag": [0, 1, 2], "acf_usd": [1.0, 0.3, 0.1], "acf_print": [1.0, 0.2, 0.05], "band": [0.1] * 3})
    assert "lag (4h buckets)" in _axis_titles(plots.plot_acf(acf, bucket="4h").to_dict())


def test_displayed_chart_carries_a_static_png(monkeypatch):
    chart = plots.plot_caar(_caar_frame(), bar="1h")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.vegalite.v5+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setenv(plots.base.STATIC_FALLBACK_ENV, "0")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "image/png" not in bundle


@pytest.mark.slow
def test_executed_notebook_holds_an_image(tmp_path):
    """papermill runs a notebook that displays a chart: its saved outputs show in any viewer."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np, polars as pl\nfrom research import plots\n"
        "et = np.arange(-3, 5)\n"
        "plots.plot_caar(pl.DataFrame({'event_time': et, 'caar': et * 1e-3, 'lo': et * 1e-3 - .01, 'hi': et * 1e-3 + .01}), bar='1h')")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    mimes = {m for c in out.cells for o in c.get("outputs", []) for m in o.get("data", {})}
    assert "application/vnd.vegalite.v5+json" in mimes and "image/png" in mimes, mimes
