"""DuckDB sessions of the query layer: one in-memory database per process, a connection per query.

Opening a DuckDB database costs tens of ms of CPU (more than planning a panel); a connection to an
open one costs microseconds. Every connection gets the session settings (:data:`SETTINGS`), its own
temporary views, and DuckDB's parse of each SQL text it runs, kept per thread.
"""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import duckdb
import polars as pl

from research.schema import TABLES, Table

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
    return f'CREATE OR REPLACE TEMP VIEW "{t.name}" AS SELECT {cols} WHERE FALSE'


def _parquet_view_sql(name: str, files: list[Path]) -> str:
    # a TEMP view belongs to its connection alone (a view in the shared database's catalog would be
    # seen, and replaced, by every other connection); paths are quoted as SQL literals
    lst = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return (f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM '
            f"read_parquet([{lst}], hive_partitioning = false, union_by_name = true)")


#: Session settings every connection of the query layer gets. DuckDB 1.1+ runs an ASOF join as a
#: nested loop when its left side is small (``asof_loop_join_threshold``, 64 rows by default); a
#: panel's spine joined to a series estimates small and then takes ~100x longer, so the loop is off.
#: ``tests/test_query_panel.py`` fails if a panel's plan shows a nested-loop ASOF join again.
SETTINGS = {"TimeZone": "'UTC'", "asof_loop_join_threshold": "0"}

_KNOWN: dict[int, set[str]] = {}  # DuckDB's settings, looked up once per process


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    known = _KNOWN.get(os.getpid())
    if known is None:
        known = _KNOWN[os.getpid()] = {r[0] for r in con.execute("SELECT name FROM duckdb_settings()").fetchall()}
    for name, value in SETTINGS.items():
        if name in known:  # a DuckDB without the setting has no loop strategy to turn off
            con.execute(f"SET {name} = {value}")  # names and values are constants of this module


_DB: dict[str, object] = {"pid": None, "db": None}
_DB_LOCK = threading.Lock()
_FORKED: list = []  # a parent's database, inherited by a forked child: kept, never used or closed there


def _cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory DuckDB database.

    Opening a database costs tens of ms of CPU (more than planning a panel); a connection to an
    open one costs microseconds. Each connection has its own settings, temporary views and
    variables, and is used by one thread at a time, so nothing is shared but the database (no
    table is ever stored in it). A child process after ``fork`` opens its own.
    """
    with _DB_LOCK:
        if _DB["pid"] != os.getpid():
            if _DB["db"] is not None:
                _FORKED.append(_DB["db"])
            _DB["db"], _DB["pid"] = duckdb.connect(":memory:"), os.getpid()
        return _DB["db"].cursor()


def _create_views(con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]], tables=None) -> None:
    for t in TABLES.values():
        if tables is not None and t.name not in tables:
            continue
        fs = files.get(t.name) or []
        con.execute(_parquet_view_sql(t.name, fs) if fs else _empty_view_sql(t))


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, values: dict) -> pl.DataFrame:
    # execute() parses and binds once (a relation from con.sql() binds again when it is fetched);
    # the copy of the rows into Arrow DuckDB warns about costs far less than that second bind. The
    # filter names this module and that message only; it is (re)installed per call because a test
    # runner or a catch_warnings() elsewhere may have reset the filters since
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning,
                            module=r"research\.dbconn$")
    return pl.from_arrow(con.execute(_parsed(con, sql), values).to_arrow_table())


_PARSED = threading.local()  # per thread: SQL text -> DuckDB's parsed statement


def _parsed(con: duckdb.DuckDBPyConnection, sql: str):
    """DuckDB's parse of ``sql``, kept per thread (parsing a panel's SQL costs several ms of CPU; the
    parse depends on the text alone; binding, which reads the files' schemas, still happens per query)."""
    cache = getattr(_PARSED, "cache", None)
    if cache is None or len(cache) > 64:
        cache = _PARSED.cache = {}
    st = cache.get(sql)
    if st is None:
        statements = con.extract_statements(sql)
        if len(statements) != 1:
            return sql  # let DuckDB say what is wrong with it
        st = cache[sql] = statements[0]
    return st
