"""Binance public data archive (data.binance.vision): plan, download, verify, ingest.

Archive layout (one zip + ``.zip.CHECKSUM`` per file, see binance/binance-public-data)::

    data/futures/um/{daily|monthly}/{dataset}/{SYMBOL}/[{interval}/]{SYMBOL}-{interval|dataset}-{period}.zip
    data/spot/{daily|monthly}/{dataset}/{SYMBOL}/[{interval}/]...

``period`` is ``YYYY-MM`` (monthly) or ``YYYY-MM-DD`` (daily). Raw zips are kept byte for byte
under ``raw/binance/<archive path>`` beside their ``.CHECKSUM``.

Mapping to canonical tables (venue ``binance``):

============================  ==============================================================
dataset                       table
============================  ==============================================================
fundingRate (um, monthly)     ``funding`` (ts = ``calc_time`` as published, with its ms jitter)
klines um / spot              ``bars`` market ``perp`` / ``spot``
markPriceKlines               ``bars`` market ``mark`` (volume columns null)
indexPriceKlines              ``bars`` market ``index`` (volume columns null)
premiumIndexKlines            ``bars`` market ``premium`` (volume columns null)
metrics (um, daily)           ``open_interest`` (5m) and ``positioning`` (5m)
liquidationSnapshot (um)      ``liquidation_orders`` and 1h ``liquidations`` buckets
aggTrades um / spot           1m ``bars`` (``perp``/``spot``), source ``binance_aggtrades``
============================  ==============================================================

Format rules handled here (each has a synthetic fixture in ``tests/sources``):

* Header rows may be present or absent (older futures files and all spot files have none): a
  file has a header when its first field is neither an integer nor a date.
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
* ``liquidationSnapshot`` exists for USD-M only up to 2024-03-31; exact duplicate rows are
  dropped; ``side`` is the forced order's side, so SELL = a long was liquidated.
* Gaps are never filled: a day or month the archive does not have is recorded ``missing``.
"""
from __future__ import annotations

import calendar
import io
import os
import re
import zipfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import polars as pl

from research import lake, paths
from research.errors import ResearchError, SourceError
from research.schema import INTERVALS
from research.sources.http import (Downloader, FetchResult, FetchSummary, Manifest, parse_checksum, rich_progress,
                                   write_atomic)

DEFAULT_BASE_URL = "https://data.binance.vision/"
BASE_URL_ENV = "RESEARCH_BINANCE_BASE_URL"
VENUE = "binance"
SOURCE = "binance_vision"
AGG_SOURCE = "binance_aggtrades"
LIQ_SNAPSHOT_LAST_DAY = date(2024, 3, 31)
METRICS_LABEL_CHANGE = date(2026, 6, 25)
METRICS_ROWS_PER_DAY = 288


@dataclass(frozen=True)
class Dataset:
    """What the archive publishes for one dataset."""

    name: str
    markets: tuple[str, ...]
    freqs: tuple[str, ...]
    has_interval: bool = False


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("fundingRate", ("um",), ("monthly",)),
    Dataset("klines", ("um", "spot"), ("daily", "monthly"), True),
    Dataset("premiumIndexKlines", ("um",), ("daily", "monthly"), True),
    Dataset("markPriceKlines", ("um",), ("daily", "monthly"), True),
    Dataset("indexPriceKlines", ("um",), ("daily", "monthly"), True),
    Dataset("metrics", ("um",), ("daily",)),
    Dataset("aggTrades", ("um", "spot"), ("daily", "monthly")),
    Dataset("liquidationSnapshot", ("um",), ("daily",)),
)}
KLINE_MARKET = {"premiumIndexKlines": "premium", "markPriceKlines": "mark", "indexPriceKlines": "index"}


@dataclass(frozen=True)
class FileTask:
    """One archive file."""

    dataset: str
    market: str  # um | spot
    symbol: str
    freq: str  # daily | monthly
    period: str  # YYYY-MM or YYYY-MM-DD
    interval: str | None = None

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.interval or self.dataset}-{self.period}.zip"

    @property
    def archive_path(self) -> str:
        root = "data/futures/um" if self.market == "um" else "data/spot"
        sub = f"{self.symbol}/{self.interval}" if self.interval else self.symbol
        return f"{root}/{self.freq}/{self.dataset}/{sub}/{self.name}"

    @property
    def raw_rel(self) -> str:
        return f"raw/binance/{self.archive_path}"

    @property
    def first_day(self) -> date:
        if self.freq == "daily":
            return date.fromisoformat(self.period)
        y, m = map(int, self.period.split("-"))
        return date(y, m, 1)

    @property
    def last_day(self) -> date:
        if self.freq == "daily":
            return self.first_day
        d = self.first_day
        return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


# --------------------------------------------------------------------------- planning
def _months(start: date, end: date):
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def _days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def daily_tasks_for_month(task: FileTask, start: date, end: date) -> list[FileTask]:
    """Daily files replacing a monthly ``task`` within ``[start, end]``."""
    lo, hi = max(task.first_day, start), min(task.last_day, end)
    return [FileTask(task.dataset, task.market, task.symbol, "daily", d.isoformat(), task.interval) for d in _days(lo, hi)]


def plan(symbols: Sequence[str], datasets: Sequence[str], *, market: str = "um", interval: str | None = "1h",
         start: date, end: date, granularity: str = "auto") -> tuple[list[FileTask], list[str]]:
    """The archive files covering ``[start, end]`` (inclusive dates).

    ``granularity='auto'`` takes a monthly file for every whole month inside the range and daily
    files for the partial months at its ends (monthly-only datasets always take the month).

    Returns
    -------
    (tasks, notes)
        notes explain anything that was clipped (e.g. liquidationSnapshot after 2024-03-31).

    Raises
    ------
    SourceError
        Unknown dataset/market/interval, an impossible combination, or nothing left to fetch.
    """
    if granularity not in ("auto", "daily", "monthly"):
        raise SourceError(f"granularity must be auto, daily or monthly, not {granularity!r}")
    if market not in ("um", "spot"):
        raise SourceError(f"market must be 'um' (USD-M futures) or 'spot', not {market!r}")
    if end < start:
        raise SourceError(f"end date {end} is before start date {start}")
    tasks: list[FileTask] = []
    notes: list[str] = []
    for ds_name in datasets:
        ds = DATASETS.get(ds_name)
        if ds is None:
            raise SourceError(f"unknown Binance dataset {ds_name!r}; use one of {', '.join(DATASETS)}")
        if market not in ds.markets:
            raise SourceError(f"{ds_name} exists only for market(s) {', '.join(ds.markets)} "
                              f"(um = USD-M futures), not {market!r}")
        iv = None
        if ds.has_interval:
            if not interval:
                raise SourceError(f"{ds_name} needs an interval (e.g. --interval 1h)")
            if interval not in INTERVALS or interval == "1s" and market == "um":
                raise SourceError(f"interval {interval!r} is not supported; use one of "
                                  f"{', '.join(i for i in INTERVALS if i != '1s')}")
            iv = interval
        lo, hi = start, end
        if ds_name == "liquidationSnapshot":
            if lo > LIQ_SNAPSHOT_LAST_DAY:
                raise SourceError(
                    f"liquidationSnapshot is not published for USD-M futures after {LIQ_SNAPSHOT_LAST_DAY} "
                    f"(Binance stopped providing it); you asked for {start}..{end}. For later liquidations use "
                    "`research fetch coinalyze` or import a CoinGlass export with `research import`.")
            if hi > LIQ_SNAPSHOT_LAST_DAY:
                notes.append(f"liquidationSnapshot: USD-M files stop at {LIQ_SNAPSHOT_LAST_DAY}; "
                             f"{LIQ_SNAPSHOT_LAST_DAY + timedelta(days=1)}..{end} was not requested "
                             "(use `research fetch coinalyze` or a CoinGlass import for that period)")
                hi = LIQ_SNAPSHOT_LAST_DAY
        if granularity != "auto" and granularity not in ds.freqs:
            raise SourceError(f"{ds_name} is published only as {'/'.join(ds.freqs)} files, not {granularity}")
        for sym in symbols:
            sym = sym.upper()
            if not re.fullmatch(r"[A-Z0-9_]+", sym):
                raise SourceError(f"symbol {sym!r} is not a Binance symbol (e.g. BTCUSDT)")
            for y, m in _months(lo, hi):
                mfirst = date(y, m, 1)
                mlast = date(y, m, calendar.monthrange(y, m)[1])
                whole = lo <= mfirst and mlast <= hi
                use_monthly = "monthly" in ds.freqs and (
                    granularity == "monthly" or "daily" not in ds.freqs or (granularity == "auto" and whole))
                if use_monthly:
                    tasks.append(FileTask(ds_name, market, sym, "monthly", f"{y:04d}-{m:02d}", iv))
                else:
                    for d in _days(max(lo, mfirst), min(hi, mlast)):
                        tasks.append(FileTask(ds_name, market, sym, "daily", d.isoformat(), iv))
    if not tasks:
        raise SourceError("nothing to fetch: check symbols, datasets and dates")
    return list(dict.fromkeys(tasks)), notes


# --------------------------------------------------------------------------- parsing
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

_DATA_FIELD = re.compile(r"^\s*(-?\d+|\d{4}-\d{2}-\d{2}.*)\s*$")


def read_member(zip_path: Path) -> bytes:
    """The single CSV inside an archive zip."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            csvs = [n for n in names if n.lower().endswith(".csv")] or names
            if len(csvs) != 1:
                raise SourceError(f"{zip_path.name}: expected one CSV member, found {names}")
            return zf.read(csvs[0])
    except zipfile.BadZipFile as e:
        raise SourceError(f"{zip_path.name}: not a readable zip ({e}); delete it and fetch again") from None


def read_archive_csv(data: bytes, schema: dict, origin: str, alt_schemas: Sequence[dict] = ()) -> pl.DataFrame:
    """Parse an archive CSV with or without a header row into ``schema`` (by position)."""
    if not data.strip():
        return pl.DataFrame(schema=schema)
    nl = data.find(b"\n")
    first = (data if nl < 0 else data[:nl]).decode("utf-8", "replace").rstrip("\r")
    fields = first.split(",")
    has_header = not _DATA_FIELD.match(fields[0])
    ncols = len(fields)
    for sch in (schema, *alt_schemas):
        if len(sch) == ncols:
            schema = sch
            break
    else:
        raise SourceError(f"{origin}: {ncols} columns in the first line, expected {len(schema)} "
                          f"({', '.join(schema)}); first line: {first[:120]!r}")
    try:
        return pl.read_csv(io.BytesIO(data), has_header=False, skip_rows=1 if has_header else 0, schema=schema,
                           truncate_ragged_lines=False)
    except Exception as e:  # polars raises ComputeError/NoDataError with the offending value
        raise SourceError(f"{origin}: cannot parse CSV ({str(e).splitlines()[0][:300]})") from None


def epoch_to_utc(col: str | pl.Expr) -> pl.Expr:
    """Epoch integers in s/ms/us/ns (decided per value by magnitude) -> ``Datetime(us, UTC)``.

    Values below 1e11 (seconds, or garbage) become null; callers reject nulls.
    """
    t = pl.col(col) if isinstance(col, str) else col
    us = (pl.when(t >= 10**17).then(t // 1000)
          .when(t >= 10**14).then(t)
          .when(t >= 10**11).then(t * 1000)
          .otherwise(None))
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _require_times(df: pl.DataFrame, raw: pl.Series, col: str, origin: str) -> None:
    bad = df.get_column("ts").is_null() & raw.is_not_null()
    if bad.any():
        i = int(bad.arg_max())
        raise SourceError(f"{origin}, column {col!r}: value {raw[i]!r} in data row {i} is not an epoch time in ms/us/ns")
    if raw.null_count():
        i = int(raw.is_null().arg_max())
        raise SourceError(f"{origin}, column {col!r}: empty time in data row {i}")


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


def parse_klines(data: bytes, task: FileTask, origin: str) -> dict[str, pl.DataFrame]:
    df = read_archive_csv(data, KLINE_SCHEMA, origin)
    out = _klines_frame(df, task.dataset, task.market, task.interval, task.symbol)
    _require_times(out, df.get_column("open_time"), "open_time", origin)
    return {"bars": out}


def parse_funding(data: bytes, task: FileTask, origin: str) -> dict[str, pl.DataFrame]:
    df = read_archive_csv(data, FUNDING_SCHEMA, origin)
    out = _funding_frame(df, task.symbol)
    _require_times(out, df.get_column("calc_time"), "calc_time", origin)
    return {"funding": out}


def metrics_label_is_start(labels: pl.Series, day: date) -> bool:
    """Whether a metrics file labels periods by their start (see the module docstring)."""
    d0 = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    has_start = bool((labels == d0).any())
    has_end = bool((labels == d0 + timedelta(days=1)).any())
    if has_start != has_end:
        return has_start
    return day >= METRICS_LABEL_CHANGE


def parse_metrics(data: bytes, task: FileTask, origin: str, warnings: list[str]) -> dict[str, pl.DataFrame]:
    df = read_archive_csv(data, METRICS_SCHEMA, origin)
    labels = df.get_column("create_time").str.strip_chars().str.to_datetime(
        "%Y-%m-%d %H:%M:%S", time_zone="UTC", time_unit="us", strict=False)
    bad = labels.is_null()
    if bad.any():
        i = int(bad.arg_max())
        raise SourceError(f"{origin}, column 'create_time': {df['create_time'][i]!r} in data row {i} "
                          "is not a 'YYYY-MM-DD HH:MM:SS' time")
    day = task.first_day
    shift = timedelta(minutes=5) if metrics_label_is_start(labels, day) else timedelta(0)
    df = df.with_columns((labels + shift).alias("ts"))
    d0 = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    outside = ~df["ts"].is_between(d0 + timedelta(minutes=5), d0 + timedelta(days=1))
    if outside.any():
        warnings.append(f"{origin}: {int(outside.sum())} row(s) outside the file's day after label normalisation "
                        f"(first {df['create_time'][int(outside.arg_max())]!r}); kept")
    df = df.unique(subset=["ts"], keep="last", maintain_order=True)
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
    df = read_archive_csv(data, LIQ_SCHEMA, origin)
    n0 = df.height
    df = df.unique(maintain_order=True)
    if df.height < n0:
        warnings.append(f"{origin}: dropped {n0 - df.height} exact duplicate row(s) of {n0}")
    sides = df.get_column("side").str.to_uppercase()
    bad = ~sides.is_in(["BUY", "SELL"])
    if bad.any():
        i = int(bad.arg_max())
        raise SourceError(f"{origin}, column 'side': {df['side'][i]!r} in data row {i} is neither BUY nor SELL")
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
    _require_times(orders, df.get_column("time"), "time", origin)
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


def parse_aggtrades(data: bytes, task: FileTask, origin: str) -> dict[str, pl.DataFrame]:
    df = read_archive_csv(data, AGG_SCHEMA, origin, alt_schemas=(AGG_SCHEMA_SPOT,))
    maker = df.get_column("is_buyer_maker").str.strip_chars().str.to_lowercase()
    bad = ~maker.is_in(["true", "false"])
    if bad.any():
        i = int(bad.arg_max())
        raise SourceError(f"{origin}, column 'is_buyer_maker': {df['is_buyer_maker'][i]!r} in data row {i} "
                          "is not true/false")
    df = df.with_columns(epoch_to_utc("transact_time").alias("ts"), (maker == "false").alias("taker_buy"))
    _require_times(df, df.get_column("transact_time"), "transact_time", origin)
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


def parse_file(task: FileTask, zip_path: Path, warnings: list[str], data: bytes | None = None) -> dict[str, pl.DataFrame]:
    """Parse one verified archive zip into canonical frames (not yet validated)."""
    origin = task.name
    data = read_member(zip_path) if data is None else data
    if task.dataset == "fundingRate":
        return parse_funding(data, task, origin)
    if task.dataset in ("klines", *KLINE_MARKET):
        out = parse_klines(data, task, origin)
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
        return parse_aggtrades(data, task, origin)
    raise SourceError(f"no parser for dataset {task.dataset!r}")


# --------------------------------------------------------------------------- fetch
def base_url(explicit: str | None = None) -> str:
    return (explicit or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/") + "/"


def _download_one(dl: Downloader, base: str, task: FileTask) -> FetchResult:
    url = base + task.archive_path
    dest = dl.data_dir / task.raw_rel
    status, body, meta = dl.get_bytes(url + ".CHECKSUM")
    if status != "ok":
        return FetchResult(dl.redact(url), task.raw_rel, status,
                           error=f"{meta.get('error')} for the .CHECKSUM file" if status == "missing" else meta.get("error"),
                           attempts=meta.get("attempts", 1))
    try:
        expected = parse_checksum(body.decode("utf-8", "replace"), task.name)
    except ResearchError as e:
        return FetchResult(dl.redact(url), task.raw_rel, "failed", error=str(e))
    res = dl.download(url, dest, expected_sha256=expected, checksum_retries=1)
    if res.ok:
        try:
            with zipfile.ZipFile(dest) as zf:
                broken = zf.testzip()
        except zipfile.BadZipFile as e:
            broken = str(e)
        if broken:
            q = dl.quarantine_path(dest)
            q.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dest, q)
            res.status, res.extra = "failed", {"quarantined": dl.rel(q)}
            res.error = f"matches its checksum but the zip is unreadable ({broken}); quarantined in {dl.rel(q)}"
        else:
            write_atomic(dest.with_name(dest.name + ".CHECKSUM"), body)
    return res


_FAST = {"fundingRate": (FUNDING_SCHEMA, "calc_time", "funding"),
         **{d: (KLINE_SCHEMA, "open_time", "bars") for d in ("klines", *KLINE_MARKET)}}


def _strip_header(data: bytes, schema: dict) -> bytes | None:
    """The data rows of an archive CSV (header dropped, final newline ensured), or None if odd."""
    nl = data.find(b"\n")
    first = (data if nl < 0 else data[:nl]).decode("utf-8", "replace").rstrip("\r")
    fields = first.split(",")
    if len(fields) != len(schema):
        return None
    body = data if _DATA_FIELD.match(fields[0]) else data[nl + 1:] if nl >= 0 else b""
    body = body.rstrip(b"\r\n")
    if not body:
        return b""
    if b"\n\n" in body or b"\n\r\n" in body:
        return None  # blank lines would break the per-file row counts: use the per-file path
    return body + b"\n"


def _parse_group_fast(items: list[tuple[FileTask, bytes]], warnings: list[str]) -> dict[str, pl.DataFrame] | None:
    """Parse many same-layout files with one CSV read (per-file overhead dominates small files).

    Returns None when anything is unusual; the caller then parses file by file, which names the
    offending file in its error.
    """
    schema, tcol, table = _FAST[items[0][0].dataset]
    bodies, counts = [], []
    for task, data in items:
        b = _strip_header(data, schema)
        if b is None:
            return None
        bodies.append(b)
        counts.append(b.count(b"\n"))
    try:
        df = pl.read_csv(io.BytesIO(b"".join(bodies)), has_header=False, schema=schema)
    except Exception:
        return None
    if df.height != sum(counts):
        return None
    symbols = pl.Series("symbol", [t.symbol for t, _ in items]).gather(
        pl.Series(range(len(items)), dtype=pl.UInt32).repeat_by(pl.Series(counts, dtype=pl.UInt32)).explode())
    t0 = items[0][0]
    out = (_funding_frame(df, symbols) if table == "funding"
           else _klines_frame(df, t0.dataset, t0.market, t0.interval, symbols))
    if out.get_column("ts").null_count():
        return None
    for (task, _), n in zip(items, counts):
        exp = expected_kline_rows(task) if table == "bars" else None
        if exp is not None and n != exp:
            warnings.append(f"{task.name}: {n} bars, a complete {task.freq} file has {exp} "
                            "(archive gap: not filled; the daily files may have the missing rows)")
    return {table: out}


def _read_members(batch: list[tuple[FileTask, Path]], workers: int = 4) -> list[bytes | Exception]:
    def one(p):
        try:
            return read_member(p)
        except ResearchError as e:
            return e
    if len(batch) < 4:
        return [one(p) for _, p in batch]
    with ThreadPoolExecutor(max_workers=workers) as ex:  # zlib releases the GIL
        return list(ex.map(one, [p for _, p in batch]))


def ingest_batch(batch: list[tuple[FileTask, Path]], data_dir, summary: FetchSummary, manifest: Manifest) -> None:
    """Parse a batch of verified zips and write them to the lake, one write per table.

    Small same-layout files (klines, fundingRate) are parsed with one CSV read per layout; any
    oddity falls back to file-by-file parsing so errors name the file.
    """
    frames: dict[str, list[pl.DataFrame]] = {}
    good: list[tuple[FileTask, Path, dict[str, int]]] = []
    records: list[dict] = []
    datas = _read_members(batch)
    groups: dict[tuple, list[int]] = {}
    slow: list[int] = []
    for i, ((task, _), data) in enumerate(zip(batch, datas)):
        if isinstance(data, Exception):
            summary.ingest_errors.append((task.raw_rel, str(data)))
            records.append({"path": task.raw_rel, "event": "ingest", "ingest": "failed", "error": str(data)})
        elif task.dataset in _FAST:
            groups.setdefault((task.dataset, task.market, task.interval), []).append(i)
        else:
            slow.append(i)
    for key, idxs in groups.items():
        parsed = _parse_group_fast([(batch[i][0], datas[i]) for i in idxs], summary.warnings) if len(idxs) > 1 else None
        if parsed is None:
            slow.extend(idxs)
            continue
        for t, df in parsed.items():
            frames.setdefault(t, []).append(df)
        for i in idxs:
            good.append((batch[i][0], batch[i][1], {}))
    for i in sorted(slow):
        task, path = batch[i]
        try:
            parsed = parse_file(task, path, summary.warnings, data=datas[i])
        except ResearchError as e:
            summary.ingest_errors.append((task.raw_rel, str(e)))
            records.append({"path": task.raw_rel, "event": "ingest", "ingest": "failed", "error": str(e)})
            continue
        for t, df in parsed.items():
            frames.setdefault(t, []).append(df)
        good.append((task, path, {t: df.height for t, df in parsed.items()}))
    if not good:
        manifest.append_many(records)
        return
    try:
        for t, dfs in frames.items():
            origin = good[0][0].name if len(good) == 1 else f"{good[0][0].name} and {len(good) - 1} more file(s)"
            res = lake.write(t, pl.concat(dfs, how="vertical_relaxed"), data_dir, origin=origin)
            summary.rows_in[t] = summary.rows_in.get(t, 0) + res.rows_in
            summary.rows_added[t] = summary.rows_added.get(t, 0) + res.rows_added
    except ResearchError as e:
        manifest.append_many(records)
        if len(good) > 1:  # find the offending file(s): retry one by one (writes are idempotent)
            for task, path, _ in good:
                ingest_batch([(task, path)], data_dir, summary, manifest)
            return
        task = good[0][0]
        summary.ingest_errors.append((task.raw_rel, str(e)))
        manifest.append({"path": task.raw_rel, "event": "ingest", "ingest": "failed", "error": str(e)})
        return
    for task, _, rows in good:
        summary.ingested_files += 1
        records.append({"path": task.raw_rel, "event": "ingest", "ingest": "ok", **({"rows": rows} if rows else {})})
    manifest.append_many(records)


def fetch(symbols: Sequence[str], datasets: Sequence[str], *, start: date, end: date | None = None,
          market: str = "um", interval: str | None = "1h", granularity: str = "auto", data_dir=None,
          base: str | None = None, workers: int = 4, dry_run: bool = False, refresh: bool = False,
          retries: int = 4, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 60.0,
          progress: bool = True, batch_files: int = 32) -> FetchSummary:
    """Download, verify and ingest Binance archive files.

    Parameters
    ----------
    symbols, datasets : sequence of str
        E.g. ``["BTCUSDT"]`` and ``["fundingRate", "klines"]`` (see :data:`DATASETS`).
    start, end : date
        Inclusive range (``end`` defaults to yesterday, UTC).
    market : {'um', 'spot'}
    interval : str
        Kline interval for the ``*klines`` datasets.
    granularity : {'auto', 'daily', 'monthly'}
        ``auto`` = monthly files for whole months, daily files otherwise; a monthly file that is
        404 is replaced by that month's daily files.
    base : str, optional
        Archive base URL (default ``$RESEARCH_BINANCE_BASE_URL`` or https://data.binance.vision/).
    workers : int
        Parallel downloads (default 4).
    dry_run : bool
        Only list the URLs (``summary.urls``); nothing is downloaded.
    refresh : bool
        Re-download files already verified (to pick up files the archive replaced).
    retries, backoff, max_backoff, timeout
        Retry policy (tests pass tiny backoffs).

    Returns
    -------
    FetchSummary
    """
    end = end or (datetime.now(timezone.utc).date() - timedelta(days=1))
    tasks, notes = plan(symbols, datasets, market=market, interval=interval, start=start, end=end,
                        granularity=granularity)
    b = base_url(base)
    summary = FetchSummary(planned=len(tasks), notes=list(notes))
    if dry_run:
        summary.urls = [b + t.archive_path for t in tasks]
        return summary
    ddir = paths.data_dir(data_dir)
    manifest = Manifest(ddir)
    manifest.load()
    dl = Downloader(ddir, retries=retries, backoff=backoff, max_backoff=max_backoff, timeout=timeout)
    pending: list[tuple[FileTask, Path]] = []
    seen: set[FileTask] = set()
    with rich_progress(progress, "binance") as prog, ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        dl.progress = prog
        if hasattr(prog, "set_files"):
            prog.set_files(len(tasks))
        futures = {}

        def submit(task: FileTask) -> None:
            if task in seen:
                return
            seen.add(task)
            raw = ddir / task.raw_rel
            rec = manifest.get(task.raw_rel)
            if (not refresh and rec and rec.get("status") == "ok" and raw.exists()
                    and raw.stat().st_size == rec.get("size")):
                summary.skipped += 1
                prog.file_done()
                if rec.get("ingest") != "ok":
                    pending.append((task, raw))
                return
            futures[ex.submit(_download_one, dl, b, task)] = task

        for t in tasks:
            submit(t)
        while futures:
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for f in done:
                task = futures.pop(f)
                try:
                    res = f.result()
                except Exception as e:  # a bug or disk error must not lose the other files' results
                    res = FetchResult(dl.redact(b + task.archive_path), task.raw_rel, "failed", error=repr(e))
                manifest.append({**res.record(), "source": "binance", "ingest": "pending" if res.ok else None,
                                 "event": "download"})
                if res.ok:
                    summary.downloaded += 1
                    summary.bytes_downloaded += res.size or 0
                    pending.append((task, ddir / task.raw_rel))
                elif res.status == "missing" and task.freq == "monthly" and granularity == "auto" \
                        and "daily" in DATASETS[task.dataset].freqs:
                    daily = daily_tasks_for_month(task, start, end)
                    summary.notes.append(f"{task.name} is not in the archive (404); using {len(daily)} daily file(s)")
                    summary.planned += len(daily)
                    if hasattr(prog, "set_files"):
                        prog.set_files(summary.planned)
                    prog.file_done()
                    for d in daily:
                        submit(d)
                else:
                    if res.status != "ok" and res.status != "corrupt":
                        prog.file_done()
                    getattr(summary, res.status).append(res)
            if len(pending) >= batch_files:
                ingest_batch(pending, ddir, summary, manifest)
                pending.clear()
        if pending:
            ingest_batch(pending, ddir, summary, manifest)
    return summary


def parse_date(value: str | date, what: str = "date") -> date:
    if isinstance(value, date):
        return value
    try:
        if re.fullmatch(r"\d{4}-\d{2}", value):
            return date.fromisoformat(value + "-01")
        return date.fromisoformat(value)
    except ValueError:
        raise SourceError(f"{what} {value!r} is not a date like 2025-10-01 (or a month like 2025-10)") from None


def month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])
