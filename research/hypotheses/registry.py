"""The registry: the one place for each hypothesis' and event type's title, colour, notebook and kind.

The report, the plots (event-marker colours) and :func:`research.hypotheses.run` read it. Adding an
event type is a detector in :mod:`research.events`, one :class:`Entry` here (``kind="event"``,
``detector=...``) and a notebook of about a dozen lines that calls ``H.run``.

Entries
-------
``key``        the event ``kind`` a detector writes (``"funding_reset"``) or the hypothesis' name
``title``      human title (the record's and the report's)
``notebook``   notebook stem in ``notebooks/`` (None: no notebook of its own, e.g. ``selloff``)
``kind``       ``"overview"``, ``"event"`` (a CAR study around a detector's events) or ``"hypothesis"``
``color``      hex colour of its markers and series
``claim``      the article claim tested, in one sentence
``label``      the events in prose (``"funding resets"``), for event types
``detector``   ``"module:function"`` of the detector, for event types
``study``      ``"module:function"`` called by :func:`research.hypotheses.run` (``study(inputs, **params)``)
``extras``     ``"module:function"`` adding tables and notes to an event study (``f(panel, events, params)``)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from research.errors import HypothesisError

__all__ = ["Entry", "REGISTRY", "get", "by_notebook", "kind_colors", "titles"]


def _resolve(path: str):
    mod, _, name = path.partition(":")
    return getattr(importlib.import_module(mod), name)


@dataclass(frozen=True)
class Entry:
    """One hypothesis or event type (see the module docstring for the fields)."""

    key: str
    title: str
    notebook: str | None
    kind: str
    color: str
    claim: str = ""
    label: str = ""
    detector: str | None = None
    study: str | None = None
    extras: str | None = None

    def detector_fn(self):
        """The detector callable (event types)."""
        if not self.detector:
            raise HypothesisError(f"registry entry {self.key!r} has no detector")
        return _resolve(self.detector)

    def study_fn(self):
        """The callable :func:`research.hypotheses.run` calls: ``study(inputs, **params)``."""
        if self.study:
            return _resolve(self.study)
        if self.kind == "event":
            from .carstudy import event_type_study

            return lambda inputs, **params: event_type_study(self.key, inputs, **params)
        raise HypothesisError(f"registry entry {self.key!r} has no study function")

    def extras_fn(self):
        """The event type's extra-tables function."""
        return _resolve(self.extras)


_H = "research.hypotheses"
_ENTRIES = [
    Entry("data_overview", "Data overview: coverage, gaps, sources", "00-data-overview", "overview", "#7f7f7f",
          "Perpetual futures dominate BTC volume (about 68 % in 2025, Kaiko); funding, OI and liquidations are the "
          "treadmill's variables.", study=f"{_H}.overview:data_overview"),
    Entry("selloff", "Sell-offs", None, "event", "#d62728", label="sell-offs",
          detector="research.events:detect_selloffs"),
    Entry("funding_reset", "Funding resets: returns and positioning around them", "10-funding-resets", "event",
          "#2ca02c", "Funding resets from elevated to neutral mark leverage leaving; returns after a reset differ from normal.",
          label="funding resets", detector="research.events:detect_funding_resets",
          extras=f"{_H}.extras:funding_distribution"),
    Entry("oi_collapse", "Open-interest collapses: returns, funding and liquidations around them", "11-oi-collapses",
          "event", "#9467bd", "A meaningful drop in open interest during a sell-off means leverage is being removed "
          "(positions closed, often by liquidation).", label="OI collapses", detector="research.events:detect_oi_collapses"),
    Entry("liquidation_print", "Long-liquidation prints: what follows a flush", "12-liquidation-prints", "event",
          "#ff7f0e", "Large long-liquidation prints mark leverage flushes; after the flush liquidations diminish and "
          "returns differ from normal.", label="long-liquidation prints",
          detector="research.events:detect_liquidation_prints"),
    Entry("flush_vs_exodus", "Leverage flush or spot exodus?", "20-flush-vs-exodus", "hypothesis", "#1f77b4",
          "Selloffs come in two kinds - leverage flushes (OI down, funding reset, liquidations fading) and spot exoduses "
          "(OI and funding holding); what follows differs between them.", study=f"{_H}.flush:flush_study"),
    Entry("second_leg", "The treadmill's second leg", "21-second-leg", "hypothesis", "#8c564b",
          "After a selloff and a bounce a second down-leg makes a new low; more so when OI holds up and funding stays "
          "positive.", study=f"{_H}.secondleg:second_leg_study"),
    Entry("crowding_early_warning", "Crowding as an early warning of liquidation cascades", "22-crowding-early-warning",
          "hypothesis", "#e377c2", "Extreme funding and long/short ratios above 1.5 precede liquidation cascades.",
          study=f"{_H}.crowding:crowding_study"),
    Entry("settlement_hours", "Trading around funding settlement hours", "23-funding-settlement-hours", "hypothesis",
          "#bcbd22", "Trading intensity (volume, volatility) is higher around the 00/08/16 UTC funding settlements.",
          study=f"{_H}.settlement:settlement_study"),
    Entry("liquidation_waves", "Liquidations arrive in waves", "24-liquidation-waves", "hypothesis", "#17becf",
          "Liquidation prints cluster in time: after a print, another follows more often than by chance.",
          study=f"{_H}.waves:waves_study"),
    Entry("liquidation_heatmap", "Liquidation heatmap: does price seek the pools?", "25-liquidation-heatmap",
          "hypothesis", "#9edae5", "Price reaches the largest nearby liquidation cluster more often than equally "
          "distant placebo levels.", study=f"{_H}.heatmap:heatmap_study"),
    Entry("venue_shares", "Which venues flushed? Venue shares around selloffs", "26-venue-shares", "hypothesis",
          "#8c564b", "Flushes are multi-venue: Bybit and Hyperliquid together took more than half of the Nov 2025 "
          "liquidations, then Binance, HTX and OKX.", study=f"{_H}.venueshares:venue_study"),
]

#: key -> Entry
REGISTRY: dict[str, Entry] = {e.key: e for e in _ENTRIES}


def get(key: str) -> Entry:
    """The entry ``key``; :class:`HypothesisError` naming the known keys otherwise."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise HypothesisError(f"no registry entry {key!r}; known: {sorted(REGISTRY)}") from None


def by_notebook(stem: str) -> Entry:
    """The entry whose notebook is ``stem`` (e.g. ``"20-flush-vs-exodus"``)."""
    for e in _ENTRIES:
        if e.notebook == stem:
            return e
    raise HypothesisError(f"no registry entry for notebook {stem!r}; add one to research/hypotheses/registry.py")


def kind_colors() -> dict[str, str]:
    """Event kind -> colour (for event markers)."""
    return {e.key: e.color for e in _ENTRIES if e.kind == "event"}


def titles() -> dict[str, str]:
    """Notebook stem -> title."""
    return {e.notebook: e.title for e in _ENTRIES if e.notebook}
