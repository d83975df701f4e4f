"""``research import``: CSV/Parquet exports from dashboards onto canonical tables.

A :class:`Mapping` (flags, a small YAML file read by :func:`load_yaml_mapping`, or a named preset)
says which column holds the time, its format, **time zone** and whether its label marks the
bucket **start**, **end** or an **instant**; which source column feeds each value column and in
which **unit** (rates must name percent/decimal/bps; coin amounts in a USD column are converted
with the matching price, see :mod:`.convert`); and constants (venue, symbol, interval, ...).

Time labels are converted to the table's convention (see :mod:`research.schema`): bars and
liquidations want the bucket **start**; open_interest and positioning want the observation
instant, i.e. the bucket **end** for bucketed exports (the close is only known then); funding
wants the settlement instant.

Everything is parsed and checked before anything is written (caps, plausibility bounds, key
duplicates; see :mod:`.checks`); every problem is a one-line
:class:`~research.errors.ImportMappingError` naming file, column and line, and a rejected import
stores nothing. Modules: :mod:`.mapping` (mapping + YAML loader), :mod:`.reading` (capped
reading), :mod:`.times`, :mod:`.checks`, :mod:`.convert`, :mod:`.parse`, :mod:`.presets`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path

import polars as pl

from research import lake
from research.errors import ImportMappingError

from .checks import Bounds, Limits
from .convert import Conversion, price_needs
from .mapping import (
    COLUMN_UNITS,
    UNITS,
    Mapping,
    PriceSpec,
    ValueSpec,
    load_yaml_mapping,
)
from .parse import Parsed, parse_export, parse_file
from .presets import (
    LONG_PACK,
    LONG_PACK_WINDOW,
    PACKS,
    PRESETS,
    REAL_PACK,
    REAL_PACK_WINDOW,
)
from .times import TABLE_TIME

__all__ = [
    "COLUMN_UNITS",
    "LONG_PACK",
    "LONG_PACK_WINDOW",
    "PACKS",
    "PRESETS",
    "REAL_PACK",
    "REAL_PACK_WINDOW",
    "TABLE_TIME",
    "UNITS",
    "Bounds",
    "Conversion",
    "ImportResult",
    "Limits",
    "Mapping",
    "Parsed",
    "PriceSpec",
    "ValueSpec",
    "import_file",
    "import_pack",
    "import_real_pack",
    "load_yaml_mapping",
    "parse_export",
    "parse_file",
    "preset",
    "resolve_mapping",
]


@dataclass(frozen=True)
class ImportResult(lake.WriteResult):
    """A :class:`research.lake.WriteResult` plus how coin columns were converted to USD."""

    conversions: tuple[Conversion, ...] = field(default=())

    def __str__(self) -> str:
        base = super().__str__()
        return base + "".join(f"\n  {c}" for c in self.conversions)


def preset(name: str) -> Mapping:
    """A named preset (see :data:`PRESETS`)."""
    try:
        d = dict(PRESETS[name])
    except KeyError:
        raise ImportMappingError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
    d.pop("file", None)
    return Mapping.from_dict(d)


def resolve_mapping(mapping: Mapping | dict | str | Path, table: str | None = None) -> Mapping:
    """A :class:`Mapping` from a mapping, its dict form, a preset name or a YAML file path."""
    if isinstance(mapping, Mapping):
        m = mapping
    elif isinstance(mapping, dict):
        m = Mapping.from_dict(mapping, table=table)
    elif isinstance(mapping, str) and mapping in PRESETS:
        m = preset(mapping)
    else:
        p = Path(mapping)
        if not p.exists():
            raise ImportMappingError(f"{str(mapping)!r} is neither a preset ({', '.join(PRESETS)}) nor a mapping file")
        m = Mapping.from_yaml(p, table=table)
    if table and table != m.table:
        raise ImportMappingError(f"the command names table {table!r} but the mapping is for {m.table!r}")
    return m


def _lake_bars(m: Mapping, data_dir) -> pl.DataFrame | None:
    need = price_needs(m)
    if need is None:
        return None
    symbol, interval = need
    return lake.read("bars", data_dir, symbol=symbol, interval=interval)


def _result(res: lake.WriteResult, convs) -> ImportResult:
    return ImportResult(**{f.name: getattr(res, f.name) for f in fields(lake.WriteResult)}, conversions=tuple(convs))


def import_file(table: str | None, path: str | Path, mapping: Mapping | dict | str | Path, data_dir=None, *,
                start: date | None = None, end: date | None = None, dry_run: bool = False,
                limits: Limits | None = None, bounds: Bounds | dict | None = None) -> ImportResult:
    """Parse, check and write one export file (atomically; nothing is written on any error).

    Parameters
    ----------
    table : str, optional
        Target table; must agree with the mapping's table when both are given.
    path : path
        CSV (optionally ``.gz``) or Parquet export.
    mapping : Mapping, dict, preset name, or path to a YAML file
    data_dir : path, optional
        Lake to write to; also where prices for coin-to-USD conversion are read from.
    start, end : date, optional
        Inclusive window of rows to keep.
    dry_run : bool
        Parse and check only.
    limits, bounds : optional
        Overrides of the file caps and plausibility bounds (see :mod:`.checks`).

    Returns
    -------
    ImportResult
        The write's counts plus the conversions used.
    """
    m = resolve_mapping(mapping, table)
    parsed = parse_export(path, m, start=start, end=end, bars=_lake_bars(m, data_dir), limits=limits, bounds=bounds)
    if dry_run:
        return ImportResult(m.table, parsed.frame.height, 0, 0, 0, conversions=tuple(parsed.conversions))
    return _result(lake.write(m.table, parsed.frame, data_dir, origin=Path(path).name), parsed.conversions)


def import_pack(name: str, real_dir: str | Path, data_dir=None, *, start: date | None = None,
                end: date | None = None, dry_run: bool = False) -> dict[str, ImportResult]:
    """Import a named pack (:data:`PACKS`: ``standard`` or ``long``) from the real data directory.

    ``start``/``end`` override the pack's window. See :func:`import_real_pack`.
    """
    try:
        presets, (w0, w1) = PACKS[name]
    except KeyError:
        raise ImportMappingError(f"unknown pack {name!r}; packs: {', '.join(PACKS)}") from None
    return import_real_pack(real_dir, data_dir, start=start or w0, end=end or w1, presets=presets, dry_run=dry_run)


def import_real_pack(real_dir: str | Path, data_dir=None, *, start: date | None = REAL_PACK_WINDOW[0],
                     end: date | None = REAL_PACK_WINDOW[1], presets: tuple[str, ...] = REAL_PACK,
                     dry_run: bool = False) -> dict[str, ImportResult]:
    """Import presets of the real pack (``../shared/data/real``) into a lake.

    Every file is parsed and checked first; only then is anything written. Bars parsed earlier in
    the same call (and bars already in the lake) price coin-denominated columns of later presets.
    Default: the standard pack over Oct 2025 - Apr 2026 (``start``/``end`` None = whole files).

    Returns
    -------
    dict
        preset name -> :class:`ImportResult`.
    """
    real_dir = Path(real_dir)
    unknown = [n for n in presets if n not in PRESETS]
    if unknown:
        raise ImportMappingError(f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
    parsed: list[tuple[str, Mapping, Path, Parsed]] = []
    bars: list[pl.DataFrame] = []
    pricing = any(price_needs(preset(n)) for n in presets)
    for name in presets:
        f = real_dir / PRESETS[name]["file"]
        if not f.exists():
            raise ImportMappingError(f"real pack file {f} is missing (preset {name}); is {real_dir} the real pack?")
        m = preset(name)
        need = price_needs(m)
        px = None
        if need is not None:
            # the whole series, not the window: a bucket at the window's edge still needs its bar
            px = pl.concat([b for b in bars] + [lake.read("bars", data_dir, symbol=need[0], interval=need[1])],
                           how="diagonal_relaxed")
        p = parse_export(f, m, start=start, end=end, bars=px)
        if pricing and m.table == "bars":
            bars.append(p.frame if start is None and end is None else parse_export(f, m).frame)
        parsed.append((name, m, f, p))
    if dry_run:
        return {n: ImportResult(m.table, p.frame.height, 0, 0, 0, conversions=tuple(p.conversions)) for n, m, f, p in parsed}
    return {n: _result(lake.write(m.table, p.frame, data_dir, origin=f.name), p.conversions) for n, m, f, p in parsed}
