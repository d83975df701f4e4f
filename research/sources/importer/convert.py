"""Coin (``base``) amounts -> USD with the matching price at each bucket, the price source recorded.

A USD column mapped with unit ``base`` (e.g. Coinalyze liquidations in BTC) is multiplied by a
price per row:

* ``price: {column: px}`` - a price column of the same file (same row);
* otherwise the **close of the lake's bars** for ``price.symbol`` (default: the mapping's symbol)
  at ``price.interval`` (default: the export's bucket), trying ``price.markets`` in order at each
  bucket (default perp, then spot). For a bucketed table (liquidations, ts = bucket start) the
  matching bar is the one starting at the same ``ts``: its close is the price at the end of the
  bucket. For a snapshot (open interest at the bucket end) it is the bar that **ends** at the
  snapshot, so the price is the one known at that instant. When several sources hold the bar, the
  first source in alphabetical order is used (they agree to the cent in the real pack).

Every row must find a price: a bucket no price covers is a one-line error naming the file and
line, never a NaN. What was used is returned as :class:`Conversion` records (column, price
series, markets and row counts) and printed by ``research import``. Open interest mapped in coins
keeps the coin amount in ``oi_base`` beside the converted ``oi_usd``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from research.errors import ImportMappingError
from research.schema import INTERVALS

from .mapping import Mapping, PriceSpec
from .times import TABLE_TIME, bucket_of


@dataclass(frozen=True)
class Conversion:
    """How one column was converted from coins to USD."""

    column: str
    source_column: str
    price: str  # e.g. "bars close BTCUSDT 1d" or "file column 'px'"
    rows_by_market: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        used = ", ".join(f"{k} {n}" for k, n in self.rows_by_market)
        return f"{self.column} = {self.source_column} (coins) x {self.price} [{used} rows]"


def price_needs(m: Mapping) -> tuple[str, str] | None:
    """(symbol, interval) of the lake bars the mapping needs for conversion, or None."""
    if not any(v.unit == "base" and t.endswith("usd") for t, v in m.values.items()):
        return None
    p = m.price or PriceSpec()
    if p.column:
        return None
    symbol = p.symbol or m.constants.get("symbol")
    if not symbol:
        raise ImportMappingError("converting coins to USD needs the price's symbol (price.symbol or constants.symbol)")
    return str(symbol), p.interval or bucket_of(m, "coin-to-USD conversion", "to find the matching price bars")


def _bar_prices(bars: pl.DataFrame, symbol: str, interval: str, markets: tuple[str, ...]) -> pl.DataFrame:
    """One close per bar start: the first market in ``markets`` order, then the first source."""
    rank = {mk: i for i, mk in enumerate(markets)}
    b = bars.filter((pl.col("symbol") == symbol) & (pl.col("interval") == interval)
                    & pl.col("market").is_in(list(markets)) & pl.col("close").is_not_null())
    b = b.with_columns(pl.col("market").replace_strict(rank, return_dtype=pl.Int32).alias("__rank"))
    return (b.sort(["ts", "__rank", "source"]).unique(subset=["ts"], keep="first", maintain_order=True)
            .select(pl.col("ts").alias("__bar_ts"), pl.col("close").alias("__price"),
                    (pl.col("market") + ":" + pl.col("source")).alias("__price_src")))


def convert_coins(df: pl.DataFrame, raw: pl.DataFrame, m: Mapping, origin: str, base_cols: dict[str, str],
                  bars: pl.DataFrame | None) -> tuple[pl.DataFrame, list[Conversion]]:
    """Multiply each ``base_cols`` target (target -> source column) by its matching price.

    ``df`` holds the parsed rows (with ``__line`` and the table's time column); ``raw`` the file's
    text cells (for a price column). Returns the converted frame and what was used.
    """
    if not base_cols:
        return df, []
    p = m.price or PriceSpec()
    if p.column:
        if p.column not in raw.columns:
            raise ImportMappingError(f"{origin}: price column {p.column!r} is not in the file")
        from .reading import clean_numbers

        px = clean_numbers(raw[p.column].cast(pl.String)) if raw[p.column].dtype == pl.String else raw[p.column].cast(pl.Float64)
        df = df.with_columns(px.alias("__price"), pl.lit(f"file:{p.column}").alias("__price_src"))
        what, col_for_err = f"file column {p.column!r}", p.column
    else:
        symbol, interval = price_needs(m)  # type: ignore[misc]
        step = timedelta(seconds=INTERVALS[interval])
        prices = _bar_prices(bars if bars is not None else pl.DataFrame(), symbol, interval, p.markets) \
            if bars is not None and bars.height else pl.DataFrame(schema={"__bar_ts": pl.Datetime("us", "UTC"),
                                                                         "__price": pl.Float64, "__price_src": pl.String})
        # a bucket's price is its own bar's close; a snapshot's is the close of the bar ending at it
        at_end = TABLE_TIME[m.table] in ("end", "instant")
        key = (pl.col("ts") - step) if at_end else pl.col("ts")
        df = df.with_columns(key.alias("__bar_ts")).join(prices, on="__bar_ts", how="left").drop("__bar_ts")
        what, col_for_err = f"bars close {symbol} {interval} ({'/'.join(p.markets)})", None
    need = pl.any_horizontal([pl.col(t).is_not_null() for t in base_cols])
    missing = df.select(need & (pl.col("__price").is_null() | (pl.col("__price") <= 0))).to_series()
    if missing.any():
        i = int(missing.arg_max())
        when = df["ts"][i]
        src = f"column {col_for_err!r}" if col_for_err else f"no {what} bar in the lake"
        raise ImportMappingError(f"{origin}, line {df['__line'][i]}: no price to convert coins to USD for "
                                 f"{when:%Y-%m-%d %H:%M} UTC ({src}); import those bars first, or give price.column")
    convs = []
    counts = df.group_by("__price_src").len().sort("__price_src")
    by_market = tuple((r[0], int(r[1])) for r in counts.iter_rows())
    for target, source in base_cols.items():
        convs.append(Conversion(target, source, what, by_market))
    out = df.with_columns([(pl.col(t) * pl.col("__price")).alias(t) for t in base_cols])
    if "oi_usd" in base_cols and "oi_base" not in m.values:
        out = out.with_columns(df["oi_usd"].alias("oi_base"))  # keep the coins beside the USD
    return out.drop("__price", "__price_src"), convs
