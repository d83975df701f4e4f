"""Bybit v5 public market API: funding history, open interest, klines (linear perps and spot) and
the long/short account ratio.

Followed documentation (bybit-exchange.github.io/docs/v5/...):

* ``GET /v5/market/funding/history`` (``market/history-fund-rate``): ``category``, ``symbol``,
  ``startTime``/``endTime`` (ms), ``limit`` <= 200; ``result.list`` of
  ``{symbol, fundingRate, fundingRateTimestamp}``, newest first. ``fundingRate`` is a decimal per
  settlement (8 h for BTCUSDT).
* ``GET /v5/market/open-interest`` (``market/open-interest``): ``intervalTime`` one of
  ``5min 15min 30min 1h 4h 1d``, ``startTime``/``endTime``, ``limit`` <= 200, ``cursor`` from
  ``result.nextPageCursor``; ``result.list`` of ``{openInterest, timestamp}``. For linear
  contracts ``openInterest`` is in the base coin, so it is stored as ``oi_base`` (``oi_usd``
  null); ``timestamp`` is the snapshot instant.
* ``GET /v5/market/kline`` (``market/kline``): ``category`` ``linear`` or ``spot``, ``interval``
  ``1 3 5 15 30 60 120 240 360 720 D W M``, ``start``/``end`` (ms), ``limit`` <= 1000;
  ``result.list`` of ``[startTime, open, high, low, close, volume, turnover]`` (strings), newest
  first; volume is base coin, turnover quote coin. The last bar of a window that reaches now is
  still open, so such windows are never treated as final.
* ``GET /v5/market/account-ratio`` (``market/long-short-ratio``): ``period`` as ``intervalTime``,
  ``limit`` <= 500, ``cursor``; ``result.list`` of ``{symbol, buyRatio, sellRatio, timestamp}``.
  ``account_ls_ratio`` = buyRatio / sellRatio, as the page defines the long-short account ratio.

Errors (``v5/error`` and ``v5/rate-limit``): every answer is ``{"retCode", "retMsg", "result", ...}``;
``retCode`` 0 is success, 10006 "Too many visits!" is the per-UID rate limit (wait until
``X-Bapi-Limit-Reset-Timestamp``); an HTTP 403 "access too frequent" is the IP limit (600 requests /
5 s; the IP is then banned for about 10 minutes) and is reported, not hammered. Public endpoints
need no key.
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

SOURCE = "bybit"
_OI_IV = {"5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1d"}
_KLINE_IV = {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120", "4h": "240",
             "6h": "360", "12h": "720", "1d": "D"}
_STEP = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
         "6h": 21600, "12h": 43200, "1d": 86400}
FUNDING_HOURS = 8


def _result(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedPage(f"bybit {what}: the answer is not JSON ({body[:60]!r})") from None
    if not isinstance(doc, dict) or "retCode" not in doc:
        raise MalformedPage(f"bybit {what}: no retCode in the answer")
    code = doc["retCode"]
    if code == 10006:
        raise RateLimited(f"bybit {what}: retCode 10006 {doc.get('retMsg')}")
    if code != 0:
        raise ProviderError(f"bybit {what}: retCode {code} {doc.get('retMsg')!r}")
    res = doc.get("result")
    if not isinstance(res, dict) or not isinstance(res.get("list"), list):
        raise MalformedPage(f"bybit {what}: result.list missing")
    return res


def _plan(endpoint: str, limit: int, step_key: str | None, params, name: str):
    def plan(req: Request) -> list[Page]:
        step = _STEP[req.interval] if step_key else 8 * 3600
        pages = []
        for a, b in windows(req.start_ms, req.end_ms, step * 1000 * limit):
            q = {**params(req), "limit": limit}
            lo, hi = ("start", "end") if endpoint == "kline" else ("startTime", "endTime")
            q[lo], q[hi] = a, b - 1
            url = f"{req.base}/v5/market/{endpoint}?" + "&".join(f"{k}={v}" for k, v in q.items())
            tag = f"{q.get('category', 'linear')}-{path_safe(req.symbol)}-{req.interval or '8h'}"
            pages.append(Page(url, f"{name}/{tag}/{a}-{b}.json", final=b + step * 1000 < now_ms(),
                              ctx={"symbol": req.symbol, "interval": req.interval, "q": q, "limit": limit}))
        return pages
    return plan


def _cursor_next(page: Page, res: dict, n: int) -> Page | None:
    cur = res.get("nextPageCursor")
    if not cur or n == 0:
        return None
    base = page.url.split("&cursor=")[0]
    k = page.ctx.get("page", 1) + 1
    return Page(f"{base}&cursor={cur}", page.dest.replace(".json", f".p{k}.json"), final=page.final,
                ctx={**page.ctx, "page": k})


def _parse_funding(body: bytes, page: Page) -> Parsed:
    res = _result(body, "funding/history")
    rows = [{"ts": int(num(r.get("fundingRateTimestamp"), "fundingRateTimestamp")), "venue": SOURCE,
             "symbol": r.get("symbol") or page.ctx["symbol"], "rate": num(r.get("fundingRate"), "fundingRate"),
             "interval_hours": FUNDING_HOURS} for r in res["list"]]
    return Parsed(frame("funding", rows, SOURCE))


def _parse_oi(body: bytes, page: Page) -> Parsed:
    res = _result(body, "open-interest")
    rows = [{"ts": int(num(r.get("timestamp"), "timestamp")), "venue": SOURCE, "symbol": page.ctx["symbol"],
             "interval": page.ctx["interval"], "oi_base": num(r.get("openInterest"), "openInterest")}
            for r in res["list"]]
    return Parsed(frame("open_interest", rows, SOURCE), _cursor_next(page, res, len(rows)))


def _parse_ratio(body: bytes, page: Page) -> Parsed:
    res = _result(body, "account-ratio")
    rows = []
    for r in res["list"]:
        buy, sell = num(r.get("buyRatio"), "buyRatio"), num(r.get("sellRatio"), "sellRatio")
        rows.append({"ts": int(num(r.get("timestamp"), "timestamp")), "venue": SOURCE, "symbol": page.ctx["symbol"],
                     "interval": page.ctx["interval"], "account_ls_ratio": buy / sell if sell > 0 else None})
    return Parsed(frame("positioning", rows, SOURCE), _cursor_next(page, res, len(rows)))


def _kline_parser(market: str):
    def parse(body: bytes, page: Page) -> Parsed:
        res = _result(body, "kline")
        rows = []
        for i, k in enumerate(res["list"]):
            if not isinstance(k, list) or len(k) < 7:
                raise MalformedPage(f"bybit kline: row {i} is not [startTime, open, high, low, close, volume, turnover]")
            rows.append({"ts": int(num(k[0], "startTime")), "venue": SOURCE, "market": market,
                         "symbol": page.ctx["symbol"], "interval": page.ctx["interval"],
                         "open": num(k[1], "open"), "high": num(k[2], "high"), "low": num(k[3], "low"),
                         "close": num(k[4], "close"), "volume": num(k[5], "volume"),
                         "quote_volume": num(k[6], "turnover")})
        return Parsed(frame("bars", rows, SOURCE))
    return parse


def _sym(req: Request) -> dict:
    return {"category": "linear", "symbol": req.symbol}


PROVIDER = register(Provider(
    name="bybit",
    doc="Bybit v5 public market data (no key): funding history, open interest, perp and spot klines, "
        "long/short account ratio.",
    docs=("https://bybit-exchange.github.io/docs/v5/market/history-fund-rate",
          "https://bybit-exchange.github.io/docs/v5/market/open-interest",
          "https://bybit-exchange.github.io/docs/v5/market/kline",
          "https://bybit-exchange.github.io/docs/v5/market/long-short-ratio",
          "https://bybit-exchange.github.io/docs/v5/rate-limit"),
    default_base_url="https://api.bybit.com",
    rate_limit=RateLimit(600, 5.0, "600 requests per 5 s per IP (HTTP 403 'access too frequent' bans the IP "
                                   "for ~10 min); retCode 10006 = per-UID limit"),
    default_symbols=("BTCUSDT",),
    symbol_help="Bybit symbols, upper case, e.g. BTCUSDT (linear USDT perp; spot uses the same name).",
    default_datasets=("funding", "open_interest", "klines"),
    datasets={d.name: d for d in (
        Dataset("funding", "funding", "funding settlements (decimal per 8 h)", "/v5/market/funding/history",
                _plan("funding/history", 200, None, _sym, "funding"), _parse_funding, page_limit=200),
        Dataset("open_interest", "open_interest", "open interest snapshots in base coin", "/v5/market/open-interest",
                _plan("open-interest", 200, "oi", lambda r: {**_sym(r), "intervalTime": _OI_IV[r.interval]},
                      "open_interest"), _parse_oi, intervals=_OI_IV, default_interval="1h", page_limit=200),
        Dataset("klines", "bars", "linear perpetual klines (market perp)", "/v5/market/kline",
                _plan("kline", 1000, "k", lambda r: {**_sym(r), "interval": _KLINE_IV[r.interval]}, "kline"),
                _kline_parser("perp"), intervals=_KLINE_IV, default_interval="1h", page_limit=1000),
        Dataset("spot_klines", "bars", "spot klines (market spot)", "/v5/market/kline",
                _plan("kline", 1000, "k", lambda r: {"category": "spot", "symbol": r.symbol,
                                                     "interval": _KLINE_IV[r.interval]}, "kline"),
                _kline_parser("spot"), intervals=_KLINE_IV, default_interval="1h", page_limit=1000),
        Dataset("long_short", "positioning", "all accounts' long/short ratio (buyRatio / sellRatio)",
                "/v5/market/account-ratio",
                _plan("account-ratio", 500, "ls", lambda r: {**_sym(r), "period": _OI_IV[r.interval]}, "account_ratio"),
                _parse_ratio, intervals=_OI_IV, default_interval="1h", page_limit=500),
    )},
))
