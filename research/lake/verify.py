"""``research verify``: check every lake file against its table log and every raw file against the manifest.

Checks, per table: the log is readable; each listed file is present, has the recorded size and
sha256, is readable Parquet with the table's columns and the recorded row count; keys are unique
across the table's files. Files under ``lake/`` that no log lists are reported as stray (a copy, a
file of another table), orphan (a killed writer's unlisted ``part-*.parquet`` or temp file) or
legacy (an older layout's ``part.parquet`` with no log); entries at the top of ``lake/`` whose names
start with ``_`` or ``.`` are sidecars, not tables (e.g. the simulated market's ``_truth``). Raw files: each ``ok`` download record of
``manifest.jsonl`` must point at a present file with the recorded sha256, and every file under
``raw/`` must have a record. Nothing is changed; :mod:`research.lake.repair` fixes what it can.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from research import paths
from research.errors import LakeError
from research.lake.log import LOCK_FILE, LOG_FILE, load_log
from research.lake.table import LEGACY_FILE, sha256_file, table_dir
from research.schema import TABLES, Table

PART_RE = re.compile(r"^part-\d{6}-[0-9a-f]{12}\.parquet$")
DAMAGED = ("missing", "size", "hash", "unreadable", "rows")  # a listed file that cannot be trusted


@dataclass(frozen=True)
class Problem:
    """One thing wrong, naming the file."""

    kind: str  # log | missing | size | hash | unreadable | rows | duplicate-keys | stray | orphan | legacy | raw-*
    path: Path
    table: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.upper()} {self.path}: {self.detail}"


@dataclass
class VerifyReport:
    """What :func:`verify` found."""

    problems: list[Problem] = field(default_factory=list)
    lake_files: int = 0
    raw_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def of_kind(self, *kinds: str) -> list[Problem]:
        return [p for p in self.problems if p.kind in kinds]

    def summary(self) -> str:
        head = (f"checked {self.lake_files} lake file(s) and {self.raw_files} raw file(s): "
                + ("all good" if self.ok else f"{len(self.problems)} problem(s)"))
        lines = [head, *map(str, self.problems)]
        if not self.ok:
            lines.append("run `research repair` to rebuild damaged lake files from raw/ and remove stray files")
        return "\n".join(lines)

    def table(self) -> pl.DataFrame:
        return pl.DataFrame([{"kind": p.kind, "table": p.table, "path": str(p.path), "detail": p.detail}
                             for p in self.problems],
                            schema={"kind": pl.String, "table": pl.String, "path": pl.String, "detail": pl.String})


def _expected_depth_dirs(t: Table, rel: Path) -> bool:
    """True when ``rel`` (relative to the table dir) is ``col=value/.../year=YYYY/<file>`` in the table's order."""
    dirs = rel.parts[:-1]
    names = [*t.partition, "year"]
    return len(dirs) == len(names) and all(d.startswith(f"{n}=") for d, n in zip(dirs, names))


def unlisted_files(data_dir=None, table: str | None = None) -> list[Problem]:
    """Files under ``lake/`` that no table log lists (stray, orphan or legacy), without changing anything."""
    lake = paths.lake_dir(data_dir)
    if not lake.is_dir():
        return []
    out: list[Problem] = []
    for entry in sorted(lake.iterdir()):
        if entry.name.startswith(("_", ".")) and entry.name not in TABLES:
            continue  # sidecars beside the tables (the simulated market's lake/_truth, the older .lock)
        if table is None and entry.is_file():
            out.append(Problem("stray", entry, None, "file at the top of the lake, outside every table"))
            continue
        if table is None and entry.name not in TABLES:
            out.append(Problem("stray", entry, None, "folder that is not a lake table"))
            continue
        if table is not None and entry.name != table:
            continue
        t = TABLES[entry.name]
        try:
            log = load_log(entry, t.name)
            listed = {e.path for e in log.files} | {r["path"] for r in log.retired}
            has_log = (entry / LOG_FILE).exists()
        except LakeError:
            continue  # the unreadable log itself is reported by verify
        for p in sorted(x for x in entry.rglob("*") if x.is_file()):
            rel = p.relative_to(entry)
            if rel.as_posix() in listed or rel.as_posix() in (LOG_FILE, LOCK_FILE):
                continue
            if p.name.endswith(".tmp"):
                out.append(Problem("orphan", p, t.name, "temp file left by a killed writer"))
            elif PART_RE.match(p.name) and _expected_depth_dirs(t, rel):
                out.append(Problem("orphan", p, t.name, "data file no committed log lists (a killed or "
                                                        "superseded write); never read"))
            elif p.name == LEGACY_FILE and _expected_depth_dirs(t, rel) and not has_log:
                out.append(Problem("legacy", p, t.name, "older lake layout without a table log; "
                                                        "`research repair` adopts it"))
            else:
                out.append(Problem("stray", p, t.name, "not listed in the table log; never read"))
    return out


def _check_table(t: Table, data_dir, report: VerifyReport) -> None:
    tdir = table_dir(t, data_dir)
    if not tdir.is_dir():
        return
    try:
        log = load_log(tdir, t.name)
    except LakeError as e:
        report.problems.append(Problem("log", tdir / LOG_FILE, t.name, str(e)))
        return
    key = list(t.key)
    keys: dict[tuple, list[pl.DataFrame]] = {}
    for e in log.files:
        report.lake_files += 1
        p = tdir / e.path
        if not p.exists():
            report.problems.append(Problem("missing", p, t.name, "listed in the table log but missing"))
            continue
        size = p.stat().st_size
        if size != e.bytes:
            report.problems.append(Problem("size", p, t.name, f"{size} bytes, the log says {e.bytes}"))
            continue
        if sha256_file(p) != e.sha256:
            report.problems.append(Problem("hash", p, t.name, "content differs from what was written (sha256)"))
            continue
        try:
            df = pl.read_parquet(p)
        except Exception as exc:  # any decoder error means the file cannot be trusted
            report.problems.append(Problem("unreadable", p, t.name, f"not readable Parquet: {exc}".splitlines()[0]))
            continue
        if sorted(df.columns) != sorted(t.names):
            report.problems.append(Problem("unreadable", p, t.name, f"columns {df.columns}, expected {t.names}"))
            continue
        if df.height != e.rows:
            report.problems.append(Problem("rows", p, t.name, f"{df.height} rows, the log says {e.rows}"))
            continue
        keys.setdefault(tuple(sorted(e.partition.items())), []).append(
            df.select(key).with_columns(pl.lit(e.path).alias("__file")))
    for frames in keys.values():
        both = pl.concat(frames)
        dup = both.filter(pl.struct(key).is_duplicated())
        if not dup.is_empty():
            files = sorted(dup["__file"].unique().to_list())
            report.problems.append(Problem(
                "duplicate-keys", tdir / files[0], t.name,
                f"{dup.select(key).unique().height} key(s) stored more than once, in {', '.join(files)}"))


def _check_raw(data_dir, report: VerifyReport) -> None:
    root = paths.data_dir(data_dir)
    manifest = paths.manifest_path(data_dir)
    records: dict[str, dict] = {}
    if manifest.exists():
        for i, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run; the fetcher skips it too
            if isinstance(r, dict) and isinstance(r.get("path"), str):
                if r.get("event") == "ingest" and r["path"] in records:
                    continue  # ingest events annotate the download record
                records[r["path"]] = r
    listed = set()
    for rel, r in sorted(records.items()):
        if r.get("status") != "ok" or not r.get("sha256"):
            continue
        p = root / rel
        listed.add(p)
        report.raw_files += 1
        if not p.exists():
            report.problems.append(Problem("raw-missing", p, None, "in the download manifest but missing; "
                                                                   "fetch it again with --refresh"))
        elif sha256_file(p) != r["sha256"]:
            report.problems.append(Problem("raw-hash", p, None, "sha256 differs from the download manifest; "
                                                                "fetch it again with --refresh"))
    raw = paths.raw_dir(data_dir)
    if raw.is_dir():
        for p in sorted(x for x in raw.rglob("*") if x.is_file()):
            if p.name.endswith(".CHECKSUM") and p.with_name(p.name[:-len(".CHECKSUM")]) in listed:
                continue  # the published checksum kept beside its archive zip
            if p not in listed and (p.relative_to(root).as_posix() not in records):
                report.problems.append(Problem("raw-unlisted", p, None, "not in the download manifest"))


def verify(data_dir=None, *, raw: bool = True) -> VerifyReport:
    """Check the lake (and, with ``raw``, the raw files); return a report naming every bad file."""
    report = VerifyReport()
    for t in TABLES.values():
        _check_table(t, data_dir, report)
    report.problems.extend(unlisted_files(data_dir))
    if raw:
        _check_raw(data_dir, report)
    return report
