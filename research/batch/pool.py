"""Local worker processes kept across grids: :class:`LocalWorkers`.

A grid on ``workers=2`` starts its worker processes and their kernels, and stops them when it ends.
On 2 cores that start (a process, a kernel, importing polars, scipy, altair and ``research``,
vl-convert's engine: about 3 CPU-seconds per worker) is paid again by every grid, and no second
worker can share it: on a grid of sub-second runs it is most of the wall time. A researcher who runs
grid after grid from one session (a notebook, a script sweeping several grids, the report and then a
grid) keeps the workers instead, as a dask ``LocalCluster`` keeps its own::

    from research import batch

    with batch.LocalWorkers(2) as pool:           # processes and kernels start now, in the background
        first = batch.run_grid(specs, workers=pool)
        second = batch.run_grid(more_specs, workers=pool)   # no start: the kernels are warm

The runs are isolated as within one grid (:mod:`research.batch.kernels`): every run resets its
kernel, a failed run discards it, and a kernel serves at most
:data:`~research.batch.kernels.MAX_RUNS` runs. What a pool keeps is what its kernels imported:
after editing ``research`` (or installing a package), close the pool and open a new one, or its
kernels keep running the code they imported. The environment (thread caps for ``n`` workers, the
variables set when the pool was made) is fixed when the pool is made.
"""
from __future__ import annotations

import threading

from research.errors import NotebookError

from .executors import make_workers


class LocalWorkers:
    """``n`` long-lived local worker processes, each with a kept kernel, for several :func:`run_grid` calls.

    Parameters
    ----------
    n : int
        Worker processes. On ``c`` cores each run's thread pools get ``c // n`` threads, and each
        worker and its kernel run on their own share of the CPUs
        (:func:`~research.batch.executors.cpu_shares`; ``TREADMILL_PIN_WORKERS=0`` lets the OS place them).
    start : bool
        Start the processes (and so their kernels' boot and warm-up imports) now, in the
        background; otherwise on the first grid.

    Notes
    -----
    One grid runs on a pool at a time; a second :func:`~research.batch.run_grid` on a busy pool is a
    :class:`~research.errors.NotebookError`. A worker that dies is replaced on its next run. Close
    the pool (or leave the ``with`` block) to stop the processes and kernels; an unclosed pool's
    workers exit when this process does (their stdin closes).
    """

    def __init__(self, n: int = 2, *, start: bool = True):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise NotebookError(f"LocalWorkers(n): n must be a positive integer, got {n!r}")
        self.n = n
        self.workers = make_workers(n)
        self._busy = threading.Lock()
        self.closed = False
        if start:
            self.start()

    def start(self) -> None:
        """Start every worker process that is not running (each boots its kernel as it starts)."""
        self.check_open()
        for w in self.workers:
            w.start()

    def acquire(self) -> None:
        """Take the pool for one grid (:func:`run_grid` does this); raises if another grid holds it."""
        self.check_open()
        if not self._busy.acquire(blocking=False):
            raise NotebookError("these LocalWorkers are running another grid; wait for it, or make a second pool")

    def release(self) -> None:
        """Give the pool back after a grid."""
        self._busy.release()

    def close(self) -> None:
        """Stop the worker processes and their kernels (idempotent)."""
        self.closed = True
        for w in self.workers:
            w.close()

    def check_open(self) -> None:
        """Raise :class:`~research.errors.NotebookError` if the pool is closed."""
        if self.closed:
            raise NotebookError("these LocalWorkers are closed; make a new batch.LocalWorkers(n)")

    def __enter__(self) -> LocalWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        alive = sum(w.alive() for w in self.workers)
        return f"LocalWorkers(n={self.n}, {'closed' if self.closed else f'{alive} running'})"
