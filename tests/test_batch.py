"""research.batch: parameter checks, run directories, failed runs, grids (processes and dask), CLI.

Kernel-backed tests use ``tests/fixtures_nb/tiny.ipynb`` (no altair, ~3 s a run) and as few runs
as cover the behaviour.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from research import batch
from research.cli import app
from research.errors import NotebookError
from research.records import load as load_record
from tests.conftest import require_module

FIXTURES = Path(__file__).parent / "fixtures_nb"
TINY = FIXTURES / "tiny.ipynb"
runner = CliRunner()


def _nb(tmp_path: Path, params_src: str, body: str = "pass", name: str = "nb.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_src)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------------------------------ parameters

def test_parameter_spec_infers_types_from_default_literals():
    spec = batch.parameter_spec(TINY)
    assert {k: p.type_name for k, p in spec.items()} == {
        "data_dir": "None", "output_dir": "str", "x": "int", "scale": "float", "label": "str", "flag": "bool",
        "items": "list", "anything": "None", "fail": "bool"}
    assert spec["label"].default == "2025-01-01"


def test_non_literal_default_accepts_any_value(tmp_path):
    nb = _nb(tmp_path, 'import math\ndata_dir = None\noutput_dir = "."\nwidth: float = math.pi\nt = (1, 2)')
    spec = batch.parameter_spec(nb)
    assert spec["width"].type_name == "any" and spec["t"].type_name == "list"
    assert batch.check_parameters(nb, {"width": "abc"}, from_strings=True) == {"width": "abc"}
    assert batch.check_parameters(nb, {"t": "[3, 4]"}, from_strings=True) == {"t": [3, 4]}


@pytest.mark.parametrize("raw, expected", [
    ({"x": "3"}, {"x": 3}),
    ({"scale": "3"}, {"scale": 3.0}),
    ({"scale": "1e-3"}, {"scale": 0.001}),
    ({"label": "2024-06-30"}, {"label": "2024-06-30"}),  # a date stays a string
    ({"label": "42"}, {"label": "42"}),  # str default: taken as written
    ({"flag": "true"}, {"flag": True}),
    ({"flag": "False"}, {"flag": False}),
    ({"items": "[3, 4, 5]"}, {"items": [3, 4, 5]}),
    ({"anything": "None"}, {"anything": None}),
    ({"anything": "null"}, {"anything": None}),
    ({"anything": "2025-01-01"}, {"anything": "2025-01-01"}),
    ({"anything": "[BTCUSDT, ETHUSDT]"}, {"anything": ["BTCUSDT", "ETHUSDT"]}),
    ({"anything": "a: b"}, {"anything": "a: b"}),
])
def test_command_line_values_are_typed_like_defaults(raw, expected):
    assert batch.check_parameters(TINY, raw, from_strings=True) == expected


@pytest.mark.parametrize("raw, message", [
    ({"x": "abc"}, "parameter 'x' expects int like its default 1, got str 'abc'"),
    ({"x": "2.5"}, "parameter 'x' expects int"),
    ({"x": "true"}, "parameter 'x' expects int"),
    ({"flag": "maybe"}, "parameter 'flag' expects bool"),
    ({"items": "[1, 'a']"}, "parameter 'items' expects list"),
    ({"scal": "2"}, "unknown parameter 'scal' (did you mean 'scale'?)"),
    ({"nonsense": "2"}, "its parameters cell defines: x, scale, label, flag, items, anything, fail"),
    ({"output_dir": "/tmp/x"}, "set by the runner; use --out"),
    ({"data_dir": "/tmp/x"}, "set by the runner; use --data-dir"),
])
def test_bad_parameters_are_errors_naming_notebook_and_parameter(raw, message):
    with pytest.raises(NotebookError) as exc:
        batch.check_parameters(TINY, raw, from_strings=True)
    assert message in str(exc.value) and "tiny.ipynb" in str(exc.value)


def test_typed_values_from_yaml_are_checked_too():
    with pytest.raises(NotebookError, match="'label' expects str .* got int 5 \\(quote it"):
        batch.check_parameters(TINY, {"label": 5})
    assert batch.check_parameters(TINY, {"scale": 2, "items": (1,)}) == {"scale": 2.0, "items": [1]}


def test_notebook_without_parameters_cell_or_runner_names(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "untagged.ipynb")
    with pytest.raises(NotebookError, match="untagged.ipynb has no cell tagged 'parameters'"):
        batch.parameter_spec(tmp_path / "untagged.ipynb")
    with pytest.raises(NotebookError, match="must define output_dir"):
        batch.check_parameters(_nb(tmp_path, "data_dir = None\nx = 1"), {})
    with pytest.raises(NotebookError, match="does not exist"):
        batch.parameter_spec(tmp_path / "missing.ipynb")


def test_params_hash_is_stable_and_order_free():
    a = batch.params_hash({"x": 1, "label": "2025-01-01", "data_dir": "/d"})
    assert a == batch.params_hash({"data_dir": "/d", "label": "2025-01-01", "x": 1})
    assert len(a) == 12 and int(a, 16) >= 0
    assert a != batch.params_hash({"x": 2, "label": "2025-01-01", "data_dir": "/d"})
    # the documented recipe: sha256 of the sorted compact JSON, so run directories stay stable
    assert batch.params_hash({"x": 1, "a": "b"}) == hashlib.sha256(b'{"a":"b","x":1}').hexdigest()[:12]


def test_parse_assignments():
    assert batch.parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(NotebookError, match="KEY=VALUE"):
        batch.parse_assignments(["novalue"])
    with pytest.raises(NotebookError, match="not a valid name"):
        batch.parse_assignments(["1x=2"])


# ------------------------------------------------------------------------------------------ grid files

def _grid(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    return p


def test_grid_expands_product_times_zip_and_keeps_dates_as_strings(tmp_path):
    g = batch.load_grid(_grid(tmp_path, f"""
out: out
data_dir: data
workers: 3
runs:
  - notebook: {TINY}
    parameters: {{flag: true}}
    product:
      x: [1, 2, 3]
      scale: [0.5, 1]
    zip:
      label: [2024-01-01, 2025-01-01]
      items: [[1], [1, 2]]
"""))
    assert len(g.specs) == 3 * 2 * 2 and g.workers == 3
    labels = {s.parameters["label"] for s in g.specs}
    assert labels == {"2024-01-01", "2025-01-01"} and all(isinstance(v, str) for v in labels)
    # zip walks label and items together
    assert {(s.parameters["label"], tuple(s.parameters["items"])) for s in g.specs} == {
        ("2024-01-01", (1,)), ("2025-01-01", (1, 2))}
    assert all(s.parameters["flag"] is True for s in g.specs)
    assert {s.out_root for s in g.specs} == {str((tmp_path / "out").resolve())}
    assert {s.data_dir for s in g.specs} == {str((tmp_path / "data").resolve())}
    assert len({s.run_dir for s in g.specs}) == 12


def test_grid_finds_notebooks_by_stem_or_number_and_dedupes(tmp_path):
    g = batch.load_grid(_grid(tmp_path, """
runs:
  - notebook: [10, 20-fixture-funding]
  - notebook: 10-fixture-effect.ipynb
"""), notebooks_dir=FIXTURES, out_root=tmp_path / "o", data_dir=tmp_path / "d")
    assert [Path(s.notebook).name for s in g.specs] == ["10-fixture-effect.ipynb", "20-fixture-funding.ipynb"]


@pytest.mark.parametrize("body, message", [
    ("runs: []", "non-empty 'runs' list"),
    ("runz: [{notebook: x}]", "non-empty 'runs' list"),
    ("workerz: 2\nruns: [{notebook: TINY}]", "unknown key(s) ['workerz']"),
    ("runs: [{notebook: TINY, prodcut: {x: [1]}}]", "runs[1]: unknown key(s) ['prodcut']"),
    ("runs: [{notebook: TINY, zip: {x: [1, 2], scale: [1]}}]", "zip lists must have equal lengths"),
    ("runs: [{notebook: TINY, product: {x: 1}}]", "product.x must be a non-empty list"),
    ("runs: [{notebook: TINY, parameters: {x: 1}, product: {x: [1, 2]}}]", "more than one of parameters/product/zip"),
    ("runs: [{notebook: TINY, product: {x: [1, oops]}}]", "runs[1]: tiny.ipynb: parameter 'x' expects int"),
    ("runs: [{notebook: TINY, parameters: {sclae: 1}}]", "did you mean 'scale'"),
    ("runs: [{notebook: no-such-notebook}]", "notebook 'no-such-notebook' not found"),
    ("runs: [{parameters: {x: 1}}]", "missing 'notebook'"),
    ("runs: [{notebook: TINY}]\nworkers: 0", "workers must be a positive integer"),
    ("runs: [{notebook: TINY, product: [1]}", "not valid YAML"),
])
def test_bad_grid_files_are_clear_errors(tmp_path, body, message):
    with pytest.raises(NotebookError) as exc:
        batch.load_grid(_grid(tmp_path, body.replace("TINY", str(TINY))), out_root=tmp_path)
    assert message in str(exc.value)


def test_yaml_loader_keeps_dates_and_timestamps_as_strings():
    doc = batch.yaml_load("a: 2025-01-01\nb: 2025-01-01T08:00:00Z\nc: 1\nd: true")
    assert doc == {"a": "2025-01-01", "b": "2025-01-01T08:00:00Z", "c": 1, "d": True}


def test_dask_executor_needs_a_scheduler():
    with pytest.raises(NotebookError, match="--scheduler ADDRESS"):
        batch.run_grid([], executor="dask")
    with pytest.raises(NotebookError, match="unknown executor"):
        batch.run_grid([], executor="threads")


# ------------------------------------------------------------------------------------------ running

def test_cli_run_writes_the_run_directory(tmp_path):
    out, data = tmp_path / "runs", tmp_path / "data"
    res = runner.invoke(app, ["run", str(TINY), "-p", "x=3", "-p", "label=2024-05-01", "-p", "items=[7]",
                              "--out", str(out), "--data-dir", str(data), "-q"])
    assert res.exit_code == 0, res.output
    params = {"x": 3, "label": "2024-05-01", "items": [7], "data_dir": str(data.resolve())}
    rd = out / "tiny" / batch.params_hash(params)
    assert f"ok: {rd}" in res.output
    assert {p.name for p in rd.iterdir()} >= {"executed.ipynb", "params.json", "record.json", "status.json"}
    rec = load_record(rd)
    assert rec.verdicts[0].effect == 6.0 and rec.verdicts[0].n_events == 1
    seen = rec.parameters
    # injected values arrive typed; the run's working directory is its own run directory
    assert seen["types"] == {"x": "int", "scale": "float", "label": "str", "flag": "bool", "items": "list",
                             "anything": "NoneType"}
    assert seen["cwd"] == str(rd) and seen["output_dir"] == str(rd) and seen["data_dir"] == str(data.resolve())
    assert json.loads((rd / "params.json").read_text())["parameters"]["label"] == "2024-05-01"
    assert batch.read_status(rd)["status"] == "ok" and batch.is_result(rd)
    executed = nbformat.read(rd / "executed.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_cli_run_bad_parameter_exits_2_without_running(tmp_path):
    res = runner.invoke(app, ["run", str(TINY), "-p", "x=abc", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2
    assert "parameter 'x' expects int" in res.output
    assert not (tmp_path / "runs").exists()


def test_failed_run_keeps_partial_notebook_and_is_never_a_result(tmp_path):
    out = tmp_path / "runs"
    res = runner.invoke(app, ["run", str(TINY), "-p", "fail=True", "-p", "x=5", "--out", str(out),
                              "--data-dir", str(tmp_path / "data"), "-q"])
    assert res.exit_code == 1
    rd = next((out / "tiny").iterdir())
    msg = res.output
    # notebook, cell number (1-based, in the source notebook), the error and the output path
    assert "tiny.ipynb failed in cell 5: RuntimeError: tiny fixture asked to fail (x=5)" in msg
    assert str(rd) in msg and "executed.FAILED.ipynb" in msg
    assert (rd / "executed.FAILED.ipynb").exists() and not (rd / "executed.ipynb").exists()
    # the record was written before the failing cell: it is renamed, not left as a result
    assert not (rd / "record.json").exists() and (rd / "record.FAILED.json").exists()
    assert (rd / "FAILED").read_text().startswith("tiny.ipynb failed in cell 5")
    assert batch.read_status(rd)["status"] == "failed" and not batch.is_result(rd)
    partial = nbformat.read(rd / "executed.FAILED.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in partial.cells if c.cell_type == "code" for o in c.outputs)
    with pytest.raises(NotebookError, match="tiny.ipynb failed in cell 5"):
        batch.run_notebook(TINY, {"fail": True}, out_root=out, data_dir=tmp_path / "data")


def test_grid_cli_parallel_failures_summary_and_resume(tmp_path):
    grid = _grid(tmp_path, f"""
out: runs
data_dir: data
runs:
  - notebook: {TINY}
    zip:
      x: [1, 2, 3]
      fail: [false, false, true]
""")
    res = runner.invoke(app, ["grid", str(grid), "--workers", "2", "-q"])
    assert res.exit_code == 1, res.output
    assert "3 runs, 1 failed" in res.output and "--resume" in res.output
    assert "tiny.ipynb failed in cell 5: RuntimeError: tiny fixture asked to fail (x=3)" in res.output
    specs = batch.load_grid(grid).specs
    ok = [s for s in specs if not s.parameters["fail"]]
    bad = [s for s in specs if s.parameters["fail"]]
    assert all(batch.is_result(s.run_dir) for s in ok)
    assert not any(batch.is_result(s.run_dir) for s in bad)
    assert all((s.run_dir / "run.log").exists() for s in specs)  # kernel chatter kept per run
    for s in ok:
        assert load_record(s.run_dir).verdicts[0].effect == s.parameters["x"] * 2.0

    # resume: finished runs are reused, failed and missing ones run again
    kept = batch.read_status(ok[0].run_dir)
    shutil.rmtree(ok[1].run_dir)
    results = batch.run_grid(specs, workers=2, resume=True, progress=False)
    status = {r.run_dir: r.status for r in results.results}
    assert status[str(ok[0].run_dir)] == "cached"
    assert status[str(ok[1].run_dir)] == "ok"
    assert [status[str(s.run_dir)] for s in bad] == ["failed"]
    assert batch.read_status(ok[0].run_dir) == kept  # untouched
    assert [r.run_dir for r in results.results] == [str(s.run_dir) for s in specs]  # input order


def test_grid_timeout_fails_the_overrunning_run_and_the_cli_value_wins(tmp_path):
    nb = _nb(tmp_path, "naps = 0.0\ndata_dir = None\noutput_dir = '.'", "import time\ntime.sleep(naps)")
    doc = nbformat.read(nb, as_version=4)
    doc.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(doc, nb)
    grid = _grid(tmp_path, f"""
out: runs
data_dir: data
timeout: 60
runs:
  - notebook: {nb}
    zip:
      naps: [0.0, 30.0]
""")
    assert [s.timeout for s in batch.load_grid(grid).specs] == [60, 60]
    res = runner.invoke(app, ["grid", str(grid), "--workers", "1", "--timeout", "2", "-q"])
    assert res.exit_code == 1, res.output
    assert "2 runs, 1 failed" in res.output and "nb.ipynb failed in cell 2: CellTimeoutError" in res.output, res.output
    assert "allow it longer (--timeout" in res.output
    status = {s.parameters["naps"]: batch.read_status(s.run_dir) for s in batch.load_grid(grid).specs}
    assert status[0.0]["status"] == "ok" and status[30.0]["status"] == "failed"
    assert status[30.0]["seconds"] < 25, "the 2-s timeout of the command line, not the file's 60 s"


@pytest.mark.parametrize("value", ["0", "-5", "soon", "true"])
def test_grid_timeout_must_be_positive_seconds(tmp_path, value):
    grid = _grid(tmp_path, f"timeout: {value}\nruns:\n  - notebook: {TINY}\n")
    with pytest.raises(NotebookError, match="timeout must be a positive number of seconds"):
        batch.load_grid(grid)


def test_grid_cli_refuses_a_bad_timeout_before_running(tmp_path):
    grid = _grid(tmp_path, f"out: runs\nruns:\n  - notebook: {TINY}\n")
    res = runner.invoke(app, ["grid", str(grid), "--timeout", "0", "-q"])
    assert res.exit_code == 2 and "--timeout" in res.output, res.output
    assert not (tmp_path / "runs").exists()


def test_grid_on_a_dask_cluster(tmp_path):
    distributed = require_module("distributed", "dask")
    grid = _grid(tmp_path, f"""
runs:
  - notebook: {TINY}
    product: {{x: [4, 5]}}
""")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=None) as cluster:
        res = runner.invoke(app, ["grid", str(grid), "--executor", "dask", "--scheduler", cluster.scheduler_address,
                                  "--out", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "-q"])
    assert res.exit_code == 0, res.output
    assert "2 runs, 0 failed" in res.output
    specs = batch.load_grid(grid, out_root=tmp_path / "runs", data_dir=tmp_path / "data").specs
    assert sorted(load_record(s.run_dir).verdicts[0].effect for s in specs) == [8.0, 10.0]


def test_unreachable_dask_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    require_module("distributed", "dask")
    from research.batch import executors

    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", "2s")   # where the executor reads it
    spec = batch.make_spec(TINY, {}, out_root=tmp_path, data_dir=tmp_path)
    with pytest.raises(NotebookError, match="cannot reach the dask scheduler"):
        batch.run_grid([spec], executor="dask", scheduler="tcp://127.0.0.1:9", progress=False)


# ------------------------------------------------------------------------------------------ grid safety

def test_grid_run_cap_counts_before_expanding(tmp_path):
    from research.errors import GridError

    text = f"runs:\n  - notebook: {TINY}\n    product: {{x: {list(range(40))}, scale: {list(range(30))}}}\n"
    with pytest.raises(GridError, match="expands to 1200 runs, more than max_runs=1000"):
        batch.load_grid(_grid(tmp_path, text))
    assert len(batch.load_grid(_grid(tmp_path, text), max_runs=None, out_root=tmp_path / "o").specs) == 1200


def test_grid_refuses_yaml_aliases(tmp_path):
    from research.errors import GridError

    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nruns: [{notebook: x, product: {x: *c}}]\n"
    with pytest.raises(GridError, match="alias"):
        batch.load_grid(_grid(tmp_path, bomb))


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "../../../../etc/passwd.ipynb"])
def test_grid_refuses_paths_outside_without_echoing_contents(tmp_path, name):
    from research.errors import GridError

    secret = tmp_path / "secret.ipynb"
    secret.write_text("root:x:0:0:SECRET-CONTENT")
    (tmp_path / "sub").mkdir()
    rel = "../secret.ipynb" if name.endswith(".ipynb") else name
    with pytest.raises((GridError, NotebookError)) as exc:
        batch.load_grid(_grid(tmp_path / "sub", f"runs: [{{notebook: '{rel}'}}]"))
    assert "SECRET" not in str(exc.value) and "root:x" not in str(exc.value)


def test_unreadable_notebook_error_does_not_quote_the_file(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("root:x:0:0:SECRET-CONTENT")
    with pytest.raises(NotebookError) as exc:
        batch.parameter_spec(bad)
    assert "SECRET" not in str(exc.value)


def test_date_parameters_are_checked(tmp_path):
    nb = _nb(tmp_path, 'data_dir = None\noutput_dir = "."\nstart = "2025-01-01"')
    assert batch.check_parameters(nb, {"start": "2025-10"}) == {"start": "2025-10"}
    with pytest.raises(NotebookError, match="parameter 'start'"):
        batch.check_parameters(nb, {"start": "10/01/2025"})


def test_ipc_kernels_get_private_socket_paths(tmp_path, monkeypatch):
    """Kernels started in one folder must not share IPC socket names (grid workers would cross-talk)."""
    import os

    from research.batch.execute import _kernel_manager_class

    K = _kernel_manager_class()
    if K is None:
        pytest.skip("no IPC transport on this OS")
    monkeypatch.chdir(tmp_path)
    a, b = K(), K()
    assert a.transport == "ipc" and a.ip != b.ip
    assert not a.ip.startswith(str(tmp_path)) and os.path.isabs(a.ip)
