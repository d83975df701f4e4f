"""One source interface: a provider module declares its datasets, parameters, pagination and rate
limits as a :class:`Provider`; :func:`fetch` downloads, verifies and ingests any of them, and
``research fetch <provider>`` (with its ``--help``) is generated from the same declaration.

How a fetch runs
----------------
* Each dataset's ``plan`` cuts the requested span into fixed windows no larger than one page of the
  provider's documented page limit, so every request has a deterministic URL and raw file name
  (``<data_dir>/raw/<provider>/...``). A page that says more rows follow (a cursor, a continuation,
  a full page) yields the next request through ``parse`` -> :class:`Parsed.next`.
* Downloads go through the shared :class:`~research.sources.http.Downloader` (retries, 5xx/429 with
  ``Retry-After``, dropped connections, atomic moves, redaction) and are recorded in the manifest.
* A page whose body reports an in-band error is checked by the provider's ``parse``: a documented
  rate-limit answer raises :class:`RateLimited` (the page is dropped, the engine waits and asks
  again), any other provider error raises :class:`ProviderError` (reported, nothing ingested), and
  a body that is not the documented shape raises :class:`MalformedPage` (dropped and asked again;
  reported if it persists). Only pages that parsed are kept on disk.
* A page whose window closed before now (``Page.final``) and that is stored and recorded ``ok`` is
  not downloaded again: a rerun downloads nothing new and re-ingests nothing twice (lake writes are
  idempotent by key).
* Keys come from the environment only (``Provider.key_env``), travel in the header the provider
  documents, and are redacted from every URL, error and manifest record; file names never hold them.
"""
from __future__ import annotations

import importlib
import time as _time
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import polars as pl

from research import lake, paths
from research.errors import MalformedPage, ProviderError, RateLimited, SourceError
from research.schema import get_table
from research.sources.http import Downloader, FetchSummary, Manifest

#: Provider modules under ``research.sources`` that register themselves (adding one = one line here).
PROVIDER_MODULES = ("bybit", "okx", "hyperliquid", "deribit", "tardis", "coinglass")
REGISTRY: dict[str, "Provider"] = {}


@dataclass(frozen=True)
class Page:
    """One planned request. ``dest`` is relative to ``raw/<provider>/``; ``final`` means the window
    lies wholly in the past, so a stored verified copy is reused instead of downloaded again."""

    url: str
    dest: str
    body: bytes | None = None
    final: bool = True
    ctx: dict = field(default_factory=dict, compare=False)


@dataclass
class Parsed:
    """A parsed page: canonical rows and, when the provider says more follow, the next request."""

    frame: pl.DataFrame
    next: Page | None = None


@dataclass(frozen=True)
class Request:
    """What the user asked for, as a dataset's ``plan`` sees it."""

    base: str
    symbol: str
    interval: str | None
    start: date
    end: date
    keyed: bool
    extra: dict

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        """Exclusive end: midnight after the last requested day."""
        return to_ms(self.end + timedelta(days=1))


@dataclass(frozen=True)
class Dataset:
    """One downloadable series of a provider.

    ``intervals`` maps canonical intervals (``1h``, ``4h``, ``1d`` ...) to the provider's own
    spelling (empty for interval-free series); ``page_limit`` is the documented maximum rows per
    request, which also sizes the planned windows.
    """

    name: str
    table: str
    doc: str
    endpoint: str
    plan: Callable[[Request], list[Page]]
    parse: Callable[[bytes, Page], Parsed]
    intervals: dict[str, str] = field(default_factory=dict)
    default_interval: str | None = None
    page_limit: int | None = None


@dataclass(frozen=True)
class RateLimit:
    """A documented request budget; the engine spaces requests by ``per_seconds / requests``."""

    requests: int
    per_seconds: float
    doc: str

    @property
    def min_interval(self) -> float:
        return self.per_seconds / self.requests


@dataclass(frozen=True)
class Provider:
    """A data provider: datasets, defaults, key handling, rate limit and documentation links."""

    name: str
    doc: str
    docs: tuple[str, ...]
    default_base_url: str
    datasets: dict[str, Dataset]
    rate_limit: RateLimit
    default_symbols: tuple[str, ...]
    symbol_help: str
    default_datasets: tuple[str, ...] = ()
    key_env: str | None = None
    key_required: bool = False
    key_headers: Callable[[str], dict] | None = None
    key_note: str = ""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url_env(self) -> str:
        return f"RESEARCH_{self.name.upper()}_BASE_URL"

    def help_text(self) -> str:
        """The ``research fetch <name> --help`` text, built from the declaration."""
        lines = [self.doc, "", "Datasets (--dataset):"]
        for d in self.datasets.values():
            iv = f" intervals: {', '.join(d.intervals)}" if d.intervals else ""
            dflt = f" (default {d.default_interval})" if d.default_interval else ""
            lim = f"; {d.page_limit} rows per request" if d.page_limit else ""
            lines.append(f"  {d.name} -> table {d.table}: {d.doc} ({d.endpoint}){iv}{dflt}{lim}")
        lines += ["", f"Symbols (--symbol): {self.symbol_help} Default: {', '.join(self.default_symbols)}.",
                  f"Rate limit: {self.rate_limit.doc} (requests are spaced {self.rate_limit.min_interval:.2f} s apart).",
                  f"Base URL: {self.default_base_url} (override with --base-url or ${self.base_url_env})."]
        if self.key_env:
            need = "required" if self.key_required else "optional"
            lines.append(f"API key ({need}): ${self.key_env}, read from the environment only. {self.key_note}")
        for k, v in self.params.items():
            lines.append(f"Parameter -p {k}=...: {v}")
        lines.append("Docs: " + " ; ".join(self.docs))
        # typer re-wraps help text; blank-line separated paragraphs keep the listing readable
        return "\n\n".join(lines)


def register(provider: Provider) -> Provider:
    REGISTRY[provider.name] = provider
    return provider


def providers() -> dict[str, Provider]:
    """Every registered provider (imports the provider modules on first use)."""
    for m in PROVIDER_MODULES:
        importlib.import_module(f"research.sources.{m}")
    return REGISTRY


def get_provider(name: str) -> Provider:
    prov = providers()
    if name not in prov:
        raise SourceError(f"unknown provider {name!r}; providers are: {', '.join(prov)}")
    return prov[name]


# --------------------------------------------------------------------------- small helpers
def to_ms(d: date | datetime) -> int:
    if not isinstance(d, datetime):
        d = datetime.combine(d, time.min, tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def now_ms() -> int:
    return int(_time.time() * 1000)


def windows(start_ms: int, end_ms: int, step_ms: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[a, b)`` windows of ``step_ms`` covering ``[start_ms, end_ms)``."""
    a = start_ms
    while a < end_ms:
        b = min(a + step_ms, end_ms)
        yield a, b
        a = b


def ms_to_ts(col: str = "ts") -> pl.Expr:
    """Integer epoch milliseconds -> UTC microsecond timestamps."""
    return (pl.col(col).cast(pl.Int64) * 1000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def frame(table: str, rows: list[dict], source: str) -> pl.DataFrame:
    """Rows (``ts`` in epoch ms) -> a frame with the table's columns; empty pages give an empty frame."""
    if not rows:
        return get_table(table).empty()
    df = pl.DataFrame(rows, infer_schema_length=None)
    if "ts" in df.columns:
        df = df.with_columns(ms_to_ts("ts"))
    return df.with_columns(pl.lit(source).alias("source"))


def num(value, what: str) -> float:
    """A documented numeric field (often sent as a string) -> float, or :class:`MalformedPage`."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MalformedPage(f"{what}: expected a number, got {value!r}") from None


# --------------------------------------------------------------------------- the engine
def fetch(provider: Provider | str, datasets: list[str] | None = None, symbols: list[str] | None = None, *,
          start: date, end: date, interval: str | None = None, data_dir=None, base: str | None = None,
          api_key: str | None = None, extra: dict | None = None, retries: int = 4, backoff: float = 1.0,
          timeout: float = 30.0, sleep: Callable[[float], None] = _time.sleep,
          throttle: bool = True) -> FetchSummary:
    """Download, verify and ingest ``datasets`` x ``symbols`` of ``provider`` for ``start..end``.

    Parameters
    ----------
    provider : Provider or str
        A registered provider or its name (``bybit``, ``okx``, ...).
    datasets, symbols : list of str, optional
        Defaults: the provider's declared defaults.
    start, end : date
        First and last UTC day, inclusive.
    interval : str, optional
        Canonical interval (``5m``, ``1h``, ``4h``, ``1d``...); each dataset's default otherwise.
    base : str, optional
        Base URL (tests point it at 127.0.0.1); else ``$RESEARCH_<NAME>_BASE_URL``, else the
        provider's public URL.
    api_key : str, optional
        Defaults to ``$<key_env>``; never written anywhere.
    extra : dict, optional
        Provider parameters (``-p KEY=VALUE`` on the command line).

    Returns
    -------
    FetchSummary
        What was downloaded, skipped, ingested or failed (``exit_code`` 0/1/2).
    """
    import os

    prov = get_provider(provider) if isinstance(provider, str) else provider
    if end < start:
        raise SourceError(f"{prov.name}: --end {end} is before --start {start}")
    key = api_key or (os.environ.get(prov.key_env) if prov.key_env else None) or None
    if prov.key_required and not key:
        raise SourceError(f"{prov.name} needs an API key: set {prov.key_env} (read from the environment only). "
                          f"{prov.key_note}")
    names = list(datasets or prov.default_datasets or prov.datasets)
    bad = [d for d in names if d not in prov.datasets]
    if bad:
        raise SourceError(f"{prov.name}: unknown dataset(s) {bad}; datasets are: {', '.join(prov.datasets)}")
    unknown = sorted(set(extra or {}) - set(prov.params))
    if unknown:
        raise SourceError(f"{prov.name}: unknown parameter(s) {unknown}; known: {', '.join(prov.params) or 'none'}")
    for n in names:
        ds = prov.datasets[n]
        if interval and ds.intervals and interval not in ds.intervals:
            raise SourceError(f"{prov.name} {n}: interval {interval!r} is not offered; use one of "
                              f"{', '.join(ds.intervals)}")
    ddir = paths.data_dir(data_dir)
    b = (base or os.environ.get(prov.base_url_env) or prov.default_base_url).rstrip("/")
    headers = {**prov.headers, **(prov.key_headers(key) if (key and prov.key_headers) else {})}
    dl = Downloader(ddir, retries=retries, backoff=backoff, timeout=timeout, headers=headers,
                    secrets=[key] if key else [], sleep=sleep)
    run = _Run(prov, dl, Manifest(ddir), ddir, sleep, throttle, retries, backoff)
    for n in names:
        ds = prov.datasets[n]
        iv = (interval if ds.intervals else None) or ds.default_interval
        for sym in list(symbols or prov.default_symbols):
            req = Request(b, sym, iv, start, end, bool(key), dict(extra or {}))
            run.dataset(ds, req)
    return run.summary


class _Run:
    def __init__(self, prov, dl, manifest, ddir, sleep, throttle, retries, backoff):
        self.prov, self.dl, self.manifest, self.ddir = prov, dl, manifest, ddir
        self.sleep, self.throttle, self.retries, self.backoff = sleep, throttle, retries, backoff
        self.summary = FetchSummary()
        self._last = 0.0

    def _space(self) -> None:
        if not self.throttle:
            return
        wait = self.prov.rate_limit.min_interval - (_time.monotonic() - self._last)
        if wait > 0:
            self.sleep(wait)
        self._last = _time.monotonic()

    def dataset(self, ds: Dataset, req: Request) -> None:
        queue = list(ds.plan(req))
        frames, done = [], []
        while queue:
            page = queue.pop(0)
            self.summary.planned += 1
            got = self._page(ds, page)
            if got is None:
                continue
            parsed, rel = got
            frames.append(parsed.frame)
            done.append((rel, parsed.frame.height))
            if parsed.next is not None:
                queue.insert(0, parsed.next)
        frames = [f for f in frames if f.height]
        if not frames:
            return
        try:
            df = pl.concat(frames, how="diagonal_relaxed").unique(keep="last")
            w = lake.write(ds.table, df, self.ddir, origin=f"{self.prov.name} {ds.name} {req.symbol}")
        except Exception as e:  # SchemaError / LakeError: reported, the lake is unchanged
            msg = self.dl.redact(str(e))
            for rel, _ in done:
                self.summary.ingest_errors.append((rel, msg))
                self.manifest.append({"path": rel, "event": "ingest", "ingest": "failed", "error": msg})
            return
        s = self.summary
        s.ingested_files += len(done)
        s.rows_in[ds.table] = s.rows_in.get(ds.table, 0) + w.rows_in
        s.rows_added[ds.table] = s.rows_added.get(ds.table, 0) + w.rows_added
        self.manifest.append_many([{"path": rel, "event": "ingest", "ingest": "ok", "rows": {ds.table: n}}
                                   for rel, n in done])

    def _page(self, ds: Dataset, page: Page):
        dest = self.ddir / "raw" / self.prov.name / page.dest
        rel = self.dl.rel(dest)
        rec = self.manifest.get(rel)
        if page.final and dest.exists() and rec and rec.get("status") == "ok":
            try:
                parsed = ds.parse(dest.read_bytes(), page)
                self.summary.skipped += 1
                return parsed, rel
            except (SourceError, ValueError):
                dest.unlink(missing_ok=True)  # a stored page that no longer parses is fetched again
        last_error = ""
        for attempt in range(self.retries + 1):
            self._space()
            self.dl.request_body = page.body
            res = self.dl.download(page.url, dest)
            self.manifest.append({**res.record(), "source": self.prov.name, "event": "download",
                                  "ingest": "pending" if res.ok else None})
            if not res.ok:
                if res.status == "failed" and any(c in (res.error or "") for c in ("401", "403")) and self.prov.key_env:
                    res.error += f"; check {self.prov.key_env}"
                getattr(self.summary, res.status).append(res)
                return None
            self.summary.downloaded += 1
            self.summary.bytes_downloaded += res.size or 0
            try:
                return ds.parse(dest.read_bytes(), page), rel
            except RateLimited as e:
                last_error = self.dl.redact(str(e))
                dest.unlink(missing_ok=True)
                self.sleep(e.delay if e.delay is not None else min(self.backoff * 2 ** attempt, 60.0))
            except MalformedPage as e:
                last_error = self.dl.redact(str(e))
                dest.unlink(missing_ok=True)
                self.sleep(min(self.backoff * 2 ** attempt, 60.0))
            except (ProviderError, SourceError, ValueError) as e:
                dest.unlink(missing_ok=True)
                res.status, res.error = "failed", self.dl.redact(str(e))
                self.manifest.append({**res.record(), "source": self.prov.name, "event": "download"})
                self.summary.failed.append(res)
                return None
        res.status, res.error = "failed", f"{last_error} (gave up after {self.retries + 1} attempts)"
        self.manifest.append({**res.record(), "source": self.prov.name, "event": "download"})
        self.summary.failed.append(res)
        return None


def path_safe(text: str) -> str:
    """A symbol as a file-name part (no separators or odd characters)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def raw_dir(data_dir, provider: str) -> Path:
    return paths.data_dir(data_dir) / "raw" / provider
