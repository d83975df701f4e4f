"""The one-command report: run the standard notebooks, collect their records, write ``index.html``.

:func:`build_report` runs the numbered notebooks of ``notebooks/`` (``NN-name.ipynb``, sorted by
number) with the grid machinery of :mod:`research.batch` (2 worker processes by default) on the
lake, or - when the lake is empty - on the simulated market, which it writes into
``<report>/synthetic-data`` (never into the user's lake) and says so, loudly, in the page. Then it
builds::

    reports/<name>/                 # name defaults to "latest"; --out picks any directory
        index.html                  # verdicts, figure gallery, notebooks, coverage, provenance, metadata
        report.json                 # the same facts, machine-readable
        figures/<notebook>/<figure>.png|svg|pdf   # exported figures, linked relatively
        runs/<notebook>/<hash12>/   # executed notebooks, records, tables (see research.batch)
        synthetic-data/             # only when the lake was empty

The page has no scripts and loads nothing from the network: CSS is inline and figures are files
beside it, so the directory can be zipped, mailed or opened offline. The report reads only results
records (:mod:`research.records`); a failed run is listed with its error and partial notebook and
contributes no verdicts.
"""
from __future__ import annotations

import datetime as dt
import html
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Sequence

from research import batch, lake, paths
from research.errors import NotebookError, ResearchError
from research.records import RECORD_FILE, ResultsRecord
from research.records import load as load_record

DEFAULT_NAME = "latest"
SYNTHETIC_DIR = "synthetic-data"
_PACKAGES = ("treadmill-research", "polars", "duckdb", "pyarrow", "numpy", "scipy", "statsmodels", "altair",
             "vl-convert-python", "papermill", "nbclient", "ipykernel", "jupyterlab", "typer", "rich", "pyyaml",
             "dask", "distributed")
_MANIFEST_ROWS_SHOWN = 2000


@dataclass
class Entry:
    """One notebook of the report: its run and, when the run finished, its record."""

    run: batch.RunResult
    record: ResultsRecord | None = None
    problem: str = ""  # why there is no record

    @property
    def stem(self) -> str:
        return Path(self.run.notebook).stem


@dataclass
class Report:
    """What :func:`build_report` produced."""

    index: Path
    out_dir: Path
    data_dir: Path
    synthetic: bool
    simulated: bool
    entries: list[Entry] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.entries if e.record is None]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        n = len(self.entries)
        kind = "SIMULATED market" if self.simulated else ("synthetic data" if self.synthetic else str(self.data_dir))
        return (f"report: {self.index} ({n} notebook(s), {n - len(self.failed)} with results, "
                f"{len(self.failed)} failed; data: {kind}; {self.seconds:.1f} s)")


# --------------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------------

def select_notebooks(selection: Sequence[str] | None = None, notebooks_dir=None) -> list[Path]:
    """The standard set (numbered notebooks, sorted by number) or the ``selection`` of it.

    Items of ``selection`` are numbers (``"10"``), stems (``"10-funding-resets"``) or paths; commas
    separate several in one item.
    """
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    if not selection:
        found = batch.numbered_notebooks(nb_dir)
        if not found:
            raise NotebookError(f"no numbered notebooks (NN-name.ipynb) in {nb_dir}; "
                                "pass --notebooks-dir or add notebooks")
        return found
    items = [s.strip() for item in selection for s in str(item).split(",") if s.strip()]
    out: list[Path] = []
    for item in items:
        p = batch.find_notebook(item, None, nb_dir)
        if p not in out:
            out.append(p)
    order = {p.resolve(): i for i, p in enumerate(batch.numbered_notebooks(nb_dir))}
    return sorted(out, key=lambda p: order.get(p, len(order)))


def plan_runs(notebooks: Sequence[Path], overrides: dict[str, str] | None, *, data_dir, out_root,
              kernel_name: str = batch.KERNEL_NAME) -> list[batch.RunSpec]:
    """One checked RunSpec per notebook; each ``-p`` override goes to the notebooks that declare it.

    Raises
    ------
    NotebookError
        An override no selected notebook declares (with the notebooks' parameter names).
    """
    overrides = dict(overrides or {})
    specs_by_nb = {nb: batch.parameter_spec(nb) for nb in notebooks}
    unused = [k for k in overrides if not any(k in s for s in specs_by_nb.values())]
    if unused:
        known = sorted({k for s in specs_by_nb.values() for k in s} - set(batch.RUNNER_PARAMS))
        raise NotebookError(f"parameter(s) {unused} are not defined by any selected notebook; "
                            f"they define: {', '.join(known) or 'nothing'}")
    specs = []
    for nb, spec in specs_by_nb.items():
        mine = {k: v for k, v in overrides.items() if k in spec}
        params = batch.check_parameters(nb, mine, spec=spec, from_strings=True)
        specs.append(batch.RunSpec(str(nb), params, str(paths.data_dir(data_dir)), str(out_root), kernel_name))
    return specs


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------

def build_report(*, name: str | None = None, out=None, data_dir=None, notebooks: Sequence[str] | None = None,
                 notebooks_dir=None, parameters: dict[str, str] | None = None, workers: int = 2,
                 executor: str = "process", scheduler: str | None = None, resume: bool = False,
                 progress: bool = True, console=None, title: str = "Treadmill report") -> Report:
    """Run the standard notebooks and write ``<out>/index.html``.

    Parameters
    ----------
    name : str, optional
        Report directory under ``reports/`` (default ``"latest"``); ignored when ``out`` is given.
    out : path, optional
        Report directory.
    data_dir : path, optional
        Data directory whose lake the notebooks read. An empty lake means the simulated market.
    notebooks : list of str, optional
        Subset of the numbered notebooks (numbers, stems or paths).
    parameters : dict of str, optional
        ``-p`` overrides (strings, typed per notebook), applied to the notebooks that declare them.
    workers, executor, scheduler, resume
        As in :func:`research.batch.run_grid`.

    Returns
    -------
    Report
        ``index`` is the page; ``failed`` lists notebooks without results.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc)
    if out is not None:
        out_dir = Path(out).expanduser().resolve()
    else:
        name = name or DEFAULT_NAME
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
            raise NotebookError(f"report name {name!r} must be a plain directory name (letters, digits, . _ -); "
                                "use --out for a path")
        out_dir = paths.reports_dir() / name
    nbs = select_notebooks(notebooks, notebooks_dir)
    user_data = paths.data_dir(data_dir)
    simulated = lake.is_empty(user_data)
    sim_info: dict[str, Any] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    if simulated:
        run_data = out_dir / SYNTHETIC_DIR
        console.print(f"[bold red]The lake in {user_data} is empty:[/] running on the [bold red]SIMULATED market[/] "
                      f"(research.simulate), written to {run_data}. Fill the lake (see `research --help`) "
                      "for a report on real data.")
        from research import simulate  # lazy: only needed for an empty lake

        with console.status("simulating the market"):
            market = simulate.write_sample(data_dir=run_data)
        sim_info = {"function": "research.simulate.write_sample", "data_dir": str(run_data),
                    "params": getattr(market, "params", None)}
    else:
        run_data = user_data
    specs = plan_runs(nbs, parameters, data_dir=run_data, out_root=out_dir / "runs")
    grid = batch.run_grid(specs, workers=workers, executor=executor, scheduler=scheduler, resume=resume,
                          progress=progress, console=console)

    entries = [_entry(r) for r in grid.results]
    _export_figures(entries, out_dir)
    cov, cov_error = _lake_coverage(run_data)
    synthetic = simulated or any(e.record and e.record.synthetic for e in entries) or _all_synthetic(cov)
    manifest_rows = _manifest(user_data)
    meta = _metadata(started, time.perf_counter() - t0, workers, executor, scheduler, user_data, run_data)
    page = _render(title=title, out_dir=out_dir, entries=entries, synthetic=synthetic, simulated=simulated,
                   sim_info=sim_info, user_data=user_data, run_data=run_data, coverage=cov, coverage_error=cov_error,
                   manifest=manifest_rows, meta=meta)
    index = out_dir / "index.html"
    _atomic_write(index, page)
    seconds = time.perf_counter() - t0
    _atomic_write(out_dir / "report.json", json.dumps({
        "title": title, "synthetic": synthetic, "simulated": simulated, "data_dir": str(run_data),
        "simulation": sim_info, "metadata": {**meta, "seconds": round(seconds, 2)},
        "runs": [{**e.run.to_dict(), "problem": e.problem} for e in entries],
        "records": [e.record.to_dict() for e in entries if e.record],
        "coverage": cov, "manifest_files": len(manifest_rows),
    }, indent=2, default=str))
    return Report(index, out_dir, run_data, synthetic, simulated, entries, round(seconds, 2))


def _entry(r: batch.RunResult) -> Entry:
    if r.status == "failed":
        return Entry(r, None, f"run failed in cell {r.cell}: {r.error}" if r.cell else f"run failed: {r.error}")
    if not (Path(r.run_dir) / RECORD_FILE).exists():
        return Entry(r, None, "the notebook ran but wrote no record.json (RecordWriter.save() missing?)")
    try:
        return Entry(r, load_record(r.run_dir))
    except (ResearchError, ValueError, TypeError) as exc:
        return Entry(r, None, f"record.json is unreadable: {exc}")


def _export_figures(entries: list[Entry], out_dir: Path) -> None:
    """Copy every recorded figure to ``figures/<notebook>/`` and point the record at the copies."""
    root = out_dir / "figures"
    if root.exists():
        shutil.rmtree(root)
    for e in entries:
        if not e.record:
            continue
        for fig, files in e.record.figures.items():
            kept = []
            for rel in files:
                src = Path(e.run.run_dir) / rel
                if not src.exists():
                    continue
                dst = root / e.stem / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                kept.append(str(dst.relative_to(out_dir)))
            e.record.figures[fig] = kept


def _lake_coverage(data_dir: Path) -> tuple[list[dict], str]:
    try:
        from research.coverage import coverage

        return coverage(data_dir).to_dicts(), ""
    except Exception as exc:  # coverage is context, not a result: show the error, keep the report
        return [], f"{type(exc).__name__}: {exc}"


def _all_synthetic(cov: list[dict]) -> bool:
    from research.schema import SYNTHETIC_SOURCE

    return bool(cov) and all(r.get("source") == SYNTHETIC_SOURCE for r in cov)


def _manifest(data_dir: Path) -> list[dict]:
    """Newest manifest record per file (the downloader's own merge rules), with presence on disk."""
    path = paths.manifest_path(data_dir)
    if not path.exists():
        return []
    try:
        from research.sources.http import Manifest

        recs = list(Manifest(data_dir).load().values())
    except ImportError:  # pragma: no cover - the downloader ships with the package
        recs = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "path" in r:
                recs.append(r)
    for r in recs:
        p = Path(r["path"])
        r["present"] = (p if p.is_absolute() else data_dir / p).exists()
    return sorted(recs, key=lambda r: str(r.get("path")))


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _metadata(started: dt.datetime, seconds: float, workers: int, executor: str, scheduler: str | None,
              user_data: Path, run_data: Path) -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "created": started.isoformat(timespec="seconds"),
        "git_commit": commit or "not a git checkout",
        "git_dirty": dirty,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "workers": workers,
        "executor": executor if executor != "dask" else f"dask ({scheduler})",
        "data_dir": str(user_data),
        "notebook_data_dir": str(run_data),
        "seconds_before_render": round(seconds, 2),
        "versions": versions,
    }


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------

def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _href(path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(path), out_dir)
    return _e(urllib.parse.quote(Path(rel).as_posix()))


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        if x == 0:
            return "0"
        return f"{x:.{digits}g}" if 1e-4 <= abs(x) < 1e6 else f"{x:.{max(digits - 1, 1)}e}"
    return _e(x)


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


def _render(*, title, out_dir: Path, entries: list[Entry], synthetic: bool, simulated: bool, sim_info: dict,
            user_data: Path, run_data: Path, coverage: list[dict], coverage_error: str, manifest: list[dict],
            meta: dict) -> str:
    tpl = Template((Path(__file__).parent / "templates" / "report.html").read_text(encoding="utf-8"))
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
    cols = ["Hypothesis", "Effect", "95% CI", "p-value", "N events", "Test", "Conclusion"]
    body = []
    for e in entries:
        if e.record is None or not e.record.verdicts:
            continue
        params = _params_text(e.record.parameters or e.run.parameters)
        body.append(f'<tr class="group"><th colspan="{len(cols)}"><a href="#nb-{_e(e.stem)}">{_e(e.stem)}</a> &middot; '
                    f'{_e(e.record.title)} &middot; {_notebook_link(e, out_dir)}'
                    f'<span class="params">parameters: {_e(params)}</span></th></tr>')
        for v in e.record.verdicts:
            ci = f"[{_fmt(v.ci_low)}, {_fmt(v.ci_high)}]" if v.ci_low is not None or v.ci_high is not None else "–"
            p = _fmt_p(v.pvalue)
            if v.pvalue is not None and v.pvalue < 0.05:
                p = f'<span class="sig">{p}</span>'
            if getattr(v, "q_value", None) is not None:   # BH q-value across the notebook's p-values (#12)
                p += f"<small>q {_fmt_p(v.q_value)}</small>"
            if getattr(v, "primary", False):
                p += "<small>primary</small>"
            effect = f'<span class="n">{_fmt(v.effect)}</span>' + (f"<small>{_e(v.effect_label)}</small>" if v.effect_label else "")
            body.append("<tr>" + "".join([
                f"<td>{_e(v.hypothesis)}</td>", f'<td class="eff">{effect}</td>', f'<td class="num">{ci}</td>',
                f'<td class="num">{p}</td>', f'<td class="num">{_fmt(v.n_events)}</td>', f"<td>{_e(v.test)}</td>",
                f"<td>{_e(v.conclusion)}</td>"]) + "</tr>")
    if not body:
        return '<p class="note">No verdicts: no notebook finished with a results record.</p>'
    head = "".join(f"<th>{c}</th>" for c in cols)
    return (f'<table class="verdicts"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            '<p class="sub">One block per notebook with the parameters it ran with; p-values below 0.05 in green; '
            "effects, intervals and tests as reported by each notebook.</p>")


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
        detail = _e(e.problem) if e.problem else ""
        rows.append([_e(e.stem), f'<span class="status-{_e(r.status)}">{_e(r.status)}</span>', _fmt(r.seconds, 3),
                     f'<span class="mono">{_e(_params_text(r.parameters))}</span>', " &middot; ".join(x for x in links if x), detail])
    return (_table(["Notebook", "Status", "Seconds", "Parameters", "Files", "Problem"], rows, num_cols=(2,))
            + '<p class="sub">Open an <code>.ipynb</code> in JupyterLab to see the code and outputs of a run; '
              "<code>cached</code> runs were reused by <code>--resume</code>.</p>")


def _coverage_html(entries: list[Entry], coverage: list[dict], error: str) -> str:
    parts = []
    if error:
        parts.append(f'<p class="error">Lake coverage could not be computed: {_e(error)}</p>')
    if coverage:
        cols = ["table", "source", "venue", "symbol", "interval", "rows", "start", "end", "missing", "gaps", "largest_gaps"]
        cols = [c for c in cols if c in coverage[0]]
        rows = [[_fmt(r.get(c)) if c in ("rows", "missing", "gaps") else _e(r.get(c)) for c in cols] for r in coverage]
        parts.append("<h3>Lake</h3>" + _table(cols, rows, num_cols=[cols.index(c) for c in ("rows", "missing", "gaps") if c in cols]))
    elif not error:
        parts.append('<p class="note">The lake read by the notebooks is empty.</p>')
    nb_rows = []
    for e in entries:
        if e.record and e.record.coverage:
            nb_rows.append([_e(e.stem), "<br>".join(f"<b>{_e(k)}</b>: {_e(json.dumps(v, default=str) if isinstance(v, (list, dict)) else v)}"
                                                    for k, v in e.record.coverage.items())])
    if nb_rows:
        parts.append("<h3>Per notebook</h3>" + _table(["Notebook", "Coverage as recorded by the notebook"], nb_rows))
    return "".join(parts)


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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
