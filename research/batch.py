"""Run parameterised notebooks: one run, grids of runs, on local worker processes or a dask cluster.

One run
-------
:func:`run_notebook` checks the parameters against the notebook's ``parameters`` cell (an unknown
name or a value of the wrong type is a :class:`~research.errors.NotebookError`, not papermill's
warning), executes the notebook with an explicit kernel (``python3``) and writes everything under an
output path built from the notebook stem and a stable hash of its parameters::

    <out_root>/<notebook-stem>/<hash12>/
        params.json            # the parameters the run used (data_dir and output_dir included)
        executed.ipynb         # the executed notebook (only when every cell ran)
        record.json            # the results record (research.records), written by the notebook
        tables/  figures/      # written by the notebook
        status.json            # {"status": "ok" | "failed", ...}, written last by the runner

``<out_root>`` defaults to ``reports/runs``. The runner injects ``output_dir`` (the run directory)
and ``data_dir`` (the resolved data directory); every notebook's parameters cell defines both.
A failing cell leaves ``executed.FAILED.ipynb`` (the partial notebook, with the traceback), a
``FAILED`` text file and ``status.json`` with ``"status": "failed"``; a ``record.json`` the notebook
wrote before failing is renamed ``record.FAILED.json``, so a failed run is never taken for a result.

Types are inferred from the literals of the defaults (``ast``): a ``str`` default takes the value
as written (``"2025-01-01"`` stays a string), ``int``/``float``/``bool``/``None``/``list``/``dict``
defaults take a Python literal or YAML scalar (``24``, ``0.5``, ``true``, ``None``, ``[1, 2]``).

Grids
-----
A grid YAML file lists notebooks x parameter sets; :func:`load_grid` expands it, :func:`run_grid`
runs it on ``workers`` processes (each run in its own working directory, its run directory), or on
an existing dask.distributed cluster. A failed run does not stop the others; ``resume=True`` runs
only what failed or is missing. The format (every key except ``runs`` is optional)::

    # grid.yaml
    data_dir: data                 # data directory for every run (default: $RESEARCH_DATA_DIR or ./data)
    out: reports/runs              # output root: <out>/<notebook-stem>/<hash12>/
    workers: 2                     # worker processes (the CLI's --workers wins)
    runs:
      - notebook: notebooks/10-funding-resets.ipynb   # path relative to this file, or a stem in notebooks/
        parameters:                # fixed values for every run of this entry
          symbol: BTCUSDT
          start: 2024-01-01        # dates stay strings
        product:                   # every combination of these lists
          threshold: [0.0005, 0.001]
          window_h: [24, 48]
        zip:                       # lists walked together (equal lengths), crossed with product
          start: [2024-01-01, 2025-01-01]
          end: [2024-12-31, 2025-12-31]
      - notebook: [11-oi-collapses, 12-liquidation-prints]   # several notebooks, same parameter sets
        product: {window_h: [12, 24]}

An entry yields ``len(notebooks) x prod(len(product lists)) x len(zip lists)`` runs (4 x 2 = 8 for
the first entry above: ``start`` may not be both in ``parameters`` and ``zip``, so drop one of them).
Local workers are long-lived ``python -m research.batch`` processes fed one run at a time; each
run's kernel output goes to ``run.log`` in its run directory. On a dask cluster every run is a task
that executes the notebook in a fresh process on a dask worker, so the workers must see the same
file system paths (notebooks, data, output root) and have this package installed.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import difflib
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from research import paths
from research.errors import NotebookError

KERNEL_NAME = "python3"
#: Parameters owned by the runner; users set them with --data-dir / --out, never with -p.
RUNNER_PARAMS = ("data_dir", "output_dir")
STATUS_FILE = "status.json"
PARAMS_FILE = "params.json"
EXECUTED = "executed.ipynb"
EXECUTED_FAILED = "executed.FAILED.ipynb"
EXECUTING = "executing.ipynb"
FAILED_MARKER = "FAILED"
RUN_LOG = "run.log"
DASK_CONNECT_TIMEOUT = "20s"
_NUMBERED = re.compile(r"^(\d+)-.+\.ipynb$")


# --------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------

_ANY = object()  # default is not a literal: any value is accepted


@dataclass(frozen=True)
class Param:
    """One name of a notebook's ``parameters`` cell."""

    name: str
    default: Any  # the literal value, or the source text when not a literal
    kind: Any  # str, int, float, bool, type(None), list, dict, or _ANY

    @property
    def type_name(self) -> str:
        return "any" if self.kind is _ANY else ("None" if self.kind is type(None) else self.kind.__name__)


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings (``2025-01-01`` is a ``str``, not a ``datetime.date``)."""


_YamlLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def yaml_load(text: str) -> Any:
    """Load YAML with dates kept as strings."""
    return yaml.load(text, Loader=_YamlLoader)


def _read_nb(notebook: Path):
    import nbformat

    if not notebook.exists():
        raise NotebookError(f"notebook {notebook} does not exist")
    try:
        return nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several types for broken JSON
        raise NotebookError(f"{notebook} is not a readable notebook: {exc}") from exc


def parameter_spec(notebook) -> dict[str, Param]:
    """Names, defaults and inferred types of the notebook's ``parameters`` cell.

    Raises
    ------
    NotebookError
        No cell is tagged ``parameters``, or it is not valid Python.
    """
    notebook = Path(notebook)
    nb = _read_nb(notebook)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise NotebookError(
            f"{notebook.name} has no cell tagged 'parameters'; tag the cell that sets data_dir and "
            "output_dir (JupyterLab: property inspector > Cell Tags)")
    src = cells[0].source
    try:
        tree = ast.parse(src)
    except SyntaxError as exc:
        raise NotebookError(f"{notebook.name}: the parameters cell is not valid Python: {exc}") from exc
    spec: dict[str, Param] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for t in targets:
            if not isinstance(t, ast.Name):
                continue
            try:
                default = ast.literal_eval(value)
                kind = type(default)
                if kind is tuple:
                    default, kind = list(default), list
                if kind not in (str, int, float, bool, type(None), list, dict):
                    kind = _ANY
            except (ValueError, SyntaxError, TypeError):
                default, kind = ast.get_source_segment(src, value), _ANY
            spec[t.id] = Param(t.id, default, kind)
    return spec


def parse_value(raw: str, param: Param | None = None) -> Any:
    """Turn a command-line string into a value of ``param``'s type (strings stay as written)."""
    if param is not None and param.kind is str:
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        val = yaml_load(raw)
    except yaml.YAMLError:
        return raw
    # "a: b" is a YAML mapping, but on a command line it is almost surely meant as text
    return raw if isinstance(val, dict) and (param is None or param.kind is not dict) else val


def _matches(kind, value) -> tuple[bool, Any]:
    if kind is _ANY or kind is type(None):
        return True, value
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is list and isinstance(value, tuple):
        return True, list(value)
    return isinstance(value, kind), value


def check_parameters(notebook, parameters: dict[str, Any] | None, *, spec: dict[str, Param] | None = None,
                     from_strings: bool = False) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's parameters cell and return them typed.

    Parameters
    ----------
    notebook : path
        The notebook (named in errors).
    parameters : dict
        Values to inject. With ``from_strings=True`` every value is a command-line string parsed
        with the type of its default (see :func:`parse_value`).

    Raises
    ------
    NotebookError
        Unknown name (with the closest known names), a value of the wrong type, a runner-owned
        name (``data_dir``/``output_dir``), or a parameters cell lacking ``data_dir``/``output_dir``.
    """
    notebook = Path(notebook)
    spec = parameter_spec(notebook) if spec is None else spec
    missing = [p for p in RUNNER_PARAMS if p not in spec]
    if missing:
        raise NotebookError(
            f"{notebook.name}: the parameters cell must define {' and '.join(missing)} "
            f"(e.g. `data_dir = None` and `output_dir = \".\"`); the runner injects them")
    out: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if name in RUNNER_PARAMS:
            hint = "--data-dir" if name == "data_dir" else "--out"
            raise NotebookError(f"{notebook.name}: parameter {name!r} is set by the runner; use {hint} instead of -p")
        if name not in spec:
            close = difflib.get_close_matches(name, list(spec), n=3)
            known = ", ".join(p for p in spec if p not in RUNNER_PARAMS)
            raise NotebookError(
                f"{notebook.name}: unknown parameter {name!r}"
                + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
                + f"; its parameters cell defines: {known or 'nothing besides data_dir/output_dir'}")
        p = spec[name]
        if from_strings and isinstance(value, str):
            value = parse_value(value, p)
        ok, value = _matches(p.kind, value)
        if ok and p.kind is list and p.default and isinstance(value, list):
            kinds = {type(v) for v in p.default}
            if len(kinds) == 1:
                (ek,) = kinds
                checked = [_matches(ek, v) for v in value]
                ok = all(c[0] for c in checked)
                value = [c[1] for c in checked]
        if not ok:
            hint = {str: " (quote it to make it a string)", list: " (write a list: [a, b])"}.get(p.kind, "")
            raise NotebookError(
                f"{notebook.name}: parameter {name!r} expects {p.type_name} like its default "
                f"{p.default!r}, got {type(value).__name__} {value!r}{hint}")
        out[name] = value
    return out


def params_hash(parameters: dict[str, Any]) -> str:
    """First 12 hex digits of sha256 over the sorted, compact JSON of ``parameters``."""
    blob = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def runs_root(out_root=None) -> Path:
    """Default output root for runs: ``reports/runs`` (see :func:`research.paths.reports_dir`)."""
    return Path(out_root).expanduser().resolve() if out_root is not None else paths.reports_dir() / "runs"


def run_dir_for(notebook, parameters: dict[str, Any], out_root=None) -> Path:
    """``<out_root>/<notebook-stem>/<hash12>`` for these (runner-complete) parameters."""
    return runs_root(out_root) / Path(notebook).stem / params_hash(parameters)


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------

@dataclass
class RunSpec:
    """A notebook with checked parameters and where its run goes."""

    notebook: str
    parameters: dict[str, Any]
    data_dir: str
    out_root: str
    kernel_name: str = KERNEL_NAME
    timeout: float | None = None

    @property
    def full_parameters(self) -> dict[str, Any]:
        """What the hash is built from: the user parameters plus ``data_dir`` (output_dir is derived)."""
        return {**self.parameters, "data_dir": self.data_dir}

    @property
    def run_dir(self) -> Path:
        return run_dir_for(self.notebook, self.full_parameters, self.out_root)

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem


@dataclass
class RunResult:
    """What one run did. ``status`` is ``ok``, ``failed`` or ``cached`` (skipped by ``resume``)."""

    notebook: str
    parameters: dict[str, Any]
    run_dir: str
    status: str
    seconds: float = 0.0
    error: str = ""
    cell: int | None = None  # 1-based index in the source notebook
    executed: str = ""  # path of the executed (or partial) notebook

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "cached")

    @property
    def has_record(self) -> bool:
        from research.records import RECORD_FILE

        return self.ok and (Path(self.run_dir) / RECORD_FILE).exists()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def ensure_kernel(kernel_name: str = KERNEL_NAME) -> None:
    """Make sure the Jupyter kernel exists; install ipykernel's ``python3`` spec when it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel_name)
        return
    except NoSuchKernel:
        if kernel_name != KERNEL_NAME:
            raise NotebookError(
                f"Jupyter kernel {kernel_name!r} is not installed (see `jupyter kernelspec list`); "
                f"install it or use --kernel {KERNEL_NAME}") from None
    from ipykernel.kernelspec import install

    install(user=True, kernel_name=KERNEL_NAME)


def is_result(run_dir) -> bool:
    """True when ``run_dir`` holds a finished run: status ``ok`` and a ``record.json``."""
    from research.records import RECORD_FILE

    d = Path(run_dir)
    return read_status(d).get("status") == "ok" and (d / RECORD_FILE).exists()


def read_status(run_dir) -> dict:
    """The run's ``status.json`` (``{}`` when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _source_cell(executed_nb: Path, cell_index: int) -> int:
    """1-based cell number in the source notebook for ``cell_index`` of the executed one."""
    try:
        import nbformat

        nb = nbformat.read(executed_nb, as_version=4)
        inj = next(i for i, c in enumerate(nb.cells) if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    except (StopIteration, Exception):
        return cell_index + 1
    return cell_index + (0 if cell_index > inj else 1)


def make_spec(notebook, parameters: dict[str, Any] | None = None, *, data_dir=None, out_root=None,
              kernel_name: str = KERNEL_NAME, from_strings: bool = False, timeout: float | None = None) -> RunSpec:
    """Check parameters and resolve paths into a :class:`RunSpec` (raises NotebookError on bad input)."""
    nb = Path(notebook).expanduser().resolve()
    params = check_parameters(nb, parameters, from_strings=from_strings)
    return RunSpec(notebook=str(nb), parameters=params, data_dir=str(paths.data_dir(data_dir)),
                   out_root=str(runs_root(out_root)), kernel_name=kernel_name, timeout=timeout)


def execute(spec: RunSpec, *, log_output: bool = False, progress_bar: bool = False, capture: bool = False) -> RunResult:
    """Run one checked :class:`RunSpec`; never raises for a failing cell (see ``RunResult.status``).

    ``capture=True`` sends this process's stdout/stderr, and so the kernel's, to ``run.log`` in the
    run directory (only safe in a single-threaded worker process: file descriptors are per process).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from research.records import RECORD_FILE

    rd = spec.run_dir
    if rd.exists():  # a rerun starts clean: stale records must not survive a failure
        shutil.rmtree(rd)
    rd.mkdir(parents=True)
    injected = {**spec.parameters, "data_dir": spec.data_dir, "output_dir": str(rd)}
    _write_json(rd / PARAMS_FILE, {"notebook": spec.notebook, "parameters": injected, "hash": rd.name})
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    partial = rd / EXECUTING
    result = RunResult(notebook=spec.notebook, parameters=spec.parameters, run_dir=str(rd), status="failed")
    try:
        ensure_kernel(spec.kernel_name)
        with _captured(rd / RUN_LOG) if capture else contextlib.nullcontext():
            pm.execute_notebook(
                spec.notebook, str(partial), parameters=injected, kernel_name=spec.kernel_name,
                progress_bar=progress_bar, log_output=log_output, cwd=str(rd), execution_timeout=spec.timeout,
                # every cell has run and its outputs are saved: killing the kernel loses nothing and
                # saves the graceful-shutdown wait (~0.3 s a run)
                shutdown_kernel="immediate",
            )
        os.replace(partial, rd / EXECUTED)
        result.status, result.executed = "ok", str(rd / EXECUTED)
    except PapermillExecutionError as exc:
        result.cell = _source_cell(partial, exc.cell_index) if partial.exists() else exc.cell_index + 1
        result.error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, bad notebook, timeout...: still a failed run, not a crash
        result.error = f"{type(exc).__name__}: {exc}".strip()
    result.seconds = round(time.perf_counter() - t0, 3)
    if result.status == "failed":
        if partial.exists():
            os.replace(partial, rd / EXECUTED_FAILED)
            result.executed = str(rd / EXECUTED_FAILED)
        if (rd / RECORD_FILE).exists():
            os.replace(rd / RECORD_FILE, rd / "record.FAILED.json")
        (rd / FAILED_MARKER).write_text(describe_failure(result) + "\n")
    _write_json(rd / STATUS_FILE, {
        "status": result.status, "notebook": spec.notebook, "parameters": injected, "started": started,
        "seconds": result.seconds, "error": result.error, "cell": result.cell, "executed": result.executed,
    })
    return result


@contextlib.contextmanager
def _captured(path: Path):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def describe_failure(r: RunResult) -> str:
    """One paragraph naming the notebook, the cell, the error and where to look."""
    where = f"cell {r.cell}" if r.cell is not None else "before any cell ran"
    look = f"\n  partial notebook: {r.executed}" if r.executed else ""
    return (f"{Path(r.notebook).name} failed in {where}: {r.error}\n"
            f"  output: {r.run_dir}{look}\n"
            f"  open the notebook in JupyterLab to see the traceback, fix it and rerun")


def run_notebook(notebook, parameters: dict[str, Any] | None = None, *, data_dir=None, out_root=None,
                 kernel_name: str = KERNEL_NAME, from_strings: bool = False, timeout: float | None = None,
                 log_output: bool = False, progress_bar: bool = False, raise_on_error: bool = True) -> RunResult:
    """Check parameters, run ``notebook`` and return its :class:`RunResult`.

    Parameters
    ----------
    notebook : path
        The ``.ipynb`` to run.
    parameters : dict, optional
        Values for names of its parameters cell (strings parsed by type with ``from_strings=True``).
    data_dir, out_root : path, optional
        Data directory injected as ``data_dir``; root of run directories (default ``reports/runs``).

    Raises
    ------
    NotebookError
        Bad parameters (nothing is run), or, with ``raise_on_error``, a failed run: the message names
        the notebook, the cell, the error and the output path.
    """
    spec = make_spec(notebook, parameters, data_dir=data_dir, out_root=out_root, kernel_name=kernel_name,
                     from_strings=from_strings, timeout=timeout)
    result = execute(spec, log_output=log_output, progress_bar=progress_bar)
    if raise_on_error and result.status == "failed":
        raise NotebookError(describe_failure(result))
    return result


# --------------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------------

_GRID_KEYS = {"data_dir", "out", "workers", "runs"}
_ENTRY_KEYS = {"notebook", "notebooks", "parameters", "product", "zip"}


@dataclass
class Grid:
    """An expanded grid: the runs plus file-level settings (``None`` = not set in the file)."""

    specs: list[RunSpec]
    workers: int | None = None
    source: str = ""


def find_notebook(name: str, base: Path | None = None, notebooks_dir=None) -> Path:
    """Resolve a notebook given as a path (relative to ``base`` or cwd), a stem, or a number prefix."""
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    cand = Path(name).expanduser()
    tries = [cand] if cand.is_absolute() else [*([base / cand] if base else []), Path.cwd() / cand]
    for c in tries:
        if c.is_file():
            return c.resolve()
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


def load_grid(path, *, data_dir=None, out_root=None, notebooks_dir=None, kernel_name: str = KERNEL_NAME) -> Grid:
    """Read and expand a grid YAML file, checking every run's parameters before anything runs.

    ``data_dir``/``out_root`` override the file's ``data_dir``/``out``. Paths in the file are
    relative to the file. Duplicate runs (same notebook and parameters) are kept once.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise NotebookError(f"grid file {path} does not exist")
    try:
        doc = yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NotebookError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise NotebookError(f"{path}: a grid file is a mapping with a non-empty 'runs' list (see research.batch)")
    unknown = set(doc) - _GRID_KEYS
    if unknown:
        raise NotebookError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    base = path.parent
    dd = data_dir if data_dir is not None else (base / doc["data_dir"] if doc.get("data_dir") else None)
    out = out_root if out_root is not None else (base / doc["out"] if doc.get("out") else None)
    specs: list[RunSpec] = []
    seen: set[Path] = set()
    for i, entry in enumerate(doc["runs"], 1):
        where = f"{path.name} runs[{i}]"
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
                s = RunSpec(str(nb), checked, str(paths.data_dir(dd)), str(runs_root(out)), kernel_name)
                if s.run_dir not in seen:
                    seen.add(s.run_dir)
                    specs.append(s)
    workers = doc.get("workers")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise NotebookError(f"{path}: workers must be a positive integer, got {workers!r}")
    return Grid(specs, workers, str(path))


def _run_spec(spec: RunSpec, capture: bool = False) -> RunResult:
    """Run one spec and never raise (the runner itself breaking is reported as a failed run)."""
    try:
        return execute(spec, capture=capture)
    except Exception as exc:  # disk full, permissions...: report it, keep the other runs going
        return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                         error=f"runner error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


def _worker_main() -> None:
    """``python -m research.batch``: a grid worker reading one RunSpec JSON per stdin line.

    It answers one RunResult JSON line per run on its original stdout; anything else written to
    stdout (kernel chatter) is sent to stderr so it cannot corrupt the answers.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        if not line.strip():
            continue
        result = _run_spec(RunSpec(**json.loads(line)), capture=True)
        proto.write(json.dumps(result.to_dict(), default=str) + "\n")


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


def run_grid(specs: Sequence[RunSpec], *, workers: int = 2, executor: str = "process", scheduler: str | None = None,
             resume: bool = False, progress: bool = True, console=None,
             on_result: Callable[[RunResult], None] | None = None) -> GridResult:
    """Run ``specs`` in parallel; a failure does not stop the others.

    Parameters
    ----------
    workers : int
        Worker processes for ``executor="process"`` (1 runs in this process).
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
    if workers < 1:
        raise NotebookError(f"workers must be >= 1, got {workers}")
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
        elif executor == "dask":
            _run_dask(specs, todo, scheduler, done)
        elif workers == 1 or len(todo) == 1:
            for i in todo:
                done(i, _run_spec(specs[i]))
        else:
            _run_processes(specs, todo, workers, done)
    return GridResult([r for r in results if r is not None], round(time.perf_counter() - t0, 3))


def _run_in_subprocess(spec: RunSpec) -> RunResult:
    """Run one spec in a fresh ``python -m research.batch`` process (the dask task body).

    nbclient is not safe to drive from several threads of one process (they share an event loop),
    and dask workers run tasks on threads, so each run gets its own process.
    """
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "research.batch"], input=json.dumps(dataclasses.asdict(spec), default=str) + "\n",
                          stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        return RunResult(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                         error=f"worker process died (exit code {proc.returncode})")


def _worker_env(workers: int) -> dict[str, str]:
    # Kernels inherit the environment: keep each run's thread pools to its share of the cores so
    # parallel runs do not oversubscribe the machine.
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


def _run_processes(specs, todo, workers, done) -> None:
    """Feed runs to ``workers`` long-lived ``python -m research.batch`` processes.

    Plain subprocesses rather than multiprocessing: they never re-import the caller's ``__main__``
    (scripts without a main guard work) and never inherit the parent's threads.
    """
    import queue
    import subprocess
    import threading

    n = min(workers, len(todo))
    jobs: queue.Queue[int] = queue.Queue()
    for i in todo:
        jobs.put(i)
    env = _worker_env(n)
    lock = threading.Lock()

    def start():
        return subprocess.Popen([sys.executable, "-m", "research.batch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, text=True, bufsize=1)

    def feed():
        proc = None
        try:
            while True:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                if proc is None or proc.poll() is not None:
                    proc = start()
                spec = specs[i]
                try:
                    proc.stdin.write(json.dumps(dataclasses.asdict(spec), default=str) + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                    r = RunResult(**json.loads(line)) if line else None
                except (OSError, ValueError, TypeError):
                    r = None
                if r is None:  # the worker died mid-run: report it, the next run gets a new worker
                    code = proc.wait()
                    r = RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                                  error=f"worker process died (exit code {code})")
                with lock:
                    done(i, r)
        finally:
            if proc is not None and proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    threads = [threading.Thread(target=feed, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_dask(specs, todo, scheduler, done) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise NotebookError("--executor dask needs dask.distributed: pip install 'treadmill-research[dask]'") from exc
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise NotebookError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}; is the cluster running?") from exc
    try:
        futs = {client.submit(_run_in_subprocess, specs[i], pure=False, key=f"run-{specs[i].stem}-{specs[i].run_dir.name}-{uuid.uuid4().hex[:6]}"): i
                for i in todo}
        for fut in as_completed(list(futs), loop=client.loop):
            i = futs[fut]
            try:
                r = fut.result()
            except BaseException as exc:
                s = specs[i]
                r = RunResult(s.notebook, s.parameters, str(s.run_dir), "failed",
                              error=f"dask task failed: {type(exc).__name__}: {exc}")
            done(i, r)
    finally:
        client.close()


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (values stay strings; typed later per notebook)."""
    out: dict[str, str] = {}
    for item in items or ():
        if "=" not in item:
            raise NotebookError(f"parameter {item!r} must look like key=value")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise NotebookError(f"parameter name {k!r} (in {item!r}) is not a Python identifier")
        out[k] = v
    return out


if __name__ == "__main__":  # pragma: no cover - grid worker process
    _worker_main()
