"""Where runs execute: this process, long-lived local worker processes, or a dask cluster."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import traceback
import uuid

from research.errors import NotebookError

from .execute import KERNEL_NAME, RunResult, RunSpec, ensure_kernel, execute

DASK_CONNECT_TIMEOUT = "20s"
#: thread-pool sizes capped in worker processes when several run at once
THREAD_VARS = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFER_ENV = "RESEARCH_DEFER_FIGURES"  # = research.plots.DEFER_ENV (not imported: plots loads altair)
#: set to ``0`` to let the OS place local workers anywhere instead of on their share of the CPUs
PIN_ENV = "TREADMILL_PIN_WORKERS"
_CPUS_ENV = "RESEARCH_WORKER_CPUS"  # the CPUs a worker process binds itself (and so its kernel) to


def _usable_cpus() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s set, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def cpu_shares(workers: int) -> list[list[int]] | None:
    """The CPUs of each of ``workers`` local workers: this process's CPUs split into disjoint shares.

    A worker and its kernel take turns (the runner waits while a cell runs, the kernel while the
    runner handles its outputs), so they lose little by sharing CPUs and gain a lot: every handoff
    then wakes a process on a CPU that is already awake and has its data in cache. On a 2-core
    machine, one CPU per worker made a 16-run grid of a sub-second notebook 8-14 % faster on 2
    workers (``kept w=2 unpinned`` in benchmarks/bench_batch.py). The shares match the thread caps
    (``c // n`` threads). None (the OS places the workers) for one worker, for more workers than CPUs, where the OS has no
    CPU affinity, or when :data:`PIN_ENV` is ``0``.
    """
    if workers < 2 or not hasattr(os, "sched_getaffinity") or os.environ.get(PIN_ENV, "1") == "0":
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if workers > len(cpus):
        return None
    return [cpus[i * len(cpus) // workers:(i + 1) * len(cpus) // workers] for i in range(workers)]


def _bind_to_share() -> None:
    """In a worker process: bind to the CPUs its parent gave it (before any thread or kernel starts)."""
    cpus = os.environ.pop(_CPUS_ENV, None)
    if cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
        except (OSError, ValueError):  # a CPU gone offline, a container's narrower set: run unbound
            pass


def _run_spec(spec: RunSpec, capture: bool = False, kernels: dict | None = None) -> RunResult:
    """Run one spec and never raise (the runner itself breaking is reported as a failed run).

    ``kernels`` maps kernel names to the :class:`~research.batch.kernels.KeptKernel` this process
    keeps for them (filled on first use); None runs the spec on a fresh kernel.
    """
    try:
        kernel = None
        if kernels is not None:
            kernel = kernels.get(spec.kernel_name)
            if kernel is None:
                kernel = kernels[spec.kernel_name] = kept_kernel(spec.kernel_name)
        return execute(spec, capture=capture, kernel=kernel)
    except Exception as exc:  # disk full, permissions...: report it, keep the other runs going
        return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                         error=f"runner error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


def kept_kernel(kernel_name: str):
    """A :class:`~research.batch.kernels.KeptKernel` for ``kernel_name`` with the runner's kernel manager."""
    from .execute import _kernel_manager_class
    from .kernels import KeptKernel

    return KeptKernel(kernel_name, _kernel_manager_class())


def close_kernels(kernels: dict) -> None:
    """Shut down every kept kernel of ``kernels``."""
    for k in kernels.values():
        k.close()
    kernels.clear()


def _worker_main() -> None:
    """``python -m research.batch``: a grid worker reading one RunSpec JSON per stdin line.

    It answers one RunResult JSON line per run on its original stdout; anything else written to
    stdout (kernel chatter) is sent to stderr so it cannot corrupt the answers.
    """
    _bind_to_share()
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    kernels: dict = {}  # one kept kernel per kernel name: the runs of this worker share its start and imports
    try:
        # boot the usual kernel before this process imports papermill and waits for its first run; only
        # a head start: if it cannot start (no kernel spec, ...), the first run starts it and reports why
        try:
            ensure_kernel(KERNEL_NAME)
            kernels[KERNEL_NAME] = kept_kernel(KERNEL_NAME)
            kernels[KERNEL_NAME].start()
        except Exception:
            kernels.pop(KERNEL_NAME, None)
        from . import kept_engine  # noqa: F401  (papermill: about a second, while the kernel boots)
        for line in sys.stdin:
            if not line.strip():
                continue
            result = _run_spec(RunSpec(**json.loads(line)), capture=True, kernels=kernels)
            proto.write(json.dumps(result.to_dict(), default=str) + "\n")
    finally:
        close_kernels(kernels)
    # the answers are flushed and the kernels are down: the interpreter's teardown (finalisers of
    # polars, duckdb, zmq...) takes ~0.3 s that every grid would wait for and saves nothing
    proto.close()
    sys.stderr.flush()
    os._exit(0)


class _Worker:
    """One long-lived ``python -m research.batch`` process, fed one RunSpec JSON line at a time.

    ``cpus``: the CPUs it (and its kernel) runs on (:func:`cpu_shares`); None: anywhere.
    """

    def __init__(self, env: dict[str, str] | None = None, cpus: list[int] | None = None):
        self.env, self.cpus = env, cpus
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process unless it runs (it boots its kernel at once, before any run arrives)."""
        import subprocess

        if not self.alive():
            env = self.env
            if self.cpus:
                env = {**(os.environ if env is None else env), _CPUS_ENV: ",".join(map(str, self.cpus))}
            self.proc = subprocess.Popen([sys.executable, "-m", "research.batch"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, text=True, bufsize=1)

    def run(self, spec: RunSpec) -> RunResult:
        self.start()
        try:
            self.proc.stdin.write(json.dumps(dataclasses.asdict(spec), default=str) + "\n")
            self.proc.stdin.flush()
            return RunResult(**json.loads(self.proc.stdout.readline()))
        except (OSError, ValueError, TypeError):  # the worker died mid-run: the next run gets a new one
            code = self.proc.wait()
            return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                             error=f"worker process died (exit code {code})")

    def close(self) -> None:
        import subprocess

        if self.alive():
            self.proc.stdin.close()  # EOF: the worker finishes its loop and exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_DASK_LOCAL = threading.local()


def _run_in_subprocess(spec: RunSpec, workers: int = 1) -> RunResult:
    """The dask task body: run one spec in this dask thread's long-lived worker process.

    nbclient is not safe to drive from several threads of one process (they share an event loop),
    and dask workers run tasks on threads, so every dask thread feeds its own ``python -m
    research.batch`` process: still one run per kernel, but the worker process (its imports, its
    vl-convert engine) is reused across tasks, as with local workers. ``workers`` is the cluster's
    thread count, for the thread caps.
    """
    w = getattr(_DASK_LOCAL, "worker", None)
    if w is None:
        # dropped with its thread (or this process): its stdin closes and the worker exits on EOF
        w = _DASK_LOCAL.worker = _Worker(_worker_env(workers))
    return w.run(spec)


def _worker_env(workers: int) -> dict[str, str]:
    """The environment of worker processes (and so of their kernels).

    With several workers each run's thread pools get its share of the cores (1 each on 2 cores),
    so parallel runs do not oversubscribe the machine; variables the user set are kept. Figures are
    rendered by the worker, not the kernel (:data:`research.plots.DEFER_ENV`).
    """
    env = dict(os.environ)
    if workers > 1:
        threads = str(max(1, _usable_cpus() // workers))
        for var in THREAD_VARS:
            env.setdefault(var, threads)
    env[DEFER_ENV] = "1"
    return env


def make_workers(n: int) -> list[_Worker]:
    """``n`` local workers (not started): one environment with the thread caps, a CPU share each."""
    env = _worker_env(n)
    return [_Worker(env, cpus) for cpus in (cpu_shares(n) or [None] * n)]


def _run_processes(specs, todo, workers, done, kept: list[_Worker] | None = None) -> None:
    """Feed runs to ``workers`` long-lived ``python -m research.batch`` processes.

    Plain subprocesses rather than multiprocessing: they never re-import the caller's ``__main__``
    (scripts without a main guard work) and never inherit the parent's threads. ``kept`` are the
    workers of a :class:`~research.batch.pool.LocalWorkers`, left running at the end; otherwise
    the grid starts its own and stops them.
    """
    import queue

    jobs: queue.Queue[int] = queue.Queue()
    for i in todo:
        jobs.put(i)
    if kept is None:
        procs = make_workers(min(workers, len(todo)))
        for w in procs:  # every worker boots its kernel at once, not when its feeder gets to it
            w.start()
    else:
        procs = kept
    lock = threading.Lock()

    def feed(worker: _Worker):
        try:
            while True:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                r = worker.run(specs[i])
                with lock:
                    done(i, r)
        finally:
            if kept is None:
                worker.close()

    threads = [threading.Thread(target=feed, args=(w,), daemon=True) for w in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_dask(specs, todo, scheduler, done) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise NotebookError("--executor dask needs dask.distributed: pip install 'treadmill-research[dask]'") from exc
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise NotebookError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}; is the cluster running?") from exc
    try:
        threads = max(1, sum(client.nthreads().values()))
        futs = {client.submit(_run_in_subprocess, specs[i], threads, pure=False, key=f"run-{specs[i].stem}-{specs[i].run_dir.name}-{uuid.uuid4().hex[:6]}"): i
                for i in todo}
        for fut in as_completed(list(futs), loop=client.loop):
            i = futs[fut]
            try:
                r = fut.result()
            except BaseException as exc:
                s = specs[i]
                r = RunResult(s.notebook, s.parameters, str(s.run_dir), "failed",
                              error=f"dask task failed: {type(exc).__name__}: {exc}")
            done(i, r)
    finally:
        client.close()


