"""``research import``: CSV/Parquet exports from dashboards onto canonical tables.

A :class:`Mapping` (flags, a small YAML file, or a named preset) says

* which column holds the time, its format and **time zone** (required for naive times: an
  export without one is ambiguous), and whether its label marks the **start** or the **end** of
  a bucket, or an **instant**;
* which source column feeds each value column, in which **unit** (``percent``/``decimal``/
  ``bps`` for rates, ``usd``/``usd_millions``/``usd_billions`` for money, ``base`` for coin
  amounts, ``price``, ``ratio``, ``count``, ``index``, ``hours``, ``text``); rates must name their
  unit, because percent vs decimal is the classic silent error;
* constants (venue, symbol, interval, market, source, ...).

Time labels are converted to the table's convention (see :mod:`research.schema`): bars and
liquidations want the bucket **start**; open_interest and positioning want the observation
instant, i.e. the bucket **end** for bucketed exports (the close is only known then); funding
wants the settlement instant (a bucketed rate, e.g. an OHLC close, is placed at the bucket end).

Everything is parsed and validated before anything is written; an unparseable cell, a naive
time without a zone, a time that does not exist or is ambiguous in its zone, or two different
rows for one key are rejected with the file, column and line. Numbers may carry thousands
separators (``"1,205.20"``), ``(12.3)`` negatives or ``-`` for no data.

Presets for the real pack in ``../shared/data/real`` are in :data:`PRESETS`; see
:func:`import_real_pack`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from research import lake
from research.errors import ImportMappingError, SchemaError
from research.schema import INTERVALS, get_table, validate

# which instant the table's time column stands for
TABLE_TIME = {"bars": "start", "liquidations": "start", "open_interest": "end", "positioning": "end",
              "funding": "instant", "liquidation_orders": "instant", "etf_flows": "date", "sentiment": "date"}
UNITS = {"decimal": 1.0, "percent": 0.01, "bps": 1e-4, "usd": 1.0, "usd_thousands": 1e3, "usd_millions": 1e6,
         "usd_billions": 1e9, "base": 1.0, "price": 1.0, "ratio": 1.0, "count": 1.0, "index": 1.0, "hours": 1.0,
         "text": None}
_RATE = {"decimal", "percent", "bps"}
_USD = {"usd", "usd_thousands", "usd_millions", "usd_billions"}
# allowed units per target column (first = default when the mapping names none; None = must be named)
COLUMN_UNITS: dict[str, tuple[str | None, set[str]]] = {
    "rate": (None, _RATE),
    "flow_usd": ("usd", _USD), "long_usd": ("usd", _USD), "short_usd": ("usd", _USD), "usd": ("usd", _USD),
    "oi_usd": ("usd", _USD), "quote_volume": ("usd", _USD | {"price"}), "taker_buy_quote_volume": ("usd", _USD | {"price"}),
    "oi_base": ("base", {"base"}), "volume": ("base", {"base"}), "taker_buy_volume": ("base", {"base"}),
    "qty": ("base", {"base"}),
    "open": ("price", {"price"}), "high": ("price", {"price"}), "low": ("price", {"price"}), "close": ("price", {"price"}),
    "price": ("price", {"price"}),
    "top_trader_ls_ratio": ("ratio", {"ratio"}), "account_ls_ratio": ("ratio", {"ratio"}),
    "taker_buy_sell_ratio": ("ratio", {"ratio"}),
    "trades": ("count", {"count"}), "count": ("count", {"count"}), "interval_hours": ("hours", {"hours"}),
    "value": ("index", {"index"}), "label": ("text", {"text"}), "side": ("text", {"text"}),
    "product": ("text", {"text"}), "market": ("text", {"text"}), "symbol": ("text", {"text"}),
    "venue": ("text", {"text"}),
}
_NO_DATA = {"", "-", "\u2013", "\u2014", "n/a", "na", "nan", "null", "none"}


@dataclass
class ValueSpec:
    """One value column: the source column feeding it and the source unit."""

    column: str
    unit: str | None = None


@dataclass
class Mapping:
    """How one export file maps onto one canonical table (see the module docstring)."""

    table: str
    time_column: str | None = None
    time_format: str | None = None  # strptime format, 'iso', 'epoch' (s/ms/us/ns by magnitude), 'epoch_ms', ...
    timezone: str | None = None  # IANA name or a fixed offset like '+03:00'; required for naive times
    label: str = "start"  # start | end | instant (what the time label marks)
    bucket: str | None = None  # the export's bucket interval (defaults to constants['interval'])
    values: dict[str, ValueSpec] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    format: str = "auto"  # auto | csv | parquet | farside
    drop_last_rows: int = 0
    skip_values: list[str] = field(default_factory=list)  # rows whose time cell is one of these are skipped
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict, *, table: str | None = None) -> "Mapping":
        d = dict(d)
        doc_table = d.pop("table", None)
        if table and doc_table and table != doc_table:
            raise ImportMappingError(f"the command names table {table!r} but the mapping is for {doc_table!r}")
        t = doc_table or table
        if not t:
            raise ImportMappingError("the mapping must name the table (e.g. table: liquidations)")
        time = d.pop("time", None) or {}
        if isinstance(time, str):
            time = {"column": time}
        vals = {}
        for target, spec in (d.pop("values", None) or d.pop("columns", None) or {}).items():
            if isinstance(spec, str):
                col, _, unit = spec.partition(":")
                vals[target] = ValueSpec(col, unit or None)
            elif isinstance(spec, dict) and "column" in spec:
                vals[target] = ValueSpec(spec["column"], spec.get("unit"))
            else:
                raise ImportMappingError(f"mapping value {target!r}: give a column name or {{column, unit}}, not {spec!r}")
        known = {"time_column", "time_format", "timezone", "label", "bucket", "constants", "format",
                 "drop_last_rows", "skip_values", "note"}
        unknown = set(d) - known
        if unknown:
            raise ImportMappingError(f"unknown mapping key(s) {sorted(unknown)}; known: table, time, values, {', '.join(sorted(known))}")
        skip = d.pop("skip_values", None) or []
        return cls(table=t, time_column=time.get("column", d.pop("time_column", None)),
                   time_format=time.get("format", d.pop("time_format", None)),
                   timezone=time.get("timezone", d.pop("timezone", None)),
                   label=time.get("label", d.pop("label", "start")), bucket=time.get("bucket", d.pop("bucket", None)),
                   values=vals, constants=dict(d.pop("constants", None) or {}), format=d.pop("format", "auto"),
                   drop_last_rows=int(d.pop("drop_last_rows", 0) or 0), skip_values=[str(s) for s in skip],
                   note=d.pop("note", ""))

    @classmethod
    def from_yaml(cls, path: str | Path, *, table: str | None = None) -> "Mapping":
        import yaml

        try:
            doc = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ImportMappingError(f"mapping file {path}: {e}") from None
        if not isinstance(doc, dict):
            raise ImportMappingError(f"mapping file {path}: expected a YAML mapping at the top level")
        return cls.from_dict(doc, table=table)


# --------------------------------------------------------------------------- presets
_CG = "denniskid2520+btcusdt-research-archive/src/data"
PRESETS: dict[str, dict] = {
    "coinglass_liquidations_4h": {
        "file": f"{_CG}/coinglass_liquidation_4h.csv",
        "table": "liquidations",
        "time": {"column": "timestamp", "format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC", "label": "start"},
        "values": {"long_usd": "long_usd:usd", "short_usd": "short_usd:usd"},
        "constants": {"venue": "binance", "symbol": "BTC", "interval": "4h", "source": "coinglass"},
        "note": "CoinGlass aggregated-history with exchange_list=Binance: all Binance BTC contracts (coin level), "
                "USD; built from throttled liquidation feeds, so a lower bound.",
    },
    "coinglass_oi_4h": {
        "file": f"{_CG}/coinglass_oi_4h.csv",
        "table": "open_interest",
        "time": {"column": "timestamp", "format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC", "label": "start"},
        "values": {"oi_usd": "close:usd"},
        "constants": {"venue": "all", "symbol": "BTC", "interval": "4h", "source": "coinglass"},
        "note": "CoinGlass aggregated OI OHLC across all exchanges (USD, inferred from magnitude); the close is "
                "stored at the bar end, when it is known.",
    },
    "coinglass_funding_4h": {
        "file": f"{_CG}/coinglass_funding_4h.csv",
        "table": "funding",
        "time": {"column": "timestamp", "format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC", "label": "start", "bucket": "4h"},
        "values": {"rate": "close:percent"},
        "constants": {"venue": "all", "symbol": "BTC", "interval_hours": 8, "source": "coinglass"},
        "note": "CoinGlass OI-weighted funding OHLC across exchanges, in percent (converted to decimal); the close "
                "is stored at the bar end. UNCERTAIN: CoinGlass does not document how venues with 1h/4h/8h "
                "intervals are normalised; interval_hours=8 is an assumption.",
    },
    "binance_perp_1h": {
        "file": "gg-cmk+binance-quant/data/BTCUSDT-1h-futures.csv",
        "table": "bars",
        "time": {"column": "openTime", "format": "epoch_ms", "timezone": "UTC", "label": "start"},
        "values": {"open": "open:price", "high": "high:price", "low": "low:price", "close": "close:price",
                   "volume": "volume:base", "quote_volume": "quoteVolume:usd", "trades": "trades:count",
                   "taker_buy_volume": "takerBuyBase:base", "taker_buy_quote_volume": "takerBuyQuote:usd"},
        "constants": {"venue": "binance", "market": "perp", "symbol": "BTCUSDT", "interval": "1h",
                      "source": "binance_vision"},
        "note": "gg-cmk archive-row CSV: data.binance.vision USD-M monthly kline rows written back verbatim "
                "(header renamed), so the source is binance_vision.",
    },
    "binance_spot_1h": {
        "file": f"{_CG}/btcusdt_1h_5year.csv",
        "table": "bars",
        "time": {"column": "timestamp", "format": "iso", "timezone": "UTC", "label": "start"},
        "values": {"open": "open:price", "high": "high:price", "low": "low:price", "close": "close:price",
                   "volume": "volume:base"},
        "constants": {"venue": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "1h",
                      "source": "binance_api"},
        "drop_last_rows": 1,
        "note": "denniskid Binance spot REST klines (naive ISO = bar open, UTC; 6-decimal rendering); the last bar "
                "was still open when captured and is dropped.",
    },
    "binance_funding_8h": {
        "file": "gg-cmk+binance-quant/data/BTCUSDT-funding.csv",
        "table": "funding",
        "time": {"column": "fundingTime", "format": "epoch_ms", "timezone": "UTC", "label": "instant"},
        "values": {"rate": "fundingRate:decimal", "interval_hours": "fundingIntervalHours:hours"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "source": "binance_vision"},
        "note": "gg-cmk archive-row CSV of data.binance.vision fundingRate (calc_time with ms jitter, E-notation).",
    },
    "coinglass_top_ls_1d": {
        "file": f"{_CG}/coinglass_top_ls_1d.csv",
        "table": "positioning",
        "time": {"column": "timestamp", "format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC", "label": "start",
                 "bucket": "1d"},
        "values": {"top_trader_ls_ratio": "ratio:ratio"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "coinglass"},
        "note": "CoinGlass Binance BTCUSDT top-trader long/short POSITION ratio (long/short, 2 decimals), daily; "
                "a day's value is stored at the day's end, when it is known.",
    },
    "farside_etf_flows": {
        "file": "Mohammad-Hannan+mcg_macro_intel/data/btc_etf_flows.csv",
        "table": "etf_flows",
        "format": "farside",
        "constants": {"source": "farside"},
        "note": "Farside BTC ETF flow table (US$ millions, footer rows Total/Average/Maximum/Minimum).",
    },
    "fear_greed_csv": {
        "file": "twitter-bot-tech+btc-funding-arb/data/fng.csv",
        "table": "sentiment",
        "time": {"column": "date", "format": "%Y-%m-%d", "label": "start"},
        "values": {"value": "fng:index", "label": "classification:text"},
        "constants": {"index": "fear_greed", "source": "alternative_me"},
        "note": "alternative.me Fear & Greed daily values (UTC dates).",
    },
}
#: The standard real pack: presets imported by :func:`import_real_pack`.
REAL_PACK = ("coinglass_liquidations_4h", "coinglass_oi_4h", "coinglass_funding_4h", "coinglass_top_ls_1d",
             "binance_perp_1h", "binance_spot_1h", "binance_funding_8h", "farside_etf_flows", "fear_greed_csv")
REAL_PACK_WINDOW = (date(2025, 10, 1), date(2026, 4, 30))


def preset(name: str) -> Mapping:
    """A named preset (see :data:`PRESETS`)."""
    try:
        d = dict(PRESETS[name])
    except KeyError:
        raise ImportMappingError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
    d.pop("file", None)
    return Mapping.from_dict(d)


# --------------------------------------------------------------------------- parsing helpers
def _read(path: Path, fmt: str) -> pl.DataFrame:
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            # every column as text: numbers like "1,205.20" and odd times are parsed by us, with line numbers
            return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except FileNotFoundError:
        raise ImportMappingError(f"{path}: no such file") from None
    except Exception as e:
        raise ImportMappingError(f"{path.name}: cannot read as {fmt} ({str(e).splitlines()[0][:200]})") from None
    raise ImportMappingError(f"format {fmt!r} is not csv, parquet or farside")


def _line(df: pl.DataFrame, i: int) -> int:
    return int(df["__line"][i])


def _clean_numbers(s: pl.Series) -> pl.Series:
    """Text numbers -> Float64 with separators, $ and (x) negatives handled; no-data markers -> null."""
    t = s.str.strip_chars()
    nodata = t.str.to_lowercase().is_in(list(_NO_DATA)) | t.is_null()
    t = t.str.replace_all("\u2212", "-").str.replace_all(r"[,$\s]", "")
    neg = t.str.starts_with("(") & t.str.ends_with(")")
    t = pl.select(pl.when(neg).then(pl.lit("-") + t.str.strip_chars("()")).otherwise(t)).to_series()
    v = t.cast(pl.Float64, strict=False)
    return pl.select(pl.when(nodata).then(None).otherwise(v)).to_series().alias(s.name)


def _offset(tz: str) -> timedelta | None:
    m = re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", tz.strip())
    if not m:
        return None
    sign = 1 if m.group(1) == "+" else -1
    return sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))


def _parse_time(df: pl.DataFrame, m: Mapping, origin: str) -> pl.Series:
    col = m.time_column
    s = df[col]
    fmt = (m.time_format or "").strip()
    if fmt.startswith("epoch") or s.dtype.is_integer() or s.dtype.is_float():
        n = s if s.dtype.is_integer() else s.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
        bad = n.is_null() & s.is_not_null()
        if bad.any():
            i = int(bad.arg_max())
            raise ImportMappingError(f"{origin}, column {col!r}, line {_line(df, i)}: {s[i]!r} is not an epoch integer")
        scale = {"epoch_s": 10**6, "epoch_ms": 10**3, "epoch_us": 1, "epoch_ns": None}.get(fmt)
        if fmt in ("", "epoch"):
            us = pl.select(pl.when(n >= 10**17).then(n // 1000).when(n >= 10**14).then(n)
                           .when(n >= 10**11).then(n * 1000).otherwise(n * 10**6)).to_series()
        elif fmt == "epoch_ns":
            us = n // 1000
        elif scale is not None:
            us = n * scale
        else:
            raise ImportMappingError(f"time format {fmt!r}: use epoch, epoch_s, epoch_ms, epoch_us or epoch_ns")
        ts = us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        if m.timezone and m.timezone.upper() not in ("UTC", "Z", "GMT", "ETC/UTC"):
            raise ImportMappingError(f"{origin}, column {col!r}: epoch times are UTC by definition; "
                                     f"the mapping says timezone {m.timezone!r}")
        return ts
    if s.dtype == pl.Date or isinstance(s.dtype, pl.Datetime):
        parsed = s.cast(pl.Datetime("us")) if s.dtype == pl.Date else s.dt.cast_time_unit("us")
    else:
        txt = s.cast(pl.String).str.strip_chars()
        if fmt in ("", "iso"):
            parsed = None
            for f in ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f",
                      "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
                try:
                    cand = txt.str.to_datetime(f, time_unit="us", strict=True)
                except Exception:
                    continue
                parsed = cand
                break
            if parsed is None:
                cand = txt.str.to_datetime(time_unit="us", strict=False) if txt.len() else txt.cast(pl.Datetime("us"))
                parsed = cand
        else:
            try:
                parsed = txt.str.to_datetime(fmt, time_unit="us", strict=False)
            except Exception as e:
                raise ImportMappingError(f"{origin}, column {col!r}: time format {fmt!r} is invalid ({e})") from None
        bad = parsed.is_null() & txt.is_not_null()
        if bad.any() or txt.null_count():
            i = int((bad | txt.is_null()).arg_max())
            raise ImportMappingError(f"{origin}, column {col!r}, line {_line(df, i)}: {s[i]!r} cannot be read as a "
                                     f"time{' with format ' + repr(fmt) if fmt and fmt != 'iso' else ''}")
    if parsed.dtype.time_zone is not None:  # type: ignore[union-attr]
        return parsed.dt.convert_time_zone("UTC")
    if not m.timezone:
        raise ImportMappingError(f"{origin}, column {col!r}: times like {s[0]!r} carry no time zone; name it in "
                                 "the mapping (time.timezone: UTC, or e.g. Europe/London or +03:00)")
    off = _offset(m.timezone)
    if off is not None:
        return (parsed - off).dt.replace_time_zone("UTC")
    try:
        return parsed.dt.replace_time_zone(m.timezone, ambiguous="raise", non_existent="raise").dt.convert_time_zone("UTC")
    except Exception as e:
        msg = str(e).splitlines()[0]
        raise ImportMappingError(f"{origin}, column {col!r}: times cannot be placed in time zone {m.timezone!r} "
                                 f"({msg}); an ambiguous or non-existent local time (DST change) needs a UTC export") from None


def _shift(ts: pl.Series, m: Mapping, origin: str) -> pl.Series:
    want = TABLE_TIME[m.table]
    label = m.label
    if label not in ("start", "end", "instant"):
        raise ImportMappingError(f"time label must be start, end or instant, not {label!r}")
    if want == label or (want == "end" and label == "instant") or (want == "instant" and label == "end"):
        return ts
    if want == "start" and label == "instant":
        raise ImportMappingError(f"{origin}: table {m.table!r} is bucketed (ts = bucket start) but the mapping "
                                 "says the time is an instant; say whether it marks the bucket start or end")
    bucket = m.bucket or m.constants.get("interval")
    if bucket not in INTERVALS:
        raise ImportMappingError(f"{origin}: to move {label}-labelled times to the table's {want} convention the "
                                 f"mapping needs the bucket interval (bucket: 4h or constants.interval), got {bucket!r}")
    step = timedelta(seconds=INTERVALS[bucket])
    return ts - step if want == "start" else ts + step


def parse_file(path: str | Path, mapping: Mapping, *, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    """Read ``path`` with ``mapping`` into a validated canonical frame (nothing is written).

    ``start``/``end`` (inclusive dates) optionally keep only rows inside a window.

    Raises
    ------
    ImportMappingError
        With the file, column and line of the first problem.
    SchemaError
        When mapped rows break a table rule (names the row).
    """
    path = Path(path)
    origin = path.name
    m = mapping
    t = get_table(m.table)
    if m.table not in TABLE_TIME:
        raise ImportMappingError(f"table {m.table!r} cannot be imported")
    if m.format == "farside":
        from research.sources import etf

        df = etf.read_table(path, source=m.constants.get("source", etf.SOURCE))
        return _window(validate(t, df, origin=origin), t.time_col, start, end)
    raw = _read(path, m.format)
    raw = raw.with_row_index("__line", offset=2 if m.format != "parquet" and path.suffix.lower() not in (".parquet", ".pq") else 0)
    if not m.time_column:
        raise ImportMappingError(f"{origin}: the mapping must name the time column (time.column)")
    needed = [m.time_column, *(v.column for v in m.values.values())]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise ImportMappingError(f"{origin}: column(s) {missing} not in the file; it has {[c for c in raw.columns if c != '__line']}")
    if m.skip_values:
        raw = raw.filter(~raw[m.time_column].cast(pl.String).str.strip_chars().is_in(m.skip_values))
    if m.drop_last_rows:
        raw = raw.head(max(raw.height - m.drop_last_rows, 0))
    out: dict[str, pl.Series] = {}
    time_col = t.time_col
    if time_col == "date":
        if raw[m.time_column].dtype == pl.Date:
            d = raw[m.time_column]
        else:
            txt = raw[m.time_column].cast(pl.String).str.strip_chars()
            d = txt.str.to_date(m.time_format or "%Y-%m-%d", strict=False)
            bad = d.is_null()
            if bad.any():
                i = int(bad.arg_max())
                raise ImportMappingError(f"{origin}, column {m.time_column!r}, line {_line(raw, i)}: {txt[i]!r} is not "
                                         f"a date in format {m.time_format or '%Y-%m-%d'!r}")
        out["date"] = d
    else:
        out["ts"] = _shift(_parse_time(raw, m, origin), m, origin)
    for target, spec in m.values.items():
        if target not in t.polars_schema:
            raise ImportMappingError(f"{origin}: table {t.name!r} has no column {target!r}; columns: {t.names}")
        default, allowed = COLUMN_UNITS.get(target, ("text", {"text"}))
        unit = spec.unit or default
        if unit is None:
            raise ImportMappingError(f"{origin}: value {target!r} (from {spec.column!r}) needs a unit: one of "
                                     f"{sorted(allowed)} (e.g. percent if 0.01 means 0.01 %)")
        if unit not in UNITS:
            raise ImportMappingError(f"{origin}: unknown unit {unit!r} for {target!r}; units: {', '.join(UNITS)}")
        if unit not in allowed:
            raise ImportMappingError(f"{origin}: {target!r} cannot take unit {unit!r}; allowed: {sorted(allowed)}")
        s = raw[spec.column]
        if UNITS[unit] is None:
            out[target] = s.cast(pl.String).str.strip_chars()
            continue
        v = _clean_numbers(s.cast(pl.String)) if s.dtype == pl.String else s.cast(pl.Float64)
        bad = v.is_null() & s.is_not_null() & ~s.cast(pl.String).str.strip_chars().str.to_lowercase().is_in(list(_NO_DATA))
        if bad.any():
            i = int(bad.arg_max())
            raise ImportMappingError(f"{origin}, column {spec.column!r}, line {_line(raw, i)}: {s[i]!r} is not a number")
        col = t.column(target)
        if not col.nullable and v.null_count():
            i = int(v.is_null().arg_max())
            raise ImportMappingError(f"{origin}, column {spec.column!r}, line {_line(raw, i)}: no value "
                                     f"({s[i]!r}) but {t.name}.{target} is required")
        v = v * UNITS[unit]
        if col.dtype.is_integer():
            frac = (v - v.round(0)).abs() > 1e-9
            if frac.any():
                i = int(frac.arg_max())
                raise ImportMappingError(f"{origin}, column {spec.column!r}, line {_line(raw, i)}: {s[i]!r} is not a whole number")
            v = v.round(0).cast(pl.Int64)
        out[target] = v
    for k, val in m.constants.items():
        if k not in t.polars_schema:
            raise ImportMappingError(f"{origin}: constant {k!r} is not a column of {t.name!r}; columns: {t.names}")
        if k in out:
            raise ImportMappingError(f"{origin}: {k!r} is both a constant and a value column")
        out[k] = pl.Series(k, [val] * raw.height)
    df = pl.DataFrame(out).with_columns(raw["__line"])
    if time_col == "ts" and isinstance(df.schema["ts"], pl.Datetime):
        pass
    df = _window(df, time_col, start, end)
    key = list(t.key)
    miss_key = [k for k in key if k not in df.columns]
    if miss_key:
        raise ImportMappingError(f"{origin}: the mapping gives no value for key column(s) {miss_key} of {t.name!r} "
                                 "(add them as constants or value columns)")
    dups = df.filter(pl.struct(key).is_duplicated())
    if dups.height:
        values = [c for c in df.columns if c not in key and c != "__line"]
        conflicting = dups.group_by(key).agg(pl.max_horizontal(pl.col(values).n_unique()).alias("__n") if values else pl.len().alias("__n"),
                                             pl.col("__line").min().alias("__a"), pl.col("__line").max().alias("__b"))
        if values:
            conflicting = conflicting.filter(pl.col("__n") > 1)
        if conflicting.height:
            r = conflicting.row(0, named=True)
            raise ImportMappingError(f"{origin}: lines {r['__a']} and {r['__b']} give different values for the same "
                                     f"{t.name} key ({', '.join(f'{k}={r[k]}' for k in key)}); which one is right?")
        df = df.unique(subset=key, keep="first", maintain_order=True)
    lines = df["__line"]
    try:
        return validate(t, df.drop("__line"), origin=origin)
    except SchemaError as e:
        m_row = re.search(r"row (\d+)", str(e))
        if m_row and int(m_row.group(1)) < len(lines):
            raise SchemaError(f"{e} [file line {lines[int(m_row.group(1))]}]") from None
        raise


def _window(df: pl.DataFrame, time_col: str, start: date | None, end: date | None) -> pl.DataFrame:
    if start is None and end is None:
        return df
    c = pl.col(time_col)
    d = c if df.schema[time_col] == pl.Date else c.dt.date()
    if start is not None:
        df = df.filter(d >= start)
    if end is not None:
        df = df.filter(d <= end)
    return df


def import_file(table: str | None, path: str | Path, mapping: Mapping | dict | str | Path, data_dir=None, *,
                start: date | None = None, end: date | None = None, dry_run: bool = False) -> lake.WriteResult:
    """Parse, validate and write one export file (atomically; nothing is written on any error).

    Parameters
    ----------
    table : str, optional
        Target table; must agree with the mapping's table when both are given.
    mapping : Mapping, dict, preset name, or path to a YAML file
    """
    m = resolve_mapping(mapping, table)
    df = parse_file(path, m, start=start, end=end)
    if dry_run:
        return lake.WriteResult(m.table, df.height, 0, 0, 0)
    return lake.write(m.table, df, data_dir, origin=Path(path).name)


def resolve_mapping(mapping: Mapping | dict | str | Path, table: str | None = None) -> Mapping:
    if isinstance(mapping, Mapping):
        m = mapping
    elif isinstance(mapping, dict):
        m = Mapping.from_dict(mapping, table=table)
    elif isinstance(mapping, str) and mapping in PRESETS:
        m = preset(mapping)
    else:
        p = Path(mapping)
        if not p.exists():
            raise ImportMappingError(f"{mapping!r} is neither a preset ({', '.join(PRESETS)}) nor a mapping file")
        m = Mapping.from_yaml(p, table=table)
    if table and table != m.table:
        raise ImportMappingError(f"the command names table {table!r} but the mapping is for {m.table!r}")
    return m


def import_real_pack(real_dir: str | Path, data_dir=None, *, start: date | None = REAL_PACK_WINDOW[0],
                     end: date | None = REAL_PACK_WINDOW[1], presets: tuple[str, ...] = REAL_PACK) -> dict[str, lake.WriteResult]:
    """Import the standard real pack (``../shared/data/real``) into a lake.

    Every file is parsed and validated first; only then is anything written. Default window:
    Oct 2025 - Apr 2026 (``start``/``end`` None = whole files).

    Returns
    -------
    dict
        preset name -> :class:`research.lake.WriteResult`.
    """
    real_dir = Path(real_dir)
    parsed = []
    for name in presets:
        f = real_dir / PRESETS[name]["file"]
        if not f.exists():
            raise ImportMappingError(f"real pack file {f} is missing (preset {name}); is {real_dir} the real pack?")
        m = preset(name)
        parsed.append((name, m, f, parse_file(f, m, start=start, end=end)))
    return {name: lake.write(m.table, df, data_dir, origin=f.name) for name, m, f, df in parsed}
