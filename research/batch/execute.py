"""One run: a checked :class:`RunSpec` executed with papermill into its run directory."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research import paths
from research.errors import NotebookError
from research.fileio import write_json

from .parameters import check_parameters

KERNEL_NAME = "python3"
STATUS_FILE = "status.json"
PARAMS_FILE = "params.json"
EXECUTED = "executed.ipynb"
EXECUTED_FAILED = "executed.FAILED.ipynb"
EXECUTING = "executing.ipynb"
FAILED_MARKER = "FAILED"
RUN_LOG = "run.log"


class _RedundantPapermillWarnings(logging.Filter):
    """Drop papermill's parameter-cell warnings: :mod:`.parameters` reads the cell itself (papermill's line
    regex gives up on comments holding "/" or ">=") and has already refused unknown names."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Unable to parse line") or msg.startswith("Passed unknown parameter"))


for _name in ("papermill", "papermill.translators"):
    logging.getLogger(_name).addFilter(_RedundantPapermillWarnings())


def _kernel_manager_class():
    """A KernelManager that talks to its kernel over IPC (Unix sockets) where the OS has them.

    Over TCP, ipykernel warns at every start that the channel is unencrypted; the kernel is local,
    so IPC needs no encryption and opens no port. Windows keeps TCP.
    """
    if os.name != "posix":
        return None
    from jupyter_client.manager import KernelManager
    from traitlets import default

    class IPCKernelManager(KernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            # jupyter_client's default socket prefix can be "kernel-ipc" in the working directory,
            # shared by every kernel started there: two grid workers then talk to each other's
            # kernels ("Invalid Signature"). One private prefix per kernel.
            import tempfile
            import uuid

            return os.path.join(tempfile.gettempdir(), f"treadmill-kernel-{uuid.uuid4().hex}-ipc")

    return IPCKernelManager

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


def _source_cell(executed_nb: Path, cell_index: int) -> int:
    """1-based cell number in the source notebook for ``cell_index`` of the executed one."""
    try:
        from research._imports import jsonschema_without_iri

        jsonschema_without_iri()
        import nbformat

        nb = nbformat.read(executed_nb, as_version=4)
        inj = next(i for i, c in enumerate(nb.cells) if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    except (StopIteration, Exception):
        return cell_index + 1
    return cell_index + (0 if cell_index > inj else 1)


def _failed_cell(executed_nb: Path) -> int | None:
    """1-based source cell number of the cell the executed notebook marks failed (None: none is)."""
    try:
        import nbformat

        nb = nbformat.read(executed_nb, as_version=4)
    except Exception:  # unreadable partial notebook: the error message still names the failure
        return None
    failed = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("status") == "failed"]
    if not failed:
        return None
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    # as _source_cell, from the notebook already read: papermill's injected cell is not in the source
    return failed[0] + (0 if injected and failed[0] > injected[0] else 1)


def make_spec(notebook, parameters: dict[str, Any] | None = None, *, data_dir=None, out_root=None,
              kernel_name: str = KERNEL_NAME, from_strings: bool = False, timeout: float | None = None) -> RunSpec:
    """Check parameters and resolve paths into a :class:`RunSpec` (raises NotebookError on bad input)."""
    nb = Path(notebook).expanduser().resolve()
    params = check_parameters(nb, parameters, from_strings=from_strings)
    return RunSpec(notebook=str(nb), parameters=params, data_dir=str(paths.data_dir(data_dir)),
                   out_root=str(runs_root(out_root)), kernel_name=kernel_name, timeout=timeout)


def execute(spec: RunSpec, *, log_output: bool = False, progress_bar: bool = False, capture: bool = False,
            kernel=None) -> RunResult:
    """Run one checked :class:`RunSpec`; never raises for a failing cell (see ``RunResult.status``).

    ``capture=True`` sends this process's stdout/stderr, and so the kernel's, to ``run.log`` in the
    run directory (only safe in a single-threaded worker process: file descriptors are per process).
    ``kernel``, a :class:`research.batch.kernels.KeptKernel`, runs the notebook on that kept kernel
    after a reset instead of starting a fresh one (a failed run discards it).
    """
    from research._imports import jsonschema_without_iri

    jsonschema_without_iri()
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from research.records import RECORD_FILE

    rd = spec.run_dir
    if rd.exists():  # a rerun starts clean: stale records must not survive a failure
        shutil.rmtree(rd)
    rd.mkdir(parents=True)
    injected = {**spec.parameters, "data_dir": spec.data_dir, "output_dir": str(rd)}
    write_json(rd / PARAMS_FILE, {"notebook": spec.notebook, "parameters": injected, "hash": rd.name})
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    partial = rd / EXECUTING
    with open(rd / RUN_LOG, "w", encoding="utf-8") as log:
        log.write(f"{started} {Path(spec.notebook).name} {json.dumps(spec.parameters, default=str)}\n")
    result = RunResult(notebook=spec.notebook, parameters=spec.parameters, run_dir=str(rd), status="failed")
    figures_seconds = 0.0
    try:
        ensure_kernel(spec.kernel_name)
        with contextlib.ExitStack() as stack:
            if capture:
                stack.enter_context(_captured(rd / RUN_LOG))
                streams = {}
            else:  # the cells' stdout and stderr, as they run
                log = stack.enter_context(open(rd / RUN_LOG, "a", encoding="utf-8"))
                streams = {"stdout_file": log, "stderr_file": log}
            if kernel is not None:
                from .kept_engine import ENGINE

                kernel_log = stack.enter_context(open(rd / RUN_LOG, "a", encoding="utf-8"))
                engine = {"engine_name": ENGINE, "km": kernel.manager(kernel_log), "kept_kc": kernel.client(),
                          "preamble": kernel.preamble(rd)}
            else:
                km = _kernel_manager_class()
                engine = {"kernel_manager_class": km} if km else {}
            pm.execute_notebook(
                spec.notebook, str(partial), parameters=injected, kernel_name=spec.kernel_name,
                progress_bar=progress_bar, log_output=log_output, cwd=str(rd), execution_timeout=spec.timeout,
                # every cell has run and its outputs are saved: killing the kernel loses nothing and
                # saves the graceful-shutdown wait (~0.3 s a run)
                shutdown_kernel="immediate", **engine, **streams,
            )
        t_fig = time.perf_counter()
        figures = complete_figures(rd)
        figures_seconds = round(time.perf_counter() - t_fig, 3) if figures else 0.0
        os.replace(partial, rd / EXECUTED)
        result.status, result.executed = "ok", str(rd / EXECUTED)
    except PapermillExecutionError as exc:
        result.cell = _source_cell(partial, exc.cell_index) if partial.exists() else exc.cell_index + 1
        result.error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, bad notebook, timeout...: still a failed run, not a crash
        result.error = f"{type(exc).__name__}: {exc}".strip()
        result.cell = _failed_cell(partial) if partial.exists() else None
    finally:
        if kernel is not None:
            kernel.release(ok=result.status == "ok")
    result.seconds = round(time.perf_counter() - t0, 3)
    if result.status == "failed":
        if partial.exists():
            os.replace(partial, rd / EXECUTED_FAILED)
            result.executed = str(rd / EXECUTED_FAILED)
        if (rd / RECORD_FILE).exists():
            os.replace(rd / RECORD_FILE, rd / "record.FAILED.json")
        (rd / FAILED_MARKER).write_text(describe_failure(result) + "\n")
    with open(rd / RUN_LOG, "a", encoding="utf-8") as log:
        log.write(f"{result.status} after {result.seconds:.1f} s" + (f": {describe_failure(result)}" if result.error else "") + "\n")
    write_json(rd / STATUS_FILE, {
        "status": result.status, "notebook": spec.notebook, "parameters": injected, "started": started,
        "seconds": result.seconds, "error": result.error, "cell": result.cell, "executed": result.executed,
        "figures_seconds": figures_seconds,
    })
    return result


def complete_figures(run_dir) -> int:
    """Render the SVG of every recorded figure the notebook stored only as a Vega-Lite spec.

    Worker processes set :data:`research.plots.DEFER_ENV`, so kernels skip vl-convert (whose
    JavaScript engine takes about a second to start) and the long-lived worker renders here, with
    one engine for all its runs. Returns how many figures were rendered (0: nothing deferred).
    """
    from research.records import RECORD_FILE

    path = Path(run_dir) / RECORD_FILE
    if not path.exists():
        return 0
    rec = json.loads(path.read_text())
    rendered = 0
    for files in (rec.get("figures") or {}).values():
        specs = [f for f in files if f.endswith(".vl.json")]
        if not specs or any(f.endswith(".svg") for f in files):
            continue
        from research.plots import render  # lazy: altair and vl-convert load once per worker, on first use

        stem = specs[0][: -len(".vl.json")]
        render(Path(run_dir) / stem, ("svg",))
        files.append(stem + ".svg")
        rendered += 1
    if rendered:
        write_json(path, rec)
    return rendered


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
    where = f" in cell {r.cell}" if r.cell is not None else ""  # None: no cell raised (a dead kernel on a fresh one...)
    look = f"\n  partial notebook: {r.executed}" if r.executed else ""
    if r.error.startswith("CellTimeoutError"):
        todo = "make the cell faster, or allow it longer (--timeout, or timeout: in a grid file), and rerun"
    elif r.error.startswith("DeadKernelError"):
        todo = "the kernel died (out of memory? a crash?): see run.log in the output folder, then rerun"
    else:
        todo = "open the notebook in JupyterLab to see the traceback, fix it and rerun"
    return (f"{Path(r.notebook).name} failed{where}: {r.error}\n"
            f"  output: {r.run_dir}{look}\n"
            f"  {todo}")


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


