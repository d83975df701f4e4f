"""Progress sinks for downloads: a no-op one and a rich progress bar (files and bytes)."""
from __future__ import annotations

import contextlib
import threading

__all__ = ["NullProgress", "rich_progress"]


class NullProgress:
    """Progress sink that does nothing (tests, --quiet)."""

    def add_bytes_total(self, n: int) -> None: ...
    def advance_bytes(self, n: int) -> None: ...
    def file_done(self) -> None: ...


@contextlib.contextmanager
def rich_progress(enabled: bool = True, description: str = "downloading"):
    """A rich progress bar with a files task and a bytes task (or a no-op sink)."""
    if not enabled:
        yield NullProgress()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), transient=False)

    def _mb(n: float) -> str:
        return f"{n / 1e6:,.1f} MB"

    class _Sink:
        def __init__(self):
            self.files = prog.add_task(f"{description} files", total=None, info="")
            self.bytes = prog.add_task(f"{description} bytes", total=None, info="")
            self._lock = threading.Lock()
            self._total = self._done = self._nfiles = 0
            self._nfiles_total = None

        def set_files(self, n: int) -> None:
            self._nfiles_total = n
            prog.update(self.files, total=n, info=f"{self._nfiles}/{n}")

        def add_bytes_total(self, n: int) -> None:
            with self._lock:
                self._total += n
                prog.update(self.bytes, total=self._total, info=f"{_mb(self._done)} / {_mb(self._total)}")

        def advance_bytes(self, n: int) -> None:
            with self._lock:
                self._done += n
                prog.update(self.bytes, completed=self._done, info=f"{_mb(self._done)} / {_mb(self._total)}")

        def file_done(self) -> None:
            with self._lock:
                self._nfiles += 1
                prog.update(self.files, completed=self._nfiles, info=f"{self._nfiles}/{self._nfiles_total or '?'}")

    with prog:
        yield _Sink()
