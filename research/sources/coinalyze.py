"""Coinalyze API v1 (free key in ``COINALYZE_API_KEY``): liquidations after 2024-03-31, OI,
funding and long/short ratio history.

Documented API (https://api.coinalyze.net/v1/doc/): the key goes in the ``api_key`` header;
40 calls/minute, a 429 carries ``Retry-After`` (seconds); ``from``/``to`` are Unix seconds;
``interval`` is one of ``1min 5min 15min 30min 1hour 2hour 4hour 6hour 12hour daily``; intraday
history keeps only the last 1500-2000 points, daily history is kept. Every history endpoint
answers ``[{"symbol": "BTCUSDT_PERP.A", "history": [...]}]`` with points

* ``/liquidation-history``: ``{"t", "l", "s"}`` (longs / shorts liquidated; USD with
  ``convert_to_usd=true``, which we always send);
* ``/open-interest-history``: ``{"t", "o", "h", "l", "c"}`` (USD with ``convert_to_usd=true``);
* ``/funding-rate-history``: ``{"t", "o", "h", "l", "c"}`` in **percent**;
* ``/long-short-ratio-history``: ``{"t", "r", "l", "s"}`` (ratio, long %, short %).

``t`` is the bucket start. Mapping (source ``coinalyze``; symbol ``BTCUSDT_PERP.A`` -> venue from
the exchange code after the dot, symbol ``BTCUSDT``):

* liquidations: ``ts`` = bucket start, ``long_usd``/``short_usd`` = ``l``/``s``;
* open_interest: ``ts`` = bucket end (the close is known then), ``oi_usd`` = ``c``;
* positioning: ``ts`` = bucket end, ``account_ls_ratio`` = ``r``;
* funding: ``c`` / 100 at the bucket end, **kept only where the bucket end falls on the
  settlement grid** (multiples of ``funding_interval_hours`` from 00:00 UTC), so rows stand for
  settlements and not for hourly samples. Coinalyze's ``c`` is the rate in force at that time;
  whether it is the settled or the next predicted rate is not documented (uncertain).

The key is read from the environment only, sent in a header, and redacted from every URL,
error and manifest record.
"""
from __future__ import annotations

import json
import os
import urllib.parse
from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from research import lake, paths
from research.errors import SourceError
from research.schema import INTERVALS
from research.sources.http import Downloader, FetchSummary
from research.sources.manifest import Manifest

DEFAULT_BASE_URL = "https://api.coinalyze.net/v1"
BASE_URL_ENV = "RESEARCH_COINALYZE_BASE_URL"
KEY_ENV = "COINALYZE_API_KEY"
SOURCE = "coinalyze"
API_INTERVALS = {"1min": "1m", "5min": "5m", "15min": "15m", "30min": "30m", "1hour": "1h", "2hour": "2h",
                 "4hour": "4h", "6hour": "6h", "12hour": "12h", "daily": "1d"}
# exchange codes seen in Coinalyze symbols (A = Binance, 6 = Bybit, 3 = OKX, 0 = BitMEX, 2 = Deribit)
EXCHANGES = {"A": "binance", "6": "bybit", "3": "okx", "0": "bitmex", "2": "deribit"}
ENDPOINTS = {
    "liquidations": ("liquidation-history", True),
    "open_interest": ("open-interest-history", True),
    "funding": ("funding-rate-history", False),
    "long_short": ("long-short-ratio-history", False),
}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT_PERP.A`` -> (``binance``, ``BTCUSDT``)."""
    market, _, code = symbol.partition(".")
    if not code:
        raise SourceError(f"Coinalyze symbol {symbol!r} has no exchange code (e.g. BTCUSDT_PERP.A)")
    venue = EXCHANGES.get(code, f"coinalyze-{code}")
    return venue, market.split("_")[0]


def _history(doc, origin: str) -> list[tuple[str, list[dict]]]:
    if isinstance(doc, dict) and ("error" in doc or "message" in doc):
        raise SourceError(f"{origin}: the API answered {doc}")
    if not isinstance(doc, list):
        raise SourceError(f"{origin}: expected a list of {{symbol, history}} objects, got {type(doc).__name__}")
    out = []
    for item in doc:
        if not isinstance(item, dict) or "symbol" not in item or not isinstance(item.get("history"), list):
            raise SourceError(f"{origin}: an element lacks 'symbol'/'history': {str(item)[:200]}")
        out.append((item["symbol"], item["history"]))
    return out


def parse(kind: str, payload: bytes | str | list, interval: str, *, origin: str = "coinalyze response",
          funding_interval_hours: int = 8) -> tuple[str, pl.DataFrame]:
    """A Coinalyze history payload -> (table name, canonical frame)."""
    doc = payload if isinstance(payload, list) else json.loads(payload)
    iv = API_INTERVALS.get(interval)
    if iv is None:
        raise SourceError(f"interval {interval!r} is not a Coinalyze interval; use one of {', '.join(API_INTERVALS)}")
    step = INTERVALS[iv]
    rows = []
    for sym, hist in _history(doc, origin):
        venue, symbol = split_symbol(sym)
        for i, p in enumerate(hist):
            try:
                t = int(p["t"])
                if kind == "liquidations":
                    rows.append({"ts": t, "venue": venue, "symbol": symbol, "interval": iv,
                                 "long_usd": float(p["l"]), "short_usd": float(p["s"])})
                elif kind == "open_interest":
                    rows.append({"ts": t + step, "venue": venue, "symbol": symbol, "interval": iv, "oi_usd": float(p["c"])})
                elif kind == "long_short":
                    rows.append({"ts": t + step, "venue": venue, "symbol": symbol, "interval": iv,
                                 "account_ls_ratio": float(p["r"])})
                elif kind == "funding":
                    end = t + step
                    if end % (funding_interval_hours * 3600) == 0:
                        rows.append({"ts": end, "venue": venue, "symbol": symbol, "rate": float(p["c"]) / 100.0,
                                     "interval_hours": funding_interval_hours})
                else:
                    raise SourceError(f"unknown Coinalyze kind {kind!r}; use one of {', '.join(ENDPOINTS)}")
            except (KeyError, TypeError, ValueError):
                raise SourceError(f"{origin}: {sym} point {i} lacks a needed field: {p!r}") from None
    table = {"long_short": "positioning"}.get(kind, kind)
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else None
    if df is None:
        from research.schema import get_table
        return table, get_table(table).empty()
    df = df.with_columns((pl.col("ts") * 1_000_000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
                         pl.lit(SOURCE).alias("source"))
    return table, df


def _unix(d: date, end: bool = False) -> int:
    dt = datetime.combine(d, time.max if end else time.min, tzinfo=timezone.utc)
    return int(dt.timestamp())


def fetch(symbols: list[str], kinds: list[str], *, start: date, end: date, interval: str = "daily",
          data_dir=None, base: str | None = None, api_key: str | None = None, funding_interval_hours: int = 8,
          retries: int = 4, backoff: float = 1.0, timeout: float = 30.0,
          deadline: float | None = None) -> FetchSummary:
    """Fetch Coinalyze history for up to 20 symbols per call and write the canonical tables.

    Parameters
    ----------
    symbols : list of str
        Coinalyze symbols, e.g. ``["BTCUSDT_PERP.A"]`` (Binance USD-M BTCUSDT).
    kinds : list of str
        Any of ``liquidations``, ``open_interest``, ``funding``, ``long_short``.
    api_key : str, optional
        Defaults to ``$COINALYZE_API_KEY``; never written anywhere, never sent to another origin
        (a redirect off the API's origin is refused).
    deadline : float, optional
        Seconds one attempt at one request may take (``--timeout``).
    """
    key = api_key or os.environ.get(KEY_ENV)
    if not key:
        raise SourceError(f"Coinalyze needs an API key: set {KEY_ENV} (a free key from coinalyze.net, "
                          "account -> API key); it is read from the environment only")
    if interval not in API_INTERVALS:
        raise SourceError(f"interval {interval!r} is not a Coinalyze interval; use one of {', '.join(API_INTERVALS)}")
    if not symbols or len(symbols) > 20:
        raise SourceError("give 1 to 20 Coinalyze symbols (e.g. BTCUSDT_PERP.A)")
    for s in symbols:
        split_symbol(s)
    bad = [k for k in kinds if k not in ENDPOINTS]
    if bad:
        raise SourceError(f"unknown kind(s) {bad}; use {', '.join(ENDPOINTS)}")
    ddir = paths.data_dir(data_dir)
    b = (base or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    dl = Downloader(ddir, retries=retries, backoff=backoff, timeout=timeout, headers={"api_key": key}, secrets=[key],
                    deadline=deadline, redirects="same-origin")
    manifest = Manifest(ddir)
    summary = FetchSummary(planned=len(kinds))
    frm, to = _unix(start), _unix(end, end=True)
    for kind in kinds:
        endpoint, usd = ENDPOINTS[kind]
        q = {"symbols": ",".join(symbols), "interval": interval, "from": frm, "to": to}
        if usd:
            q["convert_to_usd"] = "true"
        url = f"{b}/{endpoint}?{urllib.parse.urlencode(q, safe=',')}"
        name = f"{'_'.join(s.replace('.', '-') for s in symbols)}-{interval}-{start}-{end}.json"
        dest = ddir / "raw" / "coinalyze" / endpoint / name
        def check(path, kind=kind, endpoint=endpoint):
            # a 200-OK error document must not replace the previous good answer
            try:
                parse(kind, path.read_bytes(), interval, origin=f"{endpoint} answer",
                      funding_interval_hours=funding_interval_hours)
            except SourceError:
                raise
            except ValueError as e:  # not JSON
                raise SourceError(f"{endpoint} answer is not JSON ({str(e)[:200]})") from None

        res = dl.download(url, dest, validate=check)
        manifest.append({**res.record(), "source": SOURCE, "event": "download", "ingest": "pending" if res.ok else None})
        if not res.ok:
            if "401" in (res.error or "") or "403" in (res.error or ""):
                res.error += f"; check {KEY_ENV}"
            getattr(summary, res.status).append(res)
            continue
        summary.downloaded += 1
        summary.bytes_downloaded += res.size or 0
        try:
            table, df = parse(kind, dest.read_bytes(), interval, origin=f"{endpoint} {dest.name}",
                              funding_interval_hours=funding_interval_hours)
            w = lake.write(table, df, ddir, origin=dest.name)
        except Exception as e:  # SourceError / SchemaError / JSON errors; the lake is unchanged
            summary.ingest_errors.append((res.path, dl.redact(str(e))))
            manifest.append({"path": res.path, "event": "ingest", "ingest": "failed", "error": dl.redact(str(e))})
            continue
        summary.ingested_files += 1
        summary.rows_in[table] = summary.rows_in.get(table, 0) + w.rows_in
        summary.rows_added[table] = summary.rows_added.get(table, 0) + w.rows_added
        manifest.append({"path": res.path, "event": "ingest", "ingest": "ok", "rows": {table: w.rows_in}})
    if interval != "daily" and (end - start) > timedelta(days=60):
        summary.notes.append("Coinalyze keeps only the last 1500-2000 intraday points; use --interval daily "
                             "for long histories")
    return summary
