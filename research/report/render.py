"""The report's HTML: the page is ``research/templates/report.html``; these fill its sections."""
from __future__ import annotations

import html
import json
import os
import urllib.parse
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Sequence

from research import batch, paths
from research.records import RECORD_FILE

from . import format as F

if TYPE_CHECKING:
    from .build import Entry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: where an empty-lake report writes the simulated market
SYNTHETIC_DIR = "synthetic-data"
_MANIFEST_ROWS_SHOWN = 2000


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _href(path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(path), out_dir)
    return _e(urllib.parse.quote(Path(rel).as_posix()))


def _fmt(x: Any, digits: int = 4) -> str:
    """One number format for the page: fixed decimals, thousands separators, no exponent; "–" for none."""
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return F.fmt_value(x, F.Unit(""))
    return _e(x) or "–"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "&lt;0.001" if p < 0.001 else f"{p:.3f}"


def _params_text(params: dict) -> str:
    shown = {k: v for k, v in params.items() if k not in batch.RUNNER_PARAMS}
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in shown.items()) or "defaults"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = (), classes: dict | None = None) -> str:
    """Rows are already-escaped HTML cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num_cols else (f'<td class="{classes[i]}">{c}</td>' if classes and i in classes else f"<td>{c}</td>")
            for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render(*, title, out_dir: Path, entries: list[Entry], synthetic: bool, simulated: bool, sim_info: dict,
            user_data: Path, run_data: Path, coverage: list[dict], coverage_error: str, manifest: list[dict],
            meta: dict) -> str:
    tpl = Template((TEMPLATES / "report.html").read_text(encoding="utf-8"))
    banner = ""
    if synthetic:
        why = ("the lake was empty, so every notebook ran on the simulated market (research.simulate)"
               if simulated else "at least one notebook ran on simulated (synthetic) data")
        banner = (f'<div class="banner" role="alert">SYNTHETIC DATA &mdash; NOT REAL MARKET RESULTS'
                  f"<small>{_e(why)}; the verdicts below say nothing about Bitcoin.</small></div>")
    n_ok = sum(1 for e in entries if e.record)
    subtitle = (f"{len(entries)} notebook(s), {n_ok} with results, {len(entries) - n_ok} failed &middot; "
                f"data: {'simulated market' if simulated else _e(run_data)} &middot; created {_e(meta['created'])}")
    notes = []
    for e in entries:
        if e.record is None:
            notes.append(f'<div class="error"><b>{_e(e.stem)}</b>: {_e(e.problem)} '
                         f"&mdash; no verdicts from it. {_notebook_link(e, out_dir)}</div>")
    return tpl.substitute(
        title=_e(title), version=_e(meta["versions"].get("treadmill-research", "")), banner=banner, subtitle=subtitle,
        notes="".join(notes), verdicts=_verdicts_html(entries, out_dir), figures=_figures_html(entries),
        runs=_runs_html(entries, out_dir), coverage=_coverage_html(entries, coverage, coverage_error),
        provenance=_provenance_html(out_dir, simulated, sim_info, user_data, run_data, manifest),
        metadata=_metadata_html(meta), created=_e(meta["created"]),
    )


def _notebook_link(e: Entry, out_dir: Path) -> str:
    if e.run.executed and Path(e.run.executed).exists():
        label = "partial notebook" if e.run.status == "failed" else "executed notebook"
        return f'<a href="{_href(e.run.executed, out_dir)}">{label}</a>'
    return ""


def _verdicts_html(entries: list[Entry], out_dir: Path) -> str:
    cols = ["Hypothesis", "Effect", "95% CI", "p-value", "N", "Test", "Conclusion"]
    body = []
    for e in entries:
        if e.record is None or not e.record.verdicts:
            continue
        params = _params_text(e.record.parameters or e.run.parameters)
        body.append(f'<tr class="group"><th colspan="{len(cols)}"><a href="#nb-{_e(e.stem)}">{_e(e.stem)}</a> &middot; '
                    f'{_e(e.record.title)} &middot; {_notebook_link(e, out_dir)}'
                    f'<span class="params">parameters: {_e(params)}</span></th></tr>')
        event_label = _event_label(e.stem)
        for v in e.record.verdicts:
            unit = F.effect_unit(v.effect_label or "", v.hypothesis or "")
            raw = (f"raw: effect {F.fmt_raw(v.effect)}, CI [{F.fmt_raw(v.ci_low)}, {F.fmt_raw(v.ci_high)}]"
                   + (f" ({v.effect_label})" if v.effect_label else ""))
            ci = (f"[{F.fmt_value(v.ci_low, unit)}, {F.fmt_value(v.ci_high, unit)}]"
                  if v.ci_low is not None or v.ci_high is not None else "–")
            p = _fmt_p(v.pvalue)
            if v.pvalue is not None and v.pvalue < 0.05:
                p = f'<span class="sig">{p}</span>'
            if getattr(v, "q_value", None) is not None:   # BH q-value across the notebook's p-values
                p += f"<small>q {_fmt_p(v.q_value)}</small>"
            if getattr(v, "primary", False):
                p += "<small>primary</small>"
            label = v.effect_label + (f", in {unit.name}" if unit.name and v.effect is not None else "")
            effect = (f'<span class="n" title="{_e(raw)}" data-raw="{_e(F.fmt_raw(v.effect))}">{F.fmt_value(v.effect, unit)}</span>'
                      + (f"<small>{_e(label)}</small>" if label else ""))
            n = "–" if v.n_events is None else f"{v.n_events:,} {_e(F.n_unit(e.stem, v, event_label))}"
            body.append("<tr>" + "".join([
                f"<td>{_e(F.window_label(v.hypothesis))}</td>", f'<td class="eff">{effect}</td>',
                f'<td class="num" title="{_e(raw)}">{ci}</td>', f'<td class="num">{p}</td>', f'<td class="num">{n}</td>',
                f"<td>{_e(v.test) or 'descriptive'}</td>", f"<td>{_e(F.conclusion(v))}</td>"]) + "</tr>")
    if not body:
        return '<p class="note">No verdicts: no notebook finished with a results record.</p>'
    head = "".join(f"<th>{c}</th>" for c in cols)
    return (f'<table class="verdicts"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            '<p class="sub">One block per notebook with the parameters it ran with; p-values below 0.05 in green. '
            "Effects and intervals in the unit under each effect (log returns as %, or bp when hourly; differences "
            "of probabilities in percentage points); hover a number for the stored raw value. N says what it counts.</p>"
            + _primary_html(entries))


def _primary_html(entries: list[Entry]) -> str:
    """Each notebook's primary test: how it is tested, its empirical size, and the smallest effect it detects."""
    from research.stats import SIZE_BAND

    rows = []
    for e in entries:
        if e.record is None:
            continue
        for v in e.record.verdicts:
            if not getattr(v, "primary", False):
                continue
            test = (v.test or "").split(";")[0]
            if v.pvalue is None:
                size = mde = f"not testable: {_e(v.conclusion)}"
            else:
                if v.size is None:
                    size = "not measured" + (" (no placebo draws asked for)" if v.n_placebo == 0 else "")
                else:
                    band = "inside" if SIZE_BAND[0] <= v.size <= SIZE_BAND[1] else "OUTSIDE"
                    how = f"on {v.n_placebo:,} placebo draws" if v.n_placebo else "exact, at this design"
                    size = f"{v.size:.1%} {how} ({band} {SIZE_BAND[0]:.1%}–{SIZE_BAND[1]:.1%})"
                if getattr(v, "mde", None) is None:
                    mde = _e(v.mde_label) or "not computed for this test"
                else:
                    unit = F.effect_unit(v.mde_label or "", "")
                    mde = f"{F.fmt_value(v.mde, unit)}<small>{_e(v.mde_label)}</small>"
            rows.append([_e(e.stem), _e(F.window_label(v.hypothesis)), _e(test), size, mde])
    if not rows:
        return ""
    return ('<h3>Primary tests: calibration and power</h3>'
            + _table(["Notebook", "Primary hypothesis", "Test", "Empirical size at 5 %", "80 % power at"], rows)
            + '<p class="sub">Each notebook declares one primary test. Its size is its rejection rate on placebo '
              "draws from the same data and design (placebo event dates, relabellings, rotations or permutations; "
              "exact for Fisher's test); the CAR studies' p-value is the study's rank among its placebo studies, so "
              "its size holds by construction when placebo dates are exchangeable with the events (the nominal t's "
              "size is in the Test column of the verdicts). The last column is the smallest effect the test detects "
              "in 80 % of draws with the events this run had: a non-rejection says only that any effect is smaller "
              "than that.</p>")


def _event_label(stem: str) -> str:
    """The registry's prose name of an event-type notebook's events (``"funding resets"``), else ""."""
    try:
        from research.hypotheses.registry import by_notebook

        entry = by_notebook(stem)
    except Exception:  # not a registered notebook: N falls back to the report's own table
        return ""
    return entry.label if entry.kind == "event" else ""


def _figures_html(entries: list[Entry]) -> str:
    parts = []
    for e in entries:
        if e.record is None:
            continue
        figs = []
        for name, files in e.record.figures.items():
            by_ext = {Path(f).suffix.lstrip("."): f for f in files}
            links = " &middot; ".join(f'<a href="{_e(urllib.parse.quote(by_ext[x]))}">{x.upper()}</a>'
                                      for x in ("png", "svg", "pdf") if x in by_ext)
            if "png" in by_ext:
                img = f'<a href="{_e(urllib.parse.quote(by_ext["png"]))}"><img src="{_e(urllib.parse.quote(by_ext["png"]))}" alt="{_e(name)}" loading="lazy"></a>'
            elif "svg" in by_ext:
                img = f'<img src="{_e(urllib.parse.quote(by_ext["svg"]))}" alt="{_e(name)}" loading="lazy">'
            else:
                img = '<p class="note">no PNG/SVG exported</p>'
            figs.append(f"<figure>{img}<figcaption><b>{_e(name)}</b> &middot; {links or 'files missing'}</figcaption></figure>")
        claim = f'<p class="sub">{_e(e.record.claim)}</p>' if e.record.claim else ""
        body = f'<div class="gallery">{"".join(figs)}</div>' if figs else '<p class="sub">No figures recorded.</p>'
        parts.append(f'<h3 id="nb-{_e(e.stem)}">{_e(e.stem)} &middot; {_e(e.record.title)}</h3>{claim}{body}'
                     + "".join(f'<p class="note">{_e(n)}</p>' for n in e.record.notes))
    return "".join(parts) or '<p class="note">No figures: no notebook finished with a results record.</p>'


def _runs_html(entries: list[Entry], out_dir: Path) -> str:
    rows = []
    for e in entries:
        r = e.run
        links = [_notebook_link(e, out_dir)]
        if e.record:
            links.append(f'<a href="{_href(Path(r.run_dir) / RECORD_FILE, out_dir)}">record.json</a>')
        links.append(f'<a href="{_href(r.run_dir, out_dir)}/">run directory</a>')
        detail = _e(e.problem) if e.problem else "–"
        rows.append([_e(e.stem), f'<span class="status-{_e(r.status)}">{_e(r.status)}</span>', _fmt(r.seconds, 3),
                     f'<span class="mono">{_e(_params_text(r.parameters))}</span>', " &middot; ".join(x for x in links if x), detail])
    cached = sum(1 for e in entries if e.run.status == "cached")
    note = (f"; {cached} <code>cached</code> run(s) were reused by <code>--resume</code>" if cached else "")
    return (_table(["Notebook", "Status", "Seconds", "Parameters", "Files", "Problem"], rows, num_cols=(2,))
            + f'<p class="sub">Open an <code>.ipynb</code> in JupyterLab to see the code and outputs of a run{note}.</p>')


def _coverage_html(entries: list[Entry], coverage: list[dict], error: str) -> str:
    parts = []
    if error:
        parts.append(f'<p class="error">Lake coverage could not be computed: {_e(error)}</p>')
    if coverage:
        cols = ["table", "source", "venue", "symbol", "interval", "rows", "start", "end", "missing", "gaps", "largest_gaps"]
        cols = [c for c in cols if c in coverage[0]]
        rows = [[_fmt(r.get(c)) if c in ("rows", "missing", "gaps") else (_e(_cov_text(r.get(c))) or "–") for c in cols]
                for r in coverage]
        parts.append("<h3>Lake</h3>" + _table(cols, rows, num_cols=[cols.index(c) for c in ("rows", "missing", "gaps") if c in cols]))
    elif not error:
        parts.append('<p class="note">The lake read by the notebooks is empty.</p>')
    nb_rows = []
    for e in entries:
        if e.record and e.record.coverage:
            nb_rows.append([_e(e.stem), "<br>".join(f"<b>{_e(k)}</b>: {_e(_cov_text(v)) or '–'}"
                                                    for k, v in e.record.coverage.items())])
    # a required input that does not cover the requested span (panel.Inputs.record_coverage)
    gaps = [f"<li>{_e(e.stem)}: {_e(u)}</li>" for e in entries if e.record and e.record.coverage
            for u in e.record.coverage.get("uncovered") or []]
    if gaps:
        parts.append('<p class="error">Requested span not covered by a required input:</p><ul>' + "".join(gaps) + "</ul>")
    if nb_rows:
        parts.append("<h3>Per notebook</h3>" + _table(["Notebook", "Coverage as recorded by the notebook"], nb_rows))
    return "".join(parts)


def _cov_text(v: Any) -> str:
    """A coverage value as text: lists and dicts as JSON (NaN as null), None as nothing."""
    from research.fileio import clean_json

    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(clean_json(v), default=str) if v else ""
    if isinstance(v, float) and v != v:
        return ""
    return str(v)


def _provenance_html(out_dir: Path, simulated: bool, sim_info: dict, user_data: Path, run_data: Path,
                     manifest: list[dict]) -> str:
    parts = []
    if simulated:
        params = sim_info.get("params")
        parts.append(
            f'<p class="note">The lake in <span class="mono">{_e(user_data)}</span> is empty. The notebooks read the '
            f'<b>simulated market</b> written by <span class="mono">{_e(sim_info.get("function"))}</span> into '
            f'<a href="{_href(run_data, out_dir)}/">{_e(SYNTHETIC_DIR)}/</a>; every row has source = synthetic.</p>')
        if params:
            parts.append(f"<details><summary>Simulation parameters</summary><pre class=\"mono\">{_e(json.dumps(params, indent=1, default=str))}</pre></details>")
    else:
        parts.append(f'<p>Data directory: <span class="mono">{_e(user_data)}</span></p>')
    mpath = paths.manifest_path(user_data)
    if not manifest:
        parts.append(f'<p class="sub">No download manifest at <span class="mono">{_e(mpath)}</span> '
                     "(the lake was not filled by the downloaders, or the data directory has none).</p>")
        return "".join(parts)
    by_status: dict[str, int] = {}
    for r in manifest:
        by_status[str(r.get("status", "?"))] = by_status.get(str(r.get("status", "?")), 0) + 1
    sources = sorted({str(r.get("source")) for r in manifest if r.get("source")})
    hosts = sorted({urllib.parse.urlsplit(str(r.get("url", ""))).netloc for r in manifest if r.get("url")})
    missing = sum(1 for r in manifest if not r.get("present"))
    parts.append(
        f"<p>Download manifest <span class=\"mono\">{_e(mpath)}</span>: {len(manifest)} file(s); status "
        + ", ".join(f"{_e(k)} {v}" for k, v in sorted(by_status.items()))
        + (f"; sources {_e(', '.join(sources))}" if sources else "")
        + (f"; hosts {_e(', '.join(hosts))}" if hosts else "")
        + (f"; <b>{missing} not on disk</b>" if missing else "") + ".</p>")
    rows = []
    for r in manifest[:_MANIFEST_ROWS_SHOWN]:
        rows.append([f'<span class="mono">{_e(r.get("path"))}</span>', _e(r.get("status")), _fmt(r.get("size")),
                     f'<span class="mono">{_e(r.get("sha256") or "–")}</span>',
                     f'<span class="mono">{_e(r.get("url") or "–")}</span>', _e(r.get("ingest") or "–"),
                     "yes" if r.get("present") else '<span class="status-failed">missing</span>'])
    more = (f'<p class="sub">First {_MANIFEST_ROWS_SHOWN} of {len(manifest)} files shown; the full list is in the manifest.</p>'
            if len(manifest) > _MANIFEST_ROWS_SHOWN else "")
    parts.append(f"<details><summary>Raw files with sha256 ({len(manifest)})</summary>"
                 + _table(["Path", "Status", "Bytes", "sha256", "URL", "Ingest", "On disk"], rows, num_cols=(2,)) + more
                 + "</details>")
    return "".join(parts)


def _metadata_html(meta: dict) -> str:
    commit = meta["git_commit"] + (" (uncommitted changes)" if meta.get("git_dirty") else "")
    items = [("Created (UTC)", meta["created"]), ("Git commit", commit), ("Command", meta.get("command")),
             ("Python", meta["python"]), ("Platform", meta["platform"]), ("CPUs", meta["cpus"]),
             ("Workers", f"{meta['workers']} ({meta['executor']})"), ("Data directory", meta["data_dir"]),
             ("Notebooks read", meta["notebook_data_dir"]), ("Run time", f"{meta['seconds_before_render']:.1f} s")]
    dl = "".join(f"<dt>{_e(k)}</dt><dd class=\"mono\">{_e(v)}</dd>" for k, v in items)
    vers = "".join(f"<dt>{_e(k)}</dt><dd class=\"mono\">{_e(v)}</dd>" for k, v in meta["versions"].items())
    return f'<dl class="meta">{dl}</dl><h3>Package versions</h3><dl class="meta">{vers}</dl>'


