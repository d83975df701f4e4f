"""The committed notebooks open clean in JupyterLab: nothing it normalises on load is missing.

JupyterLab marks a notebook modified right after opening when it has to fill in what a kernel
reports: ``metadata.kernelspec`` (name, display name, language of the kernel it starts),
``metadata.language_info`` (the kernel's full info reply) and, for nbformat 4.5, a cell id on every
cell. The committed notebooks carry exactly that (``research.lab.normalise_notebook`` writes it), so
opening one changes nothing; the browser test opens one in a real JupyterLab and checks that its tab
is not marked dirty.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _kernel_metadata() -> tuple[dict, dict]:
    """(kernelspec, language_info) as JupyterLab writes them for the installed ``python3`` kernel."""
    from research import lab

    meta = lab.kernel_metadata()
    return meta["kernelspec"], meta["language_info"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_what_jupyterlab_adds(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5), "nbformat 4.5 or later (cell ids)"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(isinstance(i, str) and _CELL_ID.match(i) for i in ids), f"every cell needs a valid id: {ids}"
    assert len(set(ids)) == len(ids), "cell ids must be unique"
    kernelspec, language_info = _kernel_metadata()
    assert nb["metadata"].get("kernelspec") == kernelspec
    # the Python patch version differs between machines; everything else must match the kernel's reply
    info = dict(nb["metadata"].get("language_info", {}))
    assert info.pop("version", "").startswith("3."), "language_info.version is the kernel's Python version"
    language_info.pop("version")
    assert info == language_info


def test_normalise_notebook_adds_what_jupyterlab_would(tmp_path):
    """``research.lab.normalise_notebook`` (for a notebook edited outside JupyterLab or after a merge)."""
    from research import lab

    p = tmp_path / "a.ipynb"
    p.write_text(json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                                        "source": "x = 1"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}))
    assert lab.normalise_notebook(p) is True
    nb = json.loads(p.read_text())
    assert nb["nbformat_minor"] == 5 and _CELL_ID.match(nb["cells"][0]["id"])
    assert (nb["metadata"]["kernelspec"], nb["metadata"]["language_info"]) == _kernel_metadata()
    assert lab.normalise_notebook(p) is False  # idempotent


def test_committed_notebooks_are_stored_as_jupyter_writes_them():
    """nbformat's own serialisation (1-space indent, sorted keys, trailing newline): a save rewrites nothing."""
    import nbformat

    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        assert nbformat.writes(nb) + "\n" == text or nbformat.writes(nb) == text, f"{path.name} is not in nbformat's layout"


def test_output_dir_defaults_resolve_at_the_project_root(monkeypatch):
    """A kernel started in notebooks/ (JupyterLab) writes its record to <project>/reports/..., an ignored
    folder: ``records.write_result`` resolves a relative output_dir with ``paths.resolve_in_project``."""
    import inspect

    from research import paths, records

    monkeypatch.chdir(PROJECT_ROOT / "notebooks")
    for path in NOTEBOOKS:
        params = "".join(next(c for c in json.loads(path.read_text())["cells"]
                              if "parameters" in c["metadata"].get("tags", []))["source"])
        default = re.search(r'^output_dir = "([^"]+)"', params, re.M).group(1)
        assert paths.resolve_in_project(default).is_relative_to(PROJECT_ROOT / "reports"), (path.name, default)
    assert "paths.resolve_in_project(output_dir)" in inspect.getsource(records)
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "/reports/" in ignored or "reports/" in ignored


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_opens_unmodified_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_jupyterlab_e2e import _wait_for_idle_kernel

    url, token, root = lab
    name = "20-flush-vs-exodus.ipynb"
    shutil.copy(PROJECT_ROOT / "notebooks" / name, root / "notebooks" / name)
    before = (root / "notebooks" / name).read_bytes()
    browser.get(f"{url}/lab/tree/notebooks/{name}?token={token}")
    wait = WebDriverWait(browser, 90)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-Cell")))
    _wait_for_idle_kernel(url, token, name)
    time.sleep(3)  # the kernel's info reply reaches the document model after the session is idle
    dirty = browser.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.jp-mod-dirty")
    assert not dirty, "JupyterLab marked the freshly opened notebook modified (metadata it normalises is missing)"
    assert (root / "notebooks" / name).read_bytes() == before


# the JupyterLab server and headless browser of the chart test
from tests.test_jupyterlab_e2e import browser, chromium, lab  # noqa: E402,F401
