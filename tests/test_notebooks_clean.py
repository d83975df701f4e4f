"""The committed notebooks open clean in JupyterLab: nothing it normalises on load is missing.

JupyterLab marks a notebook modified right after opening when it has to fill in what a kernel
reports: ``metadata.kernelspec`` (name, display name, language of the kernel it starts),
``metadata.language_info`` (the kernel's full info reply) and, for nbformat 4.5, a cell id on every
cell. The committed notebooks carry exactly that, so opening one changes nothing; the browser test
opens one in a real JupyterLab and checks that its tab is not marked dirty.
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
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    ks = KernelSpecManager().get_kernel_spec("python3")
    return ({"display_name": ks.display_name, "language": ks.language, "name": "python3"},
            dict(IPythonKernel.language_info))


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


def test_committed_notebooks_are_stored_as_jupyter_writes_them():
    """nbformat's own serialisation (1-space indent, sorted keys, trailing newline): a save rewrites nothing."""
    import nbformat

    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        assert nbformat.writes(nb) + "\n" == text or nbformat.writes(nb) == text, f"{path.name} is not in nbformat's layout"


def test_output_dir_defaults_resolve_at_the_project_root(tmp_path, monkeypatch):
    """A kernel started in notebooks/ (JupyterLab) writes to <project>/reports/..., an ignored folder."""
    from research import paths

    monkeypatch.chdir(PROJECT_ROOT / "notebooks")
    for path in NOTEBOOKS:
        src = "".join(json.loads(path.read_text())["cells"][-1]["source"])
        assert "paths.resolve_in_project(output_dir)" in src, f"{path.name}: the record cell must resolve output_dir"
    assert paths.resolve_in_project("reports/runs/manual/x") == PROJECT_ROOT / "reports" / "runs" / "manual" / "x"
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
