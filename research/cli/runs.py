"""Notebook commands: run, grid, report, lab."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DataDir, _bad_input, app

Params = typer.Option(None, "-p", "--param", help="KEY=VALUE notebook parameter, typed like its default (repeatable).")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar.")
Executor = typer.Option("process", "--executor", help="process (local worker processes) or dask.")
Scheduler = typer.Option(None, "--scheduler", help="dask.distributed scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask).")

@app.command("run")
def run_cmd(
    notebook: str = typer.Argument(..., help="Notebook to run: a path, a stem in notebooks/ (20-flush-vs-exodus) or its number (20)."),
    param: Optional[list[str]] = Params,
    data_dir: Optional[Path] = DataDir,
    out: Optional[Path] = typer.Option(None, "--out", help="Output root; the run goes to OUT/<notebook>/<hash12>/ (default: reports/runs)."),
    kernel: str = typer.Option("python3", "--kernel", help="Jupyter kernel."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds a cell may run (default: no limit)."),
    quiet: bool = Quiet,
) -> None:
    """Run one notebook with checked parameters; writes executed.ipynb, params.json and its results record.

    Exit code 0 = ran, 1 = a cell failed (the partial notebook is kept), 2 = bad notebook or parameters.
    """
    from research import batch
    from research.errors import LakeError, NotebookError

    try:
        nb = batch.find_notebook(notebook)
        spec = batch.make_spec(nb, batch.parse_assignments(param), data_dir=data_dir, out_root=out,
                               kernel_name=kernel, from_strings=True, timeout=timeout)
        batch.check_span(spec.notebook, spec.parameters, spec.data_dir)
    except (NotebookError, LakeError) as exc:
        _bad_input(exc)
    result = batch.execute(spec, progress_bar=not quiet)
    if result.status == "failed":
        typer.echo(f"error: {batch.describe_failure(result)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {result.run_dir} ({result.seconds:.1f} s)")


@app.command("grid")
def grid_cmd(
    grid_file: Path = typer.Argument(..., help="Grid YAML: notebooks x parameter sets (format: see research.batch)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Parallel worker processes (default: the file's workers, else 2)."),
    executor: str = Executor,
    scheduler: Optional[str] = Scheduler,
    resume: bool = typer.Option(False, "--resume", help="Run only what failed or is missing."),
    data_dir: Optional[Path] = DataDir,
    out: Optional[Path] = typer.Option(None, "--out", help="Output root (default: the file's out, else reports/runs)."),
    max_runs: int = typer.Option(1000, "--max-runs", help="Refuse a grid that expands to more runs than this."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds a cell may run, else its run fails (default: the file's timeout, else no limit)."),
    quiet: bool = Quiet,
) -> None:
    """Run a grid of notebooks x parameters in parallel; a failed run does not stop the others.

    Exit code 0 = every run finished, 1 = some failed (see the summary), 2 = bad grid file or parameters.
    """
    from rich.console import Console

    from research import batch
    from research.errors import LakeError, NotebookError

    try:
        grid = batch.load_grid(grid_file, data_dir=data_dir, out_root=out, max_runs=max_runs, timeout=timeout)
        for spec in grid.specs:
            batch.check_span(spec.notebook, spec.parameters, spec.data_dir)
        result = batch.run_grid(grid.specs, workers=workers or grid.workers or 2, executor=executor,
                                scheduler=scheduler, resume=resume, progress=not quiet)
    except (NotebookError, LakeError) as exc:
        _bad_input(exc)
    console = Console(width=None if Console().is_terminal else 160)
    console.print(result.summary())
    for r in result.failed:
        console.print(batch.describe_failure(r), markup=False, highlight=False)
    if result.failed:
        console.print(f"{len(result.failed)} run(s) failed; fix them and rerun with --resume to run only those.")
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    name: Optional[str] = typer.Option(None, "--name", help="Report directory under reports/ (default: latest)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (instead of reports/NAME)."),
    data_dir: Optional[Path] = DataDir,
    notebooks: Optional[list[str]] = typer.Option(None, "--notebooks", "-n", help="Subset: numbers, stems or paths (repeatable or comma-separated)."),
    notebooks_dir: Optional[Path] = typer.Option(None, "--notebooks-dir", help="Where the numbered notebooks are (default: notebooks/)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="KEY=VALUE override for every selected notebook that defines KEY (repeatable)."),
    workers: int = typer.Option(2, "--workers", "-w", help="Parallel worker processes."),
    executor: str = Executor,
    scheduler: Optional[str] = Scheduler,
    resume: bool = typer.Option(False, "--resume", help="Reuse finished runs of an earlier report in the same directory."),
    quiet: bool = Quiet,
    figures: str = typer.Option("svg", "--figures", help="Figure formats in the report, comma-separated: svg, png, pdf (PNG/PDF are rendered from the recorded spec)."),
) -> None:
    """Run the standard notebooks (on the simulated market when the lake is empty) and build index.html.

    Exit code 0 = every notebook gave results, 1 = the report was written but some notebooks failed,
    2 = bad options or parameters.
    """
    from research import batch, report
    from research.errors import NotebookError

    try:
        rep = report.build_report(name=name, out=out, data_dir=data_dir, notebooks=notebooks, notebooks_dir=notebooks_dir,
                                  parameters=batch.parse_assignments(param), workers=workers, executor=executor,
                                  scheduler=scheduler, resume=resume, progress=not quiet,
                                  figure_formats=tuple(f.strip() for f in figures.split(",") if f.strip()))
    except NotebookError as exc:
        _bad_input(exc)
    for e in rep.failed:
        typer.echo(f"failed: {e.stem}: {e.problem}" + (f" (see {e.run.executed})" if e.run.executed else ""), err=True)
    typer.echo(rep.summary())
    if rep.failed:
        raise typer.Exit(1)


@app.command("lab")
def lab_cmd(
    data_dir: Optional[Path] = DataDir,
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: JupyterLab picks 8888 or the next free one)."),
    open_browser: bool = typer.Option(False, "--open/--no-open", help="Open a browser tab."),
) -> None:
    """Start JupyterLab on the project: its notebooks, this lake, offline; outputs stay out of tracked files.

    Kernels get RESEARCH_DATA_DIR, so a notebook reads the same lake as the CLI. Saving a notebook
    under notebooks/ strips its outputs (the tracked file stays clean) and keeps the full copy
    under reports/lab/.
    """
    from research import lab

    raise typer.Exit(lab.launch(data_dir=data_dir, port=port, open_browser=open_browser))
