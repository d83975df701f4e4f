"""DuckDB query layer: one view per lake table, and named queries from ``queries/*.sql``.

A named query is a ``.sql`` file whose header declares its parameters::

    -- Per-hour panel for one instrument.
    -- param symbol: instrument, e.g. BTCUSDT
    -- param start: first hour, UTC, inclusive [default: 1970-01-01]

and whose body uses them as DuckDB named parameters (``$symbol``). Values are always bound by DuckDB,
never formatted into the SQL. ``{{ other_query }}`` in a body is replaced by the body of
``queries/other_query.sql`` (trusted SQL from the repository, never a value), so one panel can build
on another; the included query's parameters become this query's parameters. Two more header lines:

* ``-- const NAME: VALUE`` fixes a parameter of an included query (``hourly_panel`` is ``panel``
  with ``interval`` fixed to ``1h``); it is no longer a parameter of the wrapper.
* ``-- scan: panel`` makes :func:`query` first choose the series the panel reads
  (:func:`research.panel_series.choose`, from the table logs of the files its parameters need: the
  symbol's partitions and the span's years), then read only the chosen series' files (bound as
  ``read_parquet`` lists in place of the views, :func:`_read_files`), so a panel costs the same on
  a lake of one symbol-year and of twenty symbols over six years, and DuckDB never plans or scans
  the candidates it did not choose. The query may use the constants
  :func:`research.scan.panel_values` derives (``$fsecs``, ``$b0``...) and the choice
  (:data:`research.panel_series.DERIVED`: ``$bar_markets``, ``$oi_sources``, ..., ``$inputs``).

Connections are cheap: every one is a new connection to one in-memory DuckDB database per process
(opening a database costs more CPU than planning a panel), with its own settings and temporary
views, used by one thread. Nothing is cached but parsed table logs and the entries a panel's
partitions matched in them, both dropped when its ``_log.json`` changes (so a query always sees the
lake's last commit), DuckDB's cast of each ``end`` text (UTC session: a pure function), and
DuckDB's parse of each query's SQL text, per thread.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from research import lake, panel_series, paths, scan
from research.dbconn import (  # noqa: F401  (SETTINGS and _configure are used by tests and benchmarks)
    SETTINGS,
    _configure,
    _create_views,
    _cursor,
    _fetch,
    _parsed,
)
from research.errors import QueryError
from research.schema import TABLES

_PARAM_DECL = re.compile(r"^--\s*param\s+([A-Za-z_]\w*)\s*:\s*(.*?)\s*(?:\[default:\s*(.*?)\])?\s*$")
_CONST_DECL = re.compile(r"^--\s*const\s+([A-Za-z_]\w*)\s*:\s*(.*?)\s*$")
_SCAN_DECL = re.compile(r"^--\s*scan\s*:\s*([A-Za-z_]\w*)\s*$")
_SCANS = ("panel",)
_INCLUDE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_DOLLAR = re.compile(r"\$([A-Za-z_]\w*)")

_DATA_DIR_VAR = "research_data_dir"


def connect(data_dir=None, files: dict[str, list[Path]] | None = None, tables=None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one temporary view per canonical table.

    Tables with no data still get a view with the right columns and types, so a query never fails
    because a dataset has not been downloaded. The session time zone is UTC and the ASOF join
    strategy is pinned (:data:`SETTINGS`). The connection is one to this process's in-memory
    database (:func:`_cursor`): cheap to open, its views and settings are its own, and it is for one
    thread at a time; close it when done. A table created on it (``CREATE TABLE``) would be in the
    shared database: create it ``TEMP``.

    Parameters
    ----------
    data_dir : path, optional
        Data directory whose lake the views read.
    files : dict, optional
        Table name -> the files its view reads (default: every committed file of the table).
        :func:`query` passes a pruned list (:func:`research.scan.panel_files`).
    tables : iterable of str, optional
        Create views only for these tables (default: every table).
    """
    con = _cursor()
    _configure(con)
    if files is None:
        files = {name: lake.table_files(name, data_dir) for name in TABLES if tables is None or name in tables}
    _create_views(con, files, tables)
    con.execute(f"SET VARIABLE {_DATA_DIR_VAR} = $d", {"d": str(paths.data_dir(data_dir))})
    return con


def data_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The data directory a connection from :func:`connect` reads (None for other connections)."""
    try:
        value = con.execute(f"SELECT getvariable('{_DATA_DIR_VAR}')").fetchall()[0][0]  # fetchall: a half-read result blocks the caller's next query
    except duckdb.Error:
        return None
    return Path(value) if value else None


@dataclass(frozen=True)
class Param:
    name: str
    doc: str
    default: object = None
    required: bool = True


@dataclass(frozen=True)
class NamedQuery:
    """A parsed ``queries/<name>.sql``."""

    name: str
    path: Path
    description: str
    sql: str
    params: dict[str, Param] = field(default_factory=dict)
    consts: dict[str, str] = field(default_factory=dict)
    scan: str | None = None

    def usage(self) -> str:
        lines = [f"{self.name}: {self.description}"]
        for p in self.params.values():
            d = "required" if p.required else f"default {p.default!r}"
            lines.append(f"  {p.name} ({d}): {p.doc}")
        return "\n".join(lines)


def _parse_default(text: str):
    return None if text.strip().lower() in ("null", "none", "") else text.strip()


def available(queries_dir: Path | None = None) -> list[str]:
    """Names of the named queries."""
    qdir = queries_dir or paths.QUERIES_DIR
    return sorted(p.stem for p in qdir.glob("*.sql"))


def load_query(name: str, queries_dir: Path | None = None, _seen: tuple = ()) -> NamedQuery:
    """Parse one named query (resolving ``{{ includes }}``)."""
    qdir = queries_dir or paths.QUERIES_DIR
    path = qdir / f"{name}.sql"
    if not re.fullmatch(r"[A-Za-z_]\w*", name) or not path.exists():
        raise QueryError(f"unknown query {name!r}; available queries: {', '.join(available(qdir)) or '(none)'} "
                         f"(files in {qdir})")
    if name in _seen:
        raise QueryError(f"query {name!r} includes itself via {' -> '.join(_seen)}")
    text = path.read_text()
    description, params, body, consts, scan_kind = [], {}, [], {}, None
    for line in text.splitlines():
        m = _PARAM_DECL.match(line)
        c, sc = _CONST_DECL.match(line), _SCAN_DECL.match(line)
        if c and not body:
            consts[c.group(1)] = c.group(2)
        elif sc and not body:
            if sc.group(1) not in _SCANS:
                raise QueryError(f"{path}: unknown scan {sc.group(1)!r}; known: {', '.join(_SCANS)}")
            scan_kind = sc.group(1)
        elif m:
            pname, doc, default = m.groups()
            params[pname] = Param(pname, doc, _parse_default(default) if default is not None else None,
                                  required=default is None)
        elif line.startswith("--") and not body and not params:
            description.append(line.lstrip("- ").strip())
        else:
            body.append(line)
    sql = "\n".join(body).strip().rstrip(";")

    def include(m: re.Match) -> str:
        nonlocal scan_kind
        sub = load_query(m.group(1), qdir, _seen + (name,))
        for p in sub.params.values():
            params.setdefault(p.name, p)
        for k, v in sub.consts.items():
            consts.setdefault(k, v)
        scan_kind = scan_kind or sub.scan
        return f"(\n{sub.sql}\n)"

    sql = _INCLUDE.sub(include, sql)
    for k in consts:  # a wrapper fixes a parameter of the query it includes (hourly_panel: interval=1h)
        params.pop(k, None)
    used = set(_DOLLAR.findall(_strip_literals(sql)))
    derived = set(scan.DERIVED.get(scan_kind, ())) | (set(panel_series.DERIVED) if scan_kind else set())
    undeclared = used - set(params) - set(consts) - derived
    if undeclared:
        raise QueryError(f"{path}: parameters {sorted(undeclared)} are used but not declared with '-- param NAME: ...'")
    return NamedQuery(name, path, " ".join(description), sql, params, consts, scan_kind)


def _strip_literals(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def _resolve(name: str, queries_dir: Path | None, params: dict) -> tuple[NamedQuery, dict]:
    """The query and every parameter's value (defaults filled, constants added), checked."""
    q = load_query(name, queries_dir)
    unknown = sorted(set(params) - set(q.params))
    if unknown:
        raise QueryError(f"query {name!r} has no parameter(s) {unknown}.\n{q.usage()}")
    missing = [p.name for p in q.params.values() if p.required and p.name not in params]
    if missing:
        raise QueryError(f"query {name!r} needs parameter(s) {missing}.\n{q.usage()}")
    full = {p.name: params.get(p.name, p.default) for p in q.params.values()} | dict(q.consts)
    if q.scan is not None:
        full.update(scan.panel_values(full))
    return q, full


def _used(sql: str) -> set[str]:
    return set(_DOLLAR.findall(_strip_literals(sql)))


def bind(name: str, queries_dir: Path | None = None, **params) -> tuple[NamedQuery, dict]:
    """Check ``params`` against a named query and return it with the values DuckDB will bind.

    Defaults fill what is not given, a wrapper's constants (``-- const``) are added, and a
    ``-- scan: panel`` query also gets the constants :func:`research.scan.panel_values` derives
    (the series it reads, :func:`research.panel_series.choose`, are added by :func:`query`, which
    needs the lake for them).

    Raises
    ------
    QueryError
        Unknown query, missing or unknown parameters, or a panel parameter out of range.
    """
    q, full = _resolve(name, queries_dir, params)
    used = _used(q.sql)
    return q, {k: v for k, v in full.items() if k in used}


@functools.lru_cache(maxsize=64)
def referenced_tables(sql: str) -> frozenset[str]:
    """Canonical tables a query's SQL names (the views it needs)."""
    text = _strip_literals(sql)
    return frozenset(t for t in TABLES if re.search(rf"\b{t}\b", text))


_ENDS: dict = {}  # `end` text -> DuckDB's TIMESTAMPTZ of it (session TimeZone is always UTC: a pure function)


def _window(con: duckdb.DuckDBPyConnection, values: dict) -> panel_series.Window:
    # DuckDB parses `end` as the panel's SQL does (and rejects a bad one the same way)
    text = values.get("end")
    end = _ENDS.get(text) if isinstance(text, str) else None
    if end is None:
        end = con.execute("SELECT CAST($end AS TIMESTAMPTZ)", {"end": text}).fetchall()[0][0]
        if isinstance(text, str):
            if len(_ENDS) > 1024:
                _ENDS.clear()
            _ENDS[text] = end
    return panel_series.Window(values["b0"], values["asof_lo"], end)


def _prepare(q: NamedQuery, full: dict, data_dir, con) -> tuple[duckdb.DuckDBPyConnection, bool, str, dict]:
    """The connection a query runs on, whether :func:`query` must close it, its SQL and the values it binds.

    A ``-- scan: panel`` query first chooses its series (:func:`research.panel_series.choose`): on
    the query layer's own connections from the table logs of the files its parameters need
    (:func:`research.scan.panel_files`), and its tables then read the chosen series' files only
    (:func:`_read_files`); on a caller's connection that is not ours (no data directory recorded)
    from its views, as they are.
    """
    used = _used(q.sql)
    if q.scan is None:
        values = {k: v for k, v in full.items() if k in used}
        if con is not None:
            return con, False, q.sql, values
        return connect(data_dir, tables=referenced_tables(q.sql)), True, q.sql, values
    ddir = data_dir if con is None else data_dir_of(con)
    own = con is None or ddir is not None
    sql = q.sql
    if own:
        entries = panel_series.panel_entries(full, ddir, referenced_tables(q.sql))
        # the query's own connection, closed when it returns: settings only (no view, no data-dir variable)
        con = _cursor()
        _configure(con)
    try:
        window = _window(con, full)
        if own:
            choice = panel_series.choose(full, panel_series.LogCounts(entries, con, window))
            sql, files = _read_files(q.sql, panel_series.files_of(choice, entries))
            _create_views(con, {}, referenced_tables(q.sql) - set(files))  # tables without a file: empty views
        else:
            choice, files = panel_series.choose(full, panel_series.SqlCounts(con, full, window)), {}
    except BaseException:
        if own:
            con.close()
        raise
    values = {k: v for k, v in (full | choice).items() if k in used}
    return con, own, sql, values | {f"files_{t}": [str(f) for f in fs] for t, fs in files.items()}


_TABLE_TOKEN = re.compile(r"'(?:[^']|'')*'|--[^\n]*|\b(" + "|".join(sorted(TABLES, key=len, reverse=True)) + r")\b")


def _read_files(sql: str, files: dict[str, list[Path]]) -> tuple[str, dict[str, list[Path]]]:
    """``sql`` with every table that has files read from them in place of its view, and those files.

    A table name outside literals and comments becomes ``read_parquet($files_<table>, ...)``: the
    files are bound like any parameter, the SQL text stays the same from query to query (so its parse
    is kept, :func:`_parsed`), and DuckDB binds each file list once, in the query, not once more for
    a view. Tables without files keep their names (empty views).
    """
    used: dict[str, list[Path]] = {}

    def sub(m: re.Match) -> str:
        t = m.group(1)
        if t is None or not files.get(t):
            return m.group(0)
        used[t] = files[t]
        return f"read_parquet($files_{t}, hive_partitioning = false, union_by_name = true)"

    return _TABLE_TOKEN.sub(sub, sql), used


def query(name: str, data_dir=None, *, con: duckdb.DuckDBPyConnection | None = None,
          queries_dir: Path | None = None, **params) -> pl.DataFrame:
    """Run a named query and return a polars DataFrame.

    Parameters
    ----------
    name : str
        Query name (``queries/<name>.sql``).
    data_dir : path, optional
        Data directory whose lake the views read (ignored when ``con`` is given).
    con : duckdb connection, optional
        Reuse a connection from :func:`connect`. A panel query (``-- scan: panel``) still reads
        only the files its parameters need, from the data directory ``con`` was opened on.
    **params
        Query parameters; bound by DuckDB, never formatted into the SQL.

    Raises
    ------
    QueryError
        Unknown query (lists the available ones), missing parameters (lists what is needed),
        unknown parameters (lists what the query accepts), or a failing query.
    """
    q, full = _resolve(name, queries_dir, params)
    own, values = False, full
    try:
        con, own, sql, values = _prepare(q, full, data_dir, con)
        return _fetch(con, sql, values)
    except duckdb.Error as exc:
        shown = {k: v for k, v in values.items() if k in q.params or k in q.consts}
        raise QueryError(f"query {name!r} failed with parameters {shown}: {exc}") from exc
    finally:
        if own:
            con.close()


def explain(name: str, data_dir=None, *, queries_dir: Path | None = None, **params) -> str:
    """The physical plan DuckDB chooses for a named query (the text of ``EXPLAIN``)."""
    q, full = _resolve(name, queries_dir, params)
    con, own, sql, values = _prepare(q, full, data_dir, None)
    try:
        return "\n".join(r[1] for r in con.execute("EXPLAIN " + sql, values).fetchall())
    finally:
        if own:
            con.close()


def is_synthetic(panel: pl.DataFrame) -> bool:
    """True when any input of a panel (``hourly_panel``/``daily_panel``) comes from the simulated market."""
    return bool("synthetic" in panel.columns and panel["synthetic"].fill_null(False).any())


def save_frame(df: pl.DataFrame, path) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` atomically (temp file, then rename)."""
    import uuid

    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise QueryError(f"cannot write {path}: use a .csv or .parquet file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        df.write_csv(tmp) if path.suffix == ".csv" else df.write_parquet(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
