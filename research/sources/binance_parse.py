"""Parsing Binance archive CSVs into canonical frames, every row checked (see :mod:`.binance_checks`).

Format rules (each has a synthetic fixture in ``tests/sources``):

* Header rows may be present or absent (older futures files and all spot files have none); a
  present header must name the documented columns (:func:`.binance_archive.split_header`).
* Epoch timestamps are read per value by magnitude: >= 1e17 ns, >= 1e14 us (spot from
  2025-01-01), >= 1e11 ms; anything smaller is rejected.
* Rates are decimals that may be in Java ``BigDecimal`` E-notation (``6.8E-7``).
* ``metrics`` labels (``create_time``, a ``YYYY-MM-DD HH:MM:SS`` string) moved on 2026-06-25
  from the END of each 5-minute period to its START (binance-public-data #491). **Rule:** ``ts``
  is the observation instant = the end of the 5-minute period. An end-labelled file keeps its
  labels; a start-labelled file is shifted by +5 minutes. A file is start-labelled when it has
  the label ``D 00:00`` but not ``D+1 00:00`` (``D`` = the file's date), end-labelled in the
  opposite case, and otherwise by its date (``D >= 2026-06-25`` = start). So every day covers
  ``(D 00:00, D+1 00:00]`` and one instant is one row across the change.
* ``liquidationSnapshot`` exists for USD-M only up to 2024-03-31; ``side`` is the forced
  order's side, so SELL = a long was liquidated.
* Every file: rows inside its own period, per-row invariants, exact duplicates dropped and
  counted, conflicting duplicates refused (:func:`.binance_checks.check_rows`).
"""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import polars as pl

from research.errors import ArchiveContentError, SourceError
from research.schema import INTERVALS
from research.sources.binance_archive import read_member, split_header
from research.sources.binance_checks import REFUSED_HINT, RULES, RowRules, check_rows, epoch_to_utc
from research.sources.binance_layout import (AGG_SOURCE, KLINE_MARKET, METRICS_LABEL_CHANGE, METRICS_ROWS_PER_DAY,
                                             SOURCE, VENUE, FileTask)
from research.sources.limits import Limits

KLINE_SCHEMA = {
    "open_time": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
    "volume": pl.Float64, "close_time": pl.Int64, "quote_volume": pl.Float64, "count": pl.Int64,
    "taker_buy_volume": pl.Float64, "taker_buy_quote_volume": pl.Float64, "ignore": pl.String,
}
FUNDING_SCHEMA = {"calc_time": pl.Int64, "funding_interval_hours": pl.Int32, "last_funding_rate": pl.Float64}
METRICS_SCHEMA = {
    "create_time": pl.String, "symbol": pl.String, "sum_open_interest": pl.Float64,
    "sum_open_interest_value": pl.Float64, "count_toptrader_long_short_ratio": pl.Float64,
    "sum_toptrader_long_short_ratio": pl.Float64, "count_long_short_ratio": pl.Float64,
    "sum_taker_long_short_vol_ratio": pl.Float64,
}
LIQ_SCHEMA = {
    "time": pl.Int64, "side": pl.String, "order_type": pl.String, "time_in_force": pl.String,
    "original_quantity": pl.Float64, "price": pl.Float64, "average_price": pl.Float64, "order_status": pl.String,
    "last_fill_quantity": pl.Float64, "accumulated_fill_quantity": pl.Float64,
}
AGG_SCHEMA = {
    "agg_trade_id": pl.Int64, "price": pl.Float64, "quantity": pl.Float64, "first_trade_id": pl.Int64,
    "last_trade_id": pl.Int64, "transact_time": pl.Int64, "is_buyer_maker": pl.String,
}
AGG_SCHEMA_SPOT = {**AGG_SCHEMA, "is_best_match": pl.String}

def read_archive_csv(data: bytes, schema: dict, origin: str, alt_schemas: Sequence[dict] = ()) -> pl.DataFrame:
    """Parse an archive CSV with or without a (checked) header row into ``schema`` (by position)."""
    return _read_csv(data, (schema, *alt_schemas), origin)[0]


def _read_csv(data: bytes, schemas: tuple[dict, ...], origin: str) -> tuple[pl.DataFrame, int]:
    """(frame, line number of the first data row)."""
    if not data.strip():
        return pl.DataFrame(schema=schemas[0]), 1
    schema, has_header, _ = split_header(data, schemas, origin)
    try:
        df = pl.read_csv(io.BytesIO(data), has_header=False, skip_rows=1 if has_header else 0, schema=schema,
                         truncate_ragged_lines=False)
    except Exception as e:  # polars raises ComputeError/NoDataError with the offending value
        raise SourceError(f"{origin}: cannot parse CSV ({str(e).splitlines()[0][:300]}); {REFUSED_HINT}") from None
    return df, 2 if has_header else 1


def rules_for(dataset: str) -> RowRules:
    """The row rules of an archive dataset."""
    return RULES["price_klines" if dataset in KLINE_MARKET else dataset]


def checked(df: pl.DataFrame, task: FileTask, first_line: int, warnings: list[str], origin: str | None = None) -> pl.DataFrame:
    """``df`` (one file's raw rows) after :func:`check_rows`; raises when the file is refused."""
    df = df.with_columns(pl.lit(0, pl.UInt32).alias("__f"))
    clean, errors = check_rows(df, rules_for(task.dataset), [origin or task.name], [task.period_bounds],
                               [first_line], warnings)
    if errors:
        raise ArchiveContentError(errors[0])
    return clean.drop("__f")


def _klines_frame(df: pl.DataFrame, dataset: str, market_kind: str, interval: str | None,
                  symbol: str | pl.Series) -> pl.DataFrame:
    market = KLINE_MARKET.get(dataset, "perp" if market_kind == "um" else "spot")
    traded = market in ("perp", "spot")
    sym = pl.lit(symbol) if isinstance(symbol, str) else pl.lit(symbol)
    return df.select(
        epoch_to_utc("open_time").alias("ts"),
        pl.lit(VENUE).alias("venue"), pl.lit(market).alias("market"), sym.alias("symbol"),
        pl.lit(interval).alias("interval"),
        "open", "high", "low", "close",
        *(pl.col(c) if traded else pl.lit(None, pl.Float64).alias(c) for c in ("volume", "quote_volume")),
        (pl.col("count") if traded else pl.lit(None, pl.Int64)).alias("trades"),
        *(pl.col(c) if traded else pl.lit(None, pl.Float64).alias(c)
          for c in ("taker_buy_volume", "taker_buy_quote_volume")),
        pl.lit(SOURCE).alias("source"),
    )


def _funding_frame(df: pl.DataFrame, symbol: str | pl.Series) -> pl.DataFrame:
    return df.select(
        epoch_to_utc("calc_time").alias("ts"),
        pl.lit(VENUE).alias("venue"), pl.lit(symbol).alias("symbol"),
        pl.col("last_funding_rate").alias("rate"),
        pl.col("funding_interval_hours").alias("interval_hours"),
        pl.lit(SOURCE).alias("source"),
    )


def parse_klines(data: bytes, task: FileTask, origin: str, warnings: list[str] | None = None) -> dict[str, pl.DataFrame]:
    df, first = _read_csv(data, (KLINE_SCHEMA,), origin)
    df = checked(df, task, first, [] if warnings is None else warnings, origin)
    return {"bars": _klines_frame(df, task.dataset, task.market, task.interval, task.symbol)}


def parse_funding(data: bytes, task: FileTask, origin: str, warnings: list[str] | None = None) -> dict[str, pl.DataFrame]:
    df, first = _read_csv(data, (FUNDING_SCHEMA,), origin)
    df = checked(df, task, first, [] if warnings is None else warnings, origin)
    return {"funding": _funding_frame(df, task.symbol)}


def metrics_label_is_start(labels: pl.Series, day: date) -> bool:
    """Whether a metrics file labels periods by their start (see the module docstring)."""
    d0 = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    has_start = bool((labels == d0).any())
    has_end = bool((labels == d0 + timedelta(days=1)).any())
    if has_start != has_end:
        return has_start
    return day >= METRICS_LABEL_CHANGE


def parse_metrics(data: bytes, task: FileTask, origin: str, warnings: list[str]) -> dict[str, pl.DataFrame]:
    df, first = _read_csv(data, (METRICS_SCHEMA,), origin)
    labels = df.get_column("create_time").str.strip_chars().str.to_datetime(
        "%Y-%m-%d %H:%M:%S", time_zone="UTC", time_unit="us", strict=False)
    bad = labels.is_null()
    if bad.any():
        i = int(bad.arg_max())
        raise ArchiveContentError(f"{origin}, line {i + first}, column 'create_time': {df['create_time'][i]!r} "
                                  f"is not a 'YYYY-MM-DD HH:MM:SS' time; {REFUSED_HINT}")
    day = task.first_day
    shift = timedelta(minutes=5) if metrics_label_is_start(labels, day) else timedelta(0)
    df = df.with_columns((labels + shift).alias("ts"))
    d0 = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    outside = ~df["ts"].is_between(d0 + timedelta(minutes=5), d0 + timedelta(days=1))
    if outside.any():
        i = int(outside.arg_max())
        raise ArchiveContentError(f"{origin}, line {i + first}: {df['create_time'][i]!r} and {int(outside.sum()) - 1} "
                                  f"more row(s) lie outside the file's day {day} after label normalisation; "
                                  f"{REFUSED_HINT}")
    n0 = df.height
    df = df.unique(keep="first", maintain_order=True)
    if df.height < n0:
        warnings.append(f"{origin}: {n0 - df.height:,} exact duplicate row(s) of {n0:,} dropped")
    dup = df.get_column("ts").is_duplicated()
    if dup.any():
        raise ArchiveContentError(f"{origin}: {int(dup.sum())} rows share a create_time with different values "
                                  f"(first {df['create_time'][int(dup.arg_max())]!r}); cannot tell which is right; "
                                  f"{REFUSED_HINT}")
    if df.height != METRICS_ROWS_PER_DAY:
        warnings.append(f"{origin}: {df.height} five-minute rows, a complete day has {METRICS_ROWS_PER_DAY} "
                        "(archive gap: not filled)")
    zero = (pl.col("sum_open_interest") == 0) & (pl.col("sum_open_interest_value").fill_null(0) == 0)
    nzero = df.select(zero.sum()).item()
    if nzero:
        warnings.append(f"{origin}: {nzero} row(s) with zero open interest (known bad archive rows) stored as null")
    base = df.select(
        "ts", pl.lit(VENUE).alias("venue"), pl.lit(task.symbol).alias("symbol"), pl.lit("5m").alias("interval"),
        pl.when(zero).then(None).otherwise(pl.col("sum_open_interest")).alias("oi_base"),
        pl.when(zero).then(None).otherwise(pl.col("sum_open_interest_value")).alias("oi_usd"),
        pl.col("sum_toptrader_long_short_ratio").alias("top_trader_ls_ratio"),
        pl.col("count_long_short_ratio").alias("account_ls_ratio"),
        pl.col("sum_taker_long_short_vol_ratio").alias("taker_buy_sell_ratio"),
        pl.lit(SOURCE).alias("source"),
    )
    oi = base.filter(pl.col("oi_base").is_not_null() | pl.col("oi_usd").is_not_null()).select(
        "ts", "venue", "symbol", "interval", "oi_base", "oi_usd", "source")
    ratios = ["top_trader_ls_ratio", "account_ls_ratio", "taker_buy_sell_ratio"]
    pos = base.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in ratios)).select(
        "ts", "venue", "symbol", "interval", *ratios, "source")
    return {"open_interest": oi, "positioning": pos}


def parse_liquidation_snapshot(data: bytes, task: FileTask, origin: str, warnings: list[str]) -> dict[str, pl.DataFrame]:
    df, first = _read_csv(data, (LIQ_SCHEMA,), origin)
    df = checked(df, task, first, warnings, origin)  # drops (and counts) the known exact duplicates
    sides = df.get_column("side").str.to_uppercase()
    bad = ~sides.is_in(["BUY", "SELL"])
    if bad.any():
        i = int(bad.arg_max())
        raise ArchiveContentError(f"{origin}, line {i + first}, column 'side': {df['side'][i]!r} is neither BUY nor SELL; "
                                  f"{REFUSED_HINT}")
    orders = df.select(
        epoch_to_utc("time").alias("ts"),
        pl.lit(VENUE).alias("venue"), pl.lit(task.symbol).alias("symbol"),
        # the forced order sells a liquidated long and buys back a liquidated short
        pl.when(pl.col("side").str.to_uppercase() == "SELL").then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
        pl.when(pl.col("average_price") > 0).then(pl.col("average_price")).otherwise(pl.col("price")).alias("price"),
        pl.when(pl.col("accumulated_fill_quantity") > 0).then(pl.col("accumulated_fill_quantity"))
        .otherwise(pl.col("original_quantity")).alias("qty"),
        pl.lit(SOURCE).alias("source"),
    ).with_columns((pl.col("price") * pl.col("qty")).alias("usd"))
    orders = orders.select("ts", "venue", "symbol", "side", "price", "qty", "usd", "source")
    d0 = datetime(task.first_day.year, task.first_day.month, task.first_day.day, tzinfo=timezone.utc)
    # the file covers its whole day(s): hours without a forced order are true zeros, not gaps
    n_hours = ((task.last_day - task.first_day).days + 1) * 24
    hours = pl.DataFrame({"ts": pl.datetime_range(d0, d0 + timedelta(hours=n_hours - 1), "1h",
                                                  time_unit="us", time_zone="UTC", eager=True)})
    agg = orders.group_by(pl.col("ts").dt.truncate("1h")).agg(
        pl.col("usd").filter(pl.col("side") == "long").sum().alias("long_usd"),
        pl.col("usd").filter(pl.col("side") == "short").sum().alias("short_usd"),
        pl.len().cast(pl.Int64).alias("count"),
    )
    buckets = hours.join(agg, on="ts", how="full", coalesce=True).sort("ts").select(
        "ts", pl.lit(VENUE).alias("venue"), pl.lit(task.symbol).alias("symbol"), pl.lit("1h").alias("interval"),
        pl.col("long_usd").fill_null(0.0), pl.col("short_usd").fill_null(0.0), pl.col("count").fill_null(0),
        pl.lit(SOURCE).alias("source"),
    )
    return {"liquidation_orders": orders, "liquidations": buckets}


def parse_aggtrades(data: bytes, task: FileTask, origin: str, warnings: list[str] | None = None) -> dict[str, pl.DataFrame]:
    df, first = _read_csv(data, (AGG_SCHEMA, AGG_SCHEMA_SPOT), origin)
    df = checked(df, task, first, [] if warnings is None else warnings, origin)
    maker = df.get_column("is_buyer_maker").str.strip_chars().str.to_lowercase()
    bad = ~maker.is_in(["true", "false"])
    if bad.any():
        i = int(bad.arg_max())
        raise ArchiveContentError(f"{origin}, line {i + first}, column 'is_buyer_maker': {df['is_buyer_maker'][i]!r} "
                                  f"is not true/false; {REFUSED_HINT}")
    df = df.with_columns(epoch_to_utc("transact_time").alias("ts"), (maker == "false").alias("taker_buy"))
    market = "perp" if task.market == "um" else "spot"
    q, p = pl.col("quantity"), pl.col("price")
    bars = (df.sort("ts", "agg_trade_id")
            .group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True)
            .agg(p.first().alias("open"), p.max().alias("high"), p.min().alias("low"), p.last().alias("close"),
                 q.sum().alias("volume"), (p * q).sum().alias("quote_volume"),
                 (pl.col("last_trade_id") - pl.col("first_trade_id") + 1).sum().cast(pl.Int64).alias("trades"),
                 q.filter(pl.col("taker_buy")).sum().alias("taker_buy_volume"),
                 (p * q).filter(pl.col("taker_buy")).sum().alias("taker_buy_quote_volume")))
    bars = bars.select(
        "ts", pl.lit(VENUE).alias("venue"), pl.lit(market).alias("market"), pl.lit(task.symbol).alias("symbol"),
        pl.lit("1m").alias("interval"), "open", "high", "low", "close", "volume", "quote_volume", "trades",
        "taker_buy_volume", "taker_buy_quote_volume", pl.lit(AGG_SOURCE).alias("source"))
    return {"bars": bars}


def expected_kline_rows(task: FileTask) -> int | None:
    if not task.interval:
        return None
    secs = INTERVALS[task.interval]
    span = ((task.last_day - task.first_day).days + 1) * 86400
    return span // secs if span % secs == 0 and secs <= 86400 else None


def parse_file(task: FileTask, zip_path: Path, warnings: list[str], data: bytes | None = None,
               limits: Limits | None = None) -> dict[str, pl.DataFrame]:
    """Parse one verified archive zip into canonical frames (rows checked; table rules not yet)."""
    origin = task.name
    data = read_member(zip_path, limits) if data is None else data
    if task.dataset == "fundingRate":
        return parse_funding(data, task, origin, warnings)
    if task.dataset in ("klines", *KLINE_MARKET):
        out = parse_klines(data, task, origin, warnings)
        exp = expected_kline_rows(task)
        if exp is not None and out["bars"].height != exp:
            warnings.append(f"{origin}: {out['bars'].height} bars, a complete {task.freq} file has {exp} "
                            "(archive gap: not filled; the daily files may have the missing rows)")
        return out
    if task.dataset == "metrics":
        return parse_metrics(data, task, origin, warnings)
    if task.dataset == "liquidationSnapshot":
        return parse_liquidation_snapshot(data, task, origin, warnings)
    if task.dataset == "aggTrades":
        return parse_aggtrades(data, task, origin, warnings)
    raise SourceError(f"no parser for dataset {task.dataset!r}")
