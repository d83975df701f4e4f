"""The Binance public data archive's layout: datasets, files (:class:`FileTask`) and planning.

Archive layout (one zip + ``.zip.CHECKSUM`` per file, see binance/binance-public-data)::

    data/futures/um/{daily|monthly}/{dataset}/{SYMBOL}/[{interval}/]{SYMBOL}-{interval|dataset}-{period}.zip
    data/spot/{daily|monthly}/{dataset}/{SYMBOL}/[{interval}/]...

``period`` is ``YYYY-MM`` (monthly) or ``YYYY-MM-DD`` (daily).
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Sequence

from research.errors import SourceError
from research.schema import INTERVALS

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


    @property
    def period_bounds(self) -> tuple[datetime, datetime]:
        """``[start, end)`` of the file's own period in UTC (every row must lie inside it)."""
        lo = datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=timezone.utc)
        return lo, datetime.combine(self.last_day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)


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
