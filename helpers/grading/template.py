"""The grading template: a process that has imported what the runner imports, and forks a
fresh runner into every submission's sandbox (about 10 s of imports saved per submission).

Every sandboxed runner (:mod:`helpers.grading.runner`) used to import NumPy, TensorFlow,
Keras and every lesson module of ``helpers`` before its first cell. ``python -m helpers
autograde`` now starts one template per grading run (:func:`running`), outside the
sandbox, as trusted code: it makes exactly those imports (no TensorFlow op, no learner
code, ever), then listens on a unix socket in a private folder (mode 0700) that no
sandbox can see. Its environment is the one a runner would get (the allowed variables of
:func:`helpers.grading.sandbox.sandbox_environment`, its own home), so the libraries read
the same settings at import.

Per submission the launcher (:func:`helpers.grading.sandbox.main`) still starts ``bwrap``
exactly as before (same binds, tmpfs, environment, namespaces, ``--cap-drop ALL``), with a
placeholder as the sandboxed command, and then asks the template (:func:`run_forked`),
passing the runner's standard input, output and error over the socket (``SCM_RIGHTS``).
The template checks that the request comes from a process of its own user whose ``bwrap``
started the named sandbox, and forks. The single-threaded child (outside the sandbox,
trusted code only):

1. compares the requested environment with its own: a variable that the libraries read
   at import differs -> refused (the launcher then starts a fresh runner);
2. joins the sandbox's namespaces with ``setns``: the user namespace that owns them, then
   mount, IPC, UTS, network, PID and cgroup, then the sandbox's own (nested) user
   namespace;
3. changes to the submission's working copy, drops every capability (bounding set,
   ambient set, ``capset`` to zero; ``PR_SET_NO_NEW_PRIVS``) and checks that none is left;
4. forks the runner, which is therefore a member of the sandbox's PID namespace (it dies
   with the sandbox, sees only the sandbox's processes, and cannot see or signal the
   template or this child); the runner starts a new session, dies with this child
   (``PR_SET_PDEATHSIG``), keeps only its three standard descriptors, takes the sandbox's
   environment and ``sys.argv``, draws new seeds for ``random`` and NumPy, and calls
   :func:`helpers.grading.sandbox.runner_main` (the rlimits, then the runner);
5. tells the launcher the runner's PID (the :class:`helpers.grading.sandbox.Watchdog`
   watches its process tree besides ``bwrap``'s) and, later, its exit code.

What differs from a freshly started runner, seen from inside: the placeholder is PID 2 and
the runner PID 3, with no parent in the namespace (``getppid() == 0``);
``/proc/self/cmdline`` is the template's ``python -c`` command; ``/proc/self/environ`` shows the template's starting environment (the same allowed
variables, a home outside the sandbox) rather than the runner's; the modules were imported
with the template's home (Keras' configuration folder, Matplotlib's cache); every runner of
a grading run has the same hash seed (``PYTHONHASHSEED`` is drawn once per process).

Where the template is unavailable (plain ``nbgrader autograde``, ``autograde(template=False)``, a
notebook that needs no ``helpers``: the NumPy-only runner is fast anyway, ``bwrap`` without
``--info-fd``, ``setns`` refused, a differing environment), the launcher starts a fresh
runner as before and writes why into the grading trace (``{"event": "runner", "forked":
false, "reason": ...}``) and nbgrader's log.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn

from helpers.grading import sandbox

#: The template's socket (a host path; never passed into the sandbox).
TEMPLATE_VARIABLE = "UNET_COURSE_GRADING_TEMPLATE"
#: Variables the sandbox sets per submission (folders of its scratch, the limits): they may
#: differ between the template and a runner; every other variable must be equal.
_PER_SANDBOX = frozenset({"PWD", "HOME", "TMPDIR", "MPLCONFIGDIR", "KERAS_HOME", "IPYTHONDIR",
                          "JUPYTER_RUNTIME_DIR", "UNET_COURSE_DATA", "PYTHONDONTWRITEBYTECODE",
                          *sandbox.Limits().environment()})
#: The runner's "import everything" switch (:data:`helpers.grading.guard.PRELOAD_VARIABLE`).
_PRELOAD_VARIABLE = "UNET_COURSE_GRADING_PRELOAD"
#: Namespaces joined, in this order, after the user namespace that owns them.
_NAMESPACES = ("mnt", "ipc", "uts", "net", "pid", "cgroup")
_NS_GET_USERNS = 0xB701
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 1, 24, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPABILITY_VERSION_3 = 0x20080522
_MAX_REQUEST = 1 << 20
_STARTUP_SECONDS = 600.0

#: ``python -c`` code of the template: sys.path as the runner's (:data:`sandbox._RUNNER_CODE`).
_TEMPLATE_CODE = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
                  "sys.path.insert(0, {parent!r}); "
                  "from helpers.grading.template import main; main(sys.argv[1])")


class TemplateError(sandbox.ForkUnavailable):
    """The template cannot run this submission; the message says why (a fresh runner does)."""

    quiet = False


# --- the template process ---------------------------------------------------------------


def _import_like_the_runner() -> None:
    """What :func:`helpers.grading.runner.main` imports before any cell (preload on)."""
    import warnings

    warnings.simplefilter("ignore")
    sys.dont_write_bytecode = True
    os.environ.setdefault("MPLBACKEND", "Agg")
    from helpers.grading import guard
    from helpers.grading import runner  # noqa: F401 - the runner's own module

    guard.import_all_helpers()
    import math  # noqa: F401
    import numpy.testing  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401


def main(socket_path: str) -> NoReturn:
    """The template (started by :func:`running`): import, listen on ``socket_path``, fork a
    runner per request until the socket's folder is removed or stdin closes.

    Args:
        socket_path: where to listen (in a folder of mode 0700).
    """
    started_environment = dict(os.environ)  # before the libraries add to it
    _import_like_the_runner()
    # what the imports set (HDF5_PLUGIN_PATH, ...): a runner that imports them has it too
    imported_environment = {key: value for key, value in os.environ.items()
                            if started_environment.get(key) != value and key != "MPLBACKEND"}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(16)
    os.write(1, b"ready\n")
    while True:
        _reap_children()
        ready, _, _ = select.select([server.fileno(), 0], [], [], 1.0)
        if 0 in ready and not os.read(0, 1):  # the grading run ended
            os._exit(0)
        if server.fileno() not in ready:
            continue
        try:
            connection, _ = server.accept()
        except OSError:
            continue
        try:
            _serve(server, connection, started_environment, imported_environment)
        except (OSError, ValueError, TemplateError) as error:
            _send(connection, {"error": f"template: {error}"})
        finally:
            connection.close()


def _reap_children() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _send(connection: socket.socket, message: dict) -> None:
    try:
        connection.sendall((json.dumps(message) + "\n").encode("utf-8"))
    except OSError:
        pass


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        text = handle.read()
    return int(text[text.rfind(b")") + 2:].split()[1])


def _serve(server: socket.socket, connection: socket.socket, environment: dict[str, str],
           imported: dict[str, str]) -> None:
    """Read one request and fork the child that joins its sandbox (see the module docstring)."""
    connection.settimeout(30)
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    peer_pid, peer_uid, _gid = struct.unpack("3i", credentials)
    if peer_uid != os.getuid():
        raise TemplateError(f"request from user {peer_uid}, not {os.getuid()}")
    descriptors: list[int] = []
    data, ancillary, _flags, _address = connection.recvmsg(_MAX_REQUEST, socket.CMSG_SPACE(3 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            descriptors += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
    try:
        request = json.loads(data.decode("utf-8"))
        if len(descriptors) != 3:
            raise TemplateError(f"{len(descriptors)} descriptors instead of 3")
        target = int(request["pid"])
        # the sandbox's first process is bwrap's child, and that bwrap the requester's
        if _parent_pid(_parent_pid(target)) != peer_pid:
            raise TemplateError(f"process {target} is not a sandbox of the requesting launcher")
        child = os.fork()
        if child == 0:
            server.detach()
            _child(connection, request, descriptors, environment, imported, target)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def _setns(descriptor: int, name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(descriptor, 0) != 0:
        raise TemplateError(f"setns({name}) refused: {os.strerror(ctypes.get_errno())}")


def _drop_capabilities() -> None:
    """No capability left, in any set, and none to gain (as ``bwrap --cap-drop ALL``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for number in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, number, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise TemplateError(f"cannot drop capability {number}: {os.strerror(ctypes.get_errno())}")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise TemplateError(f"capset refused: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise TemplateError("PR_SET_NO_NEW_PRIVS refused")
    check = (ctypes.c_uint32 * 6)()
    if libc.capget(header, check) != 0 or any(check):
        raise TemplateError("capabilities are left after dropping them")


def _join(target: int) -> None:
    """Join the namespaces of the sandbox whose first process is ``target`` (see the module
    docstring); raises TemplateError when one is refused."""
    own = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name in (*_NAMESPACES, "user")}
    handles = {name: os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY) for name in (*_NAMESPACES, "user")}
    try:
        owner = fcntl.ioctl(handles["mnt"], _NS_GET_USERNS)
    except OSError as error:
        raise TemplateError(f"cannot find the sandbox's user namespace: {error}") from None
    handles["owner"] = owner
    try:
        current_user = own["user"]
        for name in ("owner", *_NAMESPACES, "user"):
            inode = os.fstat(handles[name]).st_ino
            if name in ("owner", "user"):
                if inode != current_user:
                    _setns(handles[name], name)
                    current_user = inode
            elif inode != own[name]:
                _setns(handles[name], name)
            elif name in ("mnt", "pid", "net"):
                raise TemplateError(f"the sandbox shares this process's {name} namespace")
    finally:
        for handle in handles.values():
            os.close(handle)


def _child(connection: socket.socket, request: dict, descriptors: list[int],
           environment: dict[str, str], imported: dict[str, str], target: int) -> NoReturn:
    """The forked child: join, drop, fork the runner, report (see the module docstring)."""
    try:
        wanted = {str(key): str(value) for key, value in request["env"].items()}
        differing = sorted(key for key in set(wanted) | set(environment)
                           if key not in _PER_SANDBOX and wanted.get(key) != environment.get(key))
        if differing:
            raise TemplateError("the template was started with another environment ("
                                + ", ".join(differing[:5]) + ")")
        _join(target)
        os.chdir(str(request["cwd"]))
        os.umask(int(request["umask"]))
        _drop_capabilities()
        runner = os.fork()
        if runner == 0:
            _runner(connection, descriptors, {**wanted, **imported})
        for descriptor in descriptors:
            os.close(descriptor)
        _send(connection, {"pid": runner})
        _pid, status = os.waitpid(runner, 0)
        _send(connection, {"code": os.waitstatus_to_exitcode(status)})
        os._exit(0)
    except BaseException as error:  # noqa: BLE001 - reported to the launcher, which starts a fresh runner
        _send(connection, {"error": f"template: {error}"})
        os._exit(1)


def _runner(connection: socket.socket, descriptors: list[int], environment: dict[str, str]) -> NoReturn:
    """The runner, inside the sandbox's namespaces: its descriptors, session, environment and
    seeds, then :func:`helpers.grading.sandbox.runner_main`."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setsid()
        for number, descriptor in enumerate(descriptors):
            os.dup2(descriptor, number)
        connection.detach()
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.environ.clear()
        os.environ.update(environment)
        # tempfile caches the folder it first chose (the template's TMPDIR, a host folder
        # the sandbox does not have): choose again, from the sandbox's TMPDIR
        tempfile.tempdir = None
        sys.argv[:] = ["-c"]  # as a fresh runner's (the template's held its socket path)
        import random

        import numpy

        random.seed()
        numpy.random.seed()
    except BaseException:  # noqa: BLE001 - nothing to report to: the launcher sees the exit code
        os._exit(70)
    sandbox.runner_main()


# --- the grading run's side -------------------------------------------------------------


def template_environment(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """The template's environment: what :func:`helpers.grading.sandbox.bwrap_command` gives
    a runner when the launcher's environment is ``base``, with ``home`` as its folders.

    Args:
        base: the launchers' environment.
        home: the template's own home folder (outside any sandbox).
    Returns:
        The environment to start the template with.
    """
    own = {"HOME": str(home), "TMPDIR": str(home), "MPLCONFIGDIR": str(home / ".matplotlib"),
           "KERAS_HOME": str(home / ".keras"), "IPYTHONDIR": str(home / ".ipython"),
           "PYTHONDONTWRITEBYTECODE": "1", _PRELOAD_VARIABLE: "1"}
    return sandbox.sandbox_environment(base, own)


@contextlib.contextmanager
def running(base: Mapping[str, str], log: Path | None = None) -> Iterator[str | None]:
    """Start a template for a grading run whose launchers will have the environment ``base``;
    yield its socket path (None, with a warning, when it could not start), stop it after.

    Args:
        base: the launchers' environment (for the variables the libraries read at import).
        log: where its standard error goes (default: discarded).
    Yields:
        The value for :data:`TEMPLATE_VARIABLE`, or None.
    """
    folder = Path(tempfile.mkdtemp(prefix="unet-course-template-"))
    os.chmod(folder, 0o700)
    (folder / "home").mkdir()
    path = folder / "socket"
    command = [sys.executable, "-c", _TEMPLATE_CODE.format(parent=str(sandbox._HELPERS_DIR.parent)), str(path)]
    process = None
    try:
        with open(log or os.devnull, "ab") as errors:
            process = subprocess.Popen(command, env=template_environment(base, folder / "home"), cwd=folder,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                       start_new_session=True)
        assert process.stdout is not None  # started with stdout=PIPE
        ready, _, _ = select.select([process.stdout], [], [], _STARTUP_SECONDS)
        if not ready or process.stdout.readline() != b"ready\n":
            print("warning: the grading template did not start; every runner imports its libraries "
                  f"itself (see {log or 'its log'})", file=sys.stderr)
            yield None
        else:
            yield str(path)
    finally:
        if process is not None:
            sandbox.stop_process_group(process, grace_seconds=5)
        shutil.rmtree(folder, ignore_errors=True)


class _Joined:
    """The launcher's view of a runner forked into its sandbox (:class:`sandbox.JoinedRunner`)."""

    def __init__(self, connection: socket.socket, pid: int, buffer: bytearray) -> None:
        self.connection, self.pid, self.buffer = connection, pid, buffer
        self.code: int | None = None

    def wait(self, timeout: float | None) -> int | None:
        """The runner's exit code, or None when it still runs after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.code is None:
            if b"\n" in self.buffer:
                line, _, rest = bytes(self.buffer).partition(b"\n")
                self.buffer[:] = rest
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    self.code = int(json.loads(line)["code"])
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.connection], [], [], remaining)
            if not ready:
                return None
            try:
                chunk = self.connection.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:  # the template's child is gone: so is the runner (PR_SET_PDEATHSIG)
                self.code = -signal.SIGKILL
            self.buffer.extend(chunk)
        return self.code


def _read_line(connection: socket.socket, buffer: bytearray, deadline: float) -> dict:
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([connection], [], [], max(0.0, remaining))
        if not ready:
            raise TemplateError("no answer from the template")
        chunk = connection.recv(65536)
        if not chunk:
            raise TemplateError("the template closed the connection")
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    answer = json.loads(line)
    if "error" in answer:
        raise TemplateError(str(answer["error"]))
    return answer


def _placeholder() -> list[str]:
    """The sandboxed command while the runner is forked in: says it started, then waits."""
    return [sys.executable, "-I", "-S", "-c", "import os; os.write(1, b'started\\n'); os.read(0, 1)"]


def unavailable_reason(environ: Mapping[str, str]) -> str:
    """Why a submission gets a fresh runner rather than a forked one.

    Args:
        environ: the launcher's environment.
    Returns:
        The reason, or "" when the runner can be forked from the template.
    """
    if not environ.get(TEMPLATE_VARIABLE):
        return "no grading template (plain nbgrader autograde, or autograde(template=False))"
    if environ.get(_PRELOAD_VARIABLE, "1") == "0":
        return "the notebook needs no helpers (the NumPy-only runner starts in a fraction of a second)"
    if "--info-fd" not in sandbox._bwrap_options():
        return "this bwrap has no --info-fd"
    return ""


def _start_forked(workdir: Path, scratch: Path, data_dir: Path, limits: sandbox.Limits) -> int:
    """The launcher's way to a forked runner: :func:`run_forked`, unless
    :func:`unavailable_reason` says why not (:class:`helpers.grading.sandbox.ForkUnavailable`)."""
    reason = unavailable_reason(os.environ)
    if reason:
        raise sandbox.ForkUnavailable(reason)
    return run_forked(workdir, scratch, data_dir, limits)


def launch(argv: list[str] | None = None) -> int:
    """The grading launcher (:func:`helpers.grading.sandbox.launcher_command` starts it):
    :func:`helpers.grading.sandbox.main`, which forks the runner from the run's template
    where there is one. The launcher enters here, not in the sandbox module, because this
    module builds on that one.

    Args:
        argv: the launcher's arguments (default: ``sys.argv[1:]``).
    Returns:
        The runner's exit code.
    """
    return sandbox.main(argv, start_forked=_start_forked)


def run_forked(workdir: Path, scratch: Path, data_dir: Path, limits: sandbox.Limits) -> int:
    """The launcher's forked path: ``bwrap`` with the placeholder, the runner forked in by the
    template named in :data:`TEMPLATE_VARIABLE`, the watchdog over both.

    Args:
        workdir: the notebook's folder (the launcher's working folder).
        scratch: the runner's scratch folder.
        data_dir: the course's data folder.
        limits: the sandbox's limits.
    Returns:
        The runner's exit code.
    Raises:
        TemplateError: before any learner code ran, when the template cannot serve this
            submission (the caller starts a fresh runner, in a new sandbox).
    """
    socket_path = os.environ[TEMPLATE_VARIABLE]
    command = sandbox.bwrap_command(_placeholder(), workdir, scratch, scratch, data_dir, limits=limits)
    info_read, info_write = os.pipe()
    command[1:1] = ["--info-fd", str(info_write)]
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    process = subprocess.Popen(command, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=err_write, pass_fds=[info_write])
    os.close(info_write)
    connection = None
    handed_over = False
    try:
        deadline = time.monotonic() + 120
        raw = b""
        while True:  # bwrap writes the JSON and closes the descriptor before the command starts
            ready, _, _ = select.select([info_read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(info_read, 65536) if ready else b""
            if not chunk:
                break
            raw += chunk
        assert process.stdout is not None  # started with stdout=PIPE
        started, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not started or process.stdout.readline() != b"started\n":
            raise TemplateError("the sandbox did not start its placeholder")
        try:
            target = int(json.loads(raw)["child-pid"])
        except (ValueError, KeyError, TypeError):
            raise TemplateError(f"bwrap's --info-fd said {raw[:200]!r}") from None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(socket_path)
        environment = dict(_setenv_pairs(command), PWD=str(workdir.resolve()))  # bwrap sets PWD too
        request = json.dumps({"pid": target, "env": environment, "cwd": str(workdir.resolve()),
                              "umask": _current_umask()}).encode("utf-8")
        connection.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        struct.pack("3i", 0, out_write, err_write))])
        connection.shutdown(socket.SHUT_WR)
        buffer = bytearray()
        answer = _read_line(connection, buffer, time.monotonic() + 60)
        joined = _Joined(connection, int(answer["pid"]), buffer)
        handed_over = True
        sandbox.trace_runner(True, "")
        os.close(out_write)
        os.close(err_write)
        out_write = err_write = -1
        watchdog = sandbox.Watchdog(limits, [scratch])
        # the relays own (and close) the read ends
        outputs = (open(out_read, "rb", buffering=0), open(err_read, "rb", buffering=0))
        out_read = err_read = -1
        return watchdog.run(process, joined=joined, outputs=outputs)
    except (OSError, ValueError, KeyError, TypeError) as error:
        if handed_over:
            raise
        raise TemplateError(str(error)) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for descriptor in (info_read, out_read, out_write, err_read, err_write):
            if descriptor >= 0:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
        if connection is not None:
            connection.close()


def _setenv_pairs(command: list[str]) -> dict[str, str]:
    """The environment that a ``bwrap`` command line gives its command (``--setenv``)."""
    environment: dict[str, str] = {}
    index = 0
    while index < len(command) and command[index] != "--":
        if command[index] == "--setenv" and index + 2 < len(command):
            environment[command[index + 1]] = command[index + 2]
            index += 3
        else:
            index += 1
    return environment


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
