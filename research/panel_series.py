"""Which series a panel reads: the series-choice rule of ``queries/panel.sql``, decided before its SQL runs.

A panel chooses one series per input among every venue's and the coin-level series of the lake
(rule in the header of ``queries/panel.sql``). Deciding that inside the panel's SQL made DuckDB
parse, plan and scan every candidate's rows on every call; :func:`choose` decides it first, so the
panel's SQL plans and reads only the chosen series (:func:`research.db.query` gives it the chosen
series' files alone), and binds the choice (``$bar_markets``, ``$oi_sources``, ...,
``$inputs``) as parameters.

Candidates and their row counts come from a :class:`Counts` source:

* :class:`LogCounts` (the query layer's own connections): the table logs' file lists, already
  pruned to the panel's symbol, venue and years. A file inside the counting window counts its
  logged rows, a file outside it none, and only the files the window cuts are counted by DuckDB
  (their time column only), and only for candidates whose count can change the choice.
* :class:`SqlCounts` (a caller's own connection): one ``GROUP BY`` over each of its views.

Both give the rows of every candidate series in the window, so the choice is the one the SQL rule
makes.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from research import lake, paths, scan
from research.lake.log import LOG_FILE, FileEntry, TableLog
from research.schema import TABLES, get_table

#: Intervals a series may have (``iv`` in ``queries/panel.sql``); others are never chosen.
IV = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
      "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800}
MARKETS = ("perp", "spot", "index")
SERIES_TABLES = ("bars", "funding", "open_interest", "liquidations", "positioning")
_KEY = {"bars": ("market", "source", "interval"), "funding": ("source", "venue", "symbol"),
        "open_interest": ("source", "venue", "symbol", "interval"),
        "liquidations": ("source", "venue", "symbol", "interval"),
        "positioning": ("source", "venue", "symbol", "interval")}
_SPACE = re.compile(r"[\t\n\f\r ]")  # RE2's \s, as in the SQL's regexp_replace

#: Parameters :func:`choose` adds, which ``queries/panel.sql`` may use (see :func:`bound`).
DERIVED = ("price_market", "bar_markets", "bar_sources", "bar_intervals", "fund_source", "fund_venue",
           "fund_symbol", "oi_sources", "oi_venues", "oi_symbols", "oi_intervals", "liq_sources", "liq_venues",
           "liq_symbols", "liq_intervals", "pos_source", "pos_venue", "pos_symbol", "pos_interval",
           "bar_secs", "oi_secs", "liq_secs", "pos_secs", "inputs", "synthetic")


@dataclass(frozen=True)
class Window:
    """The counting windows: bars ``[b0, end)``, the slower series ``[asof_lo, end)``."""

    b0: dt.datetime
    asof_lo: dt.datetime
    end: dt.datetime

    def of(self, table: str) -> tuple[dt.datetime, dt.datetime]:
        return (self.b0 if table == "bars" else self.asof_lo), self.end


class Counts:
    """Candidate series of a table (keys of :data:`_KEY`) and their rows in the window."""

    def candidates(self, table: str) -> list[tuple]:
        raise NotImplementedError

    def rows(self, table: str, keys: list[tuple]) -> dict[tuple, int]:
        raise NotImplementedError

    def exists(self, table: str, key: tuple) -> bool:
        """True when the series has a row in the window."""
        return self.rows(table, [key])[key] > 0


class SqlCounts(Counts):
    """Counts from a connection's views (one ``GROUP BY`` per table)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, values: dict, window: Window):
        self.con, self.values, self.window, self._n = con, values, window, {}

    def _load(self, table: str) -> dict[tuple, int]:
        if table not in self._n:
            keys = ", ".join(_KEY[table])  # identifiers are constants of this module
            where = ["symbol = $symbol AND venue = $venue AND market IN ('perp', 'spot', 'index')"
                     if table == "bars" else "symbol IN ($symbol, $coin)"]
            where.append("($source IS NULL OR source = $source) AND ts >= $lo AND ts < $hi")
            lo, hi = self.window.of(table)
            p = {"symbol": self.values["symbol"], "source": self.values.get("source"), "lo": lo, "hi": hi}
            p |= {"venue": self.values.get("venue")} if table == "bars" else {"coin": self.values["coin"]}
            rows = self.con.execute(f"SELECT {keys}, count(*) FROM {table} WHERE {' AND '.join(where)} GROUP BY ALL",
                                    p).fetchall()
            self._n[table] = {tuple(r[:-1]): int(r[-1]) for r in rows}
        return self._n[table]

    def candidates(self, table):
        return sorted(self._load(table))

    def rows(self, table, keys):
        n = self._load(table)
        return {k: n.get(k, 0) for k in keys}


class LogCounts(Counts):
    """Counts from the table logs' entries of the files a panel may read.

    Parameters
    ----------
    entries : dict
        Table -> ``(FileEntry, path)`` of every file the panel may read (:func:`panel_entries`).
    con : duckdb connection
        Counts the rows of a file the window cuts (its time column only).
    """

    def __init__(self, entries: dict[str, list[tuple[FileEntry, Path]]], con, window: Window):
        self.entries, self.con, self.window = entries, con, window
        self._files: dict[str, dict[tuple, list[tuple[FileEntry, Path]]]] = {}
        self._cut: dict[Path, int] = {}

    def _series(self, table: str) -> dict[tuple, list]:
        if table not in self._files:
            lo, hi = self.window.of(table)
            out: dict[tuple, list] = {}
            for e, p in self.entries.get(table, []):
                if e.min is not None and e.max is not None and (_ts(e.max) < lo or _ts(e.min) >= hi):
                    continue  # no row in the window
                out.setdefault(tuple(e.partition.get(k) for k in _KEY[table]), []).append((e, p))
            self._files[table] = out
        return self._files[table]

    def candidates(self, table):
        return sorted(self._series(table))

    def exists(self, table, key):
        # a file whose first or last row falls in the window has a row there: no need to read it
        lo, hi = self.window.of(table)
        for e, _ in self._series(table).get(key, []):
            if e.rows > 0 and e.min is not None and e.max is not None and (
                    lo <= _ts(e.min) < hi or lo <= _ts(e.max) < hi or _inside(e, lo, hi)):
                return True
        return super().exists(table, key)

    def rows(self, table, keys):
        lo, hi = self.window.of(table)
        series = self._series(table)
        cut = [p for k in keys for e, p in series.get(k, []) if not _inside(e, lo, hi) and p not in self._cut]
        if cut:
            got = dict(self.con.execute(
                "SELECT filename, count(*) FROM read_parquet($f, filename = true, hive_partitioning = false) "
                "WHERE ts >= $lo AND ts < $hi GROUP BY ALL", {"f": [str(p) for p in cut], "lo": lo, "hi": hi}).fetchall())
            for p in cut:
                self._cut[p] = int(got.get(str(p), 0))
        return {k: sum(e.rows if _inside(e, lo, hi) else self._cut[p] for e, p in series.get(k, [])) for k in keys}


def _ts(text: str) -> dt.datetime:
    d = dt.datetime.fromisoformat(text)
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def _inside(e: FileEntry, lo, hi) -> bool:
    return e.min is not None and e.max is not None and _ts(e.min) >= lo and _ts(e.max) < hi


def _pick(counts: Counts, table: str, cands: list[tuple], tier, order) -> tuple | None:
    """The first candidate by ``tier`` (exact symbol, bars' venue) then ``order(key, n)`` among those with rows.

    Counts are asked tier by tier, so a lower tier is never counted once a higher one has rows.
    """
    tiers: dict = {}
    for k in cands:
        tiers.setdefault(tier(k), []).append(k)
    for t in sorted(tiers):
        if len(tiers[t]) == 1:  # alone in its tier: whether it has rows decides, not how many
            if counts.exists(table, tiers[t][0]):
                return tiers[t][0]
            continue
        n = counts.rows(table, tiers[t])
        live = [k for k in tiers[t] if n[k] > 0]
        if live:
            return min(live, key=lambda k: order(k, n[k]))
    return None


def _venues(text) -> list[str] | None:
    return None if text is None else _SPACE.sub("", str(text)).split(",")


def _multi(counts: Counts, table: str, values: dict, venues) -> list[tuple]:
    """OI or liquidation series: one, one per venue of a list, or the ``all`` aggregate (else every venue)."""
    sym, venue = values["symbol"], values.get("venue")
    cands = [k for k in counts.candidates(table) if k[3] in IV]
    tier = lambda k: (k[2] != sym, k[1] != venue)
    order = lambda k, n: (-n, k[0], k[1], k[3])
    if venues is None:
        got = _pick(counts, table, cands, tier, order)
        return [got] if got else []
    if venues == ["all"]:
        alls = [k for k in cands if k[1] == "all"]
        if any(counts.exists(table, k) for k in alls):
            got = _pick(counts, table, alls, tier, order)
            return [got] if got else []
        groups = sorted({k[1] for k in cands if k[1] != "all"})
    else:
        groups = sorted({k[1] for k in cands if k[1] in venues})
    out = [_pick(counts, table, [k for k in cands if k[1] == v], tier, order) for v in groups]
    return [k for k in out if k is not None]


def choose(values: dict, counts: Counts) -> dict:
    """The series a panel reads and the parameters that bind them (:data:`DERIVED`).

    ``values`` are the panel's parameters with defaults and :func:`research.scan.panel_values`.
    """
    sym, venue, fsecs = values["symbol"], values.get("venue"), int(values["fsecs"])
    bars: dict[str, list[tuple]] = {}
    for k in counts.candidates("bars") if venue is not None else ():  # bars match the venue (null: none)
        if k[0] in MARKETS and k[2] in IV and IV[k[2]] <= fsecs and fsecs % IV[k[2]] == 0:
            bars.setdefault(k[0], []).append(k)
    chosen_bars = {}
    for m, ks in bars.items():  # the most clock time covered, then the longer interval, then names
        got = _pick(counts, "bars", ks, lambda k: 0, lambda k, n: (-n * IV[k[2]], -IV[k[2]], k[1], k[2]))
        if got:
            chosen_bars[m] = got
    price = values.get("price")
    price_market = str(price).lower() if price is not None else next((m for m in MARKETS if m in chosen_bars), None)
    one = lambda k: (k[2] != sym, k[1] != venue)
    fund = _pick(counts, "funding", counts.candidates("funding"), one, lambda k, n: (-n, k[0], k[1]))
    pos = _pick(counts, "positioning", [k for k in counts.candidates("positioning") if k[3] in IV], one,
                lambda k, n: (-n, k[0], k[1], k[3]))
    # one series per venue, in venue order: queries/panel.sql finds an OI row's series by its venue
    oi = sorted(_multi(counts, "open_interest", values, _venues(values.get("oi_venue"))), key=lambda k: k[1])
    assert len({k[1] for k in oi}) == len(oi)
    liq = sorted(_multi(counts, "liquidations", values, _venues(values.get("liq_venue"))), key=lambda k: k[1])

    parts, syn = [], []
    if price_market is not None:
        parts.append("price=" + price_market)
    for m in MARKETS:
        k = chosen_bars.get(m)
        if k and (m != "index" or m == price_market):
            parts.append(f"{m}={k[1]}/{k[2]}")
            syn.append(k[1] == "synthetic")
    if fund:
        parts.append("funding=" + "/".join(fund))
        syn.append(fund[0] == "synthetic")
    for name, ks in (("oi", oi), ("liquidations", liq)):
        if ks:
            parts.append(name + "=" + "+".join("/".join(k) for k in ks))
            syn.append(any(k[0] == "synthetic" for k in ks))
    if pos:
        parts.append("positioning=" + "/".join(pos))
        syn.append(pos[0] == "synthetic")
    bk = list(chosen_bars.values())
    return {
        "price_market": price_market,
        "bar_markets": [k[0] for k in bk], "bar_sources": [k[1] for k in bk], "bar_intervals": [k[2] for k in bk],
        **{f"fund_{c}": (fund[i] if fund else None) for i, c in enumerate(("source", "venue", "symbol"))},
        **{f"{p}_{c}s": [k[i] for k in ks] for p, ks in (("oi", oi), ("liq", liq))
           for i, c in enumerate(("source", "venue", "symbol", "interval"))},
        **{f"pos_{c}": (pos[i] if pos else None) for i, c in enumerate(("source", "venue", "symbol", "interval"))},
        # each series' interval in seconds (every chosen interval is in IV)
        "bar_secs": [IV[k[2]] for k in bk], "oi_secs": [IV[k[3]] for k in oi], "liq_secs": [IV[k[3]] for k in liq],
        "pos_secs": IV[pos[3]] if pos else None,
        "inputs": "; ".join(parts) if parts else None,
        "synthetic": any(syn),
    }


def files_of(choice: dict, entries: dict[str, list[tuple[FileEntry, Path]]]) -> dict[str, list[Path]]:
    """The files of the chosen series only (what the panel's SQL reads)."""
    want = {
        "bars": set(zip(choice["bar_markets"], choice["bar_sources"], choice["bar_intervals"])),
        "funding": {(choice["fund_source"], choice["fund_venue"], choice["fund_symbol"])},
        "open_interest": set(zip(choice["oi_sources"], choice["oi_venues"], choice["oi_symbols"], choice["oi_intervals"])),
        "liquidations": set(zip(choice["liq_sources"], choice["liq_venues"], choice["liq_symbols"],
                                choice["liq_intervals"])),
        "positioning": {(choice["pos_source"], choice["pos_venue"], choice["pos_symbol"], choice["pos_interval"])},
    }
    out = {}
    for table, es in entries.items():
        if table in want:
            out[table] = [p for e, p in es if tuple(e.partition.get(k) for k in _KEY[table]) in want[table]]
        else:
            out[table] = [p for _, p in es]
    return out


_LOGS: dict[Path, tuple[tuple, TableLog, dict]] = {}


def _log(tdir: Path, table: str) -> tuple[TableLog, dict | None]:
    """The table's committed log, parsed once while ``_log.json`` keeps its inode, size and mtime
    (a commit renames a new file over it, so a new version is always read), and a dict that lives
    exactly as long as that version (None when there is no log file), for what is derived from it."""
    p = tdir / LOG_FILE
    try:
        st = p.stat()
    except FileNotFoundError:
        return lake.table.committed_log(get_table(table), tdir.parent.parent), None  # empty, or a legacy layout
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _LOGS.get(p)
    if hit is None or hit[0] != key:
        hit = (key, lake.load_log(tdir, table), {})
        _LOGS[p] = hit
    return hit[1], hit[2]


def _matching(t, tdir: Path, eq: dict) -> list[FileEntry]:
    """The log entries of ``tdir`` whose partitions match ``eq``, kept with the log version they come from
    (a lake of many symbols and years has thousands of entries; a panel matches a dozen)."""
    log, memo = _log(tdir, t.name)
    if memo is None:
        return lake.table._match(t, log.files, eq)
    key = tuple(sorted((k, tuple(v) if isinstance(v, (list, range)) else v) for k, v in eq.items()))
    hit = memo.get(key)
    if hit is None:
        if len(memo) > 256:  # many spans and symbols in one process: start over rather than grow
            memo.clear()
        hit = memo[key] = lake.table._match(t, log.files, eq)
    return hit


def panel_entries(values: dict, data_dir=None, tables=None) -> dict[str, list[tuple[FileEntry, Path]]]:
    """Log entry and path of every file a panel may read: :func:`research.scan.panel_files`'s selection
    (the symbol's and its coin's partitions, the bars' venue, the span's years, ``source``), each file
    checked as :func:`research.lake.table_files` checks it.
    """
    root = paths.lake_dir(data_dir)
    symbol = str(values.get("symbol"))
    want = {"years": scan.panel_years(values)}
    if values.get("source") is not None:
        want["source"] = values["source"]
    out = {}
    for name, t in TABLES.items():
        if name == "liquidation_orders" or (tables is not None and name not in tables):
            out[name] = []  # panels do not read single prints
            continue
        eq = dict(want)
        if name == "bars":
            eq["symbol"] = symbol
            if values.get("venue") is not None:
                eq["venue"] = values["venue"]
        elif "symbol" in t.partition:
            eq["symbol"] = sorted({symbol, scan.coin_of(symbol)})
        tdir = root / name
        es = _matching(t, tdir, eq)
        out[name] = sorted(((e, lake.check_entry(tdir, e)) for e in es), key=lambda ep: ep[1])
    return out
