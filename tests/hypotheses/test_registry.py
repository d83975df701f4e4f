"""research.hypotheses.registry: one entry per notebook, every callable it names resolves."""
from __future__ import annotations

import pytest

from research import hypotheses as H, paths
from research.hypotheses import registry as R


def test_every_notebook_has_one_entry_and_entries_resolve():
    stems = {p.stem for p in paths.NOTEBOOKS_DIR.glob("*.ipynb")}
    assert stems == {e.notebook for e in R.REGISTRY.values() if e.notebook}
    for e in R.REGISTRY.values():
        assert e.title and e.color.startswith("#") and e.kind in ("overview", "event", "hypothesis")
        if e.kind == "event":
            assert callable(e.detector_fn()) and e.label
        if e.notebook:
            assert callable(e.study_fn()) and e.claim
    assert R.by_notebook("10-funding-resets").key == "funding_reset"
    assert set(R.kind_colors()) == {"selloff", "funding_reset", "oi_collapse", "liquidation_print"}


def test_unknown_names_are_named_errors():
    with pytest.raises(H.HypothesisError, match="no registry entry 'nope'"):
        R.get("nope")
    with pytest.raises(H.HypothesisError, match="registry entry for notebook"):
        H.run("99-nope", None, {})


def test_run_rejects_a_parameter_the_study_does_not_take():
    import polars as pl

    inp = H.Inputs(panel=pl.DataFrame(), daily=pl.DataFrame(), data_dir="d", synthetic=False)
    with pytest.raises(H.HypothesisError, match="bogus"):
        H.run("23-funding-settlement-hours", inp, {"data_dir": None, "output_dir": "x", "bogus": 1})
