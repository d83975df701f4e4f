"""Tardis.dev downloadable CSV datasets: single liquidation prints (``liquidations``) by day,
exchange and symbol, into ``liquidation_orders`` with the venue.

Followed documentation (docs.tardis.dev/downloadable-csv-files/...):

* URL ``https://datasets.tardis.dev/v1/{exchange}/{data_type}/{YYYY}/{MM}/{DD}/{symbol}.csv.gz``
  ("API Reference"): one gzip-compressed CSV per day, split by exchange, data type and symbol, by
  ``local_timestamp``; a day is exported the next day around 06:00 UTC; an **empty gzip file** is
  served when there is no data (downtime, quiet markets). With an API key the request carries
  ``Authorization: Bearer <key>``; without one only the **first day of each month** is served
  (so the plan asks only for those days and says so).
* ``liquidations`` columns ("Data types"): ``exchange, symbol, timestamp, local_timestamp, id,
  side, price, amount``; ``timestamp`` is the exchange's time in microseconds since the epoch;
  ``side`` is the side of the liquidation order - ``buy`` means a short position was liquidated,
  ``sell`` a long one; ``amount`` is in the instrument's quantity unit.

Units of ``amount`` differ by exchange: base coin for ``binance-futures``, ``bybit`` linear USDT
symbols and ``hyperliquid``; other exchanges need ``-p amount_unit=base|quote|contract:<size>``
(e.g. ``contract:0.01`` for OKX BTC-USDT-SWAP, whose contract is 0.01 BTC), otherwise the day is
reported as failed rather than stored in a wrong unit. Venues: the exchange id with its market
suffix removed (``binance-futures`` -> ``binance``, ``okex-swap`` -> ``okx``).
"""
from __future__ import annotations

import gzip
import io
import zlib
from datetime import timedelta

import polars as pl

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
    path_safe,
    register,
    to_ms,
)

SOURCE = "tardis"
VENUES = {"binance-futures": "binance", "binance-delivery": "binance", "bybit": "bybit", "okex-swap": "okx",
          "okex-futures": "okx", "deribit": "deribit", "hyperliquid": "hyperliquid", "bitmex": "bitmex",
          "huobi-dm-swap": "htx", "bitfinex-derivatives": "bitfinex"}
BASE_UNIT = {"binance-futures", "bybit", "hyperliquid"}
COLUMNS = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]


def split(symbol: str) -> tuple[str, str]:
    """``binance-futures:BTCUSDT`` -> (``binance-futures``, ``BTCUSDT``)."""
    exch, sep, sym = symbol.partition(":")
    if not sep or not exch or not sym:
        raise MalformedPage(f"tardis symbol {symbol!r}: give exchange:SYMBOL, e.g. binance-futures:BTCUSDT")
    return exch, sym


def _plan(req: Request) -> list[Page]:
    exch, sym = split(req.symbol)
    pages = []
    d = req.start
    while d <= req.end:
        if req.keyed or d.day == 1:
            url = f"{req.base}/v1/{exch}/liquidations/{d:%Y/%m/%d}/{sym}.csv.gz"
            day_end = to_ms(d + timedelta(days=1))
            pages.append(Page(url, f"{exch}/liquidations/{path_safe(sym)}/{d:%Y-%m-%d}.csv.gz",
                              final=day_end + 6 * 3600 * 1000 < now_ms(),
                              ctx={"exchange": exch, "symbol": sym, "unit": req.extra.get("amount_unit")}))
        d += timedelta(days=1)
    return pages


def _unit(exch: str, symbol: str, given: str | None) -> tuple[str, float]:
    u = given or ("base" if exch in BASE_UNIT and (exch != "bybit" or symbol.endswith("USDT")) else None)
    if u is None:
        raise MalformedPage(f"tardis {exch} {symbol}: the unit of 'amount' is not known for this exchange; "
                            "pass -p amount_unit=base|quote|contract:<size>")
    if u in ("base", "quote"):
        return u, 1.0
    if u.startswith("contract:"):
        try:
            return "base", float(u.split(":", 1)[1])
        except ValueError:
            pass
    raise MalformedPage(f"amount_unit {u!r}: use base, quote or contract:<size in base coin>")


def _parse(body: bytes, page: Page) -> Parsed:
    try:
        text = gzip.decompress(body) if body else b""
    except (OSError, EOFError, zlib.error):
        raise MalformedPage(f"tardis {page.dest}: not a complete gzip file") from None
    if not text.strip():
        return Parsed(frame("liquidation_orders", [], SOURCE))  # documented: empty file = no data that day
    try:
        raw = pl.read_csv(io.BytesIO(text), infer_schema_length=0)
    except Exception as e:  # polars raises ComputeError / NoDataError by version
        raise MalformedPage(f"tardis {page.dest}: unreadable CSV ({e})") from None
    missing = [c for c in ("symbol", "timestamp", "side", "price", "amount") if c not in raw.columns]
    if missing:
        raise MalformedPage(f"tardis {page.dest}: missing column(s) {missing}; expected {COLUMNS}")
    exch, sym = page.ctx["exchange"], page.ctx["symbol"]
    unit, size = _unit(exch, sym, page.ctx.get("unit"))
    try:
        df = raw.select(
            (pl.col("timestamp").cast(pl.Int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
            pl.col("symbol"),
            pl.col("side").replace_strict({"buy": "short", "sell": "long"}, default=None).alias("side"),
            pl.col("price").cast(pl.Float64), (pl.col("amount").cast(pl.Float64) * size).alias("amount"))
    except Exception as e:
        raise MalformedPage(f"tardis {page.dest}: a cell cannot be read ({e})") from None
    if df["side"].null_count():
        raise MalformedPage(f"tardis {page.dest}: 'side' must be buy or sell")
    if unit == "base":
        df = df.with_columns(pl.col("amount").alias("qty"), (pl.col("amount") * pl.col("price")).alias("usd"))
    else:
        df = df.with_columns((pl.col("amount") / pl.col("price")).alias("qty"), pl.col("amount").alias("usd"))
    venue = VENUES.get(exch, exch.split("-")[0])
    df = df.drop("amount").with_columns(pl.lit(venue).alias("venue"), pl.lit(SOURCE).alias("source"))
    return Parsed(df)


def _headers(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


PROVIDER = register(Provider(
    name="tardis",
    doc="Tardis.dev downloadable CSV datasets: single liquidation prints per day, exchange and symbol "
        "(without TARDIS_API_KEY only the first day of each month).",
    docs=("https://docs.tardis.dev/downloadable-csv-files/api",
          "https://docs.tardis.dev/downloadable-csv-files/data-types",
          "https://docs.tardis.dev/downloadable-csv-files/overview"),
    default_base_url="https://datasets.tardis.dev",
    rate_limit=RateLimit(10, 1.0, "no published limit for dataset files; requests are spaced 0.1 s apart"),
    default_symbols=("binance-futures:BTCUSDT",),
    symbol_help="exchange:SYMBOL as Tardis names them, e.g. binance-futures:BTCUSDT, bybit:BTCUSDT, "
                "okex-swap:BTC-USDT-SWAP (with -p amount_unit=contract:0.01), hyperliquid:BTC.",
    key_env="TARDIS_API_KEY",
    key_headers=_headers,
    key_note="Sent as 'Authorization: Bearer'; without it only first-of-month days are requested.",
    params={"amount_unit": "unit of the CSV's amount: base, quote or contract:<size> (default per exchange)"},
    datasets={"liquidations": Dataset("liquidations", "liquidation_orders", "single liquidation prints",
                                      "/v1/{exchange}/liquidations/{YYYY}/{MM}/{DD}/{symbol}.csv.gz", _plan, _parse)},
))
