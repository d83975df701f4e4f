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
    timeout: 1800                  # seconds one cell may run, else its run fails (--timeout wins; default: no limit)
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
A grid expanding to more than :data:`~research.batch.grid.MAX_RUNS` runs, a YAML alias, or a
notebook path outside the grid's folder is refused before anything runs (``--max-runs`` raises the
cap). Local workers are long-lived ``python -m research.batch`` processes fed one run at a time; each
keeps one kernel for its runs (:mod:`research.batch.kernels`: reset before every run, replaced after a
failed run), so the kernel start and the imports are paid once per worker, not once per run; each
run's kernel output goes to ``run.log`` in its run directory. With several workers, each worker and
its kernel get their share of the CPUs, as thread caps (``c // n`` threads) and, on Linux, as CPU
affinity (:func:`~research.batch.executors.cpu_shares`; ``TREADMILL_PIN_WORKERS=0`` lets the OS
place them). A single run (``research run``) gets a
fresh kernel. :class:`LocalWorkers` keeps such workers, and their warm kernels, across several
grids of one session (``run_grid(specs, workers=pool)``). On a dask cluster every run is a task fed to a long-lived worker process of the dask
worker thread (with its kept kernel), so the workers must see the same file system paths
(notebooks, data, output root) and have this package installed.
"""
from __future__ import annotations

from .execute import (EXECUTED, EXECUTED_FAILED, EXECUTING, FAILED_MARKER, KERNEL_NAME, PARAMS_FILE, RUN_LOG,
                      STATUS_FILE, RunResult, RunSpec, describe_failure, ensure_kernel, execute, is_result, make_spec,
                      params_hash, read_status, run_dir_for, run_notebook, runs_root)
from .executors import DASK_CONNECT_TIMEOUT
from .pool import LocalWorkers
from .grid import MAX_RUNS, Grid, GridResult, entry_size, expand_entry, find_notebook, load_grid, numbered_notebooks, run_grid
from .ranges import RANGES, Range
from .parameters import (DATE_PARAMS, RUNNER_PARAMS, Param, check_parameters, check_span, parameter_spec, parse_assignments,
                         parse_value, yaml_load)

__all__ = [
    "KERNEL_NAME", "RUNNER_PARAMS", "DATE_PARAMS", "STATUS_FILE", "PARAMS_FILE", "EXECUTED", "EXECUTED_FAILED",
    "EXECUTING", "FAILED_MARKER", "RUN_LOG", "RANGES", "Range", "DASK_CONNECT_TIMEOUT", "MAX_RUNS",
    "Param", "parameter_spec", "parse_value", "check_parameters", "check_span", "parse_assignments", "yaml_load",
    "params_hash", "runs_root", "run_dir_for", "RunSpec", "RunResult", "ensure_kernel", "is_result", "read_status",
    "make_spec", "execute", "describe_failure", "run_notebook",
    "Grid", "GridResult", "find_notebook", "numbered_notebooks", "entry_size", "expand_entry", "load_grid", "run_grid",
    "LocalWorkers",
]
