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
* ``-- scan: panel`` makes :func:`query` open a connection whose views read only the files the
  parameters need (:func:`research.scan.panel_files`: the symbol's partitions and the span's years),
  so a panel costs the same on a lake of one symbol-year and of twenty symbols over six years; the
  query may also use the constants :func:`research.scan.panel_values` derives (``$fsecs``, ``$b0``...).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from research import lake, paths, scan
from research.errors import QueryError
from research.schema import TABLES, Table

_PARAM_DECL = re.compile(r"^--\s*param\s+([A-Za-z_]\w*)\s*:\s*(.*?)\s*(?:\[default:\s*(.*?)\])?\s*$")
_CONST_DECL = re.compile(r"^--\s*const\s+([A-Za-z_]\w*)\s*:\s*(.*?)\s*$")
_SCAN_DECL = re.compile(r"^--\s*scan\s*:\s*([A-Za-z_]\w*)\s*$")
_SCANS = ("panel",)
_INCLUDE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_DOLLAR = re.compile(r"\$([A-Za-z_]\w*)")

_DUCK_TYPES = {
    pl.String: "VARCHAR", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Int32: "INTEGER",
    pl.Date: "DATE", pl.Boolean: "BOOLEAN",
}


def _duck_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    return _DUCK_TYPES[dtype.base_type() if hasattr(dtype, "base_type") else dtype]


def _empty_view_sql(t: Table) -> str:
    # Names and types come from research.schema, never from user input.
    cols = ", ".join(f'CAST(NULL AS {_duck_type(c.dtype)}) AS "{c.name}"' for c in t.columns)
    return f'CREATE OR REPLACE VIEW "{t.name}" AS SELECT {cols} WHERE FALSE'


#: Session settings every connection of the query layer gets. DuckDB 1.1+ runs an ASOF join as a
#: nested loop when its left side is small (``asof_loop_join_threshold``, 64 rows by default); a
#: panel's spine joined to a series estimates small and then takes ~100x longer, so the loop is off.
#: ``tests/test_query_panel.py`` fails if a panel's plan shows a nested-loop ASOF join again.
SETTINGS = {"TimeZone": "'UTC'", "asof_loop_join_threshold": "0"}

_DATA_DIR_VAR = "research_data_dir"


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    known = {r[0] for r in con.execute("SELECT name FROM duckdb_settings()").fetchall()}
    for name, value in SETTINGS.items():
        if name in known:  # a DuckDB without the setting has no loop strategy to turn off
            con.execute(f"SET {name} = {value}")  # names and values are constants of this module


def _create_views(con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]]) -> None:
    for t in TABLES.values():
        fs = files.get(t.name) or []
        if fs:
            rel = con.read_parquet([str(f) for f in fs], hive_partitioning=False, union_by_name=True)
            rel.create_view(t.name, replace=True)
        else:
            con.execute(_empty_view_sql(t))


def connect(data_dir=None, files: dict[str, list[Path]] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per canonical table.

    Tables with no data still get a view with the right columns and types, so a query never fails
    because a dataset has not been downloaded. The session time zone is UTC and the ASOF join
    strategy is pinned (:data:`SETTINGS`).

    Parameters
    ----------
    data_dir : path, optional
        Data directory whose lake the views read.
    files : dict, optional
        Table name -> the files its view reads (default: every committed file of the table).
        :func:`query` passes a pruned list (:func:`research.scan.panel_files`).
    """
    con = duckdb.connect(":memory:")
    _configure(con)
    if files is None:
        files = {name: lake.table_files(name, data_dir) for name in TABLES}
    _create_views(con, files)
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
    undeclared = used - set(params) - set(consts) - set(scan.DERIVED.get(scan_kind, ()))
    if undeclared:
        raise QueryError(f"{path}: parameters {sorted(undeclared)} are used but not declared with '-- param NAME: ...'")
    return NamedQuery(name, path, " ".join(description), sql, params, consts, scan_kind)


def _strip_literals(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def bind(name: str, queries_dir: Path | None = None, **params) -> tuple[NamedQuery, dict]:
    """Check ``params`` against a named query and return it with the values DuckDB will bind.

    Defaults fill what is not given, a wrapper's constants (``-- const``) are added, and a
    ``-- scan: panel`` query also gets the constants :func:`research.scan.panel_values` derives.

    Raises
    ------
    QueryError
        Unknown query, missing or unknown parameters, or a panel parameter out of range.
    """
    q = load_query(name, queries_dir)
    unknown = sorted(set(params) - set(q.params))
    if unknown:
        raise QueryError(f"query {name!r} has no parameter(s) {unknown}.\n{q.usage()}")
    missing = [p.name for p in q.params.values() if p.required and p.name not in params]
    if missing:
        raise QueryError(f"query {name!r} needs parameter(s) {missing}.\n{q.usage()}")
    used = set(_DOLLAR.findall(_strip_literals(q.sql)))
    values = {p.name: params.get(p.name, p.default) for p in q.params.values() if p.name in used}
    values.update({k: v for k, v in q.consts.items() if k in used})
    if q.scan is not None:
        values.update({k: v for k, v in scan.panel_values(values).items() if k in used})
    return q, values


def _connection_for(q: NamedQuery, values: dict, data_dir, con) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """The connection a query runs on, and whether :func:`query` must close it."""
    if q.scan is not None:
        # read only the files this query's parameters need (flat in the lake's size); a caller's
        # connection that is not ours (no data directory recorded) is used as it is
        ddir = data_dir if con is None else data_dir_of(con)
        if con is None or ddir is not None:
            return connect(ddir, files=scan.panel_files(values, ddir)), True
    return (con, False) if con is not None else (connect(data_dir), True)


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
    q, values = bind(name, queries_dir, **params)
    con, own = _connection_for(q, values, data_dir, con)
    try:
        return pl.from_arrow(con.sql(q.sql, params=values).to_arrow_table())
    except duckdb.Error as exc:
        raise QueryError(f"query {name!r} failed with parameters {values}: {exc}") from exc
    finally:
        if own:
            con.close()


def explain(name: str, data_dir=None, *, queries_dir: Path | None = None, **params) -> str:
    """The physical plan DuckDB chooses for a named query (the text of ``EXPLAIN``)."""
    q, values = bind(name, queries_dir, **params)
    con, own = _connection_for(q, values, data_dir, None)
    try:
        return "\n".join(r[1] for r in con.execute("EXPLAIN " + q.sql, values).fetchall())
    finally:
        if own:
            con.close()


def is_synthetic(panel: pl.DataFrame) -> bool:
    """True when any input of a panel (``hourly_panel``/``daily_panel``) comes from the simulated market."""
    return bool("synthetic" in panel.columns and panel["synthetic"].fill_null(False).any())


def save_frame(df: pl.DataFrame, path) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` atomically (temp file, then rename)."""
    import os
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
