"""research.records: write_result writes a results object's record; run_parameters reads the names
from the notebook's own parameters cell."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl
import pytest

from research import records
from research.errors import ResearchError
from research.panel import Inputs
from research.results import Results


@dataclass
class _R(Results):
    t: pl.DataFrame
    notes: list = field(default_factory=lambda: ["a caveat"])

    _frame_fields = ("t",)
    key = "settlement_hours"

    def verdicts(self):
        return [records.Verdict("h", effect=float("nan"), pvalue=0.5)]


def test_write_result(tmp_path):
    inp = Inputs(panel=pl.DataFrame(), daily=pl.DataFrame(), data_dir="d", synthetic=True, coverage={"hours": 3})
    path = records.write_result(_R(pl.DataFrame({"x": [1]})), tmp_path, inputs=inp, parameters={"window": 1})
    rec = json.loads(path.read_text())
    assert rec["notebook"] == "23-funding-settlement-hours" and rec["title"].startswith("Trading around")
    assert rec["parameters"] == {"window": 1} and rec["synthetic"] is True
    # the coverage a record states: the inputs' summary plus what the analysis required and used
    assert rec["coverage"] == {"hours": 3, "analysed": {}, "required": ["price"], "uncovered": []}
    assert rec["notes"] == [records.SYNTHETIC_NOTE, "a caveat"]
    assert rec["verdicts"][0]["effect"] is None and rec["tables"] == {"t": "tables/t.parquet"}
    assert pl.read_parquet(tmp_path / "tables/t.parquet")["x"].to_list() == [1]
    assert not list(tmp_path.glob(".*tmp*"))


def test_run_parameters_come_from_the_parameters_cell():
    from research import paths
    from research.batch import parameter_spec

    names = list(parameter_spec(paths.NOTEBOOKS_DIR / "23-funding-settlement-hours.ipynb"))
    ns = {n: f"value of {n}" for n in names} | {"other": 1}
    p = records.run_parameters("23-funding-settlement-hours", ns)
    assert list(p) == names and "other" not in p and p["settlement_hours"] == "value of settlement_hours"
    with pytest.raises(ResearchError, match="settlement_hours"):
        records.run_parameters("23-funding-settlement-hours", {k: v for k, v in ns.items() if k != "settlement_hours"})


# --------------------------------------------------------------------------------------------------
# inference fields (#12): q-values beside p-values, p_value alias, CI/p agreement
# --------------------------------------------------------------------------------------------------
def test_with_qvalues_is_benjamini_hochberg_over_the_record():
    vs = [records.Verdict("a", 0.1, pvalue=0.01), records.Verdict("b", 0.1, pvalue=0.04),
          records.Verdict("c", None), records.Verdict("d", 0.1, pvalue=0.03)]
    records.with_qvalues(vs)
    # sorted p 0.01, 0.03, 0.04 (m = 3): q = min over k >= i of p_k m / k -> 0.03, 0.04, 0.04
    assert [v.q_value for v in vs] == [pytest.approx(0.03), pytest.approx(0.04), None, pytest.approx(0.04)]


def test_verdict_accepts_p_value_alias_and_round_trips():
    v = records.Verdict("h", 0.2, ci_low=0.1, ci_high=0.3, p_value=0.02, primary=True, size=0.051)
    assert v.pvalue == 0.02 and v.p_value == 0.02 and v.ci_agrees
    rec = records.ResultsRecord(notebook="x", title="x", verdicts=[v])
    back = records.ResultsRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back.verdicts[0].primary and back.verdicts[0].size == 0.051 and back.verdicts[0].pvalue == 0.02
    assert not records.Verdict("h", 0.5, ci_low=0.1, ci_high=0.9, pvalue=0.09).ci_agrees


def test_write_result_fills_qvalues(tmp_path):
    @dataclass
    class _V(Results):
        key = None

        def verdicts(self):
            return [records.Verdict("a", 1.0, pvalue=0.02), records.Verdict("b", 1.0, pvalue=0.5)]

    records.write_result(_V(), tmp_path, notebook="x", title="x")
    rec = records.load(tmp_path)
    assert [v.q_value for v in rec.verdicts] == [pytest.approx(0.04), pytest.approx(0.5)]


def test_a_relative_output_dir_is_the_projects_from_any_folder_of_the_checkout(monkeypatch, tmp_path):
    import shutil

    from research import paths

    monkeypatch.delenv("RESEARCH_REPORTS_DIR", raising=False)
    monkeypatch.chdir(paths.PROJECT_ROOT / "notebooks")  # where a JupyterLab kernel starts
    rel = f"reports/test-artifacts/relative-output-{tmp_path.name}"
    inp = Inputs(panel=pl.DataFrame(), daily=pl.DataFrame(), data_dir="d", synthetic=False)
    try:
        path = records.write_result(_R(pl.DataFrame({"x": [1]})), rel, inputs=inp, parameters={})
        assert path.parent == paths.PROJECT_ROOT / rel and not (paths.PROJECT_ROOT / "notebooks" / rel).exists()
    finally:
        shutil.rmtree(paths.PROJECT_ROOT / rel, ignore_errors=True)
