"""OKX v5 public API: funding-rate history, open-interest/volume statistics (rubik) and history
candles for swaps and spot.

Followed documentation (www.okx.com/docs-v5/en/):

* ``GET /api/v5/public/funding-rate-history`` ("Get funding rate history"): ``instId`` (e.g.
  ``BTC-USDT-SWAP``), ``before``/``after`` cursors on ``fundingTime`` (``after`` = records earlier
  than the value, ``before`` = later, both exclusive), ``limit``; ``data`` of ``{instType, instId,
  formulaType, fundingRate, realizedRate, fundingTime, method}``. ``realizedRate`` (the rate
  actually settled) is stored when present, else ``fundingRate``. Rate limit 10 requests / 2 s.
* ``GET /api/v5/market/history-candles`` ("Get candlesticks history"): ``instId``, ``bar``
  (``1m 3m 5m 15m 30m 1H 2H 4H``, UTC-aligned ``6Hutc 12Hutc 1Dutc`` - the plain ``1D`` opens at
  Hong Kong midnight, so it is not used), ``after``/``before`` cursors on ``ts``, ``limit`` <= 100;
  ``data`` of ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``, newest first. For a swap
  ``vol`` is contracts and ``volCcy`` the base coin; for spot ``vol`` is the base coin. Bars with
  ``confirm`` = ``0`` are still open and are dropped. Rate limit 20 requests / 2 s.
* ``GET /api/v5/rubik/stat/contracts/open-interest-volume`` ("Get contracts open interest and
  volume"): ``ccy``, ``period`` (``5m`` ``1H`` ``1D``), ``begin``/``end``; ``data`` of
  ``[ts, oi, vol]`` in USD, the sum over OKX's contracts of the coin (stored as venue ``okx``,
  symbol = the coin). Depth is limited (about 2 days at 5m, 30 days at 1H, 180 days at 1D).
  ``ts`` is stored as the observation instant (OKX does not say whether it is the period start or
  end: uncertain). Rate limit 5 requests / 2 s.

Every answer is ``{"code": "0", "msg": "", "data": [...]}``; ``code`` 50011 (HTTP 429, "Too Many
Requests") is the rate limit and is waited out; any other non-zero code is an error.
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

SOURCE = "okx"
_BAR = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1H", "2h": "2H", "4h": "4H",
        "6h": "6Hutc", "12h": "12Hutc", "1d": "1Dutc"}
_RUBIK = {"5m": "5m", "1h": "1H", "1d": "1D"}
_STEP = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
         "6h": 21600, "12h": 43200, "1d": 86400}


def _data(body: bytes, what: str) -> list:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedPage(f"okx {what}: the answer is not JSON ({body[:60]!r})") from None
    if not isinstance(doc, dict) or "code" not in doc:
        raise MalformedPage(f"okx {what}: no 'code' in the answer")
    code = str(doc["code"])
    if code == "50011":
        raise RateLimited(f"okx {what}: code 50011 {doc.get('msg')}")
    if code != "0":
        raise ProviderError(f"okx {what}: code {code} {doc.get('msg')!r}")
    if not isinstance(doc.get("data"), list):
        raise MalformedPage(f"okx {what}: 'data' is not a list")
    return doc["data"]


def _cursor_plan(path: str, limit: int, step_of, params, name: str):
    """Windows [a, b) asked as ``after=b`` (earlier than b) and ``before=a-1`` (later than a-1)."""
    def plan(req: Request) -> list[Page]:
        step = step_of(req)
        pages = []
        for a, b in windows(req.start_ms, req.end_ms, step * 1000 * limit):
            q = {**params(req), "after": b, "before": a - 1, "limit": limit}
            url = f"{req.base}{path}?" + "&".join(f"{k}={v}" for k, v in q.items())
            tag = f"{path_safe(req.symbol)}-{req.interval or 'settle'}"
            pages.append(Page(url, f"{name}/{tag}/{a}-{b}.json", final=b + step * 1000 < now_ms(),
                              ctx={"symbol": req.symbol, "interval": req.interval, "req": req}))
        return pages
    return plan


def _parse_funding(body: bytes, page: Page) -> Parsed:
    hours = int(page.ctx["req"].extra.get("funding_hours", 8))
    rows = []
    for r in _data(body, "funding-rate-history"):
        if not isinstance(r, dict):
            raise MalformedPage("okx funding-rate-history: an element is not an object")
        rate = r.get("realizedRate") or r.get("fundingRate")
        rows.append({"ts": int(num(r.get("fundingTime"), "fundingTime")), "venue": SOURCE,
                     "symbol": r.get("instId") or page.ctx["symbol"], "rate": num(rate, "realizedRate"),
                     "interval_hours": hours})
    return Parsed(frame("funding", rows, SOURCE))


def _candle_parser(market: str):
    def parse(body: bytes, page: Page) -> Parsed:
        rows = []
        for i, k in enumerate(_data(body, "history-candles")):
            if not isinstance(k, list) or len(k) < 9:
                raise MalformedPage(f"okx history-candles: row {i} is not [ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]")
            if str(k[8]) != "1":
                continue  # the bar is still open
            base_vol = k[6] if market == "perp" else k[5]
            rows.append({"ts": int(num(k[0], "ts")), "venue": SOURCE, "market": market, "symbol": page.ctx["symbol"],
                         "interval": page.ctx["interval"], "open": num(k[1], "o"), "high": num(k[2], "h"),
                         "low": num(k[3], "l"), "close": num(k[4], "c"), "volume": num(base_vol, "volume"),
                         "quote_volume": num(k[7], "volCcyQuote")})
        return Parsed(frame("bars", rows, SOURCE))
    return parse


def _plan_rubik(req: Request) -> list[Page]:
    step = _STEP[req.interval]
    pages = []
    for a, b in windows(req.start_ms, req.end_ms, step * 1000 * 100):
        url = (f"{req.base}/api/v5/rubik/stat/contracts/open-interest-volume?ccy={req.symbol}"
               f"&period={_RUBIK[req.interval]}&begin={a}&end={b - 1}")
        pages.append(Page(url, f"open-interest-volume/{path_safe(req.symbol)}-{req.interval}/{a}-{b}.json",
                          final=b + step * 1000 < now_ms(), ctx={"symbol": req.symbol, "interval": req.interval}))
    return pages


def _parse_rubik(body: bytes, page: Page) -> Parsed:
    rows = []
    for i, r in enumerate(_data(body, "open-interest-volume")):
        if not isinstance(r, list) or len(r) < 3:
            raise MalformedPage(f"okx open-interest-volume: row {i} is not [ts, oi, vol]")
        rows.append({"ts": int(num(r[0], "ts")), "venue": SOURCE, "symbol": page.ctx["symbol"],
                     "interval": page.ctx["interval"], "oi_usd": num(r[1], "oi")})
    return Parsed(frame("open_interest", rows, SOURCE))


PROVIDER = register(Provider(
    name="okx",
    doc="OKX v5 public data (no key): funding-rate history, rubik open interest (USD, all OKX contracts of "
        "a coin), history candles for swaps and spot.",
    docs=("https://www.okx.com/docs-v5/en/#public-data-rest-api-get-funding-rate-history",
          "https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks-history",
          "https://www.okx.com/docs-v5/en/#trading-statistics-rest-api-get-contracts-open-interest-and-volume",
          "https://www.okx.com/docs-v5/en/#error-code"),
    default_base_url="https://www.okx.com",
    rate_limit=RateLimit(5, 2.0, "5 requests / 2 s on rubik statistics, 10 / 2 s on funding history, 20 / 2 s "
                                 "on history candles (the strictest spaces all requests); code 50011 = limit hit"),
    default_symbols=("BTC-USDT-SWAP",),
    symbol_help="OKX instrument IDs (BTC-USDT-SWAP perp, BTC-USDT spot); open_interest takes the coin (BTC).",
    default_datasets=("funding", "candles"),
    params={"funding_hours": "settlement interval stored with funding rows (default 8, BTC-USDT-SWAP's)"},
    datasets={d.name: d for d in (
        Dataset("funding", "funding", "funding settlements (realizedRate, decimal)",
                "/api/v5/public/funding-rate-history",
                _cursor_plan("/api/v5/public/funding-rate-history", 100, lambda r: 8 * 3600,
                             lambda r: {"instId": r.symbol}, "funding-rate-history"), _parse_funding, page_limit=100),
        Dataset("candles", "bars", "swap history candles (market perp)", "/api/v5/market/history-candles",
                _cursor_plan("/api/v5/market/history-candles", 100, lambda r: _STEP[r.interval],
                             lambda r: {"instId": r.symbol, "bar": _BAR[r.interval]}, "history-candles"),
                _candle_parser("perp"), intervals=_BAR, default_interval="1h", page_limit=100),
        Dataset("spot_candles", "bars", "spot history candles (market spot)", "/api/v5/market/history-candles",
                _cursor_plan("/api/v5/market/history-candles", 100, lambda r: _STEP[r.interval],
                             lambda r: {"instId": r.symbol, "bar": _BAR[r.interval]}, "history-candles"),
                _candle_parser("spot"), intervals=_BAR, default_interval="1h", page_limit=100),
        Dataset("open_interest", "open_interest", "open interest in USD of all OKX contracts of a coin (symbol = coin)",
                "/api/v5/rubik/stat/contracts/open-interest-volume", _plan_rubik, _parse_rubik,
                intervals=_RUBIK, default_interval="1h", page_limit=100),
    )},
))
