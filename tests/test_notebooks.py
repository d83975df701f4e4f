"""Notebooks: structure of every committed notebook, and papermill runs of the events notebooks
(00, 10, 11, 12) on the simulated market (one shared lake) and, slow, on the real pack."""
from __future__ import annotations

import datetime as dt
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import polars as pl
import pytest

from research import paths
from research.hypotheses.registry import REGISTRY
from research.records import load
from tests.test_notebooks_hypotheses import assert_inference

ALL = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))

#: The real pack's span and the series the events notebooks use on it (CoinGlass aggregate OI,
#: CoinGlass Binance liquidations).
REAL_PACK = {"start": "2025-10-01", "end": "2026-04-01", "oi_venue": "all", "liq_venue": "binance"}


def notebook_parameters(kind: str = "synthetic", *, data_dir=None, out_root=None) -> dict[str, dict]:
    """Papermill parameters of the events notebooks, ``{stem: params}`` (synthetic: whole lake)."""
    if kind not in ("synthetic", "real"):
        raise ValueError(f"kind={kind!r}; use 'synthetic' or 'real'")
    base: dict = {"symbol": "BTCUSDT", **(REAL_PACK if kind == "real" else {})}
    if data_dir is not None:
        base["data_dir"] = str(data_dir)
    return {stem: {**base, **({"output_dir": str(Path(out_root) / stem)} if out_root is not None else {})}
            for stem in MINE}
MINE = ["00-data-overview", "10-funding-resets", "11-oi-collapses", "12-liquidation-prints"]
NAME = re.compile(r"^\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*\.ipynb$")


def test_there_are_notebooks():
    assert {p.stem for p in ALL} >= set(MINE)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_structure(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert NAME.match(path.name), f"{path.name}: name notebooks NN-words.ipynb"
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one code cell tagged 'parameters'"
    assert nb.cells[0].cell_type == "markdown", f"{path.name}: the first cell should state the claim (markdown)"
    src = tagged[0].source
    for name in ("data_dir", "output_dir"):
        assert re.search(rf"^{name}\s*=", src, re.MULTILINE), f"{path.name}: parameters cell lacks {name}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("stem", MINE)
def test_my_notebooks_parameters(stem):
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    src = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name in ("symbol", "start", "end", "oi_venue", "liq_venue"):
        assert re.search(rf"^{name}\s*=", src, re.MULTILINE), f"{stem}: parameters cell lacks {name}"
    assert f'output_dir = "reports/runs/manual/{stem}"' in src


# --------------------------------------------------------------------------------------------------
# papermill runs
# --------------------------------------------------------------------------------------------------
def _run_all(params: dict[str, dict], out_root: Path) -> dict[str, Path]:
    import papermill as pm

    def one(stem):
        out = out_root / stem
        out.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(str(paths.NOTEBOOKS_DIR / f"{stem}.ipynb"), str(out / "executed.ipynb"),
                            parameters=params[stem], kernel_name="python3", progress_bar=False,
                            cwd=str(out))
        return stem, out

    with ThreadPoolExecutor(max_workers=2) as ex:
        return dict(ex.map(one, MINE))


def _check_record(out: Path, stem: str, synthetic: bool):
    rec = load(out)
    assert rec.notebook == stem and rec.synthetic is synthetic
    assert rec.claim and rec.parameters["symbol"] == "BTCUSDT"
    assert rec.coverage["hours"] > 0
    for name, rel in rec.tables.items():
        assert (out / rel).stat().st_size > 0, name
    for name, files in rec.figures.items():
        assert {Path(f).suffix for f in files} == {".json", ".svg"}  # spec + SVG; PNG/PDF on demand
        assert all((out / f).stat().st_size > 500 for f in files), name
    assert "market_panel" in rec.figures
    assert_inference(json.loads((out / "record.json").read_text()), out)
    return rec


@pytest.fixture(scope="session")
def sim_runs(sim_lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb_sim")
    params = notebook_parameters("synthetic", data_dir=sim_lake, out_root=out)
    return _run_all(params, out)


@pytest.mark.parametrize("stem", MINE)
def test_notebook_runs_on_simulated_market(sim_runs, stem):
    out = sim_runs[stem]
    rec = _check_record(out, stem, synthetic=True)
    executed = nbformat.read(out / "executed.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    if stem == "00-data-overview":
        assert {"lake_coverage", "panel_gaps", "selloffs"} <= set(rec.tables)
        assert 0.5 < rec.verdicts[0].effect < 1.0           # perp share of volume
        return
    assert {"events", "verdicts", "profiles", "caar", "car_tests"} <= set(rec.tables)
    assert {"caar", "profiles", "market_panel"} <= set(rec.figures)
    events = pl.read_parquet(out / rec.tables["events"])
    assert events.height >= 3 and {"event_id", "ts", "symbol", "kind"} <= set(events.columns)
    assert len(rec.verdicts) == 4
    assert [v.primary for v in rec.verdicts] == [False, False, True, False]    # CAR(+1, +24): after detection
    primary = next(v for v in rec.verdicts if v.primary)      # its placebo size is measured on every run
    assert primary.size is not None and primary.n_placebo and primary.p_calibrated is not None
    for v in rec.verdicts:
        assert v.n_events >= 3 and v.effect is not None and 0 <= v.pvalue <= 1
        assert v.ci_low <= v.effect <= v.ci_high
    caar = pl.read_parquet(out / rec.tables["caar"])
    assert caar["event_time"].to_list() == list(range(-24, 73))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_is_thin_and_registered(path: Path):
    # parameters, then about four short cells: load inputs, call one function, show it, write the record
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    assert len(code) <= 4 and all(len(c.splitlines()) <= 5 for c in code), f"{path.name}: logic belongs in research/"
    text = "\n".join(code)
    assert f'H.run("{path.stem}"' in text and "records.write_result(" in text
    assert "def " not in text and "PARAMETER_NAMES" not in text
    assert path.stem in {e.notebook for e in REGISTRY.values()}, f"{path.name}: add a registry entry"


# --------------------------------------------------------------------------------------------------
# the real pack (slow)
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_notebooks_run_on_real_pack(real_lake, tmp_path):
    params = notebook_parameters("real", data_dir=real_lake, out_root=tmp_path)
    runs = _run_all(params, tmp_path)
    recs = {stem: _check_record(runs[stem], stem, synthetic=False) for stem in MINE}
    cov = recs["00-data-overview"].coverage
    assert cov["start"].startswith("2025-10-01") and cov["share_with_oi"] > 0.5
    assert "oi=coinglass/all/BTC" in cov["inputs"] and "liquidations=coinglass/binance/BTC" in cov["inputs"]
    prints = pl.read_parquet(runs["12-liquidation-prints"] / recs["12-liquidation-prints"].tables["events"])
    # the causal default keeps the first print of a cascade, known at its own bar: on 2025-10-10 the
    # 12:00-16:00 bucket (the 235.6M 20:00-24:00 one is pinned in tests/events/test_liquidations.py)
    oct10 = prints.filter(pl.col("ts").dt.date() == dt.date(2025, 10, 10))
    assert oct10["ts"].to_list() == [dt.datetime(2025, 10, 10, 15, tzinfo=dt.UTC)]
    assert (prints["detected_ts"] == prints["ts"]).all()
    oi = pl.read_parquet(runs["11-oi-collapses"] / recs["11-oi-collapses"].tables["events"])
    assert oi.filter(pl.col("ts").dt.date().is_in([dt.date(2025, 10, 10), dt.date(2025, 10, 11)])).height >= 1
    for stem in MINE[1:]:
        for v in recs[stem].verdicts:    # structure, not conclusions
            assert v.n_events is not None and (v.n_events == 0 or v.effect is not None)
            if v.primary and v.n_events >= 5:   # enough events: its placebo size is on the row
                assert v.size is not None and v.n_placebo, (stem, v.hypothesis)
    json.dumps(recs["10-funding-resets"].to_dict())
