"""What a download or a fetch did: :class:`FetchResult` (one file) and :class:`FetchSummary` (a run)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

__all__ = ["STATUSES", "FetchResult", "FetchSummary"]

STATUSES = ("ok", "missing", "corrupt", "failed")


@dataclass
class FetchResult:
    """Outcome of one download.

    ``status`` is ``ok``, ``missing`` (404/410), ``corrupt`` (does not match its published
    checksum) or ``failed`` (network, caps, deadline, refused redirect, invalid body).
    """

    url: str  # redacted
    path: str  # relative to the data directory (the final place, or the quarantine place)
    status: str  # ok | missing | corrupt | failed
    size: int | None = None
    sha256: str | None = None
    error: str | None = None
    attempts: int = 0
    last_modified: str | None = None
    etag: str | None = None
    skipped: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict:
        """The manifest record of this result (``extra`` merged in)."""
        d = asdict(self)
        d.pop("skipped")
        extra = d.pop("extra") or {}
        return {**d, **extra}


@dataclass
class FetchSummary:
    """What a fetch did. ``exit_code``: 0 all good, 1 something failed or is corrupt, 2 files missing.

    ``ingest_errors`` are ``(path, message)`` pairs of files that downloaded but were refused;
    ``rejected`` counts those whose content contradicts what the file claims to be (re-running
    cannot fix them; the message says what can).
    """

    planned: int = 0
    downloaded: int = 0
    skipped: int = 0
    ingested_files: int = 0
    missing: list[FetchResult] = field(default_factory=list)
    corrupt: list[FetchResult] = field(default_factory=list)
    failed: list[FetchResult] = field(default_factory=list)
    ingest_errors: list[tuple[str, str]] = field(default_factory=list)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_added: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    rejected: int = 0

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.failed or self.ingest_errors or self.missing)

    @property
    def exit_code(self) -> int:
        if self.corrupt or self.failed or self.ingest_errors:
            return 1
        return 2 if self.missing else 0

    def summary(self) -> str:
        """Human-readable report: counts, one line per problem, and what to do about each kind."""
        lines = [f"planned {self.planned} file(s): downloaded {self.downloaded} ({self.bytes_downloaded:,} bytes), "
                 f"skipped {self.skipped} already verified, ingested {self.ingested_files}; "
                 f"missing {len(self.missing)}, corrupt {len(self.corrupt)}, failed {len(self.failed) + len(self.ingest_errors)}"]
        for t in sorted(self.rows_in):
            lines.append(f"  {t}: {self.rows_in[t]:,} rows read, {self.rows_added.get(t, 0):,} new in the lake")
        lines += _grouped("MISSING", self.missing)
        for label, items in (("CORRUPT", self.corrupt), ("FAILED", self.failed)):
            for r in items:
                lines.append(f"  {label} {r.url}: {r.error}")
        for p, e in self.ingest_errors:
            lines.append(f"  FAILED ingest {p}: {e}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.corrupt:
            lines.append("  corrupt files do not match their published checksum and are kept in <data_dir>/quarantine/; "
                         "a re-run downloads them once more; if they still mismatch, report them upstream")
        if self.failed:
            lines.append("  failed downloads (network, time-out, caps): a re-run retries only those; "
                         "for a slow link raise --timeout, for a size cap see the message")
        if len(self.ingest_errors) > self.rejected:
            lines.append("  failed ingests: the message names the file and what to change; "
                         "a re-run retries only those")
        if self.rejected:
            lines.append(f"  {self.rejected} file(s) were refused for their content and moved to <data_dir>/quarantine/; "
                         "re-running the same command downloads the same bytes again and cannot help: report the "
                         "file upstream, or fetch again with --refresh once the provider has replaced it")
        return "\n".join(lines)

    def to_frame(self) -> pl.DataFrame:
        """One row per missing, corrupt or failed download (every file, never grouped)."""
        return self._frame()

    def _frame(self) -> pl.DataFrame:
        rows = [{"status": r.status, "url": r.url, "path": r.path, "error": r.error}
                for r in (*self.missing, *self.corrupt, *self.failed)]
        return pl.DataFrame(rows, schema={"status": pl.String, "url": pl.String, "path": pl.String, "error": pl.String})


def _grouped(label: str, items: list[FetchResult]) -> list[str]:
    """One line per result, or one line per folder and error when a folder has more than 3."""
    groups: dict[tuple[str, str | None], list[FetchResult]] = {}
    for r in items:
        groups.setdefault((r.url.rsplit("/", 1)[0], r.error), []).append(r)
    out = []
    for (folder, error), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.url)
        if len(rs) > 3:
            out.append(f"  {label} {len(rs)} files in {folder}/ ({rs[0].url.rsplit('/', 1)[1]} .. "
                       f"{rs[-1].url.rsplit('/', 1)[1]}): {error}")
        else:
            out += [f"  {label} {r.url}: {r.error}" for r in rs]
    return out
