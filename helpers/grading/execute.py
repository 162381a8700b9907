"""nbgrader's ``Execute`` step for this course: a sandboxed runner whose verdicts the
submission cannot rewrite, and a trace for the grader's repairs.

``nbgrader_config.py`` puts :class:`GradingExecute` in place of nbgrader's ``Execute`` in
``Autograde.autograde_preprocessors``, so plain ``nbgrader autograde``, the formgrader and
``python -m helpers autograde`` all

* run every submission in :mod:`helpers.grading.runner` inside the sandbox
  (:mod:`helpers.grading.sandbox`), not in a Jupyter kernel: the result of each cell comes back on
  a pipe, marked with a token this process drew, decided in one frame of the runner that no
  IPython or ipykernel hook stands between (the runner's docstring argues the design);
  they stop with a clear message where no sandbox is available, unless
  ``UNET_COURSE_NO_SANDBOX=1`` (``--no-sandbox``) says to accept the risk;
* send every graded test cell with the release's source (nbgrader has put it back, hidden
  tests included) and the names its exercise's solution cells define, so that the runner
  restores the checks before it and keeps the reference of that exercise out of the
  learner's answer;
* write the outputs into the notebook in the form nbgrader scores: a failed test cell's
  error comes first, and a test cell never ends in an ``execute_result`` (nbgrader would
  read a number there as partial credit);
* write a trace, one JSON line per cell started and one at the end, to the file named by
  ``UNET_COURSE_GRADING_TRACE``: when the runner dies, or a cell ignores its time limit,
  :mod:`helpers.grading` knows which cell it was and grades again with only that cell
  replaced.

A cell that runs past its limit (``Execute.timeout``, or ``timeout_func``) is stopped inside
the runner with ``CellTimeoutError`` and grading goes on; one that does not stop
``interrupt_grace`` seconds later is killed with its runner.

The code cells after the notebook's last code cell with points (:func:`ungraded_tail`: a
graded test or a graded answer) are not run: cells run in order in one process, so nothing
that runs after the last graded cell can change its output or any score. A written answer
(markdown, graded by hand) after that point cites the learner's own run, which grading at its
small scale does not reproduce anyway; so each skipped cell shows :data:`NOT_RUN` followed by
the outputs the learner handed in (kept by :class:`KeepSubmittedOutputs` before nbgrader
clears them, known output types only, at most :data:`MAX_SUBMITTED_BYTES` per cell and
:data:`MAX_SUBMITTED_TOTAL` per notebook).
``c.GradingExecute.run_ungraded_tail = True``, or ``python -m helpers autograde --all-cells``
(which sets ``UNET_COURSE_GRADING_ALL_CELLS=1``), runs them too (grading takes longer); a
notebook with an nbgrader task (graded by what the cells after it show) runs whole.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import selectors
import subprocess
import tempfile
import time
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.preprocessors.execute import UnresponsiveKernelError
from traitlets import Bool, Integer, default

from helpers.tools import kernels
from helpers.grading import guard, sandbox
from helpers.grading.commands import ALL_CELLS_VARIABLE, TRACE_VARIABLE

#: Most bytes the runner may send for one cell before it is stopped.
MAX_REPLY_BYTES = 64 * 1024 * 1024
#: Output types and MIME types that are taken from the runner (the rest is dropped).
_TEXT_MIME = "text/plain"


class RunnerDied(RuntimeError):
    """The runner exited (or was killed) before it answered for a cell."""


def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_graded_test(cell) -> bool:
    """A graded test cell: code, ``grade: true``, not a solution cell."""
    meta = _nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def defined_names(source: str) -> set[str]:
    """Top-level names a cell binds (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


#: The first output of a cell that grading does not run (after the last code cell with points).
NOT_RUN = ("Not run at grading: no graded cell comes after this one, so it could not change a score. "
           "Any output below is the one handed in (the learner's own run), not the grader's.\n")
#: Most bytes of handed-in outputs kept for one cell that grading does not run.
MAX_SUBMITTED_BYTES = 2 * 1024 * 1024
#: Most bytes of handed-in outputs kept for one notebook (the cells after the limit get a note).
MAX_SUBMITTED_TOTAL = 16 * 1024 * 1024
#: Cell metadata key under which :class:`KeepSubmittedOutputs` keeps the handed-in outputs.
_SUBMITTED = "unet_course_submitted_outputs"


def ungraded_tail(cells) -> int:
    """Index of the first cell that grading need not run: the one after the last code cell
    with points (``grade: true``: a graded test, an autograded answer, a code answer graded
    by hand). Written answers in markdown do not count: they run nothing, and cite the
    learner's own run. ``len(cells)`` (run everything) for a notebook with an nbgrader task,
    whose points depend on what the cells after it show.

    Args:
        cells: the notebook's cells, as nbgrader has restored them for grading.

    Returns:
        The index; 0 when no code cell has points (nothing to grade).
    """
    last = -1
    for index, cell in enumerate(cells):
        meta = _nbgrader_meta(cell)
        if meta.get("task"):
            return len(cells)
        if meta.get("grade") and cell.get("cell_type") == "code":
            last = index
    return last + 1


class KeepSubmittedOutputs(NbGraderPreprocessor):
    """nbgrader sanitize step, before ``ClearOutput``: keeps each code cell's handed-in
    outputs in its metadata, where :class:`GradingExecute` takes them back out (for the cells
    it does not run) and removes them (for all others)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.metadata[_SUBMITTED] = list(cell.get("outputs", []))
        else:
            cell.metadata.pop(_SUBMITTED, None)
        return cell, resources


def _submitted_outputs(cells, start: int = 0) -> list[list[NotebookNode]]:
    """The handed-in outputs of the cells from ``start`` on (removed from every cell's
    metadata; none for the cells before), cleaned like a runner's; a note instead where they
    exceed :data:`MAX_SUBMITTED_BYTES`, or where the cells before have used up
    :data:`MAX_SUBMITTED_TOTAL`."""
    result: list[list[NotebookNode]] = []
    total = 0
    for index, cell in enumerate(cells):
        raw = cell.get("metadata", {}).pop(_SUBMITTED, None)
        if index < start:
            result.append([])
            continue
        outputs = _clean_outputs(raw if isinstance(raw, list) else [], test=False, status="ok")
        size = sum(len(json.dumps(output)) for output in outputs)
        if size > MAX_SUBMITTED_BYTES or total + size > MAX_SUBMITTED_TOTAL:
            limit = (f"{MAX_SUBMITTED_BYTES >> 20} MB kept per cell" if size > MAX_SUBMITTED_BYTES
                     else f"{MAX_SUBMITTED_TOTAL >> 20} MB kept per notebook")
            outputs = [NotebookNode(output_type="stream", name="stdout",
                                    text=f"(the handed-in output, {size >> 10} kB, is over the {limit})\n")]
        else:
            total += size
        result.append(outputs)
    return result


def is_warm_up_check(cell) -> bool:
    """The check of an ungraded warm-up: a read-only nbgrader cell (``locked``, a
    ``grade_id``, neither graded nor a solution) whose docstring title starts with "Check".

    In ``nbgrader autograde`` the cell's ``grade_id`` survives only when the release
    database knows it (``OverwriteCells`` strips unknown ids and restores a locked cell's
    source), so a cell a learner added or forged is not one."""
    meta = _nbgrader_meta(cell)
    return (cell.get("cell_type") == "code" and bool(meta.get("locked")) and bool(meta.get("grade_id"))
            and not meta.get("grade") and not meta.get("solution")
            and cell.get("source", "").lstrip().startswith(('"Check', '"""Check')))


def exercise_names(cells) -> dict[int, set[str]]:
    """For every graded test cell (by index), the names that the solution cells since the
    previous check define: what the test grades.

    A warm-up's check (:func:`is_warm_up_check`) closes its exercise too: the names of an
    ungraded warm-up (which the lesson may hand over to the reference when it is unfinished)
    are not graded by the next graded test."""
    result, pending = {}, set()
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        if _nbgrader_meta(cell).get("solution"):
            pending |= defined_names(cell.get("source", ""))
        elif is_graded_test(cell):
            result[index] = set(pending)
            pending = set()
        elif is_warm_up_check(cell):
            pending = set()
    return result


def _clean_outputs(raw, test: bool, status: str) -> list[NotebookNode]:
    """nbformat outputs from the runner's reply: known types and fields only; for a test
    cell, the error first and no ``execute_result``."""
    outputs = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("output_type")
        if kind == "stream" and item.get("name") in ("stdout", "stderr"):
            outputs.append(NotebookNode(output_type="stream", name=item["name"], text=str(item.get("text", ""))))
        elif kind == "error":
            traceback = item.get("traceback")
            outputs.append(NotebookNode(output_type="error", ename=str(item.get("ename", "Error")),
                                        evalue=str(item.get("evalue", "")),
                                        traceback=[str(line) for line in traceback]
                                        if isinstance(traceback, list) else []))
        elif kind in ("execute_result", "display_data"):
            raw_data = item.get("data")
            data = raw_data if isinstance(raw_data, dict) else {}
            kept = {key: str(value) for key, value in data.items() if key in (_TEXT_MIME, "image/png")}
            if not kept:
                continue
            if kind == "execute_result" and not test:
                count = item.get("execution_count")
                outputs.append(NotebookNode(output_type="execute_result", metadata={}, data=kept,
                                            execution_count=count if isinstance(count, int) else None))
            else:
                outputs.append(NotebookNode(output_type="display_data", metadata={}, data=kept))
    if test:
        errors = [output for output in outputs if output.output_type == "error"]
        if status == "error" and not errors:
            errors = [NotebookNode(output_type="error", ename="Error", evalue="the test failed",
                                   traceback=["the test failed"])]
        if status == "ok":
            errors = []  # the verdict is the runner's, not the text a cell printed
        rest = [output for output in outputs if output.output_type != "error"]
        outputs = errors + rest
    return outputs


class GradingExecute(Execute):
    """nbgrader ``Execute`` that runs the course's sandboxed grading runner."""

    interrupt_grace = Integer(
        15, help="Seconds a cell may run past its time limit before its runner is killed and "
                 "the submission graded again without that cell.").tag(config=True)
    run_ungraded_tail = Bool(
        False, help="Also run the code cells after the last graded code cell (they cannot change a "
                    "score; they then show the grader's outputs, not the handed-in ones; grading takes longer). "
                    f"Default: whether {ALL_CELLS_VARIABLE}=1.").tag(config=True)

    @default("run_ungraded_tail")
    def _run_ungraded_tail_default(self) -> bool:
        return os.environ.get(ALL_CELLS_VARIABLE, "").strip() == "1"

    def preprocess(self, nb, resources=None, km=None):
        sandbox.check_available()
        resources = resources if resources is not None else {}
        path = Path((resources.get("metadata") or {}).get("path") or os.getcwd())
        self._trace({"event": "start", "cells": len(nb.cells)})
        token = secrets.token_hex(16)
        scratch = Path(tempfile.mkdtemp(prefix="unet-course-runner-"))
        command = sandbox.launcher_command(scratch)
        names = exercise_names(nb.cells)
        preload = guard.needs_helpers([cell.source for cell in nb.cells if cell.cell_type == "code"],
                                      set().union(*names.values()))
        environment = {**kernels.kernel_env(), **sandbox.GRADING_ENV, guard.PRELOAD_VARIABLE: "1" if preload else "0"}
        self._trace({"event": "spawn"})
        process = subprocess.Popen(command, cwd=path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   env=environment, start_new_session=True)
        reader = _Reader(process, token)
        try:
            process.stdin.write(token.encode("ascii") + b"\n")
            process.stdin.flush()
            ready = reader.receive(None, deadline=time.monotonic() + 600)
            if ready is None:
                raise RunnerDied("the grading runner did not start (see nbgrader's log)")
            self._trace({"event": "ready", "runner_started": ready[0], "imported": ready[1]})
            count = 0
            tail = len(nb.cells) if self.run_ungraded_tail else ungraded_tail(nb.cells)
            submitted = _submitted_outputs(nb.cells, tail)   # out of every cell's metadata
            skipped = [index for index, cell in enumerate(nb.cells)
                       if index >= tail and cell.cell_type == "code" and cell.source.strip()]
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if index >= tail:
                    cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=NOT_RUN),
                                    *submitted[index]]
                    cell.execution_count = None
                    continue
                meta = _nbgrader_meta(cell)
                test = is_graded_test(cell)
                self._trace({"event": "cell", "index": index, "id": cell.get("id"),
                             "grade_id": meta.get("grade_id"), "source": cell.source[:2000]})
                timeout = self._get_timeout(cell)
                body = cell.source.encode("utf-8")
                request = f"{'test' if test else 'code'} {index} {timeout or 0} {len(body)}\n".encode() + body
                if test:
                    listed = " ".join(sorted(names.get(index, ()))).encode("utf-8")
                    request += f"{len(listed)}\n".encode() + listed
                try:
                    process.stdin.write(request)
                    process.stdin.flush()
                except (BrokenPipeError, OSError):
                    raise RunnerDied(f"the grading runner died before cell {index + 1}") from None
                deadline = time.monotonic() + (timeout + self.interrupt_grace if timeout else 10 ** 9)
                reply = reader.receive(index, deadline)
                if reply == "stuck":
                    self._trace({"event": "stuck", "id": cell.get("id"), "seconds": timeout})
                    self.log.error("Cell %d did not stop %d s after its time limit: killing the runner.",
                                   index + 1, self.interrupt_grace)
                    raise UnresponsiveKernelError()
                if reply is None:
                    raise RunnerDied(f"the grading runner died while cell {index + 1} ran")
                status, outputs = reply
                count += 1
                cell.outputs = _clean_outputs(outputs, test, status)
                cell.execution_count = count
            if skipped:
                self._trace({"event": "not run", "cells": [index + 1 for index in skipped]})
            try:
                process.stdin.write(b"end 0 0 0\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        except RunnerDied:
            if reader.overflow:  # named in the report like the sandbox's own output limit
                self._trace({"event": "limit", "limit": "output",
                             "detail": f"output limit ({MAX_REPLY_BYTES >> 20} MB for one cell)"})
            raise
        finally:
            _stop(process)
            sandbox.remove_scratch(scratch)
        self._trace({"event": "complete"})
        return nb, resources

    def _trace(self, record: dict) -> None:
        path = os.environ.get(TRACE_VARIABLE)
        if not path:
            return
        record["time"] = time.time()
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class _Reader:
    """Reads the runner's replies: lines ``TOKEN INDEX STATUS OUTPUTS``; anything else
    (a line without the token, a reply for another cell) is ignored."""

    def __init__(self, process: subprocess.Popen, token: str) -> None:
        self.process, self.prefix = process, (token + " ").encode("ascii")
        assert process.stdout is not None  # the runner is started with stdout=PIPE
        self.stdout = process.stdout
        self.buffer = bytearray()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)
        self.closed = False
        self.overflow = False

    def receive(self, index: int | None, deadline: float):
        """``(status, outputs)`` of cell ``index`` (``index`` None: the ready line, returns
        the times at which the runner started and had imported everything, or ``(None, None)``
        where the line has none); None when the runner closed its end; ``"stuck"`` past ``deadline``."""
        received = 0
        while True:
            while b"\n" in self.buffer:
                cut = self.buffer.index(b"\n")
                line = bytes(self.buffer[:cut])
                del self.buffer[: cut + 1]
                parsed = self._parse(line, index)
                if parsed is not None:
                    return parsed
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "stuck"
            if not self.selector.select(timeout=min(remaining, 5.0)):
                continue
            chunk = os.read(self.stdout.fileno(), 1 << 20)
            if not chunk:
                self.closed = True
                continue
            received += len(chunk)
            if received > MAX_REPLY_BYTES:
                self.overflow = True
                raise RunnerDied(f"the runner sent more than {MAX_REPLY_BYTES >> 20} MB for one cell")
            self.buffer.extend(chunk)

    def _parse(self, line: bytes, index: int | None):
        if not line.startswith(self.prefix):
            return None
        fields = line[len(self.prefix):].decode("utf-8", "replace").split(" ", 2)
        if index is None:
            if fields[:1] != ["ready"]:
                return None
            try:
                return float(fields[1]), float(fields[2].split(" ", 1)[0])
            except (IndexError, ValueError):
                return None, None
        if len(fields) != 3 or fields[0] != str(index) or fields[1] not in ("ok", "error"):
            return None
        try:
            outputs = ast.literal_eval(fields[2])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            outputs = [{"output_type": "stream", "name": "stderr",
                        "text": "the grader could not read this cell's output\n"}]
        return fields[1], outputs


def _stop(process: subprocess.Popen) -> None:
    """Close the runner's input and end its process group."""
    sandbox.stop_process_group(process, grace_seconds=5)
