"""One results base for the event-study engine and the hypotheses.

Every results object answers the same questions, in the style of linearmodels' ``_SummaryStr`` and
arch's result classes:

=======================  ==========================================================================
``summary()``            plain-text summary (also ``str(result)``)
``to_frame()``           the main table (polars)
``tables()``             every table worth keeping, ``{name: polars.DataFrame}``
``plot()``               the main figure (``alt.Chart``); plotting never computes statistics
``figures()``            every figure for the record, ``{name: alt.Chart}``
``verdicts()``           :class:`research.records.Verdict` rows (one per tested hypothesis)
``verdict_table()``      the verdicts as a polars table, Benjamini-Hochberg q-values beside p-values
``notes``                caveats (list of str) for the record
``to_dict()``            JSON-ready dict
``_repr_html_()``        notebook display: the summary, then the main table
``_ipython_display_()``  in a kernel: that HTML, then every figure (Vega-Lite plus a static PNG)
=======================  ==========================================================================

:func:`research.records.write_result` writes a results object's record from these methods alone.
"""
from __future__ import annotations

import html
from typing import Any

import polars as pl

__all__ = ["Results"]


class Results:
    """Base of every results object (subclasses are usually dataclasses with named fields).

    Subclasses implement :meth:`summary` and, where they have them, :meth:`to_frame`, :meth:`plot`
    and :meth:`verdicts`. ``_frame_fields`` names the attributes :meth:`tables` returns; ``_figure``
    names the record's figure made by :meth:`plot`; ``key`` (class attribute or field) is the
    :mod:`research.hypotheses.registry` entry the result answers.
    """

    _frame_fields: tuple[str, ...] = ()
    _figure: str | None = None
    # subclasses set ``key`` (class attribute or field): the registry entry the result answers

    # -- the interface -------------------------------------------------------------------------
    def summary(self) -> str:
        """Plain-text summary."""
        return type(self).__name__

    def to_frame(self) -> pl.DataFrame:
        """The main table."""
        tables = self.tables()
        return next(iter(tables.values())) if tables else pl.DataFrame()

    def tables(self) -> dict[str, pl.DataFrame]:
        """Tables for the results record (name -> frame), from ``_frame_fields``."""
        return {k: getattr(self, k) for k in self._frame_fields if isinstance(getattr(self, k, None), pl.DataFrame)}

    def plot(self, *args, **kwargs):
        """The main figure (an ``alt.Chart``)."""
        raise NotImplementedError(f"{type(self).__name__} has no figure")

    def figures(self) -> dict[str, Any]:
        """Figures for the results record (name -> ``alt.Chart``)."""
        return {self._figure: self.plot()} if self._figure else {}

    def built_figures(self) -> dict[str, Any]:
        """:meth:`figures`, built once per result: the inline display and the record then share the
        same charts, so each is built, validated and rendered once (a notebook shows ``res``, then
        records it)."""
        cached = self.__dict__.get("_built_figures")
        if cached is None:
            cached = self.figures()
            self.__dict__["_built_figures"] = cached
        return cached

    def verdicts(self) -> list:
        """One :class:`research.records.Verdict` per tested hypothesis."""
        return []

    def verdict_table(self) -> pl.DataFrame:
        """:meth:`verdicts` as a table with q-values (one BH family: this result's p-values)."""
        from research.records import verdicts_frame

        return verdicts_frame(list(self.verdicts()))

    @property
    def notes_list(self) -> list[str]:
        """Caveats for the record (the ``notes`` field when the result has one)."""
        return list(getattr(self, "notes", None) or [])

    def to_dict(self) -> dict:
        """JSON-ready dict of the public fields."""
        from research.fileio import clean_json

        return {k: clean_json(v) for k, v in vars(self).items() if not k.startswith("_")}

    # -- display -------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        try:
            frame = self.to_frame()
            table = frame._repr_html_() if isinstance(frame, pl.DataFrame) and frame.height else ""
        except Exception:  # a display must never raise in a notebook
            table = ""
        return f"<pre>{html.escape(self.summary())}</pre>{table}"

    def _ipython_display_(self) -> None:
        """Show the summary and main table, then each figure, inline (JupyterLab and executed notebooks)."""
        from IPython.display import HTML, display

        display(HTML(self._repr_html_()))
        try:
            figures = self.built_figures()
        except Exception as exc:  # a display must never raise in a notebook
            display(HTML(f"<p><i>figures unavailable: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</i></p>"))
            return
        from research.plots.base import display_bundle

        for chart in figures.values():
            bundle = display_bundle(chart)   # the spec validated once, kept for the record's export
            if bundle is None:
                display(chart)
            else:
                display(bundle, raw=True)
