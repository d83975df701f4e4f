"""Scoring a classifier against the simulated market's planted episodes (:func:`research.simulate.read_truth`)."""
from __future__ import annotations

import numpy as np
import polars as pl

from research.errors import HypothesisError

from .common import HOUR_US

__all__ = ["match_truth", "confusion"]


def match_truth(events: pl.DataFrame, truth: pl.DataFrame, *, tolerance_hours: float = 48) -> pl.DataFrame:
    """Match classified sell-offs to planted episodes by trough time (one-to-one, nearest first).

    Returns one row per detected sell-off (``truth = "none"`` when it matches no planted episode)
    plus one row per planted episode nobody matched (``predicted = "missed"``).
    """
    for c in ("trough_ts", "kind"):
        if c not in truth.columns:
            raise HypothesisError(f"match_truth: truth has no column {c!r}; pass research.simulate.read_truth(data_dir)")
    d_t = events["trough_ts"].dt.epoch("us").to_numpy() / HOUR_US if events.height else np.zeros(0)
    t_t = truth["trough_ts"].dt.epoch("us").to_numpy() / HOUR_US
    dist = np.abs(d_t[:, None] - t_t[None, :]) if d_t.size and t_t.size else np.zeros((d_t.size, t_t.size))
    pairs = sorted((dist[i, j], i, j) for i in range(d_t.size) for j in range(t_t.size) if dist[i, j] <= tolerance_hours)
    di, tj = {}, set()
    for dd, i, j in pairs:
        if i not in di and j not in tj:
            di[i] = (j, dd)
            tj.add(j)
    kinds = truth["kind"].to_list()
    eids = truth["episode_id"].to_list() if "episode_id" in truth.columns else list(range(truth.height))
    rows = []
    for i, r in enumerate(events.iter_rows(named=True)):
        j, dd = di.get(i, (None, None))
        rows.append({"event_id": r["event_id"], "trough_ts": r["trough_ts"], "episode_id": None if j is None else eids[j],
                     "truth": "none" if j is None else kinds[j], "predicted": r["label"], "hours_apart": dd})
    for j in range(truth.height):
        if j not in tj:
            rows.append({"event_id": None, "trough_ts": truth["trough_ts"][j], "episode_id": eids[j],
                         "truth": kinds[j], "predicted": "missed", "hours_apart": None})
    schema = {"event_id": pl.Int64, "trough_ts": truth.schema["trough_ts"], "episode_id": pl.Int64,
              "truth": pl.String, "predicted": pl.String, "hours_apart": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def confusion(matches: pl.DataFrame) -> pl.DataFrame:
    """``truth`` x ``predicted`` counts of :func:`match_truth`'s rows."""
    preds = ["flush", "exodus", "mixed", "insufficient", "missed"]
    out = []
    for t in ["flush", "exodus", "none"]:
        sub = matches.filter(pl.col("truth") == t)
        out.append({"truth": t, **{p: int((sub["predicted"] == p).sum()) for p in preds}})
    return pl.DataFrame(out)
