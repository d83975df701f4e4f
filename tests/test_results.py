"""research.results: the results base every results object shares."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pytest

from research.results import Results


@dataclass
class _R(Results):
    table: pl.DataFrame
    other: int = 1

    _frame_fields = ("table",)

    def summary(self) -> str:
        return "R <summary>"


def test_base_methods():
    r = _R(pl.DataFrame({"a": [1.0, float("nan")]}))
    assert str(r) == "R <summary>"
    assert list(r.tables()) == ["table"] and r.to_frame().height == 2
    assert r.figures() == {} and r.verdicts() == [] and r.notes_list == []
    assert r.to_dict() == {"table": [{"a": 1.0}, {"a": None}], "other": 1}
    html = r._repr_html_()
    assert html.startswith("<pre>R &lt;summary&gt;</pre>") and "<table" in html
    with pytest.raises(NotImplementedError):
        r.plot()


def test_event_study_and_hypothesis_results_share_the_base():
    from research import hypotheses as H
    from research.eventstudy.results import EventStudyResult

    for cls in (EventStudyResult, H.FlushExodusResult, H.SecondLegResult, H.CrowdingResult, H.SettlementResult,
                H.LiquidationWavesResult, H.LiquidationHeatmapResult, H.CarStudyResult, H.OverviewResult):
        assert issubclass(cls, Results), cls
        assert hasattr(cls, "_repr_html_") and hasattr(cls, "figures")
