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

from .build import DEFAULT_NAME, SYNTHETIC_DIR, Entry, Report, build_report, plan_runs, select_notebooks
from .context import _git, read_manifest  # noqa: F401 - _git: tests stub it

__all__ = ["DEFAULT_NAME", "SYNTHETIC_DIR", "Entry", "Report", "build_report", "plan_runs", "select_notebooks",
           "read_manifest"]
