"""Grids: a YAML file of notebooks x parameter sets, expanded into checked runs and run in parallel."""
from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from research import paths
from research.errors import GridError, NotebookError

from .execute import KERNEL_NAME, RunResult, RunSpec, is_result, read_status, runs_root
from .executors import _run_dask, _run_processes, _run_spec, close_kernels
from .pool import LocalWorkers
from .parameters import check_parameters, parameter_spec, yaml_load

_NUMBERED = re.compile(r"^(\d+)-.+\.ipynb$")
#: the most runs a grid may expand to unless the caller raises it (``research grid --max-runs``)
MAX_RUNS = 1000

_GRID_KEYS = {"data_dir", "out", "workers", "timeout", "runs"}
_ENTRY_KEYS = {"notebook", "notebooks", "parameters", "product", "zip"}


@dataclass
class Grid:
    """An expanded grid: the runs plus file-level settings (``None`` = not set in the file)."""

    specs: list[RunSpec]
    workers: int | None = None
    source: str = ""
    timeout: float | None = None


def find_notebook(name: str, base: Path | None = None, notebooks_dir=None) -> Path:
    """Resolve a notebook given as a path (relative to ``base`` or cwd), a stem, or a number prefix.

    A path must name a ``.ipynb`` file; a relative one must stay inside ``base`` (the grid file's
    folder), the working directory or the notebooks folder, so a grid cannot point the runner at
    files elsewhere (``../../etc/passwd``). Nothing of a refused file is read or echoed.
    """
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    cand = Path(name).expanduser()
    if cand.suffix and cand.suffix != ".ipynb":
        raise GridError(f"notebook {name!r} is not a .ipynb file")
    tries = [cand] if cand.is_absolute() else [*([base / cand] if base else []), Path.cwd() / cand]
    roots = [r.resolve() for r in (base, Path.cwd(), nb_dir) if r is not None]
    for c in tries:
        if c.is_file():
            r = c.resolve()
            if not cand.is_absolute() and not any(r.is_relative_to(root) for root in roots):
                raise GridError(f"notebook {name!r} leaves the grid file's folder; give an absolute path or a "
                                "stem in notebooks/")
            if r.suffix != ".ipynb":
                raise GridError(f"notebook {name!r} is not a .ipynb file")
            return r
    stem = cand.name[:-6] if cand.name.endswith(".ipynb") else cand.name
    exact = nb_dir / f"{stem}.ipynb"
    if exact.is_file():
        return exact.resolve()
    numbered = [p for p in numbered_notebooks(nb_dir) if p.stem.split("-", 1)[0] == stem]
    if len(numbered) == 1:
        return numbered[0].resolve()
    known = ", ".join(p.stem for p in numbered_notebooks(nb_dir)) or "none"
    raise NotebookError(f"notebook {name!r} not found (looked in {', '.join(map(str, tries))} and {nb_dir}); "
                        f"numbered notebooks there: {known}")


def numbered_notebooks(notebooks_dir=None) -> list[Path]:
    """``NN-name.ipynb`` files of ``notebooks_dir`` (default ``notebooks/``), sorted by number then name."""
    d = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p.name, p) for p in d.iterdir() if (m := _NUMBERED.match(p.name)) and p.is_file()]
    return [p for _, _, p in sorted(found)]


def entry_size(entry: dict) -> int:
    """How many parameter sets :func:`expand_entry` would make, without making them."""
    product = entry.get("product") or {}
    zipped = entry.get("zip") or {}
    n_prod = math.prod(len(v) for v in product.values() if isinstance(v, list)) if isinstance(product, dict) else 1
    n_zip = min((len(v) for v in zipped.values() if isinstance(v, list)), default=1) if isinstance(zipped, dict) else 1
    return n_prod * n_zip


def expand_entry(entry: dict, where: str) -> list[dict[str, Any]]:
    """Parameter sets of one grid entry: ``parameters`` x product(``product``) x zip(``zip``)."""
    fixed = entry.get("parameters") or {}
    product = entry.get("product") or {}
    zipped = entry.get("zip") or {}
    for key, block in (("parameters", fixed), ("product", product), ("zip", zipped)):
        if not isinstance(block, dict):
            raise NotebookError(f"{where}: {key!r} must be a mapping of parameter names, got {type(block).__name__}")
    for key, block in (("product", product), ("zip", zipped)):
        for name, vals in block.items():
            if not isinstance(vals, list) or not vals:
                raise NotebookError(f"{where}: {key}.{name} must be a non-empty list, got {vals!r}")
    dup = (set(fixed) & set(product)) | (set(fixed) & set(zipped)) | (set(product) & set(zipped))
    if dup:
        raise NotebookError(f"{where}: parameter(s) {sorted(dup)} appear in more than one of parameters/product/zip")
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise NotebookError(f"{where}: zip lists must have equal lengths, got {lengths}")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    prod_rows = [dict(zip(product, row)) for row in itertools.product(*product.values())] if product else [{}]
    return [{**fixed, **p, **z} for p in prod_rows for z in zip_rows]


def load_grid(path, *, data_dir=None, out_root=None, notebooks_dir=None, kernel_name: str = KERNEL_NAME,
              max_runs: int | None = MAX_RUNS, timeout: float | None = None) -> Grid:
    """Read and expand a grid YAML file, checking every run's parameters before anything runs.

    ``data_dir``/``out_root``/``timeout`` override the file's ``data_dir``/``out``/``timeout`` (the
    seconds one cell of a run may take; a cell past it fails its run, the others go on). Paths in the file are
    relative to the file. Duplicate runs (same notebook and parameters) are kept once.

    Safety: YAML aliases are refused, notebooks must be ``.ipynb`` files inside the grid's folder,
    the working directory or ``notebooks/`` (or absolute paths), and a grid expanding to more than
    ``max_runs`` runs (None: no cap) is a :class:`~research.errors.GridError` counted before
    anything is expanded.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise NotebookError(f"grid file {path} does not exist")
    try:
        doc = yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NotebookError(f"{path}: not valid YAML: {exc}") from exc
    except GridError as exc:
        raise GridError(f"{path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise NotebookError(f"{path}: a grid file is a mapping with a non-empty 'runs' list (see research.batch)")
    unknown = set(doc) - _GRID_KEYS
    if unknown:
        raise NotebookError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    _check_size(path, doc["runs"], max_runs)
    if timeout is None:
        timeout = doc.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise NotebookError(f"{path}: timeout must be a positive number of seconds, got {timeout!r}")
    elif timeout <= 0:
        raise NotebookError(f"timeout (--timeout) must be a positive number of seconds, got {timeout!r}")
    base = path.parent
    dd = data_dir if data_dir is not None else (base / doc["data_dir"] if doc.get("data_dir") else None)
    out = out_root if out_root is not None else (base / doc["out"] if doc.get("out") else None)
    specs: list[RunSpec] = []
    seen: set[Path] = set()
    for i, entry in enumerate(doc["runs"], 1):
        _entry_specs(entry, f"{path.name} runs[{i}]", base, str(paths.data_dir(dd)), str(runs_root(out)),
                     notebooks_dir, kernel_name, specs, seen, timeout)
    workers = doc.get("workers")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise NotebookError(f"{path}: workers must be a positive integer, got {workers!r}")
    return Grid(specs, workers, str(path), timeout)


def _entry_specs(entry, where: str, base: Path, data_dir: str, out_root: str, notebooks_dir, kernel_name: str,
                 specs: list, seen: set, timeout: float | None) -> None:
    """Append the checked, not yet seen runs of one grid entry to ``specs``."""
    if not isinstance(entry, dict):
        raise NotebookError(f"{where}: each run is a mapping with 'notebook' and parameters")
    bad = set(entry) - _ENTRY_KEYS
    if bad:
        raise NotebookError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(_ENTRY_KEYS)}")
    nbs = entry.get("notebook", entry.get("notebooks"))
    if not nbs:
        raise NotebookError(f"{where}: missing 'notebook'")
    nbs = [nbs] if isinstance(nbs, str) else list(nbs)
    sets = expand_entry(entry, where)
    for nb_name in nbs:
        nb = find_notebook(str(nb_name), base, notebooks_dir)
        spec_cache = parameter_spec(nb)
        for params in sets:
            try:
                checked = check_parameters(nb, params, spec=spec_cache)
            except NotebookError as exc:
                raise NotebookError(f"{where}: {exc}") from None
            s = RunSpec(str(nb), checked, data_dir, out_root, kernel_name, timeout)
            if s.run_dir not in seen:
                seen.add(s.run_dir)
                specs.append(s)


def _check_size(path: Path, runs: list, max_runs: int | None) -> None:
    if max_runs is None:
        return
    total = 0
    for entry in runs:
        if isinstance(entry, dict):
            nbs = entry.get("notebook", entry.get("notebooks"))
            total += (1 if isinstance(nbs, str) else len(nbs or [])) * entry_size(entry)
    if total > max_runs:
        raise GridError(f"{path}: the grid expands to {total} runs, more than max_runs={max_runs}; split it or raise "
                        "the cap (research grid --max-runs N)")


@dataclass
class GridResult:
    """Results of a grid in input order, plus the wall time."""

    results: list[RunResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self):
        """A rich Table: one row per run."""
        from rich.table import Table

        t = Table(title=f"{len(self.results)} runs, {len(self.failed)} failed, {self.seconds:.1f} s")
        for col in ("#", "notebook", "parameters", "status", "s", "output / error"):
            t.add_column(col, overflow="fold")
        style = {"ok": "green", "cached": "cyan", "failed": "bold red"}
        for i, r in enumerate(self.results, 1):
            p = ", ".join(f"{k}={v}" for k, v in r.parameters.items()) or "defaults"
            detail = r.run_dir if r.status != "failed" else f"{r.error} (cell {r.cell})\n{r.executed or r.run_dir}"
            t.add_row(str(i), Path(r.notebook).stem, p, f"[{style[r.status]}]{r.status}[/]", f"{r.seconds:.1f}", detail)
        return t


def run_grid(specs: Sequence[RunSpec], *, workers: int | LocalWorkers = 2, executor: str = "process", scheduler: str | None = None,
             resume: bool = False, progress: bool = True, console=None,
             on_result: Callable[[RunResult], None] | None = None) -> GridResult:
    """Run ``specs`` in parallel; a failure does not stop the others.

    Parameters
    ----------
    workers : int or LocalWorkers
        Worker processes for ``executor="process"`` (1 runs in this process), started for this
        grid and stopped after it; or a :class:`~research.batch.pool.LocalWorkers` pool whose
        running workers and warm kernels this grid uses and leaves running.
    executor : {"process", "dask"}
        ``process``: ``workers`` local worker processes. ``dask``: every run is a task on the
        dask.distributed cluster whose scheduler is at ``scheduler`` (the cluster sets parallelism).
    resume : bool
        Skip runs whose directory already holds a finished result (status ``cached``).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if executor not in ("process", "dask"):
        raise NotebookError(f"unknown executor {executor!r}; use 'process' or 'dask'")
    if executor == "dask" and not scheduler:
        raise NotebookError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786) of a running cluster")
    pool = workers if isinstance(workers, LocalWorkers) else None
    if pool is not None:
        pool.check_open()
    if pool is not None and executor != "process":
        raise NotebookError(f"workers=LocalWorkers(...) runs locally; it cannot be combined with executor={executor!r}")
    if pool is None and (not isinstance(workers, int) or workers < 1):
        raise NotebookError(f"workers must be an integer >= 1 or a batch.LocalWorkers, got {workers!r}")
    t0 = time.perf_counter()
    results: list[RunResult | None] = [None] * len(specs)
    todo: list[int] = []
    for i, s in enumerate(specs):
        if resume and is_result(s.run_dir):
            st = read_status(s.run_dir)
            results[i] = RunResult(s.notebook, s.parameters, str(s.run_dir), "cached", seconds=0.0,
                                   executed=st.get("executed", ""))
        else:
            todo.append(i)
    console = console or Console(stderr=True)
    with Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task("", total=len(specs), completed=len(specs) - len(todo))

        def done(i: int, r: RunResult) -> None:
            results[i] = r
            bar.update(task, advance=1, description=f"{Path(r.notebook).stem} {r.status}")
            if on_result:
                on_result(r)

        if not todo:
            pass
        elif pool is not None:
            pool.acquire()
            try:
                _run_processes(specs, todo, pool.n, done, kept=pool.workers)
            finally:
                pool.release()
        elif executor == "dask":
            _run_dask(specs, todo, scheduler, done)
        elif workers == 1 or len(todo) == 1:
            kernels: dict = {}  # runs in this process share one kept kernel, as a worker's do
            try:
                for i in todo:
                    done(i, _run_spec(specs[i], kernels=kernels if len(todo) > 1 else None))
            finally:
                close_kernels(kernels)
        else:
            _run_processes(specs, todo, workers, done)
    return GridResult([r for r in results if r is not None], round(time.perf_counter() - t0, 3))


