"""The process that runs one submission while it is graded (inside the grading sandbox).

``python -m helpers.grading.runner`` is started by :mod:`helpers.grading.execute` through
:mod:`helpers.grading.sandbox`; it executes the notebook cell by cell and reports every cell's
outputs and whether it raised.

Why not a Jupyter kernel
------------------------
A solution cell runs in the same process as the test cells that grade it. In an IPython
kernel every step between "the test raised" and "nbgrader sees an error" is Python code of
that process which a cell can rebind: input transformers, the shell's custom exception
handler (``set_custom_exc``), the display hook (an ``execute_result`` published before the
traceback is full marks for nbgrader), the session's ``send``, the kernel's ``do_execute``.
Restoring each of them before a test is a race the grader cannot win, since the code that
restores is reachable too. This runner has no such layer. The verdict of a test cell is
decided in one frame of this module::

    try:
        exec(code, namespace)     # the test cell, compiled from the grader's own source
        status = "ok"
    except BaseException:
        status = "error"

and written, with only built-in operations (``repr``, ``str`` methods, ``os.write`` bound
before any learner code ran), to a pipe that the grader reads. Each line carries a random
token that the grader sent when the process started: a line without it is not a result.

What it imports first
---------------------
Before any cell, every lesson module of ``helpers`` (and with it NumPy, TensorFlow and Keras),
so that the snapshot below knows them pristine. A notebook that can make no use of them (no
code cell names helpers, TensorFlow or Keras, and no solution defines a name that helpers
binds: :func:`helpers.grading.guard.needs_helpers`, decided by the grader, which sets
``UNET_COURSE_GRADING_PRELOAD=0``) gets NumPy only: its runner is ready in a fraction of a
second instead of several seconds.
Under ``python -m helpers autograde`` the runner of a notebook that uses them is forked
from the grading template (:mod:`helpers.grading.template`), which made these imports once
for the whole run, before any learner code: they are already in ``sys.modules`` when
:func:`main` starts, and the snapshot is taken in the forked process as before.

What runs before every test cell
--------------------------------
* This module's and :mod:`helpers.grading.guard`'s own globals are reset from the copy taken
  at start (a cell that replaced a function the runner uses is undone first).
* :meth:`helpers.grading.guard.Snapshot.restore`: builtins, ``sys.modules``, every function,
  class and module attribute of ``helpers``, numpy, TensorFlow and Keras, and the notebook
  names the test uses as modules. A test cell whose checks had been replaced fails and
  says so.
* ``sys.settrace``/``setprofile`` and ``threading``'s hooks are cleared; signal handlers,
  ``sys.stdout``/``stderr``, ``sys.excepthook``/``displayhook`` are put back.
* A learner thread still running fails the test (it could change the checks while they run).
* The graded names of the exercise (what its solution cells define) must not be, wrap or
  reach the reference implementation (:meth:`Snapshot.stands_in`); while the test runs a
  trace function stops any call of that reference from learner code
  (:meth:`Snapshot.guard`).

An audit hook, installed before any learner code, refuses to learner code (the first frame
outside the standard library is a cell's) what it could use to reach this frame or the
token: ``sys._getframe``, ``sys._current_frames``, ``gc.get_objects``/``get_referrers``/
``get_referents``, traceback and generator frames, ``sys.settrace``/``setprofile``, new
audit hooks, ``ctypes``, ``os.fork``, ``os.kill``, new processes, and replacing a
function's code object.

What it does not cover
----------------------
Code in the same process can in principle still reach this frame: through a signal
handler's ``frame`` argument, a C extension, a bug in CPython. Each needs code that the
static audit (:mod:`helpers.grading.audit`) flags for review, and the process stays inside
bubblewrap (:mod:`helpers.grading.sandbox`), so the worst it can do is misreport its own score.
Class attributes of third-party libraries (``tf.Tensor.__eq__ = ...``) are not restored.
The hidden tests of a test cell are in this process while that cell runs.

Protocol (stdin and stdout belong to the grader; the cells' output is captured)
------------------------------------------------------------------------------
grader -> runner: a header line ``token``, then requests ``kind index timeout length\\n``
followed by ``length`` bytes of UTF-8 source and, for tests, a line with a length and that
many bytes of the names the exercise defines (``kind``: ``code``, ``test`` or ``end``).
runner -> grader: lines ``token ready STARTED IMPORTED [...]`` once (the times at which the
runner started and had imported everything, for the grading profile), then ``token index status [outputs]``
per request (``status``: ``ok`` or ``error``; the outputs as a Python literal of built-in
types, which the grader reads with ``ast.literal_eval``).
"""

from __future__ import annotations

import base64
import builtins
import io
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback
import types

#: Most characters of text output kept per cell (nbgrader's LimitOutput trims further).
MAX_TEXT = 200_000
#: Most figures kept per cell.
MAX_FIGURES = 20


class CellTimeoutError(TimeoutError):
    """The cell ran past its time limit (nbgrader's name for it, so reports read the same)."""


class _Capture(io.TextIOBase):
    """A text stream that keeps what a cell prints (``name``: stdout or stderr)."""

    def __init__(self, name: str, outputs: list) -> None:
        super().__init__()
        self.name, self.outputs, self.size = name, outputs, 0

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = "".join(["", text]) if isinstance(text, str) else "".join(["", str(text)])
        if self.size < MAX_TEXT:
            kept = text[: MAX_TEXT - self.size]
            self.size += len(kept)
            if self.outputs and self.outputs[-1].get("name") == self.name:
                self.outputs[-1]["text"] += kept
            else:
                self.outputs.append({"output_type": "stream", "name": self.name, "text": kept})
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


class _Shell:
    """The few IPython calls that transformed cells make (``%time``, ``%matplotlib``)."""

    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace
        self.user_ns = namespace

    def run_line_magic(self, name: str, line: str):
        if name in ("matplotlib", "config", "load_ext", "autoreload"):
            return None
        if name in ("time", "timeit"):
            started = time.perf_counter()
            exec(compile(line, "<magic>", "exec"), self.namespace)  # noqa: S102 - the learner's own line
            print(f"Wall time: {time.perf_counter() - started:.3f} s")
            return None
        raise NameError(f"the magic %{name} is not available while grading: remove it from the cell")

    def run_cell_magic(self, name: str, line: str, cell: str):
        if name in ("time", "timeit", "capture"):
            return self.run_line_magic("time", cell)
        raise NameError(f"the cell magic %%{name} is not available while grading: remove it")

    def system(self, command: str):
        raise PermissionError("shell commands (!) are not available while grading")

    getoutput = system


def _display(*values) -> None:
    """``display()`` as IPython has it: the text of every value."""
    for value in values:
        print(repr(value))


def _split_last_expression(source: str):
    """(body, last expression) of a cell whose last statement is an expression that
    IPython would display; (source, None) otherwise."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, None
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return source, None
    if source.rstrip().endswith(";"):
        return source, None
    tree.body.pop()
    return tree, ast.Expression(last.value)


def _figures() -> list[dict]:
    """Every open matplotlib figure as a ``display_data`` PNG output; closes them."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    outputs: list[dict] = []
    for number in pyplot.get_fignums()[:MAX_FIGURES]:
        figure = pyplot.figure(number)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", bbox_inches="tight")
        except Exception as error:  # noqa: BLE001 - a figure that cannot be drawn is reported
            outputs.append({"output_type": "stream", "name": "stderr",
                            "text": f"figure {number} could not be drawn: {error}\n"})
            continue
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                                 "text/plain": "".join(["", repr(figure)])}})
    pyplot.close("all")
    return outputs


def _install_audit_hook(snapshot) -> None:
    """Refuse to learner code what it could use to reach the runner's frame (see the module
    docstring); trusted code (the standard library called from trusted code, libraries,
    helpers) is unaffected."""
    guarded = {"sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers",
               "gc.get_referents", "sys.settrace", "sys.setprofile", "sys.addaudithook",
               "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.system", "os.exec", "os.posix_spawn",
               "os.spawn", "subprocess.Popen", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
               "ctypes.addressof", "ctypes.string_at", "ctypes.call_function", "pty.spawn"}
    frame_attributes = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
    stdlib = (sysconfig.get_paths()["stdlib"], "<frozen")
    prefixes = snapshot.prefixes
    getframe = sys._getframe
    busy = []

    def learner_caller() -> bool:
        frame: types.FrameType | None = getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(stdlib) and "site-packages" not in filename:
                frame = frame.f_back
                continue
            if "__autograph_generated_file" in filename:
                return frame.f_globals.get("__name__") == "__main__"
            return not filename.startswith(prefixes)
        return False

    def hook(event: str, args: tuple) -> None:
        if busy:
            return
        if event == "object.__getattr__":
            if args[1] not in frame_attributes:
                return
        elif event == "object.__setattr__":
            if args[1] not in ("__code__", "__class__", "__globals__"):
                return
        elif event not in guarded:
            return
        busy.append(1)
        try:
            refused = learner_caller()
        finally:
            busy.pop()
        if refused:
            raise PermissionError(f"not allowed while grading: {event} "
                                  f"(a solution does not need it; see the grading report)")

    sys.addaudithook(hook)


def main() -> int:  # noqa: C901 - one frame on purpose: the verdict must not leave it
    """Run the requests that arrive on stdin; see the module docstring."""
    started = time.time()  # reported in the ready line, for the grading profile
    read, write, encode = os.read, os.write, repr
    compile_, exec_, eval_ = compile, exec, eval
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # C-level prints go to the grader's log, never into the protocol

    buffer = bytearray()

    def read_line() -> bytes:
        while b"\n" not in buffer:
            chunk = read(protocol_in, 65536)
            if not chunk:
                raise EOFError
            buffer.extend(chunk)
        index = buffer.index(b"\n")
        line = bytes(buffer[:index])
        del buffer[: index + 1]
        return line

    def read_exact(length: int) -> bytes:
        while len(buffer) < length:
            chunk = read(protocol_in, max(65536, length - len(buffer)))
            if not chunk:
                raise EOFError
            buffer.extend(chunk)
        data = bytes(buffer[:length])
        del buffer[:length]
        return data

    token = read_line().decode("ascii").strip()

    def send(head: str, outputs: list) -> None:
        data = (token + " " + head + " " + encode(outputs) + "\n").encode("utf-8", "replace")
        while data:
            data = data[write(protocol_out, data):]

    os.environ.setdefault("MPLBACKEND", "Agg")
    import warnings

    warnings.simplefilter("ignore")
    sys.dont_write_bytecode = True
    from helpers.grading import guard as grading_guard

    if os.environ.get(grading_guard.PRELOAD_VARIABLE, "1") != "0":
        failed_imports = grading_guard.import_all_helpers()
    else:  # no cell names helpers, TensorFlow or Keras (guard.needs_helpers): only what tests may use
        import math  # noqa: F401
        import numpy.testing  # noqa: F401
        failed_imports = []
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    snapshot = grading_guard.Snapshot()
    restore, stands_in, make_guard = snapshot.restore, snapshot.stands_in, snapshot.guard
    settrace, setprofile = sys.settrace, sys.setprofile
    thread_settrace, thread_setprofile = threading.settrace, threading.setprofile
    enumerate_threads, format_exception = threading.enumerate, traceback.format_exception
    own_globals = [(vars(module), dict(vars(module))) for module in
                   (sys.modules[__name__], grading_guard)]
    baseline_threads = set(enumerate_threads())
    main_module = type(sys)("__main__")
    namespace = main_module.__dict__
    namespace["__builtins__"] = builtins
    sys.modules["__main__"] = main_module
    shell = _Shell(namespace)
    vars(builtins).update(display=_display, get_ipython=lambda: shell)
    snapshot.builtins.update(display=_display)
    pristine_hooks = (sys.excepthook, sys.displayhook)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    handlers = {number: signal.getsignal(number) for number in
                (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGUSR1, signal.SIGUSR2)}

    def on_alarm(number, frame):
        raise CellTimeoutError("Cell execution timed out")

    _install_audit_hook(snapshot)
    send(f"ready {started:.3f} {time.time():.3f}", ["".join(["", line]) for line in failed_imports])
    count = 0
    while True:
        try:
            kind, index, timeout, length = read_line().decode("ascii").split()
            source = read_exact(int(length)).decode("utf-8")
            names = read_exact(int(read_line())).decode("utf-8").split() if kind == "test" else []
        except (EOFError, ValueError):
            return 0
        if kind == "end":
            return 0
        # put back what the runner itself relies on before anything else
        for current, saved in own_globals:
            current.clear()
            current.update(saved)
        settrace(None)
        setprofile(None)
        thread_settrace(None)
        thread_setprofile(None)
        outputs: list[dict] = []
        sys.stdout, sys.stderr = _Capture("stdout", outputs), _Capture("stderr", outputs)
        sys.excepthook, sys.displayhook = pristine_hooks
        for number, handler in handlers.items():
            signal.signal(number, handler)
        signal.signal(signal.SIGALRM, on_alarm)
        count += 1
        status = "ok"
        refusal: BaseException | None = None
        filename = f"<cell {index}>"
        try:
            if kind == "test":
                changed = restore(namespace, _names_used(source))
                tampered = [item for item in changed if "checks" in item or "notebook name" in item
                            or "sys.modules" in item or "builtins" in item]
                if tampered:
                    refusal = AssertionError(
                        "The checks were replaced by code in this notebook ("
                        + ", ".join(sorted(set(tampered))[:5])
                        + "): the grader restored them, and this test cell fails. "
                          "Remove the code that changes `checks`, `helpers` or builtins.")
                learner_threads = [thread for thread in enumerate_threads()
                                   if thread not in baseline_threads and thread.is_alive()
                                   and _started_by_learner(thread)]
                if refusal is None and learner_threads:
                    refusal = AssertionError(
                        f"a thread started by your code is still running ({learner_threads[0].name}): "
                        f"stop it (join it) before the checks run.")
                for name in names if refusal is None else ():
                    if name in namespace:
                        problem = stands_in(namespace[name], name)
                        if problem:
                            refusal = grading_guard.ReferenceCallError(problem)
                            break
                code = compile_(source, filename, "exec")
                last = None
            else:
                body, last = _split_last_expression(transform(source))
                code = compile_(body, filename, "exec")
                last = compile_(last, filename, "eval") if last is not None else None
        except BaseException as error:  # noqa: BLE001 - a cell that does not compile is its error
            refusal, code, last = refusal or error, None, None
        result = None
        if float(timeout) > 0:
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            if refusal is not None:
                raise refusal
            if kind == "test":
                guard = make_guard(frozenset(names), filename)
                settrace(guard)
                thread_settrace(guard)
            exec_(code, namespace)  # type: ignore[arg-type]  # code is None only with a refusal, raised above
            if last is not None:
                result = eval_(last, namespace)
            status = "ok"
        except BaseException as error:  # noqa: BLE001 - every failure is the cell's result
            status = "error"
            failure = error
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            settrace(None)
            thread_settrace(None)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if status == "error":
            try:
                frames = failure.__traceback__
                while frames is not None and not frames.tb_frame.f_code.co_filename.startswith("<cell"):
                    frames = frames.tb_next  # the runner's own frames are not the learner's business
                lines = format_exception(type(failure), failure, frames)
                evalue = str(failure)
            except BaseException:  # noqa: BLE001 - an exception that cannot be printed
                lines, evalue = [], "(the error could not be printed)"
            outputs.append({"output_type": "error", "ename": type(failure).__name__,
                            "evalue": "".join(["", evalue])[:MAX_TEXT],
                            "traceback": ["".join(["", line])[:MAX_TEXT] for line in lines[-20:]]})
            del failure  # drop the exception and its traceback
        elif result is not None:
            try:
                text = repr(result)
            except BaseException:  # noqa: BLE001
                text = "(the value could not be printed)"
            outputs.append({"output_type": "execute_result", "metadata": {}, "execution_count": count,
                            "data": {"text/plain": "".join(["", text])[:MAX_TEXT]}})
        try:
            outputs.extend(_figures())
        except BaseException:  # noqa: BLE001 - figures are output, not the verdict
            pass
        result = None
        send(str(int(index)) + " " + status, outputs)


def _names_used(code: str) -> set[str]:
    """Names that ``code`` uses as modules: the ``x`` of every ``x.attribute``."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.value.id for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}


def _started_by_learner(thread: threading.Thread) -> bool:
    """True when the thread runs code from a notebook cell."""
    target = getattr(thread, "_target", None)
    run = getattr(type(thread), "run", None)
    for function in (target, run):
        code = getattr(function, "__code__", None)
        if code is not None and code.co_filename.startswith("<cell"):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
