"""The papermill engine that runs a notebook on a :class:`~research.batch.kernels.KeptKernel`.

Apart from :mod:`research.batch.kernels` because papermill takes about a second to import: a
worker starts its kernel first and imports this while the kernel boots.
"""
from __future__ import annotations

import time

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
#: is always written, by papermill's ``notebook_complete``, also after a failed cell or a dead kernel.
SAVE_EVERY = 1.0


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
        kc = self.kc = self.kept_kc
        kc.allow_stdin = False
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
        try:
            return client.execute()
        finally:
            del nb_man.save  # back to the method: papermill's notebook_complete, after this, saves the end state
            if client.kc is not None and client.kc is not client.kept_kc:  # the kernel stays; this run's channels do not
                client.kc.stop_channels()


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


def _papermill_logger():
    from papermill.log import logger

    return logger


papermill_engines.register(ENGINE, KeptKernelEngine)
