"""Path settings, in one place.

The data directory is resolved as: an explicit argument (the CLI's ``--data-dir``), else the
environment variable ``RESEARCH_DATA_DIR``, else ``./data``. It is created on first write, never on
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


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the data directory (not created here)."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "data").resolve()


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
    """Where reports and exported figures go: argument, else ``RESEARCH_REPORTS_DIR``, else ``./reports``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(REPORTS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "reports").resolve()
