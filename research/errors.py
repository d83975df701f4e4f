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


class ProviderError(SourceError):
    """A data provider answered with an error (names the provider, its code and message)."""


class RateLimited(ProviderError):
    """A provider's documented rate-limit answer; ``delay`` is its suggested wait in seconds, if any."""

    def __init__(self, msg: str, delay: float | None = None):
        super().__init__(msg)
        self.delay = delay


class MalformedPage(SourceError):
    """A downloaded page is not shaped as the provider documents (truncated, not JSON, missing fields)."""
