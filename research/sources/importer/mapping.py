"""The mapping: how one export file maps onto one canonical table, and the one YAML loader for it.

A mapping names the time column (format, **time zone**, whether the label marks the bucket
**start**, **end** or an **instant**, and ``dayfirst`` for ``01/02/2025``-style dates), the source
column and **unit** of every value column, constants (venue, symbol, interval, ...), where the
price for coin-to-USD conversion comes from (``price``), and overrides of the plausibility bounds
(``bounds``, see :mod:`research.sources.importer.checks`).

YAML mapping files are read by :func:`load_yaml_mapping` only: dates stay **strings** (so
``2025-10-01`` means the same in a mapping file as on the command line and is read later by
:func:`research.parsing.parse_date`), anchors/aliases are refused (no alias bombs), and a binary or
oversized file is refused with a one-line error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from research.errors import ImportMappingError

UNITS = {"decimal": 1.0, "percent": 0.01, "bps": 1e-4, "usd": 1.0, "usd_thousands": 1e3, "usd_millions": 1e6,
         "usd_billions": 1e9, "base": 1.0, "price": 1.0, "ratio": 1.0, "count": 1.0, "index": 1.0, "hours": 1.0,
         "text": None}
_RATE = {"decimal", "percent", "bps"}
_USD = {"usd", "usd_thousands", "usd_millions", "usd_billions"}
#: USD columns that also take ``base`` (coin) amounts, converted with a matching price (see convert.py)
CONVERTIBLE = {"long_usd", "short_usd", "oi_usd", "usd", "flow_usd"}
# allowed units per target column (first = default when the mapping names none; None = must be named)
COLUMN_UNITS: dict[str, tuple[str | None, set[str]]] = {
    "rate": (None, _RATE),
    "flow_usd": ("usd", _USD), "long_usd": ("usd", _USD | {"base"}), "short_usd": ("usd", _USD | {"base"}),
    "usd": ("usd", _USD), "oi_usd": ("usd", _USD | {"base"}),
    "quote_volume": ("usd", _USD | {"price"}), "taker_buy_quote_volume": ("usd", _USD | {"price"}),
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
MAX_MAPPING_BYTES = 1 << 20


@dataclass
class ValueSpec:
    """One value column: the source column feeding it and the source unit."""

    column: str
    unit: str | None = None


@dataclass
class PriceSpec:
    """Where the price for converting coin (``base``) amounts to USD comes from.

    ``column`` names a price column in the same file; otherwise the close of the lake's bars of
    ``symbol`` (default: the mapping's symbol constant) at ``interval`` (default: the bucket
    interval) is used, trying ``markets`` in order (default perp, then spot) at each bucket.
    """

    column: str | None = None
    symbol: str | None = None
    interval: str | None = None
    markets: tuple[str, ...] = ("perp", "spot")


@dataclass
class Mapping:
    """How one export file maps onto one canonical table (see the module docstring)."""

    table: str
    time_column: str | None = None
    time_format: str | None = None  # strptime format, 'iso', 'epoch' (s/ms/us/ns by magnitude), 'epoch_ms', ...
    timezone: str | None = None  # IANA name or a fixed offset like '+03:00'; required for naive times
    label: str = "start"  # start | end | instant (what the time label marks)
    bucket: str | None = None  # the export's bucket interval (defaults to constants['interval'])
    dayfirst: bool | None = None  # how to read 01/02/2025 (None: refuse such dates)
    values: dict[str, ValueSpec] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    format: str = "auto"  # auto | csv | parquet | farside
    drop_last_rows: int = 0
    skip_values: list[str] = field(default_factory=list)  # rows whose time cell is one of these are skipped
    price: PriceSpec | None = None
    bounds: dict[str, Any] = field(default_factory=dict)  # overrides of checks.Bounds fields
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict, *, table: str | None = None) -> Mapping:
        """Build a mapping from its dict (YAML) form; unknown keys are refused by name."""
        if not isinstance(d, dict):
            raise ImportMappingError(f"a mapping must be a dict of keys (table, time, values, ...), not {type(d).__name__}")
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
        if not isinstance(time, dict):
            raise ImportMappingError(f"mapping key 'time' must be a column name or a dict, not {time!r}")
        vals = {}
        raw_values = d.pop("values", None) or d.pop("columns", None) or {}
        if not isinstance(raw_values, dict):
            raise ImportMappingError(f"mapping key 'values' must be a dict of TARGET: COLUMN[:UNIT], not {raw_values!r}")
        for target, spec in raw_values.items():
            if isinstance(spec, str):
                col, _, unit = spec.partition(":")
                vals[target] = ValueSpec(col, unit or None)
            elif isinstance(spec, dict) and "column" in spec:
                vals[target] = ValueSpec(str(spec["column"]), spec.get("unit"))
            else:
                raise ImportMappingError(f"mapping value {target!r}: give a column name or {{column, unit}}, not {spec!r}")
        known = {"time_column", "time_format", "timezone", "label", "bucket", "dayfirst", "constants", "format",
                 "drop_last_rows", "skip_values", "price", "bounds", "note"}
        unknown = set(d) - known
        if unknown:
            raise ImportMappingError(f"unknown mapping key(s) {sorted(unknown)}; known: table, time, values, {', '.join(sorted(known))}")
        dayfirst = time.get("dayfirst", d.pop("dayfirst", None))
        if dayfirst is not None and not isinstance(dayfirst, bool):
            raise ImportMappingError(f"time.dayfirst must be true or false, not {dayfirst!r}")
        bounds = d.pop("bounds", None) or {}
        if not isinstance(bounds, dict):
            raise ImportMappingError(f"mapping key 'bounds' must be a dict, not {bounds!r}")
        consts = d.pop("constants", None) or {}
        if not isinstance(consts, dict):
            raise ImportMappingError(f"mapping key 'constants' must be a dict, not {consts!r}")
        try:
            drop = int(d.pop("drop_last_rows", 0) or 0)
        except (TypeError, ValueError):
            raise ImportMappingError("drop_last_rows must be a whole number") from None
        skip = d.pop("skip_values", None) or []
        return cls(table=t, time_column=time.get("column", d.pop("time_column", None)),
                   time_format=time.get("format", d.pop("time_format", None)),
                   timezone=time.get("timezone", d.pop("timezone", None)),
                   label=time.get("label", d.pop("label", "start")), bucket=time.get("bucket", d.pop("bucket", None)),
                   dayfirst=dayfirst, values=vals, constants=dict(consts), format=d.pop("format", "auto"),
                   drop_last_rows=drop, skip_values=[str(s) for s in skip], price=_price_spec(d.pop("price", None)),
                   bounds=dict(bounds), note=d.pop("note", ""))

    @classmethod
    def from_yaml(cls, path: str | Path, *, table: str | None = None) -> Mapping:
        """Read a YAML mapping file with :func:`load_yaml_mapping`."""
        return cls.from_dict(load_yaml_mapping(path), table=table)


def _price_spec(p) -> PriceSpec | None:
    if p is None:
        return None
    if isinstance(p, str):
        return PriceSpec(column=p)
    if not isinstance(p, dict) or set(p) - {"column", "symbol", "interval", "markets"}:
        raise ImportMappingError(f"mapping key 'price' must be a column name or a dict of column/symbol/interval/markets, not {p!r}")
    markets = p.get("markets", ("perp", "spot"))
    if isinstance(markets, str):
        markets = [markets]
    return PriceSpec(column=p.get("column"), symbol=p.get("symbol"), interval=p.get("interval"), markets=tuple(markets))


# --------------------------------------------------------------------------- the YAML loader
class _MappingLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates/timestamps as strings and refuses aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{ev.anchor}) are not allowed in a mapping file",
                                              ev.start_mark)
        return super().compose_node(parent, index)


_MappingLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml_mapping(path: str | Path, *, max_bytes: int = MAX_MAPPING_BYTES) -> dict:
    """Read a YAML mapping file into a dict, refusing anything that is not a small text YAML mapping.

    Dates and timestamps are returned as **strings** (the one documented type; read them with
    :func:`research.parsing.parse_date`); aliases are refused.

    Parameters
    ----------
    path : path
        The mapping file.
    max_bytes : int, default 1 MiB
        Larger files are refused before they are read.

    Raises
    ------
    ImportMappingError
        One line naming the file and what is wrong (missing, too large, binary, not UTF-8, a YAML
        error with its line, or not a mapping at the top level).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ImportMappingError(f"mapping file {p}: {size:,} bytes is more than the {max_bytes:,}-byte limit "
                                     "for a mapping; is this the right file?")
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise ImportMappingError(f"mapping file {p}: {e.strerror or e}") from None
    if b"\x00" in data:
        raise ImportMappingError(f"mapping file {p}: binary file (NUL byte at offset {data.index(0)}), not a YAML mapping")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportMappingError(f"mapping file {p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                                 "a mapping is a small YAML text file") from None
    try:
        doc = yaml.load(text, Loader=_MappingLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ImportMappingError(f"mapping file {p}:{where} not valid YAML ({what})") from None
    if not isinstance(doc, dict):
        raise ImportMappingError(f"mapping file {p}: expected a YAML mapping (table: ..., time: ..., values: ...) "
                                 f"at the top level, got {type(doc).__name__}")
    return doc
