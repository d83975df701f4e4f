"""Per-file download locks: concurrent fetches of one file wait for each other (never race).

A lock is an ``flock`` on ``<data_dir>/.locks/<path>.lock``; the kernel releases it when the
holder dies, so there are no stale locks. The holder writes its pid, host, command and start
time into the lock file, and a waiter reports who holds the lock after ``report_after`` seconds.
Lock files are never deleted (deleting an flock file lets two processes lock different inodes).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from research.errors import LockTimeout

__all__ = ["file_lock", "holder"]


def holder(lock_file: Path) -> str:
    """Who holds (or last held) ``lock_file``, as text for a message."""
    try:
        info = json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    if not isinstance(info, dict) or "pid" not in info:
        return "an unknown process"
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
            f"({' '.join(map(str, info.get('argv') or []))[:120]})")


@contextlib.contextmanager
def file_lock(lock_file: Path, what: str, *, wait: float = 3600.0, report_after: float = 3.0,
              report: Callable[[str], None] | None = None, poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` for the duration of the block.

    Parameters
    ----------
    lock_file : Path
        The lock file (created with its folder).
    what : str
        The thing being locked, for messages (e.g. the file's path in the data directory).
    wait : float
        Seconds to wait for another holder before raising :class:`LockTimeout`.
    report_after : float
        Seconds of waiting after which ``report`` is called once with who holds the lock.
    report : callable, optional
        Receives the waiting message (default: printed to stderr).
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        t0 = time.monotonic()
        reported = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - t0
                if waited >= wait:
                    raise LockTimeout(f"{what}: another process has been downloading it for more than {wait:g} s "
                                      f"({holder(lock_file)}); wait for it to finish or stop it, then re-run") from None
                if not reported and waited >= report_after:
                    msg = f"waiting for {what}: it is being downloaded by {holder(lock_file)}"
                    (report or (lambda m: print(m, file=sys.stderr)))(msg)
                    reported = True
                time.sleep(poll)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv[:6],
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
