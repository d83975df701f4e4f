"""The canonical data model: every lake table, its columns, types, units and key.

Every write goes through :func:`validate`, which casts a frame to the table's types and checks it;
a bad frame raises :class:`~research.errors.SchemaError` naming the table, the column and the first
offending row, and nothing is written.

Conventions
-----------
* Times are UTC, ``Datetime("us", "UTC")``. Dates (``etf_flows``, ``sentiment``) are ``Date``.
* ``ts`` of a bucketed row (bars, liquidations) is the bucket **start**; ``ts`` of a point
  observation (funding settlement, OI snapshot, positioning snapshot) is the instant it was
  observed, i.e. when the value became known.
* ``interval`` is a Binance-style string: ``1m 5m 15m 30m 1h 2h 4h 8h 12h 1d``.
* Money is USD (USDT treated as USD). Funding ``rate`` is a decimal per settlement interval
  (0.0001 = 0.01 % per ``interval_hours``).
* ``source`` names where the rows came from (``binance_vision``, ``coinglass``, ``synthetic``...);
  rows of the simulated market always carry ``source = "synthetic"``.
* ``venue`` is an exchange (``binance``, ``bybit``...) or ``all`` for cross-venue aggregates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from research.errors import SchemaError

UTC_TS = pl.Datetime("us", "UTC")
SYNTHETIC_SOURCE = "synthetic"

INTERVALS: dict[str, int] = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800,
    "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200,
    "1d": 86400, "3d": 259200, "1w": 604800,
}
MARKETS = ("perp", "spot", "mark", "index", "premium")
SIDES = ("long", "short")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def interval_seconds(interval: str) -> int:
    """Seconds in a Binance-style interval string, e.g. ``"4h"`` -> 14400."""
    try:
        return INTERVALS[interval]
    except KeyError:
        raise SchemaError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}") from None


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    dtype: pl.DataType
    nullable: bool
    unit: str
    doc: str


@dataclass(frozen=True)
class Table:
    """A canonical table.

    ``key`` columns identify a row: ingesting the same rows twice keeps one copy (the newer).
    ``partition`` columns name the hive-style directories under ``lake/<table>/``; time tables are
    further split by ``year`` and ``month`` of ``time_col``.
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition: tuple[str, ...]
    time_col: str = "ts"
    checks: tuple = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    def empty(self) -> pl.DataFrame:
        """An empty frame with the table's columns and types."""
        return pl.DataFrame(schema=self.polars_schema)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name, dtype, nullable, unit, doc) -> Column:
    return Column(name, dtype, nullable, unit, doc)


_TS = _c("ts", UTC_TS, False, "UTC", "bucket start (bars, liquidations) or observation instant")
_VENUE = _c("venue", pl.String, False, "", "exchange, lower case (binance, bybit, ...) or 'all'")
_SYMBOL = _c("symbol", pl.String, False, "", "instrument, e.g. BTCUSDT; coin-level aggregates use the coin, e.g. BTC")
_INTERVAL = _c("interval", pl.String, False, "", "bucket or sampling interval, e.g. 1h, 4h, 5m")
_SOURCE = _c("source", pl.String, False, "", "where the rows came from (binance_vision, coinglass, synthetic, ...)")

# A check is (column, polars expression that is True on good rows, description).
_POSITIVE_PRICES = tuple(
    (col, (pl.col("market") == "premium") | (pl.col(col) > 0), "must be > 0 (except premium-index bars)")
    for col in ("open", "high", "low", "close")
)

TABLES: dict[str, Table] = {}


def _register(t: Table) -> Table:
    TABLES[t.name] = t
    return t


BARS = _register(Table(
    name="bars",
    doc="OHLCV bars of perpetual, spot, mark, index and premium-index prices.",
    columns=(
        _TS, _VENUE,
        _c("market", pl.String, False, "", "perp | spot | mark | index | premium"),
        _SYMBOL, _INTERVAL,
        _c("open", pl.Float64, False, "quote currency (USDT)", "first price of the bar"),
        _c("high", pl.Float64, False, "quote currency (USDT)", "highest price"),
        _c("low", pl.Float64, False, "quote currency (USDT)", "lowest price"),
        _c("close", pl.Float64, False, "quote currency (USDT)", "last price"),
        _c("volume", pl.Float64, True, "base asset (BTC)", "traded volume"),
        _c("quote_volume", pl.Float64, True, "quote currency (USDT)", "traded notional"),
        _c("trades", pl.Int64, True, "count", "number of trades"),
        _c("taker_buy_volume", pl.Float64, True, "base asset", "volume bought by takers"),
        _c("taker_buy_quote_volume", pl.Float64, True, "quote currency", "notional bought by takers"),
        _SOURCE,
    ),
    key=("source", "venue", "market", "symbol", "interval", "ts"),
    partition=("source", "venue", "market", "symbol", "interval"),
    checks=(
        ("market", pl.col("market").is_in(MARKETS), f"must be one of {MARKETS}"),
        ("interval", pl.col("interval").is_in(list(INTERVALS)), "must be a known interval"),
        ("high", pl.col("high") >= pl.col("low"), "high must be >= low"),
        *_POSITIVE_PRICES,
        ("volume", pl.col("volume").is_null() | (pl.col("volume") >= 0), "must be >= 0"),
        ("quote_volume", pl.col("quote_volume").is_null() | (pl.col("quote_volume") >= 0), "must be >= 0"),
        ("taker_buy_volume",
         pl.col("taker_buy_volume").is_null() | pl.col("volume").is_null()
         | ((pl.col("taker_buy_volume") >= 0) & (pl.col("taker_buy_volume") <= pl.col("volume") * (1 + 1e-9) + 1e-12)),
         "must be between 0 and volume"),
    ),
))

FUNDING = _register(Table(
    name="funding",
    doc="Funding-rate settlements of perpetual futures.",
    columns=(
        _c("ts", UTC_TS, False, "UTC", "settlement instant as published (may carry a few ms of jitter)"),
        _VENUE, _SYMBOL,
        _c("rate", pl.Float64, False, "decimal per interval", "funding rate paid at this settlement (0.0001 = 0.01 %); > 0 longs pay shorts"),
        _c("interval_hours", pl.Int32, False, "hours", "hours covered by this settlement (8, 4 or 1)"),
        _SOURCE,
    ),
    key=("source", "venue", "symbol", "ts"),
    partition=("source", "venue", "symbol"),
    checks=(
        ("interval_hours", pl.col("interval_hours").is_in([1, 2, 4, 8]), "must be 1, 2, 4 or 8"),
        ("rate", pl.col("rate").abs() < 0.05, "|rate| must be < 0.05 per interval (is it in percent? divide by 100)"),
    ),
))

OPEN_INTEREST = _register(Table(
    name="open_interest",
    doc="Open interest snapshots (per venue, or venue 'all' for cross-venue aggregates).",
    columns=(
        _c("ts", UTC_TS, False, "UTC", "observation instant (for bucketed sources: end of the bucket, when its close is known)"),
        _VENUE, _SYMBOL, _INTERVAL,
        _c("oi_base", pl.Float64, True, "base asset (BTC)", "open interest in contracts' base units"),
        _c("oi_usd", pl.Float64, True, "USD", "open interest notional"),
        _SOURCE,
    ),
    key=("source", "venue", "symbol", "interval", "ts"),
    partition=("source", "venue", "symbol", "interval"),
    checks=(
        ("interval", pl.col("interval").is_in(list(INTERVALS)), "must be a known interval"),
        ("oi_usd", pl.col("oi_usd").is_not_null() | pl.col("oi_base").is_not_null(), "oi_usd and oi_base cannot both be null"),
        ("oi_usd", pl.col("oi_usd").is_null() | (pl.col("oi_usd") >= 0), "must be >= 0"),
        ("oi_base", pl.col("oi_base").is_null() | (pl.col("oi_base") >= 0), "must be >= 0"),
    ),
))

LIQUIDATIONS = _register(Table(
    name="liquidations",
    doc="Liquidations aggregated in time buckets (long = longs forced out).",
    columns=(
        _TS, _VENUE, _SYMBOL, _INTERVAL,
        _c("long_usd", pl.Float64, False, "USD", "notional of long positions liquidated in the bucket"),
        _c("short_usd", pl.Float64, False, "USD", "notional of short positions liquidated in the bucket"),
        _c("count", pl.Int64, True, "count", "number of liquidation orders"),
        _SOURCE,
    ),
    key=("source", "venue", "symbol", "interval", "ts"),
    partition=("source", "venue", "symbol", "interval"),
    checks=(
        ("interval", pl.col("interval").is_in(list(INTERVALS)), "must be a known interval"),
        ("long_usd", pl.col("long_usd") >= 0, "must be >= 0"),
        ("short_usd", pl.col("short_usd") >= 0, "must be >= 0"),
    ),
))

LIQUIDATION_ORDERS = _register(Table(
    name="liquidation_orders",
    doc="Single liquidation prints (forced orders).",
    columns=(
        _c("ts", UTC_TS, False, "UTC", "time of the forced order"),
        _VENUE, _SYMBOL,
        _c("side", pl.String, False, "", "side of the LIQUIDATED position: long (forced SELL) or short (forced BUY)"),
        _c("price", pl.Float64, False, "quote currency", "fill (or order) price"),
        _c("qty", pl.Float64, False, "base asset", "quantity"),
        _c("usd", pl.Float64, False, "USD", "notional = price x qty"),
        _SOURCE,
    ),
    key=("source", "venue", "symbol", "ts", "side", "price", "qty"),
    partition=("source", "venue", "symbol"),
    checks=(
        ("side", pl.col("side").is_in(SIDES), "must be 'long' or 'short' (the liquidated position)"),
        ("price", pl.col("price") > 0, "must be > 0"),
        ("qty", pl.col("qty") > 0, "must be > 0"),
    ),
))

POSITIONING = _register(Table(
    name="positioning",
    doc="Long/short positioning ratios.",
    columns=(
        _c("ts", UTC_TS, False, "UTC", "observation instant"),
        _VENUE, _SYMBOL, _INTERVAL,
        _c("top_trader_ls_ratio", pl.Float64, True, "ratio", "top traders' long/short position ratio"),
        _c("account_ls_ratio", pl.Float64, True, "ratio", "all accounts' long/short ratio"),
        _c("taker_buy_sell_ratio", pl.Float64, True, "ratio", "taker buy volume / taker sell volume"),
        _SOURCE,
    ),
    key=("source", "venue", "symbol", "interval", "ts"),
    partition=("source", "venue", "symbol", "interval"),
    checks=(
        ("interval", pl.col("interval").is_in(list(INTERVALS)), "must be a known interval"),
        *(
            (col, pl.col(col).is_null() | (pl.col(col) >= 0), "must be >= 0")
            for col in ("top_trader_ls_ratio", "account_ls_ratio", "taker_buy_sell_ratio")
        ),
    ),
))

ETF_FLOWS = _register(Table(
    name="etf_flows",
    doc="Daily net flows of spot Bitcoin ETFs (US trading days).",
    columns=(
        _c("date", pl.Date, False, "US trading date", "flow date as published"),
        _c("product", pl.String, False, "", "ETF ticker, or 'TOTAL' for the sum of all products"),
        _c("flow_usd", pl.Float64, False, "USD", "net creation (+) / redemption (-) in US dollars (not millions)"),
        _SOURCE,
    ),
    key=("source", "product", "date"),
    partition=("source",),
    time_col="date",
))

SENTIMENT = _register(Table(
    name="sentiment",
    doc="Daily sentiment indices (e.g. the Crypto Fear & Greed index).",
    columns=(
        _c("date", pl.Date, False, "UTC date", "date the value applies to (published at 00:00 UTC)"),
        _c("index", pl.String, False, "", "index name, e.g. fear_greed"),
        _c("value", pl.Float64, False, "index points", "index value (Fear & Greed: 0-100)"),
        _c("label", pl.String, True, "", "classification, e.g. Extreme Fear"),
        _SOURCE,
    ),
    key=("source", "index", "date"),
    partition=("source", "index"),
    time_col="date",
    checks=(("value", pl.col("value").is_finite(), "must be finite"),),
))


DVOL = _register(Table(
    name="dvol",
    doc="Deribit DVOL volatility index candles (30-day implied volatility of the currency's options).",
    columns=(
        _c("ts", UTC_TS, False, "UTC", "candle start"),
        _c("currency", pl.String, False, "", "underlying currency, e.g. BTC, ETH"),
        _INTERVAL,
        _c("open", pl.Float64, False, "index points (annualised %)", "first value of the candle"),
        _c("high", pl.Float64, False, "index points (annualised %)", "highest value"),
        _c("low", pl.Float64, False, "index points (annualised %)", "lowest value"),
        _c("close", pl.Float64, False, "index points (annualised %)", "last value"),
        _SOURCE,
    ),
    key=("source", "currency", "interval", "ts"),
    partition=("source", "currency", "interval"),
    checks=(
        ("interval", pl.col("interval").is_in(list(INTERVALS)), "must be a known interval"),
        ("high", pl.col("high") >= pl.col("low"), "high must be >= low"),
        ("low", pl.col("low") >= 0, "must be >= 0"),
    ),
))


def get_table(name: str) -> Table:
    """Look a table up by name; the error lists the tables that exist."""
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"unknown table {name!r}; tables are: {', '.join(TABLES)}") from None


def _first_bad(df: pl.DataFrame, ok: pl.Series) -> int:
    return int(ok.arg_min()) if ok.len() else 0


def _row_repr(df: pl.DataFrame, i: int) -> str:
    row = df.row(i, named=True)
    return ", ".join(f"{k}={v!r}" for k, v in row.items())


def validate(table: str | Table, df: pl.DataFrame, *, origin: str | None = None) -> pl.DataFrame:
    """Cast ``df`` to ``table``'s types and check every rule.

    Parameters
    ----------
    table : str or Table
        Canonical table name.
    df : polars.DataFrame
        Rows to write. Extra columns are an error; missing nullable columns are added as nulls.
    origin : str, optional
        The file the rows came from, named in errors.

    Returns
    -------
    polars.DataFrame
        The frame with exactly the table's columns, in order, with canonical types.

    Raises
    ------
    SchemaError
        Names the table, the column and the first offending row (0-based, in ``df``'s order).
    """
    t = table if isinstance(table, Table) else get_table(table)
    where = f"table {t.name!r}" + (f" (from {origin})" if origin else "")
    extra = [c for c in df.columns if c not in t.polars_schema]
    if extra:
        raise SchemaError(f"{where}: unexpected column(s) {extra}; the table has {t.names}")
    missing = [c.name for c in t.columns if c.name not in df.columns and not c.nullable]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {missing}")
    df = df.with_columns(pl.lit(None, dtype=c.dtype).alias(c.name) for c in t.columns if c.name not in df.columns)

    out = {}
    for c in t.columns:
        s = df.get_column(c.name)
        if c.dtype == UTC_TS and s.dtype != UTC_TS:
            if isinstance(s.dtype, pl.Datetime):
                s = s.dt.replace_time_zone("UTC") if s.dtype.time_zone is None else s.dt.convert_time_zone("UTC")
                s = s.dt.cast_time_unit("us")
        try:
            cast = s.cast(c.dtype, strict=True)
        except Exception:  # polars raises InvalidOperationError / ComputeError by version
            try:
                cast = s.cast(c.dtype, strict=False)
            except Exception:
                raise SchemaError(
                    f"{where}, column {c.name!r}: has type {s.dtype}, which cannot be converted to "
                    f"{c.dtype} ({c.unit or 'no unit'}); parse it first (e.g. str.to_datetime)"
                ) from None
            bad = cast.is_null() & s.is_not_null()
            i = _first_bad(df, ~bad)
            raise SchemaError(
                f"{where}, column {c.name!r}: value {s[i]!r} in row {i} cannot be read as {c.dtype} "
                f"({c.unit or 'no unit'}); fix the input or its mapping"
            ) from None
        if not c.nullable and cast.null_count():
            i = int(cast.is_null().arg_max())
            raise SchemaError(f"{where}, column {c.name!r}: null in row {i} but the column is required; row: {_row_repr(df, i)}")
        if cast.dtype == pl.Float64 and cast.len():
            nonfinite = cast.is_nan() | cast.is_infinite()
            if nonfinite.any():
                i = int(nonfinite.arg_max())
                raise SchemaError(f"{where}, column {c.name!r}: non-finite value {cast[i]} in row {i}; use null for missing values")
        if c.dtype == pl.String and c.name in ("venue", "symbol", "source", "interval", "market", "product", "index"):
            names = cast.drop_nulls().unique()  # a handful of names over many rows: check each once
            if not names.str.contains(_NAME_RE.pattern).all():
                i = _first_bad(df, cast.is_null() | cast.str.contains(_NAME_RE.pattern))
                raise SchemaError(
                    f"{where}, column {c.name!r}: {cast[i]!r} in row {i} is not a plain name "
                    "(letters, digits, '_', '.', '-'; it names a directory in the lake)"
                )
        out[c.name] = cast
    clean = pl.DataFrame(out)
    for col, expr, desc in t.checks:
        ok = clean.select(expr.fill_null(True).alias("ok")).get_column("ok")
        if not ok.all():
            i = _first_bad(clean, ok)
            raise SchemaError(f"{where}, column {col!r}: {desc}; first offending row {i}: {_row_repr(clean, i)}")
    return clean


def describe() -> str:
    """The data model as Markdown (used by ``research schema`` and the docs)."""
    lines = []
    for t in TABLES.values():
        lines += [f"### `{t.name}`", "", t.doc, "", f"Key: {', '.join(t.key)}", "",
                  "| column | type | null | unit | meaning |", "|---|---|---|---|---|"]
        lines += [f"| {c.name} | {c.dtype} | {'yes' if c.nullable else 'no'} | {c.unit} | {c.doc} |" for c in t.columns]
        lines.append("")
    return "\n".join(lines)
