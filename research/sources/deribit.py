"""Deribit public API v2 (HTTP GET, JSON-RPC answers): the DVOL volatility index and perpetual
funding history.

Followed documentation (docs.deribit.com/api-reference/market-data/...):

* ``public/get_volatility_index_data``: ``currency`` (BTC, ETH, ...), ``start_timestamp`` /
  ``end_timestamp`` (ms), ``resolution`` (seconds as a string - ``1``, ``60``, ``3600``, ``43200`` -
  or ``1D``); ``result.data`` is a list of ``[timestamp, open, high, low, close]`` and
  ``result.continuation`` is either null or the value to send as ``end_timestamp`` of the next
  request (older candles). Stored in the ``dvol`` table (candle start, index points).
* ``public/get_funding_rate_history``: ``instrument_name`` (e.g. ``BTC-PERPETUAL``),
  ``start_timestamp`` / ``end_timestamp``; ``result`` is a list of ``{timestamp, index_price,
  prev_index_price, interest_1h, interest_8h}``, one row per hour. Deribit's perpetual funding
  accrues continuously; the hourly ``interest_1h`` is stored with ``interval_hours`` = 1 at
  ``timestamp`` (the end of the hour). Windows of 30 days keep answers within one month of rows.

Answers are ``{"jsonrpc": "2.0", "result": ...}`` or ``{"jsonrpc": "2.0", "error": {"code",
"message"}}``; error code 10028 ``too_many_requests`` is the rate limit (credit system: about 20
non-matching requests per second sustained) and is waited out. HTTP 429 is retried by the shared
downloader. Public methods need no key.
"""
from __future__ import annotations

import json

from research.sources.base import (
    Dataset,
    MalformedPage,
    Page,
    Parsed,
    Provider,
    ProviderError,
    RateLimit,
    RateLimited,
    Request,
    frame,
    now_ms,
    num,
    path_safe,
    register,
    windows,
)

SOURCE = "deribit"
_RES = {"1m": "60", "1h": "3600", "12h": "43200", "1d": "1D"}
_STEP = {"1m": 60, "1h": 3600, "12h": 43200, "1d": 86400}
DVOL_PAGE = 1000
FUNDING_WINDOW_H = 720


def _result(body: bytes, what: str):
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedPage(f"deribit {what}: the answer is not JSON ({body[:60]!r})") from None
    if not isinstance(doc, dict):
        raise MalformedPage(f"deribit {what}: the answer is not a JSON-RPC object")
    err = doc.get("error")
    if err:
        code = err.get("code") if isinstance(err, dict) else None
        msg = err.get("message") if isinstance(err, dict) else err
        if code == 10028:
            raise RateLimited(f"deribit {what}: error 10028 {msg}")
        raise ProviderError(f"deribit {what}: error {code} {msg!r}")
    if "result" not in doc:
        raise MalformedPage(f"deribit {what}: no 'result' in the answer")
    return doc["result"]


def _plan_dvol(req: Request) -> list[Page]:
    step = _STEP[req.interval] * 1000
    pages = []
    for a, b in windows(req.start_ms, req.end_ms, step * DVOL_PAGE):
        url = (f"{req.base}/api/v2/public/get_volatility_index_data?currency={req.symbol}"
               f"&start_timestamp={a}&end_timestamp={b - 1}&resolution={_RES[req.interval]}")
        pages.append(Page(url, f"volatility_index/{path_safe(req.symbol)}-{req.interval}/{a}-{b}.json",
                          final=b + step < now_ms(), ctx={"symbol": req.symbol, "interval": req.interval, "start": a}))
    return pages


def _parse_dvol(body: bytes, page: Page) -> Parsed:
    res = _result(body, "get_volatility_index_data")
    if not isinstance(res, dict) or not isinstance(res.get("data"), list):
        raise MalformedPage("deribit get_volatility_index_data: result.data is not a list")
    rows = []
    for i, c in enumerate(res["data"]):
        if not isinstance(c, list) or len(c) < 5:
            raise MalformedPage(f"deribit get_volatility_index_data: candle {i} is not [ts, o, h, l, c]")
        rows.append({"ts": int(num(c[0], "timestamp")), "currency": page.ctx["symbol"], "interval": page.ctx["interval"],
                     "open": num(c[1], "open"), "high": num(c[2], "high"), "low": num(c[3], "low"),
                     "close": num(c[4], "close")})
    nxt = None
    cont = res.get("continuation")
    if cont is not None and int(cont) > page.ctx["start"]:
        base = page.url.split("&end_timestamp=")[0]
        tail = page.url.split("&resolution=")[1]
        nxt = Page(f"{base}&end_timestamp={int(cont)}&resolution={tail}",
                   page.dest.replace(".json", f".to{int(cont)}.json"), final=page.final, ctx=page.ctx)
    return Parsed(frame("dvol", rows, SOURCE), nxt)


def _plan_funding(req: Request) -> list[Page]:
    pages = []
    for a, b in windows(req.start_ms, req.end_ms, FUNDING_WINDOW_H * 3600 * 1000):
        url = (f"{req.base}/api/v2/public/get_funding_rate_history?instrument_name={req.symbol}"
               f"&start_timestamp={a}&end_timestamp={b - 1}")
        pages.append(Page(url, f"funding_rate_history/{path_safe(req.symbol)}/{a}-{b}.json",
                          final=b + 3600 * 1000 < now_ms(), ctx={"symbol": req.symbol}))
    return pages


def _parse_funding(body: bytes, page: Page) -> Parsed:
    res = _result(body, "get_funding_rate_history")
    if not isinstance(res, list):
        raise MalformedPage("deribit get_funding_rate_history: result is not a list")
    rows = [{"ts": int(num(r.get("timestamp"), "timestamp")), "venue": SOURCE, "symbol": page.ctx["symbol"],
             "rate": num(r.get("interest_1h"), "interest_1h"), "interval_hours": 1}
            for r in res if isinstance(r, dict)]
    if len(rows) != len(res):
        raise MalformedPage("deribit get_funding_rate_history: an element is not an object")
    return Parsed(frame("funding", rows, SOURCE))


PROVIDER = register(Provider(
    name="deribit",
    doc="Deribit public API (no key): the DVOL volatility index (OHLC at a chosen resolution, table dvol; "
        "--symbol is the currency) and hourly perpetual funding (--symbol BTC-PERPETUAL).",
    docs=("https://docs.deribit.com/api-reference/market-data/public-get_volatility_index_data",
          "https://docs.deribit.com/api-reference/market-data/public-get_funding_rate_history",
          "https://docs.deribit.com/#rate-limits"),
    default_base_url="https://www.deribit.com",
    rate_limit=RateLimit(20, 1.0, "credit-based, about 20 non-matching-engine requests per second sustained; "
                                  "error 10028 too_many_requests"),
    default_symbols=("BTC",),
    symbol_help="dvol: a currency (BTC, ETH); funding: a perpetual (BTC-PERPETUAL, ETH-PERPETUAL).",
    default_datasets=("dvol",),
    datasets={d.name: d for d in (
        Dataset("dvol", "dvol", "DVOL candles (index points)", "public/get_volatility_index_data",
                _plan_dvol, _parse_dvol, intervals=_RES, default_interval="1h", page_limit=DVOL_PAGE),
        Dataset("funding", "funding", "hourly perpetual funding (interest_1h)", "public/get_funding_rate_history",
                _plan_funding, _parse_funding, page_limit=FUNDING_WINDOW_H),
    )},
))
