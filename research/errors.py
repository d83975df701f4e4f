"""Named exceptions. Every message says what was wrong and what to do next."""
from __future__ import annotations


class ResearchError(Exception):
    """Base class for every error this package raises on purpose."""


class SchemaError(ResearchError, ValueError):
    """A frame does not fit its canonical table (names table, column and first offending row)."""


class LakeError(ResearchError):
    """The lake could not be read or written; nothing was changed."""


class QueryError(ResearchError, KeyError):
    """Unknown named query, or missing/unknown parameters."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SourceError(ResearchError):
    """A download or an input file could not be used."""


class ChecksumError(SourceError):
    """A downloaded file does not match its published checksum."""


class ImportMappingError(SourceError, ValueError):
    """An export file cannot be mapped onto a canonical table unambiguously."""


class EventStudyError(ResearchError, ValueError):
    """Invalid event-study input or specification."""


class NotebookError(ResearchError):
    """A notebook run failed or its parameters do not match its parameters cell."""


class LimitError(SourceError):
    """A download or archive member exceeds a size, line-length, row or time cap (the message names the override)."""


class RedirectRefused(SourceError):
    """A redirect would have carried credentials to another origin or downgraded https to http."""


class ArchiveContentError(SourceError):
    """An archive file's rows contradict what the file claims to be (header, period, invariants, duplicates)."""


class LockTimeout(SourceError):
    """Another process held a per-file download lock for longer than we were willing to wait."""
