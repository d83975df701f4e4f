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


class InputLimitError(ImportMappingError):
    """An input file exceeds a cap (size, line length, rows, decompressed size); the message names the override."""


class ImplausibleValueError(ImportMappingError):
    """An imported value is outside a named plausibility bound (funding per interval, dates, signs)."""


class EventDetectionError(ResearchError, ValueError):
    """A detector got a panel without the columns it needs or an invalid parameter."""


class LakeCorruptError(LakeError):
    """A table's log lists a file that is missing, unreadable or changed; ``research repair`` rebuilds it."""


class LakeLockTimeout(LakeError):
    """A lake table stayed locked by another process for longer than the lock timeout."""


class PanelError(ResearchError, ValueError):
    """The analysis inputs cannot be loaded (e.g. no hourly bars for the symbol and span in the lake)."""


class HypothesisError(ResearchError, ValueError):
    """Bad input to a hypothesis test (names the column or parameter and what to do)."""


class GridError(NotebookError, ValueError):
    """A batch grid file is unsafe or too large (alias bombs, paths outside the project, too many runs)."""


class ProviderError(SourceError):
    """A data provider answered with an error (names the provider, its code and message)."""


class RateLimited(ProviderError):
    """A provider's documented rate-limit answer; ``delay`` is its suggested wait in seconds, if any."""

    def __init__(self, msg: str, delay: float | None = None):
        super().__init__(msg)
        self.delay = delay


class MalformedPage(SourceError):
    """A downloaded page is not shaped as the provider documents (truncated, not JSON, missing fields)."""


class LimitError(SourceError):
    """A download or archive member exceeds a size, line-length, row or time cap (the message names the override)."""


class RedirectRefused(SourceError):
    """A redirect would have carried credentials to another origin or downgraded https to http."""


class ArchiveContentError(SourceError):
    """An archive file's rows contradict what the file claims to be (header, period, invariants, duplicates)."""


class LockTimeout(SourceError):
    """Another process held a per-file download lock for longer than we were willing to wait."""
