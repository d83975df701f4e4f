"""Where runs execute: this process, long-lived local worker processes, or a dask cluster."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
import uuid

from research.errors import NotebookError

from .execute import RunResult, RunSpec, execute

DASK_CONNECT_TIMEOUT = "20s"


def _run_spec(spec: RunSpec, capture: bool = False) -> RunResult:
    """Run one spec and never raise (the runner itself breaking is reported as a failed run)."""
    try:
        return execute(spec, capture=capture)
    except Exception as exc:  # disk full, permissions...: report it, keep the other runs going
        return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                         error=f"runner error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


def _worker_main() -> None:
    """``python -m research.batch``: a grid worker reading one RunSpec JSON per stdin line.

    It answers one RunResult JSON line per run on its original stdout; anything else written to
    stdout (kernel chatter) is sent to stderr so it cannot corrupt the answers.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        if not line.strip():
            continue
        result = _run_spec(RunSpec(**json.loads(line)), capture=True)
        proto.write(json.dumps(result.to_dict(), default=str) + "\n")


def _run_in_subprocess(spec: RunSpec) -> RunResult:
    """Run one spec in a fresh ``python -m research.batch`` process (the dask task body).

    nbclient is not safe to drive from several threads of one process (they share an event loop),
    and dask workers run tasks on threads, so each run gets its own process.
    """
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "research.batch"], input=json.dumps(dataclasses.asdict(spec), default=str) + "\n",
                          stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        return RunResult(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        return RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                         error=f"worker process died (exit code {proc.returncode})")


def _worker_env(workers: int) -> dict[str, str]:
    # Kernels inherit the environment: keep each run's thread pools to its share of the cores so
    # parallel runs do not oversubscribe the machine.
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


def _run_processes(specs, todo, workers, done) -> None:
    """Feed runs to ``workers`` long-lived ``python -m research.batch`` processes.

    Plain subprocesses rather than multiprocessing: they never re-import the caller's ``__main__``
    (scripts without a main guard work) and never inherit the parent's threads.
    """
    import queue
    import subprocess
    import threading

    n = min(workers, len(todo))
    jobs: queue.Queue[int] = queue.Queue()
    for i in todo:
        jobs.put(i)
    env = _worker_env(n)
    lock = threading.Lock()

    def start():
        return subprocess.Popen([sys.executable, "-m", "research.batch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, text=True, bufsize=1)

    def feed():
        proc = None
        try:
            while True:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                if proc is None or proc.poll() is not None:
                    proc = start()
                spec = specs[i]
                try:
                    proc.stdin.write(json.dumps(dataclasses.asdict(spec), default=str) + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                    r = RunResult(**json.loads(line)) if line else None
                except (OSError, ValueError, TypeError):
                    r = None
                if r is None:  # the worker died mid-run: report it, the next run gets a new worker
                    code = proc.wait()
                    r = RunResult(spec.notebook, spec.parameters, str(spec.run_dir), "failed",
                                  error=f"worker process died (exit code {code})")
                with lock:
                    done(i, r)
        finally:
            if proc is not None and proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    threads = [threading.Thread(target=feed, daemon=True) for _ in range(n)]
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
        futs = {client.submit(_run_in_subprocess, specs[i], pure=False, key=f"run-{specs[i].stem}-{specs[i].run_dir.name}-{uuid.uuid4().hex[:6]}"): i
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


