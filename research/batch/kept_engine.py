"""The papermill engine that runs a notebook on a :class:`~research.batch.kernels.KeptKernel`.

Apart from :mod:`research.batch.kernels` because papermill takes about a second to import: a
worker starts its kernel first and imports this while the kernel boots.
"""
from __future__ import annotations

import asyncio
import sys
import time
from queue import Empty

import zmq

from research._imports import jsonschema_without_iri

jsonschema_without_iri()  # papermill imports nbformat, which imports jsonschema
from nbclient.util import run_hook, run_sync  # noqa: E402
from papermill.clientwrap import PapermillNotebookClient  # noqa: E402
from papermill.engines import NBClientEngine, papermill_engines  # noqa: E402
from papermill.utils import merge_kwargs, remove_args  # noqa: E402
from traitlets import Any, Unicode  # noqa: E402

ENGINE = "treadmill-kept-kernel"
#: seconds between saves of the partial notebook at cell boundaries (papermill saves at every cell
#: start and end: 20 saves, a third of the runner's CPU, on a sub-second notebook). The final state
#: is always written once: by papermill's ``execute_notebook`` when the engine returns (also after a
#: failed cell), by its ``notebook_complete`` when the engine raises (a dead kernel, a timeout).
SAVE_EVERY = 1.0
#: longest one read of the kept client holds nbclient's event loop (its kernel-alive check and the
#: run's timeout are served between reads); a message reaching either channel ends the read at once
POLL_SLICE = 0.25


class KernelResetError(RuntimeError):
    """The kept kernel did not accept the reset that starts a run."""


class _KeptClient(PapermillNotebookClient):
    """papermill's client, run on a kernel it does not own, after a silent reset."""

    preamble = Unicode("", help="code run silently before the first cell").tag(config=True)
    kept_kc = Any(None, allow_none=True, help="the kept kernel's connected client (not stopped after the run)")

    def start_new_kernel_client(self):
        """Use the kept kernel's connected client (:meth:`~research.batch.kernels.KeptKernel.client`);
        without one, nbclient connects its own."""
        if self.kept_kc is None:
            return super().start_new_kernel_client()
        self.kept_kc.allow_stdin = False
        kc = self.kc = _LoopClient(self.kept_kc)
        run_sync(run_hook)(self.on_notebook_start, notebook=self.nb)
        return kc

    def papermill_execute_cells(self):
        if self.preamble:
            reply = self.wait_for_reply(self.kc.execute(self.preamble, silent=True, store_history=False))
            content = (reply or {}).get("content", {})
            if content.get("status") != "ok":
                raise KernelResetError(f"the kept kernel refused the reset before the first cell "
                                       f"({content.get('ename')}: {content.get('evalue')}); it is discarded, "
                                       "so rerunning this run (e.g. --resume) starts a fresh kernel")
        super().papermill_execute_cells()


class _LoopClient:
    """The kept (blocking) client, with shell and IOPub reads that nbclient's event loop can share.

    nbclient reads IOPub and shell in two asyncio tasks, beside a third that checks every second
    that the kernel lives, and expects an async client. The kept client is a blocking one (it is
    connected and checked outside any event loop), whose IOPub read, having no timeout, held the
    loop until the kernel went idle: a kernel that died mid-cell, or a cell past the run's timeout,
    hung the run for good. Here a read holds the loop for at most :data:`POLL_SLICE`, ends at once
    when a message reaches either channel being read, and then gives the other tasks their turn.
    Everything else is the kept client's (``blocking``).
    """

    def __init__(self, blocking):
        self.blocking = blocking
        self._reading: dict[str, zmq.Socket] = {}  # channels a task is waiting on, by name
        self.shell_channel = _LoopChannel(self, "shell", blocking.shell_channel)
        self.iopub_channel = _LoopChannel(self, "iopub", blocking.iopub_channel)

    def __getattr__(self, name):
        return getattr(self.blocking, name)


class _LoopChannel:
    """One channel of a :class:`_LoopClient`: ``get_msg`` is a coroutine; the rest is the channel's."""

    def __init__(self, client: _LoopClient, name: str, channel):
        self._client, self._name, self._channel = client, name, channel

    def __getattr__(self, name):
        return getattr(self._channel, name)

    async def get_msg(self, timeout: float | None = None) -> dict:
        end = None if timeout is None else time.monotonic() + timeout
        reading = self._client._reading
        reading[self._name] = sock = self._channel.socket
        try:
            while True:
                if self._channel.socket is None:
                    # closed under this read: a read nbclient left running after a timeout, whose
                    # kernel has been discarded since; it ends quietly instead of as an error
                    raise asyncio.CancelledError
                try:
                    return self._channel.get_msg(timeout=0)
                except Empty:
                    pass
                left = POLL_SLICE if end is None else min(POLL_SLICE, end - time.monotonic())
                if left <= 0:
                    raise Empty
                others = [s for name, s in reading.items() if name != self._name]
                if not others:
                    if sock.poll(max(1, int(left * 1000))):
                        continue  # ours: read it without a turn for the others, as an async client would
                else:  # a message for the other read wakes this one too, which then yields to it
                    poller = zmq.Poller()
                    for s in (sock, *others):
                        poller.register(s, zmq.POLLIN)
                    if sock in dict(poller.poll(max(1, int(left * 1000)))):
                        continue
                await asyncio.sleep(0)
        finally:
            reading.pop(self._name, None)


class KeptKernelEngine(NBClientEngine):
    """papermill engine for :class:`~research.batch.kernels.KeptKernel`: ``execute_notebook(..., engine_name=ENGINE, km=..., kept_kc=..., preamble=...)``."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        # the same argument handling as papermill's NBClientEngine, with the kept-kernel client
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout, kernel_name=kernel_name, log=kwargs.get("log") or _papermill_logger(),
            log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        client = _KeptClient(nb_man, **final_kwargs)
        nb_man.save = _throttled(nb_man.save, SAVE_EVERY)
        running: list[int] = []
        nb_man.cell_start = _noting(nb_man.cell_start, running)
        returned = False
        try:
            nb = client.execute()
            returned = True
            return nb
        finally:
            if returned:
                # papermill's execute_notebook writes this notebook itself once the engine returns
                # (raise_for_execution_errors after a failed cell, write_ipynb otherwise): the save of
                # notebook_complete, just before, would write the same notebook (40 ms on a 1 MB one)
                nb_man.save = _skip
            else:  # the kernel died, a timeout...: papermill's notebook_complete is the only writer of the end state
                del nb_man.save
                if running:  # papermill marks only a cell that raised as failed; this one stopped the run too
                    i = running[-1]
                    nb_man.cell_exception(nb_man.nb.cells[i], cell_index=i, exception=sys.exc_info()[1])
            del nb_man.cell_start
            kc = getattr(client.kc, "blocking", client.kc)
            if kc is not None and kc is not client.kept_kc:  # the kernel stays; this run's channels do not
                kc.stop_channels()


def _throttled(save, every: float):
    """``save``, skipped when the last call that saved was less than ``every`` seconds ago."""
    last = float("-inf")

    def throttled(**kwargs):
        nonlocal last
        now = time.monotonic()
        if now - last >= every:
            last = now
            save(**kwargs)

    return throttled


def _noting(cell_start, running: list):
    """``cell_start``, noting in ``running`` the index of each cell it starts."""

    def noting(cell, cell_index=None, **kwargs):
        running.append(cell_index)
        return cell_start(cell, cell_index, **kwargs)

    return noting


def _skip(**kwargs) -> None:
    """A save that writes nothing (papermill writes the notebook next)."""


def _papermill_logger():
    from papermill.log import logger

    return logger


papermill_engines.register(ENGINE, KeptKernelEngine)
