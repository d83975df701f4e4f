"""``research repair``: make the lake agree with its logs and with ``raw/`` again.

``raw/`` is immutable and the lake is derived from it, so repair

1. adopts an older layout's ``part.parquet`` files into a table log (renamed, not rewritten);
2. removes every file under ``lake/`` that no log lists (stray copies, other tables' files, killed
   writers' orphans and temp files), holding each table's writer lock so an in-flight write's
   staged files are never taken for orphans;
3. drops listed files that are missing, damaged or changed, then rebuilds their partitions by
   re-parsing the raw files that cover them (Binance archive zips via
   :func:`research.sources.binance.parse_file`; the Fear & Greed and Farside ETF downloads via their
   parsers, oldest first), skipping raw files that fail the manifest check, and writing the rows
   back; rows still in good files are kept (writes dedupe on the key);
4. rewrites partitions whose files store a key twice, keeping the newest file's row;
5. records the current mtimes of files whose content is unchanged (a copied lake), so readers
   need not re-hash them;
6. verifies again and reports what it could not fix (e.g. rows of a source with no raw copy).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from research import paths
from research.errors import ResearchError
from research.lake import maintain, table as tbl
from research.lake.log import table_lock
from research.lake.verify import DAMAGED, Problem, VerifyReport, unlisted_files, verify
from research.schema import SYNTHETIC_SOURCE, TABLES

_RAW_BINANCE = re.compile(
    r"^raw/binance/data/(?P<root>futures/um|spot)/(?P<freq>daily|monthly)/(?P<dataset>[^/]+)/"
    r"(?P<symbol>[^/]+)(?:/(?P<interval>[^/]+))?/(?P<name>[^/]+\.zip)$")


@dataclass
class RepairReport:
    """What :func:`repair` did and what is left."""

    removed: list[Path] = field(default_factory=list)
    adopted: list[Path] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    after: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return not self.unrepaired and (self.after is None or self.after.ok)

    def summary(self) -> str:
        lines = [f"removed {len(self.removed)} unlisted file(s), adopted {len(self.adopted)} older-layout file(s), "
                 f"dropped {len(self.dropped)} damaged file(s), rebuilt {len(self.rebuilt)} partition(s)"]
        lines += [f"  removed {p}" for p in self.removed]
        lines += [f"  dropped {p}" for p in self.dropped]
        lines += [f"  rebuilt {r}" for r in self.rebuilt]
        lines += [f"NOT REPAIRED {u}" for u in self.unrepaired]
        if self.after is not None and not self.after.ok:
            lines.append("still wrong after repair:")
            lines += [f"  {p}" for p in self.after.problems]
        return "\n".join(lines)


def binance_task(rel: str):
    """The :class:`~research.sources.binance.FileTask` of a raw archive path, or None."""
    from research.sources.binance import FileTask

    m = _RAW_BINANCE.match(rel)
    if not m:
        return None
    g = m.groupdict()
    prefix = f"{g['symbol']}-{g['interval'] or g['dataset']}-"
    if not g["name"].startswith(prefix):
        return None
    period = g["name"][len(prefix):-len(".zip")]
    return FileTask(g["dataset"], "um" if g["root"] == "futures/um" else "spot", g["symbol"], g["freq"], period,
                    g["interval"])


def _raw_tasks(data_dir, bad_raw: set[Path]) -> list[tuple[object, Path]]:
    root = paths.data_dir(data_dir)
    raw = paths.raw_dir(data_dir) / "binance"
    out = []
    if raw.is_dir():
        for p in sorted(raw.rglob("*.zip")):
            task = binance_task(p.relative_to(root).as_posix())
            if task is not None and p not in bad_raw:
                out.append((task, p))
    return out


def _covers(task, values: dict[str, str]) -> bool:
    if "symbol" in values and values["symbol"] != task.symbol:
        return False
    return task.first_day.year <= int(values["year"]) <= task.last_day.year


def _single_file_sources() -> dict[str, tuple[str, object]]:
    """Sources that keep each download whole under one raw folder: source -> (folder, parse(path))."""
    from research.sources import etf, feargreed

    return {feargreed.SOURCE: ("raw/alternative_me", lambda p: feargreed.parse(p.read_bytes(), origin=p.name)),
            etf.SOURCE: ("raw/farside", etf.read_table)}


def _in_partition(t, values: dict[str, str]) -> pl.Expr:
    cond = pl.col(t.time_col).dt.year() == int(values["year"])
    for c in t.partition:
        cond = cond & (pl.col(c).cast(pl.String) == values[c])
    return cond


def _rebuild_single(table: str, values: dict, label: str, data_dir, bad_raw: set[Path], rep: RepairReport) -> None:
    folder, parse = _single_file_sources()[values["source"]]
    files = sorted(p for p in (paths.data_dir(data_dir) / folder).rglob("*") if p.is_file() and p not in bad_raw)
    restored = 0
    for p in files:  # names carry the download time: oldest first, so the newest values win as they did
        try:
            df = parse(p).filter(_in_partition(TABLES[table], values))
        except ResearchError as e:
            rep.unrepaired.append(f"{label}: {p} cannot be parsed ({e})")
            continue
        if not df.is_empty():
            restored += tbl.write(table, df, data_dir, origin=f"repair of {label} from {p.name}").rows_added
    if restored:
        rep.rebuilt.append(f"{label}: {restored} row(s) restored from {folder}")
    else:
        rep.unrepaired.append(f"{label}: no raw file under {folder} holds its rows; fetch them again")


def _rebuild(table: str, partitions: list[dict], data_dir, tasks, rep: RepairReport, bad_raw: set[Path]) -> None:
    from research.sources import binance

    t = TABLES[table]
    for values in partitions:
        label = f"{table} " + "/".join(f"{k}={v}" for k, v in values.items())
        if values.get("source") == SYNTHETIC_SOURCE:
            rep.unrepaired.append(f"{label}: simulated rows; run `research sample` to write them again")
            continue
        if values.get("source") in _single_file_sources():
            _rebuild_single(table, values, label, data_dir, bad_raw, rep)
            continue
        if values.get("source") not in (binance.SOURCE, getattr(binance, "AGG_SOURCE", None)):
            rep.unrepaired.append(f"{label}: its rows came from source {values.get('source')!r}, which keeps no raw "
                                  "copy repair can re-parse; fetch or import it again")
            continue
        frames, warnings = [], []
        for task, path in tasks:
            if not _covers(task, values):
                continue
            try:
                parsed = binance.parse_file(task, path, warnings)
            except ResearchError as e:
                rep.unrepaired.append(f"{label}: {path} cannot be parsed ({e})")
                continue
            df = parsed.get(table)
            if df is None or df.is_empty():
                continue
            frames.append(df.filter(_in_partition(t, values)))
        rows = pl.concat(frames, how="vertical_relaxed") if frames else None
        if rows is None or rows.is_empty():
            rep.unrepaired.append(f"{label}: no raw file under raw/binance holds its rows; fetch them again")
            continue
        res = tbl.write(table, rows, data_dir, origin=f"repair of {label}")
        rep.rebuilt.append(f"{label}: {res.rows_added} row(s) restored from raw")


def _remove_unlisted(data_dir, rep: RepairReport) -> None:
    lake = paths.lake_dir(data_dir)
    for p in unlisted_files(data_dir):
        if p.table is None:  # outside every table: no writer uses it
            _remove(p.path, rep)
    for name in TABLES:
        tdir = lake / name
        if not tdir.is_dir():
            continue
        with table_lock(tdir, "repair: remove unlisted files"):
            for p in unlisted_files(data_dir, table=name):
                if p.kind != "legacy":
                    _remove(p.path, rep)
        _prune_empty_dirs(tdir)


def _remove(path: Path, rep: RepairReport) -> None:
    if path.is_dir():
        for f in sorted(x for x in path.rglob("*") if x.is_file()):
            f.unlink()
            rep.removed.append(f)
        _prune_empty_dirs(path)
        path.rmdir() if path.exists() and not any(path.iterdir()) else None
    elif path.exists():
        path.unlink()
        rep.removed.append(path)


def _prune_empty_dirs(root: Path) -> None:
    for d in sorted((x for x in root.rglob("*") if x.is_dir()), key=lambda x: len(x.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


def repair(data_dir=None) -> RepairReport:
    """Fix what :func:`research.lake.verify.verify` flags in the lake (raw files are never changed)."""
    rep = RepairReport()
    before = verify(data_dir, raw=True)
    bad_raw = {p.path for p in before.of_kind("raw-missing", "raw-hash")}
    rep.unrepaired += [f"{p}" for p in before.of_kind("raw-missing", "raw-hash")]
    legacy: dict[str, list[Path]] = {}
    for p in before.of_kind("legacy"):
        legacy.setdefault(p.table, []).append(p.path)
    for name, files in legacy.items():
        maintain.adopt_legacy(name, files, data_dir)
        rep.adopted += files
    _remove_unlisted(data_dir, rep)
    damaged: dict[str, list[Problem]] = {}
    for p in before.of_kind(*DAMAGED):
        damaged.setdefault(p.table, []).append(p)
    for p in before.of_kind("log"):
        rep.unrepaired.append(f"{p} (move it away and run `research repair` again to rebuild the table from raw/)")
    tasks = _raw_tasks(data_dir, bad_raw) if damaged else []
    for name, problems in damaged.items():
        tdir = tbl.table_dir(name, data_dir)
        log = tbl.load_log(tdir, name)
        rels = {p.path.relative_to(tdir).as_posix() for p in problems}
        parts = [e.partition for e in log.files if e.path in rels]
        parts = [dict(x) for x in {tuple(sorted(v.items())) for v in parts}]
        maintain.drop_files(name, rels, data_dir)
        rep.dropped += [p.path for p in problems]
        _rebuild(name, parts, data_dir, tasks, rep, bad_raw)
    for p in before.of_kind("duplicate-keys"):
        tdir = tbl.table_dir(p.table, data_dir)
        rel = p.path.relative_to(tdir).as_posix()
        entry = next((e for e in tbl.load_log(tdir, p.table).files if e.path == rel), None)
        if entry is not None:
            maintain.dedupe_partition(p.table, entry.partition, data_dir)
            rep.rebuilt.append(f"{p.table} {rel}: duplicate keys collapsed (newest file wins)")
    for name in TABLES:
        if (tbl.table_dir(name, data_dir) / "_log.json").exists():
            maintain.refresh_mtimes(name, data_dir)
    rep.after = verify(data_dir, raw=False)
    return rep
