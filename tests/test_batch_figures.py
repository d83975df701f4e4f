"""Figures on demand: records keep the spec (+ SVG), workers render deferred SVGs, PNG/PDF on request."""
from __future__ import annotations

import json

import polars as pl
import pytest

from research import plots
from research.batch import executors
from research.batch.execute import complete_figures
from research.records import RecordWriter


@pytest.fixture
def chart():
    df = pl.DataFrame({"x": [1, 2, 3, 4], "y": [1.0, 3.0, 2.0, 4.0]})
    return plots.alt.Chart(plots.data(df)).mark_line().encode(x="x:Q", y="y:Q")


def test_render_on_demand_gives_the_bytes_export_writes(chart, tmp_path):
    direct = plots.export(chart, tmp_path / "direct" / "f", formats=("png", "svg", "pdf"))
    kept = plots.export(chart, tmp_path / "kept" / "f", formats=("json",))
    assert [p.name for p in kept] == ["f.vl.json"] and json.loads(kept[0].read_text())["mark"]["type"] == "line"
    later = plots.render(tmp_path / "kept" / "f", ("png", "svg", "pdf"))
    for a, b in zip(direct, later):
        assert a.suffix == b.suffix, (a, b)
        if a.suffix == ".pdf":  # PDFs carry their creation time: same length, same start
            assert len(a.read_bytes()) == len(b.read_bytes()) and b.read_bytes().startswith(b"%PDF")
        else:
            assert a.read_bytes() == b.read_bytes(), a.suffix


def test_render_writes_only_missing_files_and_needs_a_spec(chart, tmp_path):
    svg, = plots.export(chart, tmp_path / "f", formats=("svg",))
    before = svg.stat().st_mtime_ns
    png, = plots.render(tmp_path / "f", ("png",))  # from the SVG alone: no spec needed
    assert png.stat().st_size > 500 and svg.stat().st_mtime_ns == before
    with pytest.raises(FileNotFoundError, match="no Vega-Lite spec"):
        plots.render(tmp_path / "g", ("svg",))
    with pytest.raises(ValueError, match="unknown figure format"):
        plots.export(chart, tmp_path / "h", formats=("gif",))


def test_records_keep_spec_and_svg_by_default(chart, tmp_path, monkeypatch):
    monkeypatch.delenv(plots.DEFER_ENV, raising=False)
    w = RecordWriter(tmp_path, notebook="nb", title="t")
    files = w.figure("fig", chart)
    assert sorted(f.name for f in files) == ["fig.svg", "fig.vl.json"]
    assert complete_figures(tmp_path) == 0  # nothing deferred (no record.json yet either)


def test_worker_renders_deferred_svg_and_updates_the_record(chart, tmp_path, monkeypatch):
    from research.plots import base

    monkeypatch.setenv(plots.DEFER_ENV, "1")
    monkeypatch.setattr(base, "_SVG_CACHE", {})    # not rendered in this process yet
    w = RecordWriter(tmp_path, notebook="nb", title="t")
    assert [f.name for f in w.figure("fig", chart)] == ["fig.vl.json"]
    w.save()
    assert complete_figures(tmp_path) == 1
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["figures"]["fig"] == ["figures/fig.vl.json", "figures/fig.svg"]
    assert (tmp_path / "figures" / "fig.svg").read_text().startswith("<svg")
    assert complete_figures(tmp_path) == 0  # idempotent


def test_a_figure_displayed_before_it_is_recorded_is_rendered_once(chart, tmp_path, monkeypatch):
    from research.plots import base

    monkeypatch.setenv(plots.DEFER_ENV, "1")
    monkeypatch.setattr(base, "_SVG_CACHE", {})
    calls = []
    real = base._svg

    def counting(spec, *, render=True):
        out = real(spec, render=False)
        if out is None and render:
            calls.append(1)
        return real(spec, render=render)

    monkeypatch.setattr(base, "_svg", counting)
    bundle = base.display_bundle(chart)                  # the inline display renders the SVG (PNG fallback)
    assert "image/png" in bundle and "application/vnd.vegalite.v5+json" in bundle
    w = RecordWriter(tmp_path, notebook="nb", title="t")
    files = [f.name for f in w.figure("fig", chart)]     # the record reuses it, even when deferred
    assert files == ["fig.vl.json", "fig.svg"] and len(calls) == 1
    assert base.spec_of(chart) is base.spec_of(chart)    # validated once per chart


def test_worker_env_caps_threads_only_with_several_workers(monkeypatch):
    for var in executors.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    # 2 usable CPUs on an 8-CPU machine (a container's cpuset): the caps follow the usable ones
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(executors.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    one, two = executors._worker_env(1), executors._worker_env(2)
    assert not any(v in one for v in executors.THREAD_VARS)
    assert all(two[v] == "1" for v in executors.THREAD_VARS)
    assert one[plots.DEFER_ENV] == two[plots.DEFER_ENV] == "1" and executors.DEFER_ENV == plots.DEFER_ENV
    monkeypatch.setenv("POLARS_MAX_THREADS", "3")  # the user's setting wins
    assert executors._worker_env(2)["POLARS_MAX_THREADS"] == "3"
