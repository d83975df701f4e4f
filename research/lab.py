"""JupyterLab on the project: the right folder and data, offline, and notebooks that stay clean.

``research lab`` starts JupyterLab with its root at the project checkout and ``RESEARCH_DATA_DIR``
set, so every kernel reads the same lake as the CLI. The tracked notebooks must stay committed
without outputs, so the server strips outputs on save (a contents-manager pre-save hook) and first
keeps the full notebook, outputs included, under ``reports/lab/`` (git-ignored).

Why a strip-on-save hook rather than jupytext pairing: papermill, the batch runner and the report
execute the ``.ipynb`` files themselves, so they stay the one source; a text pair would double every
notebook and need jupytext wherever the project runs. The cost is that a notebook reopened from
disk shows no outputs: they are in the ``reports/lab/`` copy.
"""
from __future__ import annotations

import copy
import os
import uuid
import sys
from pathlib import Path
from typing import Sequence

from . import paths
from .fileio import write_json

__all__ = ["LAB_OUTPUTS", "pre_save_hook", "strip_outputs", "server_args", "launch", "kernel_metadata",
           "normalise_notebook"]

#: Where full notebooks (with outputs) land when saved in JupyterLab, below the reports folder.
LAB_OUTPUTS = "lab"


def strip_outputs(nb: dict) -> dict:
    """Remove outputs and execution counts from a notebook dict, in place; return it."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def kernel_metadata(kernel_name: str = "python3") -> dict:
    """``kernelspec`` and ``language_info`` as JupyterLab writes them once the kernel has started.

    A notebook whose metadata differs is marked modified as soon as it opens (the tab shows a dot).
    """
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    ks = KernelSpecManager().get_kernel_spec(kernel_name)
    return {"kernelspec": {"display_name": ks.display_name, "language": ks.language, "name": kernel_name},
            "language_info": dict(IPythonKernel.language_info)}


def normalise_notebook(path) -> bool:
    """Give a tracked notebook what JupyterLab adds on load (kernel metadata, cell ids); True if it changed.

    Run after editing a notebook outside JupyterLab (or resolving a merge) so opening it changes nothing.
    """
    from research._imports import jsonschema_without_iri

    jsonschema_without_iri()
    import nbformat

    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.metadata.update(kernel_metadata())
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    for cell in nb.cells:  # nbformat 4.5: every cell has an id (JupyterLab would add them)
        if not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def pre_save_hook(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """Jupyter pre-save hook: keep the full notebook under ``reports/lab/``, save it without outputs.

    Only notebooks below the root's ``notebooks/`` folder (the tracked ones) are stripped; scratch
    notebooks elsewhere keep their outputs.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    rel = Path(path.lstrip("/"))
    if not rel.parts or rel.parts[0] != "notebooks":
        return
    root = Path(getattr(contents_manager, "root_dir", None) or paths.project_root() or Path.cwd())
    full = copy.deepcopy(model["content"])
    if any(c.get("outputs") for c in full.get("cells", []) if c.get("cell_type") == "code"):
        write_json(paths.reports_dir(os.environ.get(paths.REPORTS_DIR_ENV) or root / "reports")
                   / LAB_OUTPUTS / rel, full, indent=1)
    strip_outputs(model["content"])


def server_args(root: Path, *, ip: str = "127.0.0.1", port: int | None = None, token: str | None = None,
                open_browser: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """The ``python -m jupyterlab`` command line for a lab on ``root``: offline, strip-on-save, root handled."""
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}",
            "--ContentsManager.pre_save_hook=research.lab.pre_save_hook",
            # offline: never fetch news or check for updates (the machine may have no internet)
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly"]
    if port is not None:
        args += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if token is not None:
        args.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        args.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # containers run as root; JupyterLab refuses without this
    return [*args, *extra]


def launch(*, data_dir=None, port: int | None = None, open_browser: bool = False, extra: Sequence[str] = ()) -> int:
    """Start JupyterLab on the project (blocks until it exits); return its exit code."""
    import subprocess

    root = paths.project_root() or paths.PROJECT_ROOT
    env = {**os.environ, paths.DATA_DIR_ENV: str(paths.data_dir(data_dir)),
           paths.REPORTS_DIR_ENV: str(paths.reports_dir())}
    return subprocess.call(server_args(root, port=port, open_browser=open_browser, extra=extra), cwd=root, env=env)
