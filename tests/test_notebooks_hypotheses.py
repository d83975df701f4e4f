"""Papermill runs of the hypothesis notebooks 20-25: on the simulated market (fast) and on the real
pack imported into a temporary lake (slow). Structure is asserted, not conclusions."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import PROJECT_ROOT

NOTEBOOKS = ["20-flush-vs-exodus", "21-second-leg", "22-crowding-early-warning", "23-funding-settlement-hours",
             "24-liquidation-waves", "25-liquidation-heatmap"]
FIGURES = {"20-flush-vs-exodus": ["flush_vs_exodus"], "21-second-leg": ["second_leg_rates"],
           "22-crowding-early-warning": ["crowding_rates"], "23-funding-settlement-hours": ["hour_profile"],
           "24-liquidation-waves": ["acf"], "25-liquidation-heatmap": ["liquidation_heatmap", "cluster_hit_rates"]}
NB_DIR = PROJECT_ROOT / "notebooks"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_is_committed_clean_with_parameters_cell(stem):
    nb = nbformat.read(NB_DIR / f"{stem}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "Claim" in nb.cells[0].source
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    src = nb.cells[1].source
    for name in ("data_dir = None", "output_dir =", "symbol =", "start =", "end =", "oi_venue = None", "liq_venue = None"):
        assert name in src, f"{stem}: parameters cell lacks {name!r}"
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"{stem}: committed with outputs"


def _run(stem: str, out: Path, data_dir, **params) -> dict:
    import papermill as pm

    out.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NB_DIR / f"{stem}.ipynb"), str(out / "executed.ipynb"),
                        parameters={"output_dir": str(out), "data_dir": data_dir, **params},
                        kernel_name="python3", progress_bar=False, cwd=str(out))
    rec = json.loads((out / "record.json").read_text())
    assert rec["notebook"] == stem
    assert rec["verdicts"], f"{stem}: no verdicts"
    for v in rec["verdicts"]:
        assert {"hypothesis", "effect", "ci_low", "ci_high", "pvalue", "n_events", "test"} <= set(v)
    for name, rel in rec["tables"].items():
        assert (out / rel).stat().st_size > 0, name
    for fig in FIGURES[stem]:
        files = rec["figures"][fig]
        assert {Path(f).suffix for f in files} == {".json", ".svg"}  # spec + SVG; PNG/PDF on demand
        for f in files:
            assert (out / f).stat().st_size > 0
    assert rec["parameters"]["symbol"] == "BTCUSDT"
    assert rec["coverage"]["hours"] > 0
    _check_inference(stem, rec, out)
    return rec


#: notebooks whose verdicts the claims branch (#12: H3-H6) brings to the inference contract; a
#: failure there is an expected failure on this branch. Empty this set once that branch has landed.
PENDING_CLAIMS: set[str] = set()


def _check_inference(stem: str, rec: dict, out: Path) -> None:
    try:
        assert_inference(rec, out)
    except AssertionError as exc:
        if stem in PENDING_CLAIMS:
            pytest.xfail(f"inference contract pending on the claims branch: {exc}")
        raise


def assert_inference(rec: dict, out: Path) -> None:
    """#12's inference contract over every verdict row of a record.

    CI and p-value agree ("CI excludes the null" iff p < alpha); every p-value has a BH q-value
    (q >= p); a not-testable row prints no CI and no p-value; risk-difference CIs stay in [-1, 1];
    at most one row is primary.
    """
    from research.records import Verdict
    from research.stats import NotTestable

    names = set(Verdict.__dataclass_fields__)
    vs = [Verdict(**{k: x for k, x in v.items() if k in names}) for v in rec["verdicts"]]
    for v in vs:
        assert v.ci_agrees, f"{rec['notebook']}: CI [{v.ci_low}, {v.ci_high}] contradicts p = {v.pvalue}: {v.hypothesis}"
        if v.pvalue is not None:
            assert v.q_value is not None and v.q_value >= v.pvalue - 1e-12, v.hypothesis
        if NotTestable.matches(v.conclusion):
            assert v.ci_low is None and v.ci_high is None and v.pvalue is None, v.hypothesis
        if "risk diff" in (v.effect_label or ""):
            assert -1 <= (v.ci_low if v.ci_low is not None else -1) <= (v.ci_high if v.ci_high is not None else 1) <= 1
    assert sum(bool(v.primary) for v in vs) <= 1, f"{rec['notebook']}: more than one primary test"
    for name in ("fisher",):
        if name in rec["tables"]:
            import polars as pl

            t = pl.read_parquet(out / rec["tables"][name])
            for c in ("rd_ci_low", "rd_ci_high"):
                if c in t.columns:
                    vals = t[c].drop_nulls()
                    assert ((vals >= -1) & (vals <= 1)).all(), f"{rec['notebook']}: {c} outside [-1, 1]"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_on_simulated_market(stem, sim_lake, tmp_path):
    rec = _run(stem, tmp_path, str(sim_lake))
    assert rec["synthetic"] is True
    assert any("SYNTHETIC" in n for n in rec["notes"])
    if stem == "20-flush-vs-exodus":
        # the record carries the confusion matrix against the planted episodes
        assert "confusion" in rec["tables"] and "matches" in rec["tables"]
        acc = [v for v in rec["verdicts"] if "planted" in v["hypothesis"]]
        assert acc and acc[0]["effect"] >= 0.8
        assert "sensitivity" in rec["tables"] and rec["parameters"]["primary_horizon"] == 72
        assert any("OI measure: coins" in n for n in rec["notes"])
    if stem in ("20-flush-vs-exodus", "21-second-leg"):
        assert sum(bool(v["primary"]) for v in rec["verdicts"]) == 1


def test_notebook_default_data_dir_falls_back_to_simulated_market(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_DATA_DIR", str(tmp_path / "empty"))
    rec = _run("23-funding-settlement-hours", tmp_path / "out", None)
    assert rec["synthetic"] is True




@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_on_real_pack(stem, real_lake, tmp_path):
    # the span where the real pack has OI, liquidations and funding together (CoinGlass 4h)
    rec = _run(stem, tmp_path, str(real_lake), start="2025-10-06", end="2026-04-04")
    assert rec["synthetic"] is False
