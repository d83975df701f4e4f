"""Event detectors on a market panel (``queries/hourly_panel.sql``; any bar length: 1h, 4h, 1d).

Every detector takes the panel as a polars frame (one row per bar, ``ts`` = the bar's label, prices
are the bar's close, slower series as known at the bar's close) and returns an *event table*, one
row per event, with at least

* ``event_id`` – 0, 1, ... in time order,
* ``ts`` – the event-study anchor; equal to ``detected_ts`` for every causal rule,
* ``detected_ts`` – the bar at whose close the rule first knows the event (it uses no later bar),
* ``symbol`` / ``asset`` – the instrument,
* ``kind`` – ``"selloff"``, ``"funding_reset"``, ``"oi_collapse"`` or ``"liquidation_print"``,

plus the attributes the hypotheses need, each documented with the time at which it is known.
Every detector is causal by default: truncating the panel at any time t leaves every event with
``detected_ts <= t`` unchanged (the tests pin this for every detector). A rule that needs the
future says so in its ``keep`` value (``"largest_lookahead"``) and in the ``lookahead`` column.
Durations are in hours of clock time; thresholds are in percent or rates, independent of the bar.

Modules: :mod:`~research.events.legs` (the causal zigzag), :mod:`~research.events.selloffs`,
:mod:`~research.events.funding`, :mod:`~research.events.oi_collapses`,
:mod:`~research.events.liquidations`; shared helpers in :mod:`~research.events._common`. OI is
measured in coins by :mod:`research.oi`.
"""
from __future__ import annotations

from research.errors import EventDetectionError
from research.events._common import NEUTRAL_FUNDING_8H, bar_hours, decluster
from research.events.funding import detect_funding_resets
from research.events.liquidations import detect_liquidation_prints
from research.events.oi_collapses import detect_oi_collapses
from research.events.selloffs import detect_selloffs

__all__ = [
    "EventDetectionError",
    "NEUTRAL_FUNDING_8H",
    "bar_hours",
    "decluster",
    "detect_selloffs",
    "detect_funding_resets",
    "detect_oi_collapses",
    "detect_liquidation_prints",
]
