"""Kernels kept across runs: one kernel start and one import of the heavy stack for many notebooks.

A fresh kernel per run pays a start (about 1 s) and the imports of polars, scipy, altair and
``research`` (about 2.5 s) before its first cell, and a second for vl-convert's JavaScript engine at
its first figure: on the report's eleven thin notebooks that fixed cost was half of the run time.
A :class:`KeptKernel` keeps one kernel for the runs of one worker, one run at a time, and starts
every run from a clean slate:

* the user namespace, the output history and the execution counter are reset
  (``InteractiveShell.reset(new_session=True)``), so no name defined by one notebook is visible in
  the next and the executed notebook numbers its cells from 1;
* the working directory is the run's directory, as with a fresh kernel;
* one client stays connected to the kernel for its life: a run does not open five sockets, a ZeroMQ
  context and a heartbeat thread and wait for them to connect, only drains what the last run left
  unread (replies are matched to their requests, so a late message could not be mistaken anyway);
* imported modules stay imported: that is the saving. ``research`` keeps no result between runs
  that is keyed on anything but its inputs (its caches are SVGs by spec and parsed SQL by text);
* what survives the reset (modules, their caches) is moved out of the cyclic collector's sight
  (``gc.freeze``) after the reset's own collection has freed the last run's garbage: a reset
  then scans the last run's objects, not the whole imported stack (80 ms of a 0.4 s run before).

A run that fails (an error in a cell, a timeout, a dead kernel) discards the kernel, so the next run
never inherits a half-finished state, and a kernel is recycled after :data:`MAX_RUNS` runs to bound
what a long grid can accumulate. The kernel's own output (C-level warnings, crashes) goes to the
log of the run that is executing, as a fresh kernel's did. The papermill engine that runs a
notebook on a kept kernel is in :mod:`research.batch.kept_engine`.
"""
from __future__ import annotations

import os
import threading
import time
from queue import Empty
from typing import IO

#: runs one kernel serves before it is replaced by a fresh one
MAX_RUNS = 24
#: what a new kept kernel imports while it waits for its first run: the thin notebooks' first line and
#: vl-convert's JavaScript engine (started by a first render, about a second); failures are ignored
WARM_UP = """\
try:
    from research import hypotheses, panel, plots, records
    import vl_convert
    vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": [{"x": 1}]}, "encoding": {"x": {"field": "x", "type": "quantitative"}}})
except Exception:
    pass
import gc
gc.collect()
gc.freeze()
"""
WARM_UP_TIMEOUT = 120.0

_RESET = """\
get_ipython().reset(new_session=True)
import gc as _treadmill_gc, os as _treadmill_os
_treadmill_gc.freeze()
_treadmill_os.chdir({cwd!r})
del _treadmill_gc, _treadmill_os
"""


class KeptKernel:
    """One kernel reused by the runs of one worker, one run at a time (see the module docstring).

    Parameters
    ----------
    kernel_name : str
        Jupyter kernel spec to start.
    manager_class : type, optional
        ``jupyter_client`` KernelManager class (default: the runner's IPC manager on POSIX).
    max_runs : int
        Runs before the kernel is replaced by a fresh one.
    """

    def __init__(self, kernel_name: str, manager_class=None, max_runs: int = MAX_RUNS):
        self.kernel_name = kernel_name
        self.manager_class = manager_class
        self.max_runs = max_runs
        self.km = None
        self.runs = 0
        self._log: IO[str] | None = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None
        self.kc = None

    def start(self) -> None:
        """Start the kernel now and let it import the stack in the background (:data:`WARM_UP`).

        A worker calls this as it starts, so its kernel boots and imports while the worker imports
        papermill and waits for its first run; :meth:`manager` waits for the warm-up to end.
        """
        if self.km is not None and self.km.is_alive():
            return
        self.discard()
        from jupyter_client.manager import KernelManager

        km = (self.manager_class or KernelManager)(kernel_name=self.kernel_name)
        read, write = os.pipe()
        try:
            km.start_kernel(stdout=write, stderr=write, extra_arguments=["--HistoryManager.hist_file=:memory:"])
        finally:
            os.close(write)
        threading.Thread(target=self._forward, args=(read,), daemon=True).start()
        self.km, self.runs = km, 0
        if km.kernel_spec.language.lower() == "python":
            self._warming = threading.Thread(target=self._warm, args=(km,), daemon=True)
            self._warming.start()

    def client(self, timeout: float = 60.0):
        """The connected client of the kernel :meth:`manager` returned, with nothing left unread.

        Made once per kernel (by the warm-up, else here, checking that shell and IOPub both answer)
        and stopped by :meth:`discard`; the heartbeat channel is not started, since the manager
        knows from the process whether the kernel lives.
        """
        kc = self.kc
        if kc is None:
            kc = self.km.client()
            kc.start_channels(hb=False)
            try:
                _wait_ready(kc, timeout)
            except Exception:
                kc.stop_channels()
                raise
            self.kc = kc
        for get in (kc.get_iopub_msg, kc.get_shell_msg):
            try:
                while True:
                    get(timeout=0)
            except Empty:
                pass
        return kc

    def manager(self, log: IO[str] | None = None):
        """The kernel manager of a live, warmed-up kernel (started now if there is none); ``log`` takes its output."""
        with self._lock:
            self._log = log
        if self.km is None or not self.km.is_alive():
            self.start()
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        return self.km

    def _warm(self, km) -> None:
        kc = km.client()
        try:
            kc.start_channels(hb=False)
            kc.wait_for_ready(timeout=WARM_UP_TIMEOUT)
            msg_id = kc.execute(WARM_UP, silent=True, store_history=False)
            while kc.get_shell_msg(timeout=WARM_UP_TIMEOUT)["parent_header"].get("msg_id") != msg_id:
                pass
        except Exception:  # a slow or failed warm-up only costs the first run its imports
            kc.stop_channels()
            return
        self.kc = kc  # connected and proven: the runs use it (discard joins this thread first)

    @staticmethod
    def preamble(cwd) -> str:
        """The code that starts a run on the kept kernel: reset, then ``cwd`` as working directory."""
        return _RESET.format(cwd=str(cwd))

    def release(self, ok: bool) -> None:
        """A run finished: keep the kernel for the next one, unless it failed or has served its runs."""
        self.runs += 1
        with self._lock:
            self._log = None
        if not ok or self.runs >= self.max_runs:
            self.discard()

    def discard(self) -> None:
        """Shut the kernel down now (the next :meth:`manager` starts a fresh one)."""
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        km, self.km = self.km, None
        kc, self.kc = self.kc, None
        if kc is not None:
            kc.stop_channels()
        if km is None:
            return
        try:
            km.shutdown_kernel(now=True)
        except Exception:  # already dead: nothing to stop
            pass
        try:
            km.cleanup_resources()
        except Exception:
            pass

    close = discard

    def _forward(self, fd: int) -> None:
        # the kernel's stdout/stderr: into the executing run's log, else this process's stderr
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                with self._lock:
                    out = self._log
                    try:
                        (out or _stderr()).write(line)
                        (out or _stderr()).flush()
                    except (OSError, ValueError):  # the run's log was closed under us
                        pass


def _wait_ready(kc, timeout: float, iopub_wait: float = 0.2) -> None:
    """Block until ``kc``'s kernel answered a ``kernel_info`` on shell and reported idle on IOPub.

    jupyter_client's ``wait_for_ready`` ends by waiting until IOPub has been silent for 0.2 s. Here
    one ``kernel_info`` round trip, and its ``idle`` status seen on IOPub, show that shell and IOPub
    are both connected (a status published before IOPub connected is lost, and the request is sent
    again, as ``wait_for_ready`` does).
    """
    deadline = time.monotonic() + timeout
    while True:
        msg_id = kc.kernel_info()
        try:
            reply = kc.get_shell_msg(timeout=1.0)
        except Empty:
            reply = None
        if reply is not None and reply["parent_header"].get("msg_id") == msg_id and _idle_seen(kc, msg_id, iopub_wait):
            kc._handle_kernel_info_reply(reply)
            return
        if not kc.is_alive():
            raise RuntimeError("the kept kernel died before replying to kernel_info; it is discarded, so rerunning "
                               "this run (e.g. --resume) starts a fresh kernel")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the kept kernel did not respond in {timeout:.0f} s; it is discarded, so rerunning "
                               "this run (e.g. --resume) starts a fresh kernel")


def _idle_seen(kc, msg_id: str, wait: float) -> bool:
    end = time.monotonic() + wait
    while (left := end - time.monotonic()) > 0:
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except Empty:
            return False
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"):
            return True
    return False


def _stderr():
    import sys

    return sys.stderr
