"""Extra tables of event types (named in the registry's ``extras``)."""
from __future__ import annotations

import polars as pl


def funding_distribution(panel: pl.DataFrame, events: pl.DataFrame, params: dict) -> tuple[dict, list[str]]:
    """How often funding was elevated at all: zero resets can simply mean funding never got there.

    The elevated threshold is the one :func:`research.events.detect_funding_resets` used (its
    ``elevated_threshold`` column); without events it is not known and the table says so (null).
    """
    neutral = params.get("neutral", 0.0001)
    settled = panel.filter(pl.col("funding_settled").is_not_null())["funding_rate_8h"]
    thr = float(events["elevated_threshold"][0]) if events.height else None
    n = settled.len()
    table = pl.DataFrame({
        "settlements": [n], "min": [settled.min()], "p50": [settled.quantile(0.5)], "p90": [settled.quantile(0.9)],
        "max": [settled.max()], "share_above_neutral": [float((settled > neutral).mean()) if n else None],
        "elevated_threshold": [thr], "share_elevated": [float((settled >= thr).mean()) if n and thr is not None else None]},
        schema_overrides={"elevated_threshold": pl.Float64, "share_elevated": pl.Float64})
    notes = []
    if events.height == 0:
        mx = settled.max() if n else None
        notes.append(f"no funding resets: the highest settled 8h rate was {mx:g}; see funding_distribution"
                     if mx is not None else "no funding resets: no funding settlements in the panel")
    return {"funding_distribution": table}, notes
