"""A long-lived ``nbgrader autograde`` process that grades one submission after another.

``python -m helpers autograde`` used to start one ``python -m nbgrader autograde --student``
process per submission (and per re-run of a faulty one): Python, nbgrader, nbconvert,
SQLAlchemy and the course's ``nbgrader_config.py`` imported again every time. With
:class:`WorkerPool`, each grading job keeps one such process, started as ``python -m
helpers.grading.worker`` in the course root, and sends it the same command line per
submission; the worker runs it with nbgrader's own application, in process, the way
nbgrader's test suite runs its commands (``NbGraderApp.instance()``, ``initialize``,
``start``, ``reset``).

Isolation is unchanged: no learner code ever runs in the worker. It only reads notebooks
as data, as ``nbgrader autograde`` did; every submission's code still runs in its own
sandboxed runner (:mod:`helpers.grading.execute`, :mod:`helpers.grading.sandbox`) made
for that submission: a fresh interpreter, or a process forked for it from the grading
template of the run (:mod:`helpers.grading.template`) into its own new sandbox; the worker
only passes the template's socket path on, in the environment of each request. The worker puts back, after every request, what a run of
nbgrader changes in the process: the environment, ``sys.path``, the working folder and the
application singletons (``reset``).

Protocol (stdin and stdout are the coordinator's): one JSON line per request,
``{"args": [...], "env": {...}}``, answered by one JSON line ``{"code": N, "log": TEXT}``
(the exit code ``nbgrader`` would have had and the end of what it wrote). Everything else
the process writes goes to a per-request log file, never into the protocol.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

#: Characters of a request's log returned to the coordinator (as ``_run_logged`` kept).
LOG_TAIL = 20000
#: Exit code reported when the worker died during a request (no exit code of its own).
DIED = -1


def _run_one(args: list[str], env: dict[str, str]) -> int:
    """Run ``nbgrader ARGS`` in this process with ``env`` as the environment; return the
    exit code ``python -m nbgrader ARGS`` would have had."""
    from jupyter_core.application import NoStart
    from nbgrader.apps.nbgraderapp import NbGraderApp

    saved_env, saved_path, saved_cwd = dict(os.environ), list(sys.path), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    app = NbGraderApp.instance()
    try:
        app.initialize(args)
        app.start()
        code = 0
    except NoStart:  # what NbGraderApp raises after its subcommand ran (nbgrader's tests: 0)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except Exception:  # noqa: BLE001 - reported like nbgrader's own crash: traceback, exit 1
        traceback.print_exc()
        code = 1
    finally:
        try:
            app.reset()
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            sys.path[:] = saved_path
            os.chdir(saved_cwd)
    return code


def main() -> int:
    """Serve requests on stdin until it closes (see the module docstring)."""
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    import nbgrader.apps.nbgraderapp  # noqa: F401 - imported once, before the first request

    for line in protocol_in:
        try:
            request = json.loads(line)
            args = [str(item) for item in request["args"]]
            env = {str(key): str(value) for key, value in request["env"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        with tempfile.TemporaryFile(mode="w+b") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                code = _run_one(args, env)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            log.seek(0)
            text = log.read().decode("utf-8", "replace")[-LOG_TAIL:]
        data = (json.dumps({"code": code, "log": text}) + "\n").encode("utf-8")
        while data:
            data = data[os.write(protocol_out, data):]
    return 0


class Worker:
    """One worker process (started on first use, again after it died or was killed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.buffer = bytearray()

    def _start(self, env: dict[str, str]) -> subprocess.Popen:
        # -m runs with the course root as the working folder and first on sys.path, as
        # `python -m nbgrader` did; the root holds the instructor's files, not a submission's
        return subprocess.Popen([sys.executable, "-m", "helpers.grading.worker"], cwd=self.folder, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def run(self, args: list[str], env: dict[str, str], timeout: float | None,
            timed_out: int) -> tuple[int, str]:
        """Run ``nbgrader ARGS`` in the worker with the environment ``env``.

        Args:
            args: nbgrader's command line (``["autograde", lesson, ...]``).
            env: the complete environment of the run.
            timeout: seconds after which the worker is killed (None: no limit).
            timed_out: the code returned when it was.
        Returns:
            (exit code, end of the log); :data:`DIED` with what is known when the
            worker died during the run.
        """
        if self.process is None or self.process.poll() is not None:
            self.buffer.clear()
            self.process = self._start(env)
        process = self.process
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # _start opens both as pipes
        try:
            stdin.write((json.dumps({"args": args, "env": env}) + "\n").encode("utf-8"))
            stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return DIED, "the grading worker died before the request"
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.close()
                    return timed_out, ""
                if not selector.select(timeout=remaining if remaining is None else min(remaining, 5.0)):
                    continue
                chunk = os.read(stdout.fileno(), 1 << 20)
                if not chunk:
                    code = self.close()
                    return DIED if code is None or code == 0 else code, "the grading worker died"
                self.buffer.extend(chunk)
        cut = self.buffer.index(b"\n")
        line = bytes(self.buffer[:cut])
        del self.buffer[: cut + 1]
        try:
            reply = json.loads(line)
            return int(reply["code"]), str(reply["log"])
        except (ValueError, KeyError, TypeError):
            self.close()
            return DIED, "the grading worker sent an unreadable reply"

    def close(self) -> int | None:
        """End the worker and its process group; return its exit code (None: none)."""
        process, self.process = self.process, None
        if process is None:
            return None
        from helpers.grading import sandbox

        return sandbox.stop_process_group(process, grace_seconds=10)


class WorkerPool:
    """One :class:`Worker` per grading job; :meth:`run` borrows a free one."""

    def __init__(self, folder: Path, jobs: int) -> None:
        self.free = [Worker(folder) for _ in range(max(1, jobs))]
        self.lock = threading.Condition()

    def run(self, args: list[str], env: dict[str, str], timeout: float | None,
            timed_out: int) -> tuple[int, str]:
        """:meth:`Worker.run` on a free worker (waits for one)."""
        with self.lock:
            while not self.free:
                self.lock.wait()
            worker = self.free.pop()
        try:
            return worker.run(args, env, timeout, timed_out)
        finally:
            with self.lock:
                self.free.append(worker)
                self.lock.notify()

    def close(self) -> None:
        """End every worker."""
        with self.lock:
            for worker in self.free:
                worker.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
