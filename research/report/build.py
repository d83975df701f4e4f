"""Building the report: select and run the notebooks, collect their records, write the page."""
from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from research import batch, lake, paths
from research.errors import NotebookError, ResearchError
from research.fileio import atomic_write, write_json
from research.records import RECORD_FILE, ResultsRecord
from research.records import load as load_record

from .context import metadata, read_manifest
from .render import SYNTHETIC_DIR, render

DEFAULT_NAME = "latest"
#: figure formats the report holds by default (PNG/PDF on request: ``figure_formats``, ``--figures``)
FIGURE_FORMATS = ("svg",)


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


def build_report(*, name: str | None = None, out=None, data_dir=None, notebooks: Sequence[str] | None = None,
                 notebooks_dir=None, parameters: dict[str, str] | None = None, workers: int | batch.LocalWorkers = 2,
                 executor: str = "process", scheduler: str | None = None, resume: bool = False,
                 progress: bool = True, console=None, title: str = "Treadmill report",
                 figure_formats: Sequence[str] = FIGURE_FORMATS) -> Report:
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
    figure_formats : sequence of {"svg", "png", "pdf"}
        Formats of every figure in ``figures/`` (the spec is always kept); PNG/PDF are rendered
        from the recorded spec/SVG only when listed.

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
    bad = [f for f in figure_formats if f not in ("svg", "png", "pdf")]
    if bad:
        raise NotebookError(f"unknown figure format(s) {bad}; use svg, png or pdf")
    nbs = select_notebooks(notebooks, notebooks_dir)
    with contextlib.ExitStack() as stack:
        pool = workers
        if isinstance(workers, int) and workers > 1 and executor == "process" and len(nbs) > 1:
            # the workers boot their kernels and import the stack while the market is simulated and
            # the runs are planned, instead of after
            pool = stack.enter_context(batch.LocalWorkers(min(workers, len(nbs))))
        return _build(out_dir, nbs, data_dir, parameters, pool, executor, scheduler, resume, progress, console,
                      title, figure_formats, t0, started)


def _build(out_dir: Path, nbs: list[Path], data_dir, parameters, workers, executor, scheduler, resume, progress,
           console, title, figure_formats, t0: float, started: dt.datetime) -> Report:
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
    _export_figures(entries, out_dir, figure_formats)
    cov, cov_error = _lake_coverage(run_data)
    synthetic = simulated or any(e.record and e.record.synthetic for e in entries) or _all_synthetic(cov)
    manifest_rows = read_manifest(user_data)
    n_workers = workers.n if isinstance(workers, batch.LocalWorkers) else workers
    meta = metadata(started, time.perf_counter() - t0, n_workers, executor, scheduler, user_data, run_data)
    page = render(title=title, out_dir=out_dir, entries=entries, synthetic=synthetic, simulated=simulated,
                   sim_info=sim_info, user_data=user_data, run_data=run_data, coverage=cov, coverage_error=cov_error,
                   manifest=manifest_rows, meta=meta)
    index = out_dir / "index.html"
    atomic_write(index, page)
    seconds = time.perf_counter() - t0
    write_json(out_dir / "report.json", {
        "title": title, "synthetic": synthetic, "simulated": simulated, "data_dir": str(run_data),
        "simulation": sim_info, "metadata": {**meta, "seconds": round(seconds, 2)},
        "runs": [{**e.run.to_dict(), "problem": e.problem} for e in entries],
        "records": [e.record.to_dict() for e in entries if e.record],
        "coverage": cov, "manifest_files": len(manifest_rows),
    })
    return Report(index, out_dir, run_data, synthetic, simulated, entries, round(seconds, 2))


def _entry(r: batch.RunResult) -> Entry:
    if r.status == "failed":
        return Entry(r, None, f"run failed in cell {r.cell}: {r.error}" if r.cell else f"run failed: {r.error}")
    if not (Path(r.run_dir) / RECORD_FILE).exists():
        return Entry(r, None, "the notebook ran but wrote no record.json (records.write_result missing?)")
    try:
        return Entry(r, load_record(r.run_dir))
    except (ResearchError, ValueError, TypeError) as exc:
        return Entry(r, None, f"record.json is unreadable: {exc}")


def _export_figures(entries: list[Entry], out_dir: Path, formats: Sequence[str] = FIGURE_FORMATS) -> None:
    """Copy every recorded figure to ``figures/<notebook>/`` and point the record at the copies.

    Records keep each figure's Vega-Lite spec and SVG; ``formats`` the record lacks (PNG, PDF) are
    rendered here from those, once, only when asked for (rasterising is most of a figure's cost).
    """
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
            spec = next((k for k in kept if k.endswith(".vl.json")), None)
            missing = [f for f in formats if f != "json" and not any(k.endswith(f".{f}") for k in kept)]
            if spec and missing:
                from research.plots import render  # lazy: vl-convert only when a format is missing

                for path in render(out_dir / spec[: -len(".vl.json")], missing):
                    kept.append(str(path.relative_to(out_dir)))
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


