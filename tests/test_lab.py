"""research.lab: the strip-on-save hook, the server command line, and a real contents manager save."""
from __future__ import annotations

import json

import nbformat
import pytest

from research import lab


def _nb_with_outputs() -> dict:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    cell.execution_count = 1
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    return json.loads(nbformat.writes(nb))


def test_hook_strips_tracked_notebooks_and_keeps_the_full_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_REPORTS_DIR", str(tmp_path / "reports"))
    model = {"type": "notebook", "content": _nb_with_outputs()}
    lab.pre_save_hook(model, "notebooks/20-x.ipynb")
    code = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"] == [] and code[0]["execution_count"] is None
    kept = json.loads((tmp_path / "reports" / "lab" / "notebooks" / "20-x.ipynb").read_text())
    assert "".join(kept["cells"][1]["outputs"][0]["data"]["text/plain"]) == "2"


def test_hook_leaves_scratch_notebooks_and_other_files_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_REPORTS_DIR", str(tmp_path / "reports"))
    model = {"type": "notebook", "content": _nb_with_outputs()}
    lab.pre_save_hook(model, "scratch/mine.ipynb")
    assert model["content"]["cells"][1]["outputs"]
    lab.pre_save_hook({"type": "file", "content": "x"}, "notebooks/readme.txt")
    assert not (tmp_path / "reports").exists()


def test_a_real_contents_manager_saves_tracked_notebooks_clean(tmp_path, monkeypatch):
    fcm = pytest.importorskip("jupyter_server.services.contents.filemanager")
    monkeypatch.setenv("RESEARCH_REPORTS_DIR", str(tmp_path / "reports"))
    (tmp_path / "notebooks").mkdir()
    cm = fcm.FileContentsManager(root_dir=str(tmp_path), pre_save_hook="research.lab.pre_save_hook")
    cm.save({"type": "notebook", "format": "json", "content": _nb_with_outputs()}, "notebooks/a.ipynb")
    on_disk = json.loads((tmp_path / "notebooks" / "a.ipynb").read_text())
    assert all(not c.get("outputs") for c in on_disk["cells"] if c["cell_type"] == "code")
    assert (tmp_path / "reports" / "lab" / "notebooks" / "a.ipynb").exists()


def test_server_args_are_offline_rooted_and_hooked(tmp_path):
    args = lab.server_args(tmp_path, port=9999, token="t")
    assert f"--ServerApp.root_dir={tmp_path}" in args
    assert "--ContentsManager.pre_save_hook=research.lab.pre_save_hook" in args
    assert "--LabApp.news_url=None" in args and "--no-browser" in args
    assert "--ServerApp.ip=127.0.0.1" in args and "--ServerApp.port=9999" in args


def test_data_dir_resolves_to_the_project_from_notebooks(monkeypatch):
    from research import paths

    monkeypatch.delenv("RESEARCH_DATA_DIR", raising=False)
    monkeypatch.chdir(paths.PROJECT_ROOT / "notebooks")
    assert paths.data_dir() == paths.PROJECT_ROOT / "data"
    assert paths.resolve_in_project("reports/x") == paths.PROJECT_ROOT / "reports" / "x"
