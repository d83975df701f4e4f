"""Altair chart builders and figure export.

Every ``plot_*`` function takes a tidy polars frame that already holds the numbers to draw and returns
an ``alt.Chart``; none computes statistics (that happens in ``eventstudy``/``hypotheses``). Charts use
one theme for write-ups (:data:`THEME`), and :func:`export` writes PNG (2x), SVG and PDF through
vl-convert, without a browser; :func:`render` writes further formats of an exported figure on demand from
its stored spec (``stem.vl.json``), which is what results records keep (:func:`record_formats`).
"""
from __future__ import annotations

from .base import (DEFER_ENV, FORMATS, JUPYTERLAB_RENDERER, SPEC_SUFFIX, SYNTHETIC_NOTE, THEME, alt, data, export,
                   record_formats, render)
from .events import MAX_PANEL_ROWS, plot_caar, plot_event_profiles, plot_market_panel
from .hypotheses import (MAX_HEATMAP_CELLS, plot_acf, plot_conditional_rates, plot_flush_vs_exodus, plot_hour_profile,
                         plot_liquidation_heatmap)

__all__ = ["alt", "THEME", "SYNTHETIC_NOTE", "JUPYTERLAB_RENDERER", "data", "export", "render", "record_formats", "FORMATS", "SPEC_SUFFIX", "DEFER_ENV", "MAX_PANEL_ROWS",
           "MAX_HEATMAP_CELLS", "plot_caar", "plot_market_panel", "plot_event_profiles", "plot_flush_vs_exodus",
           "plot_conditional_rates", "plot_hour_profile", "plot_acf", "plot_liquidation_heatmap"]
