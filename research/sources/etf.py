"""Spot Bitcoin ETF daily net flows from a Farside-style table (HTML or CSV).

Table layout (farside.co.uk "bitcoin-etf-flow-all-data"): a header row starting with ``Date``,
then one column per product (IBIT, FBTC, ...) and ``Total``; one row per US trading day with
dates like ``11 Jan 2024``; numbers in **US$ millions** with thousands separators
(``"1,205.20"``), negatives in parentheses (``(12.3)``) or with a minus sign, ``-`` for "no data";
footer rows ``Total``, ``Average``, ``Maximum``, ``Minimum`` (skipped).

Rows go to ``etf_flows`` with ``flow_usd`` = millions x 1e6, product = the column name
(``TOTAL`` for Total), source ``farside``. A ``-`` cell is no data and yields no row (it is not
a zero). Any other cell that is not a number is rejected with the file, column and row.
"""
from __future__ import annotations

import csv
import html.parser
import io
import os
import re
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from research import paths
from research.errors import ImportMappingError
from research.sources.http import Downloader, FetchSummary
from research.sources.ingest import fetch_file

DEFAULT_URL = "https://farside.co.uk/bitcoin-etf-flow-all-data/"
URL_ENV = "RESEARCH_ETF_URL"
SOURCE = "farside"
FOOTERS = {"total", "average", "maximum", "minimum"}
_SKIP_LABELS = FOOTERS | {"", "fee", "fees", "seed", "date"}
_NO_DATA = {"", "-", "\u2013", "\u2014", "n/a", "na"}
_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%d/%m/%Y")


class _TableParser(html.parser.HTMLParser):
    """Collect the rows (lists of cell texts) of every <table> in a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self.tables:
                self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def rows_from_html(text: str) -> list[list[str]]:
    """Rows of the first table whose header row starts with 'Date'."""
    p = _TableParser()
    p.feed(text)
    for t in p.tables:
        if any(r and r[0].strip().lower() == "date" for r in t):
            return t
    raise ImportMappingError("no <table> with a 'Date' header row found in the page")


def rows_from_csv(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text))]


def parse_number(cell: str, origin: str, column: str, line: int) -> float | None:
    """``"1,205.20"`` -> 1205.2, ``(12.3)`` -> -12.3, ``-`` -> None (no data)."""
    s = cell.strip().replace("\u2212", "-").replace("$", "").replace(",", "").strip()
    if s.lower() in _NO_DATA:
        return None
    neg = s.startswith("(") and s.endswith(")")
    if neg:
        s = s[1:-1].strip()
    try:
        v = float(s)
    except ValueError:
        raise ImportMappingError(f"{origin}, column {column!r}, line {line}: {cell!r} is not a number "
                                 "(US$ millions like 1,205.20 or (12.3), or '-' for no data)") from None
    return -v if neg else v


def parse_date(cell: str) -> date | None:
    s = cell.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def parse_rows(rows: list[list[str]], origin: str, *, source: str = SOURCE) -> pl.DataFrame:
    """Farside-style rows -> ``etf_flows`` frame (validated shape, not yet written)."""
    hdr_i = next((i for i, r in enumerate(rows) if r and r[0].strip().lower() == "date"), None)
    if hdr_i is None:
        raise ImportMappingError(f"{origin}: no header row starting with 'Date'")
    header = [h.strip() for h in rows[hdr_i]]
    products = {}
    for j, h in enumerate(header[1:], start=1):
        if not h:
            continue
        name = "TOTAL" if h.lower() == "total" else h.upper()
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9_.\-]*", name):
            raise ImportMappingError(f"{origin}, header line {hdr_i + 1}: column {h!r} is not a ticker")
        products[j] = name
    if not products:
        raise ImportMappingError(f"{origin}: the header has no product or Total column")
    out: list[dict] = []
    seen: dict[date, int] = {}
    for i, r in enumerate(rows[hdr_i + 1:], start=hdr_i + 2):
        if not r or not any(c.strip() for c in r):
            continue
        d = parse_date(r[0])
        if d is None:
            if r[0].strip().lower() in _SKIP_LABELS:
                continue
            raise ImportMappingError(f"{origin}, column {header[0]!r}, line {i}: {r[0]!r} is neither a date "
                                     "like '11 Jan 2024' nor a footer row (Total/Average/Maximum/Minimum)")
        if d in seen:
            raise ImportMappingError(f"{origin}, line {i}: date {d} already on line {seen[d]}; which one is right?")
        seen[d] = i
        for j, prod in products.items():
            cell = r[j] if j < len(r) else ""
            v = parse_number(cell, origin, header[j], i)
            if v is not None:
                out.append({"date": d, "product": prod, "flow_usd": v * 1e6, "source": source})
    return pl.DataFrame(out, schema={"date": pl.Date, "product": pl.String, "flow_usd": pl.Float64,
                                     "source": pl.String})


def read_table(path: str | Path, *, source: str = SOURCE) -> pl.DataFrame:
    """Read a Farside table saved as HTML or CSV."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8-sig", "replace")
    is_html = path.suffix.lower() in (".html", ".htm") or "<table" in text[:200000].lower()
    rows = rows_from_html(text) if is_html else rows_from_csv(text)
    return parse_rows(rows, path.name, source=source)


def fetch(*, url: str | None = None, data_dir=None, retries: int = 4, backoff: float = 0.5,
          timeout: float = 30.0, deadline: float | None = None) -> FetchSummary:
    """Download the flow table page, keep it under ``raw/farside/``, write ``etf_flows``.

    farside.co.uk sits behind bot protection and may answer 403 to scripts; then save the page
    from a browser and run ``research import etf_flows FILE --preset farside_etf_flows``.
    """
    ddir = paths.data_dir(data_dir)
    u = url or os.environ.get(URL_ENV) or DEFAULT_URL
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".csv" if u.lower().split("?")[0].endswith(".csv") else ".html"
    dest = ddir / "raw" / "farside" / f"btc-etf-flows-{stamp}{suffix}"
    dl = Downloader(ddir, retries=retries, backoff=backoff, timeout=timeout, deadline=deadline)
    hint = ("if the site blocked the script (403), save the table page from a browser and use "
            "`research import etf_flows FILE --preset farside_etf_flows`")
    return fetch_file(dl, u, dest, table="etf_flows", parse=read_table, source=SOURCE, failure_hint=hint)
