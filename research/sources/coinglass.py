"""CoinGlass API v4 (key in ``COINGLASS_API_KEY``): aggregated liquidation, aggregated open interest,
OI-weighted funding and top-trader long/short position histories, per exchange and interval.

These are the series the real pack's CoinGlass exports hold
(``denniskid2520+btcusdt-research-archive/src/data/coinglass_*.csv``, see PROVENANCE.md), and each
is mapped exactly as :data:`research.sources.importer.PRESETS` maps the export, so a download and
an import of the same period write the same rows.

Followed documentation (docs.coinglass.com/reference/...), base ``https://open-api-v4.coinglass.com``,
key in the ``CG-API-KEY`` header:

* ``GET /api/futures/liquidation/aggregated-history`` ("Coin Liquidation History"):
  ``exchange_list`` (comma-separated, e.g. ``Binance``), ``symbol`` (coin, ``BTC``), ``interval``,
  ``limit``, ``start_time``/``end_time`` (ms); ``data`` of ``{time, aggregated_long_liquidation_usd,
  aggregated_short_liquidation_usd}``; ``time`` is the bucket start. Venue = the exchange (lower
  case) for one exchange, ``all`` for several.
* ``GET /api/futures/open-interest/aggregated-history``: ``symbol``, ``interval``...; ``data`` of
  ``{time, open, high, low, close}`` in USD across exchanges; the close is stored at the bucket end.
* ``GET /api/futures/funding-rate/oi-weight-history``: as above, rates in **percent**, stored as
  decimals at the bucket end with ``interval_hours`` = 8 (the same assumption as the import preset:
  CoinGlass does not say how 1h/4h/8h venues are normalised).
* ``GET /api/futures/top-long-short-position-ratio/history``: ``exchange``, ``symbol`` (pair,
  ``BTCUSDT``), ``interval``...; ``data`` of ``{time, top_position_long_percent,
  top_position_short_percent, top_position_long_short_ratio}``; the ratio is stored at the bucket end.

Every answer is ``{"code": "0", "msg": "success", "data": [...]}``; a non-zero ``code`` is an
error. The per-plan limit (e.g. 30 requests/min on Hobbyist; interval >= 4h on the cheapest plans) is
answered with HTTP 429 (waited out by the shared downloader); an in-band "Too Many Requests"
message is treated the same way (the exact in-band code is not documented: uncertain).
"""
from __future__ import annotations

import json

from research.schema import INTERVALS
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

SOURCE = "coinglass"
_IV = {k: k for k in ("1m", "3m", "5m", "15m", "30m", "1h", "4h", "6h", "8h", "12h", "1d", "1w")}
PAGE = 1000
FUNDING_HOURS = 8


def _data(body: bytes, what: str) -> list:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedPage(f"coinglass {what}: the answer is not JSON ({body[:60]!r})") from None
    if not isinstance(doc, dict) or "code" not in doc:
        raise MalformedPage(f"coinglass {what}: no 'code' in the answer")
    code, msg = str(doc["code"]), str(doc.get("msg", ""))
    if code != "0":
        if code == "429" or "too many" in msg.lower() or "rate limit" in msg.lower():
            raise RateLimited(f"coinglass {what}: code {code} {msg}")
        raise ProviderError(f"coinglass {what}: code {code} {msg!r}")
    if not isinstance(doc.get("data"), list):
        raise MalformedPage(f"coinglass {what}: 'data' is not a list")
    return doc["data"]


def _plan(path: str, name: str, params):
    def plan(req: Request) -> list[Page]:
        step = INTERVALS[req.interval] * 1000
        pages = []
        for a, b in windows(req.start_ms, req.end_ms, step * PAGE):
            q = {**params(req), "interval": req.interval, "limit": PAGE, "start_time": a, "end_time": b - 1}
            url = f"{req.base}{path}?" + "&".join(f"{k}={v}" for k, v in q.items())
            tag = "-".join(path_safe(str(v)) for k, v in q.items() if k not in ("limit", "start_time", "end_time"))
            pages.append(Page(url, f"{name}/{tag}/{a}-{b}.json", final=b + step < now_ms(),
                              ctx={"req": req, "q": q, "step": step}))
        return pages
    return plan


def _rows(body: bytes, page: Page, what: str, fields: tuple[str, ...]) -> list[tuple[int, list[float]]]:
    out = []
    for i, r in enumerate(_data(body, what)):
        if not isinstance(r, dict):
            raise MalformedPage(f"coinglass {what}: element {i} is not an object")
        out.append((int(num(r.get("time"), f"{what} time")), [num(r.get(f), f"{what} {f}") for f in fields]))
    return out


def _venue(exchanges: str) -> str:
    ex = [e.strip() for e in exchanges.split(",") if e.strip()]
    return ex[0].lower() if len(ex) == 1 else "all"


def _parse_liq(body: bytes, page: Page) -> Parsed:
    q = page.ctx["q"]
    rows = [{"ts": t, "venue": _venue(q["exchange_list"]), "symbol": q["symbol"], "interval": q["interval"],
             "long_usd": v[0], "short_usd": v[1]}
            for t, v in _rows(body, page, "liquidation", ("aggregated_long_liquidation_usd",
                                                          "aggregated_short_liquidation_usd"))]
    return Parsed(frame("liquidations", rows, SOURCE))


def _parse_oi(body: bytes, page: Page) -> Parsed:
    q, step = page.ctx["q"], page.ctx["step"]
    rows = [{"ts": t + step, "venue": "all", "symbol": q["symbol"], "interval": q["interval"], "oi_usd": v[0]}
            for t, v in _rows(body, page, "open-interest", ("close",))]
    return Parsed(frame("open_interest", rows, SOURCE))


def _parse_funding(body: bytes, page: Page) -> Parsed:
    q, step = page.ctx["q"], page.ctx["step"]
    # percent -> decimal exactly as the importer converts (x * 0.01), so download and import agree bit for bit
    rows = [{"ts": t + step, "venue": "all", "symbol": q["symbol"], "rate": v[0] * 0.01,
             "interval_hours": FUNDING_HOURS}
            for t, v in _rows(body, page, "funding-rate", ("close",))]
    return Parsed(frame("funding", rows, SOURCE))


def _parse_top(body: bytes, page: Page) -> Parsed:
    q, step = page.ctx["q"], page.ctx["step"]
    rows = [{"ts": t + step, "venue": q["exchange"].lower(), "symbol": q["symbol"], "interval": q["interval"],
             "top_trader_ls_ratio": v[0]}
            for t, v in _rows(body, page, "top-long-short", ("top_position_long_short_ratio",))]
    return Parsed(frame("positioning", rows, SOURCE))


def _coin(req: Request) -> dict:
    return {"symbol": req.symbol}


PROVIDER = register(Provider(
    name="coinglass",
    doc="CoinGlass API v4 (needs COINGLASS_API_KEY): aggregated liquidations per exchange, aggregated OI, "
        "OI-weighted funding and top-trader long/short position ratio histories.",
    docs=("https://docs.coinglass.com/reference/aggregated-liquidation-history",
          "https://docs.coinglass.com/reference/oi-ohlc-aggregated-history",
          "https://docs.coinglass.com/reference/oi-weight-ohlc-history",
          "https://docs.coinglass.com/reference/top-long-short-position-ratio",
          "https://docs.coinglass.com/reference/authentication"),
    default_base_url="https://open-api-v4.coinglass.com",
    rate_limit=RateLimit(30, 60.0, "per plan (Hobbyist 30 requests/min; cheaper plans allow only intervals >= 4h); "
                                   "HTTP 429 when exceeded"),
    default_symbols=("BTC",),
    symbol_help="a coin, e.g. BTC (top_long_short uses -p pair, default <coin>USDT).",
    default_datasets=("liquidations", "open_interest", "funding"),
    key_env="COINGLASS_API_KEY",
    key_required=True,
    key_headers=lambda key: {"CG-API-KEY": key, "accept": "application/json"},
    key_note="Get one at coinglass.com (API plans); sent in the CG-API-KEY header.",
    params={"exchange_list": "exchanges summed by liquidations (default Binance; several -> venue 'all')",
            "exchange": "exchange of top_long_short (default Binance)",
            "pair": "pair of top_long_short (default <coin>USDT)"},
    datasets={d.name: d for d in (
        Dataset("liquidations", "liquidations", "long/short USD liquidated per bucket",
                "/api/futures/liquidation/aggregated-history",
                _plan("/api/futures/liquidation/aggregated-history", "liquidation-aggregated",
                      lambda r: {"exchange_list": r.extra.get("exchange_list", "Binance"), "symbol": r.symbol}),
                _parse_liq, intervals=_IV, default_interval="4h", page_limit=PAGE),
        Dataset("open_interest", "open_interest", "aggregated OI close (USD, venue all)",
                "/api/futures/open-interest/aggregated-history",
                _plan("/api/futures/open-interest/aggregated-history", "oi-aggregated", _coin),
                _parse_oi, intervals=_IV, default_interval="4h", page_limit=PAGE),
        Dataset("funding", "funding", "OI-weighted funding close (percent -> decimal, venue all)",
                "/api/futures/funding-rate/oi-weight-history",
                _plan("/api/futures/funding-rate/oi-weight-history", "funding-oi-weight", _coin),
                _parse_funding, intervals=_IV, default_interval="4h", page_limit=PAGE),
        Dataset("top_long_short", "positioning", "top-trader long/short position ratio",
                "/api/futures/top-long-short-position-ratio/history",
                _plan("/api/futures/top-long-short-position-ratio/history", "top-ls-position",
                      lambda r: {"exchange": r.extra.get("exchange", "Binance"),
                                 "symbol": r.extra.get("pair", f"{r.symbol}USDT")}),
                _parse_top, intervals=_IV, default_interval="1d", page_limit=PAGE),
    )},
))
