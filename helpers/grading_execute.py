"""nbgrader's ``Execute`` step for this course: sandboxed kernel, marked test cells, a trace.

``nbgrader_config.py`` puts :class:`GradingExecute` in place of nbgrader's ``Execute`` in
``Autograde.autograde_preprocessors``, so plain ``nbgrader autograde`` and
``python -m helpers autograde`` both

* run every submission in the sandboxed grading kernel (:mod:`helpers.sandbox`,
  :mod:`helpers.grading_kernel`), over Unix sockets so that the kernel needs no network;
  they stop with a clear message where no sandbox is available, unless
  ``UNET_COURSE_NO_SANDBOX=1`` (``--no-sandbox``) says to accept the risk;
* tell the kernel which cells are graded tests (message metadata), so it restores the
  checks before them and guards the references while they run;
* write a trace, one JSON line per cell started and one at the end, to the file named by
  ``UNET_COURSE_GRADING_TRACE``: when a kernel dies, or a cell ignores the time limit and
  the interrupt, :mod:`helpers.grading` knows which cell it was and grades again with only
  that cell replaced;
* give up on a kernel that does not answer ``interrupt_grace`` seconds after a timed-out
  cell was interrupted (a loop that ignores SIGINT), instead of waiting out every later
  cell's time limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from queue import Empty

from jupyter_core.utils import run_sync
from nbgrader.preprocessors import Execute
from nbgrader.preprocessors.execute import UnresponsiveKernelError
from traitlets import Integer, Unicode

from helpers import sandbox
from helpers.grading import TRACE_VARIABLE
from helpers.grading_kernel import META_KEY



def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_graded_test(cell) -> bool:
    """A graded test cell: code, ``grade: true``, not a solution cell."""
    meta = _nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


class GradingExecute(Execute):
    """nbgrader ``Execute`` that runs the course's sandboxed grading kernel."""

    kernel_name = Unicode(sandbox.KERNEL_NAME, help="Kernelspec to grade with.").tag(config=True)
    interrupt_grace = Integer(
        15, help="Seconds a kernel may take to stop after a timed-out cell was interrupted; "
                 "after that the kernel is shut down and the submission graded again without "
                 "that cell.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        sandbox.check_available()
        folder = Path(tempfile.mkdtemp(prefix="unet-course-kernels-"))
        sandbox.write_kernelspec(folder)
        saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(folder)] + ([saved["JUPYTER_PATH"]] if saved["JUPYTER_PATH"] else []))
        self._runtime = folder / "runtime"
        self._runtime.mkdir()
        os.environ["JUPYTER_RUNTIME_DIR"] = str(self._runtime)
        self._trace({"event": "start", "cells": len(nb.cells)})
        try:
            result = super().preprocess(nb, resources, km)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            shutil.rmtree(folder, ignore_errors=True)
        self._trace({"event": "complete"})
        return result

    def create_kernel_manager(self):
        # Unix sockets in the kernel's connection folder: the sandbox has no network.
        # Absolute paths in a folder of its own, which the sandbox binds (a relative "ip"
        # would be resolved from two different working folders).
        name = f"kernel-{uuid.uuid4().hex[:12]}"
        self.km = self.kernel_manager_class(kernel_name=self.kernel_name, config=self.config,
                                            transport="ipc",
                                            connection_file=str(self._runtime / f"{name}.json"),
                                            ip=str(self._runtime / f"{name}-ipc"))
        return self.km

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        session, channel = client.session, client.shell_channel
        executor = self

        def execute(code, silent=False, store_history=True, user_expressions=None,
                    allow_stdin=None, stop_on_error=True):
            content = {"code": code, "silent": silent, "store_history": store_history,
                       "user_expressions": user_expressions or {}, "allow_stdin": False,
                       "stop_on_error": stop_on_error}
            message = session.msg("execute_request", content,
                                  metadata={META_KEY: dict(executor._cell_info)})
            channel.send(message)
            return message["header"]["msg_id"]

        client.execute = execute
        return client

    # nbclient binds its synchronous entry points to its own coroutines at class creation:
    # bind them again so that the overrides above are the ones that run.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    _cell_info: dict = {}

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        meta = _nbgrader_meta(cell)
        self._cell_info = {"test": is_graded_test(cell), "grade_id": meta.get("grade_id")}
        if cell.get("cell_type") == "code":
            self._trace({"event": "cell", "index": cell_index, "id": cell.get("id"),
                         "grade_id": meta.get("grade_id"), "source": cell.get("source", "")[:2000]})
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    execute_cell = run_sync(async_execute_cell)

    async def _async_handle_timeout(self, timeout, cell=None):
        reply = await super()._async_handle_timeout(timeout, cell)
        if self.interrupt_on_timeout and not await self._answers_within(self.interrupt_grace):
            self._trace({"event": "stuck", "id": cell.get("id") if cell else None,
                         "seconds": timeout})
            self.log.error("The kernel did not stop %d s after the interrupt: shutting it down.",
                           self.interrupt_grace)
            await self._async_cleanup_kernel()
            raise UnresponsiveKernelError()
        return reply

    async def _answers_within(self, seconds: float) -> bool:
        """True when the kernel answers a ``kernel_info`` request on its shell channel
        within ``seconds`` (it only does once the interrupted cell has stopped)."""
        assert self.kc is not None
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await self.kc.shell_channel.get_msg(timeout=1)
            except Empty:
                await asyncio.sleep(0)
                continue
            if message.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False

    def _trace(self, record: dict) -> None:
        path = os.environ.get(TRACE_VARIABLE)
        if not path:
            return
        record["time"] = time.time()
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
