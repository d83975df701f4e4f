"""Tests of the articles' claims: one module per hypothesis, one CAR study for detector events.

Every test takes the hourly panel (:func:`research.panel.load`) and, where it needs them, event
tables from :mod:`research.events`; it returns a :class:`research.results.Results` object:
named fields, ``summary()``, ``to_frame()``/``tables()`` (polars), ``plot()``/``figures()``
(``alt.Chart`` built by :mod:`research.plots`, which never computes statistics), ``verdicts()`` and
a notebook display. :func:`research.records.write_result` writes its record.

==================================  ===================================  =============================
module                              test                                 notebook
==================================  ===================================  =============================
:mod:`~.flush`                      :func:`flush_vs_exodus` (H1)         20-flush-vs-exodus
:mod:`~.secondleg`                  :func:`second_leg` (H2)              21-second-leg
:mod:`~.crowding`                   :func:`crowding_early_warning` (H3)  22-crowding-early-warning
:mod:`~.settlement`                 :func:`settlement_hours` (H4)        23-funding-settlement-hours
:mod:`~.waves`                      :func:`liquidation_waves` (H5)       24-liquidation-waves
:mod:`~.heatmap`                    :func:`liquidation_heatmap_test` H6  25-liquidation-heatmap
:mod:`~.levels`                     :func:`liquidation_heatmap`          (the estimator H6 tests)
:mod:`~.carstudy`                   :func:`car_study`                    10, 11, 12 (event types)
:mod:`~.overview`                   :func:`data_overview`                00-data-overview
:mod:`~.registry`                   titles, colours, notebooks, kinds
==================================  ===================================  =============================

A notebook calls :func:`run` with its stem: the registry names the study function, which detects
the events it needs and runs the test. Generic statistics live in :mod:`research.stats`.
Randomness (bootstrap, permutation, placebo) is seeded by a ``seed`` parameter.
"""
from __future__ import annotations

from research.errors import HypothesisError
from research.panel import LOADER_PARAMETERS, Inputs, oi_units
from research.stats import bootstrap_diff_ci, hedges_g, permutation_pvalue, wilson_ci

from .carstudy import CarStudyResult, car_study, car_verdicts, event_profiles, event_study, event_type_study
from .crowding import CrowdingResult, crowding_early_warning, crowding_study
from .flush import FLUSH_RULE, FlushExodusResult, flush_study, flush_vs_exodus
from .truth import match_truth
from .heatmap import LiquidationHeatmapResult, heatmap_study, liquidation_heatmap_test
from .levels import LiquidationHeatmap, liquidation_heatmap
from .overview import OverviewResult, data_overview
from .registry import REGISTRY, Entry, by_notebook, get
from .secondleg import SecondLegResult, second_leg, second_leg_study
from .settlement import SettlementResult, settlement_hours, settlement_study
from .waves import LiquidationWavesResult, liquidation_waves, waves_study

__all__ = [
    "HypothesisError", "Inputs", "load_inputs", "run", "oi_units",
    "hedges_g", "bootstrap_diff_ci", "permutation_pvalue", "wilson_ci",
    "FLUSH_RULE", "FlushExodusResult", "flush_vs_exodus", "match_truth", "flush_study",
    "SecondLegResult", "second_leg", "second_leg_study",
    "CrowdingResult", "crowding_early_warning", "crowding_study",
    "SettlementResult", "settlement_hours", "settlement_study",
    "LiquidationWavesResult", "liquidation_waves", "waves_study",
    "LiquidationHeatmap", "liquidation_heatmap", "LiquidationHeatmapResult", "liquidation_heatmap_test",
    "heatmap_study", "CarStudyResult", "car_study", "car_verdicts", "event_profiles", "event_study",
    "event_type_study", "OverviewResult", "data_overview", "REGISTRY", "Entry", "get", "by_notebook",
]

#: run parameters that are not a study's (the loader's and the output directory)
_NOT_STUDY = frozenset(LOADER_PARAMETERS) | {"output_dir"}


def load_inputs(data_dir=None, *, seed: int = 7, days: int = 180, **kwargs) -> Inputs:
    """:func:`research.panel.load` under its old name (``seed``/``days`` are ``sample_seed``/``sample_days``)."""
    from research.panel import load

    return load(data_dir, sample_seed=seed, sample_days=days, **kwargs)


def run(name: str, inputs: Inputs, params: dict | None = None):
    """Run the study of registry entry ``name`` (a key or a notebook stem) on ``inputs``.

    ``params`` are the run's parameters (a notebook's parameters cell): the loader's and
    ``output_dir`` are left out, the rest go to the entry's study function, which rejects unknown
    names with a :class:`HypothesisError`.
    """
    import inspect

    entry = REGISTRY.get(name) or by_notebook(name)
    fn = entry.study_fn()
    kwargs = {k: v for k, v in (params or {}).items() if k not in _NOT_STUDY}
    if entry.kind != "event":
        sig = inspect.signature(fn)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            unknown = [k for k in kwargs if k not in sig.parameters]
            if unknown:
                raise HypothesisError(f"{entry.notebook or entry.key}: parameter(s) {unknown} are not "
                                      f"parameters of {fn.__module__}.{fn.__name__}")
    try:
        return fn(inputs, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise HypothesisError(f"{entry.notebook or entry.key}: {exc}") from None
        raise
