"""Crypto Fear & Greed index from alternative.me (``GET /fng/?limit=0&format=json``, no key).

Response (documented)::

    {"name": "Fear and Greed Index",
     "data": [{"value": "47", "value_classification": "Neutral", "timestamp": "1777248000",
               "time_until_update": "..."}, ...],
     "metadata": {"error": null}}

``timestamp`` is Unix seconds of the UTC day the value applies to (published at 00:00 UTC).
Rows go to ``sentiment`` (index ``fear_greed``, source ``alternative_me``); the response is kept
byte for byte under ``raw/alternative_me/fng/``.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import polars as pl

from research import paths
from research.errors import SourceError
from research.sources.http import Downloader, FetchSummary
from research.sources.ingest import fetch_file

DEFAULT_BASE_URL = "https://api.alternative.me"
BASE_URL_ENV = "RESEARCH_FEARGREED_BASE_URL"
SOURCE = "alternative_me"
INDEX = "fear_greed"


def parse(payload: bytes | str | dict, origin: str = "fng response") -> pl.DataFrame:
    """An alternative.me ``/fng/`` JSON payload -> ``sentiment`` rows.

    Raises
    ------
    SourceError
        When the API reports an error or an entry lacks value/timestamp.
    """
    try:
        doc = payload if isinstance(payload, dict) else json.loads(payload)
    except json.JSONDecodeError as e:
        raise SourceError(f"{origin}: not JSON ({e})") from None
    err = (doc.get("metadata") or {}).get("error")
    if err:
        raise SourceError(f"{origin}: the API reported an error: {err}")
    data = doc.get("data")
    if not isinstance(data, list):
        raise SourceError(f"{origin}: no 'data' list in the response (keys: {list(doc)})")
    rows = []
    for i, e in enumerate(data):
        try:
            ts = int(e["timestamp"])
            value = float(e["value"])
        except (KeyError, TypeError, ValueError):
            raise SourceError(f"{origin}: entry {i} has no usable value/timestamp: {e!r}") from None
        rows.append({"date": datetime.fromtimestamp(ts, timezone.utc).date(), "index": INDEX, "value": value,
                     "label": e.get("value_classification"), "source": SOURCE})
    df = pl.DataFrame(rows, schema={"date": pl.Date, "index": pl.String, "value": pl.Float64, "label": pl.String,
                                    "source": pl.String})
    dup = df["date"].is_duplicated()
    if dup.any():
        i = int(dup.arg_max())
        raise SourceError(f"{origin}: date {df['date'][i]} appears more than once; cannot tell which value is right")
    return df.sort("date")


def fetch(*, data_dir=None, base: str | None = None, limit: int = 0, retries: int = 4, backoff: float = 0.5,
          timeout: float = 30.0, deadline: float | None = None) -> FetchSummary:
    """Download the whole history (``limit=0``), keep the raw JSON, write ``sentiment``."""
    ddir = paths.data_dir(data_dir)
    b = (base or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    url = f"{b}/fng/?limit={int(limit)}&format=json"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = ddir / "raw" / "alternative_me" / "fng" / f"fng-limit{int(limit)}-{stamp}.json"
    dl = Downloader(ddir, retries=retries, backoff=backoff, timeout=timeout, deadline=deadline)
    return fetch_file(dl, url, dest, table="sentiment", parse=lambda p: parse(p.read_bytes(), origin=p.name),
                      source=SOURCE)
