"""Which lake files a query needs: the lake's file list filtered by the query's parameters.

A panel for one symbol and span reads only that symbol's (and its coin-level aggregate's)
partitions and the years the span needs, so its cost does not grow with the rest of the lake. The
file list always comes from :func:`research.lake.table_files` (committed files only); this module
never globs the lake itself.
"""
from __future__ import annotations

import datetime as dt
import inspect
import re
from pathlib import Path

from research import lake, paths
from research.errors import QueryError
from research.schema import INTERVALS, TABLES, get_table

#: Margin of history read before ``start`` on top of :func:`lookback_for` (which lets an as-of value
#: of a series up to weekly count for ``stale_after`` of its intervals).
LOOKBACK_DAYS = 1

_QUOTE = re.compile(r"(USDT|USDC|BUSD|FDUSD|USD)$")


def coin_of(symbol: str) -> str:
    """The coin-level aggregate's symbol of an instrument: ``BTCUSDT`` -> ``BTC``."""
    return _QUOTE.sub("", symbol)


def _lake_accepts() -> tuple[bool, bool]:
    """(equality filters, ``years=``) supported by this checkout's :func:`lake.table_files`."""
    params = inspect.signature(lake.table_files).parameters
    kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return kw, "years" in params


def _part_values(path: Path, root: Path) -> dict[str, str]:
    return dict(p.split("=", 1) for p in path.relative_to(root).parts[:-1] if "=" in p)


def table_files(table: str, data_dir=None, *, years=None, **equals: str) -> list[Path]:
    """Committed files of ``table`` whose partition values equal ``equals`` and whose year is in ``years``.

    Delegates to :func:`research.lake.table_files`, passing the filters it supports and applying
    the rest to the ``name=value`` directories of the returned paths, so it works before and after
    the lake grows ``years=``.
    """
    t = get_table(table)
    eq_ok, years_ok = _lake_accepts()
    kwargs = dict(equals) if eq_ok else {}
    year_set = None if years is None else {int(y) for y in years}
    if years_ok and year_set is not None:
        kwargs["years"] = sorted(year_set)
    files = lake.table_files(t.name, data_dir, **kwargs)
    todo = {k: str(v) for k, v in equals.items() if not eq_ok}
    if not years_ok and year_set is not None:
        todo["year"] = None
    if not todo:
        return list(files)
    root = paths.lake_dir(data_dir) / t.name
    out = []
    for f in files:
        vals = _part_values(f, root)
        if any(vals.get(k) != v for k, v in todo.items() if k != "year"):
            continue
        if "year" in todo and "year" in vals and int(vals["year"]) not in year_set:
            continue
        out.append(f)
    return out


def _instant(value, default: dt.datetime) -> dt.datetime:
    if value is None:
        return default
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            d = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return default  # DuckDB will reject it with a message naming the parameter
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def years_for(start, end, lookback_days: float = LOOKBACK_DAYS) -> range:
    """Calendar years touched by ``[start - lookback, end)``."""
    lo = _instant(start, dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) - dt.timedelta(days=lookback_days)
    hi = _instant(end, dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)) - dt.timedelta(microseconds=1)
    return range(max(lo.year, 1970), max(hi.year, lo.year) + 1)


def lookback_for(stale: float, fsecs: int) -> dt.timedelta:
    """How far before the first bar an as-of observation can still count: ``stale`` intervals of a
    series up to weekly (or of the panel's interval when coarser), plus :data:`LOOKBACK_DAYS`."""
    return dt.timedelta(days=LOOKBACK_DAYS) + dt.timedelta(seconds=max(stale, 0) * max(7 * 86400, fsecs))


def panel_years(values: dict) -> range:
    """The years a panel's files must cover: its span, plus the as-of lookback (:func:`lookback_for`)
    at its ``stale_after`` and ``interval``, plus one bar after ``end``.

    The last row is known at ``end``, and the as-of series are read up to a bar past it (the SQL's
    ``ts < end + interval``): an observation at exactly ``end`` = 1 January 00:00 lives in the next
    year's file, and without that year the last row of December would take an older value than the
    same row of a longer span."""
    try:
        stale = float(values.get("stale_after") or 2)
    except ValueError:
        stale = 2.0
    fsecs = INTERVALS.get(str(values.get("interval") or "1h"), 86400)
    lookback = (lookback_for(stale, fsecs) + dt.timedelta(seconds=fsecs)).total_seconds() / 86400
    end = _instant(values.get("end"), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))
    return years_for(values.get("start"), min(end, dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))
                     + dt.timedelta(seconds=fsecs), lookback)


def panel_files(values: dict, data_dir=None) -> dict[str, list[Path]]:
    """Files a panel query needs, per table, from its bound parameter values.

    Bars: the asked symbol at the asked venue. Funding, OI, liquidations, positioning: the symbol
    and its coin-level aggregate (every venue, since ``oi_venue``/``liq_venue`` may sum venues).
    ETF flows and sentiment: the span's years. Every table: only the span's years (plus lookback),
    and only ``source`` when the query is restricted to one.
    """
    symbol = str(values.get("symbol"))
    years = panel_years(values)
    base = {"source": values["source"]} if values.get("source") is not None else {}
    out: dict[str, list[Path]] = {}
    for name in TABLES:
        if name == "liquidation_orders":
            out[name] = []  # panels do not read single prints
            continue
        if name == "bars":
            venue = {"venue": values["venue"]} if values.get("venue") is not None else {}
            out[name] = table_files(name, data_dir, years=years, symbol=symbol, **venue, **base)
        elif "symbol" in get_table(name).partition:
            files = table_files(name, data_dir, years=years, symbol=symbol, **base)
            if coin_of(symbol) != symbol:
                files += table_files(name, data_dir, years=years, symbol=coin_of(symbol), **base)
            out[name] = sorted(set(files))
        else:
            out[name] = table_files(name, data_dir, years=years, **base)
    return out


#: Values a ``-- scan: panel`` query may use besides its declared parameters, derived by
#: :func:`panel_values` from them (bound like any parameter, so the optimizer sees constants).
DERIVED = {"panel": ("coin", "fsecs", "b0", "asof_lo")}

_PRICES = ("perp", "spot", "index")


def panel_values(values: dict) -> dict:
    """Check a panel's parameters and derive the constants its SQL uses.

    Returns ``coin`` (the coin-level symbol), ``fsecs`` (the panel's interval in seconds), ``b0``
    (open of the bar before the first row, so the first return is defined) and ``asof_lo`` (the
    earliest observation an as-of series can still contribute).

    Raises
    ------
    QueryError
        One line naming the parameter: unknown interval, price not perp/spot/index, ``stale_after``
        not > 0, or ``all`` combined with venues in ``oi_venue``/``liq_venue``.
    """
    interval = str(values.get("interval") or "1h")
    if interval not in INTERVALS or INTERVALS[interval] < 60:
        raise QueryError(f"parameter interval: {interval!r} is not an interval (use 1h, 4h, 8h, 1d, ...)")
    price = values.get("price")
    if price is not None and str(price).lower() not in _PRICES:
        raise QueryError(f"parameter price: {price!r} is not one of {', '.join(_PRICES)} (or null for the fallback)")
    try:
        stale = float(values.get("stale_after") if values.get("stale_after") is not None else 2)
    except ValueError:
        stale = -1.0
    if not stale > 0:
        raise QueryError(f"parameter stale_after: {values.get('stale_after')!r} must be a number > 0")
    for name in ("oi_venue", "liq_venue"):
        vs = [v.strip() for v in str(values.get(name) or "").split(",") if v.strip()]
        if "all" in vs and len(vs) > 1:
            raise QueryError(f"parameter {name}: 'all' cannot be combined with venues (it would count them twice)")
    fsecs = INTERVALS[interval]
    t0 = _instant(values.get("start"), dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    first = epoch + dt.timedelta(seconds=(int((t0 - epoch).total_seconds()) // fsecs) * fsecs)
    b0 = first - dt.timedelta(seconds=fsecs)
    return {"coin": coin_of(str(values.get("symbol"))), "fsecs": fsecs, "b0": b0, "asof_lo": b0 - lookback_for(stale, fsecs)}
