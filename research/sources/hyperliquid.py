"""Hyperliquid public ``info`` endpoint (``POST /info``, JSON body): funding history and candles per
coin, and current open interest from the asset contexts.

Followed documentation (hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint,
pages "Perpetuals" and "Info endpoint"):

* ``{"type": "fundingHistory", "coin": "BTC", "startTime": ms, "endTime": ms}`` -> a list of
  ``{coin, fundingRate, premium, time}``; at most 500 entries per answer, so a full page is
  followed by a request starting 1 ms after its last ``time``. Hyperliquid settles funding every
  hour, so rows are stored with ``interval_hours`` = 1 (``fundingRate`` is the hourly decimal).
* ``{"type": "candleSnapshot", "req": {"coin", "interval", "startTime", "endTime"}}`` -> a list of
  ``{t, T, s, i, o, c, h, l, v, n}`` (open time, close time, coin, interval, prices and base volume
  as strings, trade count); at most 5000 candles per answer and only the most recent 5000 candles
  are kept, so old windows come back empty. Intervals ``1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d``.
* ``{"type": "metaAndAssetCtxs"}`` -> ``[meta, assetCtxs]`` where ``meta.universe[i].name`` names
  ``assetCtxs[i]`` (``openInterest`` in coins, ``markPx``, ``funding``, ...). It is a snapshot of
  *now*: each run records one observation with the time it was taken (local UTC clock just before
  the request), ``oi_base`` = ``openInterest`` and ``oi_usd`` = ``openInterest * markPx``. Whether
  ``openInterest`` counts one side or both sides is not stated in the official pages (a third-party
  API describes it as two-sided): uncertain, compare shares across venues with care.

Rate limits ("Rate limits and user limits"): 1200 weight per minute per IP; ``info`` requests
weigh 20 (2 for a few light types; candle snapshots add weight per 60 items returned); excess
answers HTTP 429, which the shared downloader waits out. No key.
"""
from __future__ import annotations

import json

from research.sources.base import (
    Dataset,
    MalformedPage,
    Page,
    Parsed,
    Provider,
    RateLimit,
    Request,
    frame,
    now_ms,
    num,
    path_safe,
    register,
    windows,
)

SOURCE = "hyperliquid"
_IV = {k: k for k in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d")}
_STEP = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
         "8h": 28800, "12h": 43200, "1d": 86400}
FUNDING_PAGE = 500
CANDLE_PAGE = 5000


def _json_list(body: bytes, what: str) -> list:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedPage(f"hyperliquid {what}: the answer is not JSON ({body[:60]!r})") from None
    if doc is None:
        return []  # the venue answers null for an unknown window
    if not isinstance(doc, list):
        raise MalformedPage(f"hyperliquid {what}: expected a list, got {type(doc).__name__}")
    return doc


def _body(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _plan_funding(req: Request) -> list[Page]:
    pages = []
    for a, b in windows(req.start_ms, req.end_ms, 3600 * 1000 * FUNDING_PAGE):
        body = {"type": "fundingHistory", "coin": req.symbol, "startTime": a, "endTime": b - 1}
        pages.append(Page(f"{req.base}/info", f"fundingHistory/{path_safe(req.symbol)}/{a}-{b}.json", _body(body),
                          final=b + 3600 * 1000 < now_ms(), ctx={"symbol": req.symbol, "body": body, "end": b}))
    return pages


def _parse_funding(data: bytes, page: Page) -> Parsed:
    rows = []
    for r in _json_list(data, "fundingHistory"):
        if not isinstance(r, dict):
            raise MalformedPage("hyperliquid fundingHistory: an element is not an object")
        rows.append({"ts": int(num(r.get("time"), "time")), "venue": SOURCE, "symbol": r.get("coin") or page.ctx["symbol"],
                     "rate": num(r.get("fundingRate"), "fundingRate"), "interval_hours": 1})
    nxt = None
    if rows:
        last = max(r["ts"] for r in rows)
        # an answer that stops short of the window (the 500-row cap) is continued after its last row
        if last + 3600 * 1000 < page.ctx["end"]:
            body = {**page.ctx["body"], "startTime": last + 1}
            nxt = Page(page.url, page.dest.replace(".json", f".from{last + 1}.json"), _body(body), page.final,
                       ctx={**page.ctx, "body": body})
    return Parsed(frame("funding", rows, SOURCE), nxt)


def _plan_candles(req: Request) -> list[Page]:
    step = _STEP[req.interval] * 1000
    pages = []
    for a, b in windows(req.start_ms, req.end_ms, step * CANDLE_PAGE):
        body = {"type": "candleSnapshot", "req": {"coin": req.symbol, "interval": req.interval,
                                                   "startTime": a, "endTime": b - 1}}
        pages.append(Page(f"{req.base}/info", f"candleSnapshot/{path_safe(req.symbol)}-{req.interval}/{a}-{b}.json",
                          _body(body), final=b + step < now_ms(), ctx={"symbol": req.symbol, "interval": req.interval}))
    return pages


def _parse_candles(data: bytes, page: Page) -> Parsed:
    rows = []
    now = now_ms()
    for c in _json_list(data, "candleSnapshot"):
        if not isinstance(c, dict):
            raise MalformedPage("hyperliquid candleSnapshot: an element is not an object")
        if int(num(c.get("T"), "T")) >= now:
            continue  # the candle is still open
        rows.append({"ts": int(num(c.get("t"), "t")), "venue": SOURCE, "market": "perp", "symbol": page.ctx["symbol"],
                     "interval": page.ctx["interval"], "open": num(c.get("o"), "o"), "high": num(c.get("h"), "h"),
                     "low": num(c.get("l"), "l"), "close": num(c.get("c"), "c"), "volume": num(c.get("v"), "v"),
                     "trades": int(num(c.get("n"), "n"))})
    return Parsed(frame("bars", rows, SOURCE))


def _plan_ctxs(req: Request) -> list[Page]:
    obs = now_ms()
    return [Page(f"{req.base}/info", f"metaAndAssetCtxs/{obs}.json", _body({"type": "metaAndAssetCtxs"}), final=True,
                 ctx={"symbol": req.symbol, "interval": req.extra.get("snapshot_interval", "1h")})]


def _parse_ctxs(data: bytes, page: Page) -> Parsed:
    doc = _json_list(data, "metaAndAssetCtxs")
    if len(doc) != 2 or not isinstance(doc[0], dict) or not isinstance(doc[1], list):
        raise MalformedPage("hyperliquid metaAndAssetCtxs: expected [meta, assetCtxs]")
    universe = doc[0].get("universe")
    if not isinstance(universe, list) or len(universe) != len(doc[1]):
        raise MalformedPage("hyperliquid metaAndAssetCtxs: meta.universe does not line up with assetCtxs")
    obs = int(page.dest.rsplit("/", 1)[-1].split(".")[0])  # observation time is part of the raw file name
    rows = []
    for u, ctx in zip(universe, doc[1]):
        if isinstance(u, dict) and u.get("name") == page.ctx["symbol"]:
            oi = num(ctx.get("openInterest"), "openInterest")
            rows.append({"ts": obs, "venue": SOURCE, "symbol": u["name"], "interval": page.ctx["interval"],
                         "oi_base": oi, "oi_usd": oi * num(ctx.get("markPx"), "markPx")})
    if not rows:
        raise MalformedPage(f"hyperliquid metaAndAssetCtxs: coin {page.ctx['symbol']!r} is not in the universe")
    return Parsed(frame("open_interest", rows, SOURCE))


PROVIDER = register(Provider(
    name="hyperliquid",
    doc="Hyperliquid public info endpoint (POST /info, no key): hourly funding history, candles per coin, "
        "and the current open interest (one observation per run, stamped with its time).",
    docs=("https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint",
          "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals",
          "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits"),
    default_base_url="https://api.hyperliquid.xyz",
    headers={"Content-Type": "application/json"},
    rate_limit=RateLimit(60, 60.0, "1200 weight per minute per IP, info requests weigh 20 (so ~60 per minute); "
                                   "HTTP 429 when exceeded"),
    default_symbols=("BTC",),
    symbol_help="Hyperliquid coin names, e.g. BTC, ETH.",
    default_datasets=("funding", "candles"),
    params={"snapshot_interval": "interval stored with open_interest snapshots = your polling cadence (default 1h)"},
    datasets={d.name: d for d in (
        Dataset("funding", "funding", "hourly funding (decimal per hour)", "fundingHistory",
                _plan_funding, _parse_funding, page_limit=FUNDING_PAGE),
        Dataset("candles", "bars", "perp candles (only the latest 5000 are kept)", "candleSnapshot",
                _plan_candles, _parse_candles, intervals=_IV, default_interval="1h", page_limit=CANDLE_PAGE),
        Dataset("open_interest", "open_interest", "current open interest (coins, and USD at markPx)",
                "metaAndAssetCtxs", _plan_ctxs, _parse_ctxs),
    )},
))
