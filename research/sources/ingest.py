"""Download one file and write it into a lake table (the single-document sources' path).

The transport (:mod:`research.sources.http`) knows nothing of the lake; this module joins the two:
download (verified, bounded, validated before it replaces the previous raw file), record it in
the manifest, parse, write the table, record the ingest outcome.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from research import lake
from research.errors import ResearchError, SourceError
from research.sources.http import Downloader
from research.sources.manifest import Manifest
from research.sources.results import FetchSummary

__all__ = ["fetch_file"]


def fetch_file(dl: Downloader, url: str, dest: Path, *, table: str, parse, source: str,
               failure_hint: str = "", validate: Callable[[Path], None] | None = None) -> FetchSummary:
    """Download one file, record it in the manifest, parse it and write ``table``.

    Parameters
    ----------
    dl : Downloader
    url : str
    dest : Path
        Final place of the raw file.
    table : str
        Canonical table to write.
    parse : callable
        ``parse(path) -> polars.DataFrame`` reads the downloaded file.
    source : str
        Recorded in the manifest.
    failure_hint : str
        Appended to a failed download's error (what the user can do instead).
    validate : callable, optional
        ``validate(path)`` checks the body before it replaces ``dest`` (raise a ResearchError to
        refuse it); by default ``parse`` itself is used, so an unparseable answer never
        overwrites the previous good raw file.

    Returns
    -------
    FetchSummary
        A file that cannot be parsed or written is in ``ingest_errors``; the lake is unchanged.
    """
    summary = FetchSummary(planned=1)

    def check(path: Path) -> None:
        try:
            (validate or parse)(path)
        except ResearchError:
            raise
        except Exception as e:  # a parser's own error (JSON, polars) is a refusal too
            raise SourceError(f"{dest.name}: {type(e).__name__}: {str(e)[:300]}") from None

    res = dl.download(url, dest, validate=check)
    manifest = Manifest(dl.data_dir)
    manifest.append({**res.record(), "source": source, "event": "download", "ingest": "pending" if res.ok else None})
    if not res.ok:
        if failure_hint:
            res.error = f"{res.error}; {failure_hint}"
        getattr(summary, res.status).append(res)
        return summary
    summary.downloaded, summary.bytes_downloaded = 1, res.size or 0
    try:
        w = lake.write(table, parse(dest), dl.data_dir, origin=dest.name)
    except Exception as e:  # SourceError / SchemaError / LakeError: reported, the lake is unchanged
        summary.ingest_errors.append((res.path, dl.redact(str(e))))
        manifest.append({"path": res.path, "event": "ingest", "ingest": "failed", "error": dl.redact(str(e))})
        return summary
    summary.ingested_files = 1
    summary.rows_in[table], summary.rows_added[table] = w.rows_in, w.rows_added
    manifest.append({"path": res.path, "event": "ingest", "ingest": "ok", "rows": {table: w.rows_in}})
    return summary
