"""Path settings, in one place.

The data directory is resolved as: an explicit argument (the CLI's ``--data-dir``), else the
environment variable ``RESEARCH_DATA_DIR``, else ``<project>/data`` when the working directory is
inside a Treadmill checkout (found by walking up, so a JupyterLab kernel started in ``notebooks/``
reads the same lake as the CLI at the project root), else ``./data``. Reports resolve the same way. It is created on first write, never on
read. Inside it ``raw/`` keeps downloaded files untouched, ``lake/`` holds the canonical Parquet
tables and ``manifest.jsonl`` records every download.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RESEARCH_DATA_DIR"
REPORTS_DIR_ENV = "RESEARCH_REPORTS_DIR"

#: The project checkout (``research/`` lives directly below it).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Named SQL queries, ``queries/*.sql``.
QUERIES_DIR = PROJECT_ROOT / "queries"
#: Parameterised notebooks, ``notebooks/NN-name.ipynb``.
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The Treadmill checkout that holds ``start`` (default: the working directory), or None.

    A checkout is a folder with ``pyproject.toml``, ``research/`` and ``notebooks/``; the nearest one
    walking up wins.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "research").is_dir() and (d / "notebooks").is_dir():
            return d
    return None


def _default_base() -> Path:
    return project_root() or Path.cwd()


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the data directory (not created here)."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser().resolve() if env else (_default_base() / "data").resolve()


def raw_dir(path: str | os.PathLike | None = None) -> Path:
    """Downloaded files, byte for byte as served (immutable)."""
    return data_dir(path) / "raw"


def lake_dir(path: str | os.PathLike | None = None) -> Path:
    """Canonical Parquet tables (derived; rebuildable from ``raw/``)."""
    return data_dir(path) / "lake"


def manifest_path(path: str | os.PathLike | None = None) -> Path:
    """The download manifest (one JSON record per line)."""
    return data_dir(path) / "manifest.jsonl"


def reports_dir(path: str | os.PathLike | None = None) -> Path:
    """Where reports and exported figures go: argument, else ``RESEARCH_REPORTS_DIR``, else
    ``<project>/reports`` (inside a checkout) or ``./reports``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(REPORTS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else (_default_base() / "reports").resolve()


def resolve_in_project(path: str | os.PathLike) -> Path:
    """A relative path as the project root sees it (inside a checkout), else as the working directory does.

    Notebook parameters such as ``output_dir = "reports/runs/manual/..."`` mean the same folder
    whether the kernel runs at the project root (papermill) or in ``notebooks/`` (JupyterLab).
    """
    p = Path(path).expanduser()
    return p.resolve() if p.is_absolute() else (_default_base() / p).resolve()
