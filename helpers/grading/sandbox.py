"""The sandbox that grading runs in (Linux, bubblewrap), and its resource limits.

A student's submission is untrusted code. When ``python -m helpers autograde`` (or a plain
``nbgrader autograde`` in the course root) executes it, nbgrader's Execute step
(:mod:`helpers.grading.execute`) starts the launcher :func:`main` (outside the sandbox) in
the notebook's folder; the launcher wraps the grading runner (:mod:`helpers.grading.runner`)
in ``bwrap``, relays its standard output and error, and watches it.

**What the runner sees.** The file system is empty except for what it needs:

* read-only: the system folders (``/usr``, ``/etc``, ...), the Python installation and its
  environment, the ``helpers`` package and the data folder (generated data sets, trained
  models); the sandbox's own root and ``/dev`` are read-only too;
* writable, all of it thrown away when the runner ends: a **private copy** of the
  notebook's folder (the regular files and folders of nbgrader's
  ``autograded/<student>/<lesson>/``, without the notebooks, whose graded version holds the
  hidden tests), mounted at that folder's path, so relative paths work and a cell can write
  files there; a fresh home folder and data folder (the lessons' run artefacts go there),
  both in the launcher's scratch folder; ``/tmp`` and ``/dev/shm``, small tmpfs;
* not visible at all: ``answers/``, other submissions, ``gradebook.db``, the nbgrader
  configuration, the rest of the course root and of the home folder, and nbgrader's real
  ``autograded/`` folder.

So the runner cannot write into any folder that nbgrader, outside the sandbox, later
writes, reads or copies from (``autograded/``, ``feedback/``): a symbolic link it makes
beside its notebook lives in the private copy and is deleted with it. :mod:`helpers.grading`
copies submissions with :func:`copy_regular_files` (symbolic links, FIFOs, sockets and
devices are dropped and noted) and checks nbgrader's outputs afterwards.

**Processes and modules.** No network (a new network namespace; the runner talks to the
grader over its standard input and output), its own PID namespace (it cannot signal the
grader), no capabilities, and it dies with the launcher. No process outside the sandbox
ever has the submission's folder on ``sys.path``: the launcher runs as ``python -I -c
...``. Isolated mode keeps the working folder (the submission's) off ``sys.path`` and
ignores ``PYTHON*`` variables; dropping ``''`` by hand is not enough, since ``site`` makes a
relative ``PYTHONPATH`` entry such as ``.`` absolute, i.e. the submission's folder; ``-P``
keeps ``PYTHONPATH`` but exists only from Python 3.11, and the course supports 3.10. As
isolation also drops ``PYTHONPATH``, the launcher's code puts this ``helpers`` package's
parent folder first on ``sys.path`` itself: the same ``helpers`` that built the command
is the one imported. Inside, the runner is started as ``python -c ...`` (``-m`` would put
the working folder first): its first statement drops ``''`` from ``sys.path``, then the
read-only ``helpers`` go first; a student's ``helpers/`` or ``json.py`` is never imported
by the grading machinery.

**The grading template.** Under ``python -m helpers autograde`` the runner of a notebook
that uses ``helpers`` is not started as a new interpreter: the launcher starts ``bwrap``
exactly as above, with a placeholder as its command, and asks the run's grading template
(:mod:`helpers.grading.template`, started once per run outside the sandbox, which has
imported what the runner imports and nothing else) to fork a runner into that sandbox: the
child joins the sandbox's namespaces (``setns``), drops every capability and forks the
runner inside its PID namespace. The :class:`Watchdog` watches that runner's process tree
besides ``bwrap``'s, and kills the sandbox when it ends. The runner sees the same file
system, environment, capabilities and network; its PID is 3 rather than 2 (the placeholder
is 2) and it has no parent in the namespace. Where the template cannot serve, a fresh
runner starts as described here, and the grading trace says why.

**Environment.** The runner starts from an empty environment (``bwrap --clearenv``, and
``bwrap`` itself is started with an empty one, so not even ``/proc/1/environ`` in the
sandbox shows the grader's). Passed on from the launcher's environment, by name: ``PATH``,
``LANG``, ``LANGUAGE``, ``TZ``, ``LC_*``; the course's ``UNET_COURSE_*`` (except
``UNET_COURSE_GRADING_TRACE``, a host path); ``PYTHONPATH`` (absolute entries only),
``PYTHONWARNINGS``, ``PYTHONHASHSEED``, ``PYTHONIOENCODING``, ``PYTHONUTF8``,
``TQDM_DISABLE``, ``MPLBACKEND``, ``KERAS_BACKEND``; TensorFlow's ``TF_CPP_MIN_LOG_LEVEL``,
``TF_CPP_MAX_VLOG_LEVEL``, ``TF_CPU_ALLOCATOR_USE_BFC``, ``TF_ENABLE_ONEDNN_OPTS``,
``TF_NUM_INTEROP_THREADS``, ``TF_NUM_INTRAOP_THREADS``, ``TF_DETERMINISTIC_OPS``,
``TF_USE_LEGACY_KERAS`` (not ``TF_*`` as a whole: Terraform's ``TF_VAR_*`` carry secrets);
threading ``OMP_*``, ``KMP_*``, ``MKL_NUM_THREADS``, ``MKL_DYNAMIC``,
``OPENBLAS_NUM_THREADS``, ``BLIS_NUM_THREADS``, ``GOTO_NUM_THREADS``,
``NUMEXPR_NUM_THREADS``, ``NUMEXPR_MAX_THREADS``, ``VECLIB_MAXIMUM_THREADS``. Set by the
sandbox: ``HOME``, ``TMPDIR``, ``MPLCONFIGDIR``, ``KERAS_HOME``, ``IPYTHONDIR``,
``JUPYTER_RUNTIME_DIR``, ``UNET_COURSE_DATA``, ``PYTHONDONTWRITEBYTECODE`` and the limits
below. Everything else (tokens, cloud keys, ``JPY_PARENT_PID``, ...) stays outside. So put
no secret in a ``UNET_COURSE_*`` variable.

**Limits.** The launcher polls the sandbox's process tree (``/proc``) and its writable
folders, and counts the bytes it relays; when one limit is exceeded it kills the whole
sandbox and appends ``{"event": "limit", "limit": NAME, ...}`` to the grading trace
(``UNET_COURSE_GRADING_TRACE``), so that :mod:`helpers.grading` replaces the cell that was
running and names the limit in the report. None of this runs inside the sandbox, so no
cell can switch it off. Each limit is an environment variable of the grader (sizes take
``K``/``M``/``G`` suffixes; ``0`` switches a limit off):

============================== ======= ====================================================
variable                       default what is counted
============================== ======= ====================================================
UNET_COURSE_GRADING_MEMORY     4G      resident memory (anonymous and shared) of all the
                                       sandbox's processes; TensorFlow's large virtual
                                       reservations do not count (no ``RLIMIT_AS``)
UNET_COURSE_GRADING_PROCESSES  128     processes in the sandbox
UNET_COURSE_GRADING_THREADS    1024    threads in the sandbox (at least 16 per CPU core)
UNET_COURSE_GRADING_DISK       2G      what the runner adds to its writable folders,
                                       ``/tmp`` and ``/dev/shm`` (every file or folder
                                       counts its blocks plus 1 KiB)
UNET_COURSE_GRADING_OUTPUT     64M     bytes the runner writes to its standard output (the
                                       replies to the grader) and error (nbgrader's log)
============================== ======= ====================================================

Polling is not instantaneous: a fast allocation can overshoot the memory limit by what it
allocates in 0.2 s (the disk is measured every second). Backstops inside the sandbox:
``/tmp`` and ``/dev/shm`` are capped at the disk limit, one file at the disk limit
(``RLIMIT_FSIZE``), core dumps are off, and on Linux 5.14 or later, where it counts per
user namespace, ``RLIMIT_NPROC`` caps tasks a little above the thread limit (root ignores
it). nbgrader's ``LimitOutput`` alone does not bound output: it trims what is *saved*,
by lines, after the notebook ran, when a runaway cell's output has already reached the
grader (and a gigabyte on one line is one line); the runner trims each cell's text and
figures, and the grader refuses more than 64 MB for one cell, but what a cell writes to
the runner's standard error, or straight to a file descriptor, only this launcher counts.

Where bubblewrap cannot run (macOS, Windows, no user namespaces, package missing),
:func:`check_available` raises :class:`SandboxUnavailable` with what is missing; the
grading commands stop rather than grade unsandboxed, unless the instructor passes
``--no-sandbox`` (environment variable ``UNET_COURSE_NO_SANDBOX=1``); the limits still
apply then.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, NoReturn, Protocol
from pathlib import Path

#: Set to 1 to grade without a sandbox (the instructor accepts the risk).
NO_SANDBOX_VARIABLE = "UNET_COURSE_NO_SANDBOX"
#: The grading trace (the same name as :data:`helpers.grading.commands.TRACE_VARIABLE`; not
#: imported from there, so that the launcher imports as little as possible).
TRACE_VARIABLE = "UNET_COURSE_GRADING_TRACE"

#: Added to the course kernel's settings for the grading runner: nbgrader scores a test cell that
#: writes anything to stderr 0, so Python warnings and text progress bars stay quiet.
GRADING_ENV = {"PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}

#: The ``helpers`` package root (this file is helpers/grading/sandbox.py): bound read-only
#: into the sandbox, and its parent goes first on the runner's ``sys.path``.
_HELPERS_DIR = Path(__file__).resolve().parents[1]
_SYSTEM_FOLDERS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# --- environment ------------------------------------------------------------------------

#: Variables passed into the sandbox by name (see the module docstring).
_ENV_NAMES = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ",
    "PYTHONPATH", "PYTHONWARNINGS", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8",
    "TQDM_DISABLE", "MPLBACKEND", "KERAS_BACKEND",
    "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC",
    "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS",
    "TF_DETERMINISTIC_OPS", "TF_USE_LEGACY_KERAS",
    "MKL_NUM_THREADS", "MKL_DYNAMIC", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
    "GOTO_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS",
})
#: ... and by prefix.
_ENV_PREFIXES = ("LC_", "UNET_COURSE_", "OMP_", "KMP_")
#: Never passed, although a prefix matches.
_ENV_EXCLUDED = frozenset({TRACE_VARIABLE, NO_SANDBOX_VARIABLE, "UNET_COURSE_GRADING_TEMPLATE"})


def sandbox_environment(base: Mapping[str, str], own: dict[str, str] | None = None) -> dict[str, str]:
    """The grading runner's environment: the allowed variables of ``base`` (see the module
    docstring; ``PYTHONPATH`` keeps its absolute entries only, since a relative one would
    be read from the submission's folder) and then ``own``, the sandbox's settings."""
    env = {key: value for key, value in base.items()
           if (key in _ENV_NAMES or key.startswith(_ENV_PREFIXES)) and key not in _ENV_EXCLUDED}
    if "PYTHONPATH" in env:
        entries = [entry for entry in env["PYTHONPATH"].split(os.pathsep) if os.path.isabs(entry)]
        if entries:
            env["PYTHONPATH"] = os.pathsep.join(entries)
        else:
            del env["PYTHONPATH"]
    env.setdefault("PATH", os.defpath)
    env.update(own or {})
    return env


# --- limits -----------------------------------------------------------------------------

MEMORY_VARIABLE = "UNET_COURSE_GRADING_MEMORY"
PROCESSES_VARIABLE = "UNET_COURSE_GRADING_PROCESSES"
THREADS_VARIABLE = "UNET_COURSE_GRADING_THREADS"
DISK_VARIABLE = "UNET_COURSE_GRADING_DISK"
OUTPUT_VARIABLE = "UNET_COURSE_GRADING_OUTPUT"

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _parse_size(text: str, variable: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise ValueError(f"{variable}={text!r} is not a size: use e.g. 4G, 512M or 0 (no limit).")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _parse_count(text: str, variable: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"{variable}={text!r} is not a whole number (0: no limit).")
    return int(text)


def format_size(value: int) -> str:
    """``4294967296`` -> ``"4 GiB"``."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value} bytes"


@dataclass(frozen=True)
class Limits:
    """What one grading runner may use (0: no limit); see the module docstring."""

    memory: int = 4 * 2**30
    processes: int = 128
    threads: int = max(1024, 16 * (os.cpu_count() or 1))
    disk: int = 2 * 2**30
    output: int = 64 * 2**20

    _VARIABLES = {"memory": MEMORY_VARIABLE, "processes": PROCESSES_VARIABLE,
                  "threads": THREADS_VARIABLE, "disk": DISK_VARIABLE, "output": OUTPUT_VARIABLE}
    _SIZES = ("memory", "disk", "output")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits that ``environ`` (default: ``os.environ``) sets, defaults elsewhere.
        Raises ValueError naming the variable when a value cannot be read."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, variable in cls._VARIABLES.items():
            raw = environ.get(variable, "").strip()
            if raw:
                values[name] = (_parse_size if name in cls._SIZES else _parse_count)(raw, variable)
        return cls(**values)

    def describe(self, name: str) -> str:
        """``"memory limit (4 GiB)"``: how the report names a limit."""
        value = getattr(self, name)
        amount = format_size(value) if name in self._SIZES else f"{value} {name}"
        return f"{name} limit ({amount})"

    def environment(self) -> dict[str, str]:
        """The limits as environment variables (what the runner is told inside)."""
        return {variable: str(getattr(self, name)) for name, variable in self._VARIABLES.items()}


# --- availability -----------------------------------------------------------------------


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot isolate the grading runner on this machine; the message says why and what to do."""


def sandbox_disabled() -> bool:
    """True when the instructor asked to grade without a sandbox (``--no-sandbox``)."""
    return os.environ.get(NO_SANDBOX_VARIABLE, "").strip() not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=1)
def _probe() -> str:
    """Empty when ``bwrap`` isolates a trivial command here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return (f"the grading sandbox needs Linux with bubblewrap; this is {sys.platform}. "
                f"Grade on a Linux machine or in a Linux container")
    binary = shutil.which("bwrap")
    if binary is None:
        return ("bubblewrap is not installed (no `bwrap` on PATH): install it, e.g. "
                "`sudo apt-get install bubblewrap` (Debian/Ubuntu) or `sudo dnf install bubblewrap`")
    command = [binary, *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--unshare-all",
               "--die-with-parent", "--new-session", "true"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`bwrap` could not be started ({error})"
    if completed.returncode:
        detail = completed.stderr.strip().splitlines()[-1:] or ["no message"]
        return (f"`bwrap` cannot create namespaces here ({detail[0]}); enable unprivileged user "
                f"namespaces (sysctl kernel.unprivileged_userns_clone=1) or grade as root in a VM")
    return ""


@functools.lru_cache(maxsize=1)
def _bwrap_options() -> frozenset[str]:
    """The options this ``bwrap`` knows (``--size`` and ``--clearenv`` are recent)."""
    try:
        text = subprocess.run([shutil.which("bwrap") or "bwrap", "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"^\s+(--[a-z-]+)", text, re.M))


def check_available() -> None:
    """Raise :class:`SandboxUnavailable` unless bubblewrap works here or the sandbox was
    switched off on purpose (``UNET_COURSE_NO_SANDBOX=1``, i.e. ``--no-sandbox``)."""
    if sandbox_disabled():
        return
    reason = _probe()
    if reason:
        raise SandboxUnavailable(
            f"Cannot grade safely: {reason}. Without the sandbox a submission runs with your "
            f"permissions and can read the hidden tests in answers/ and gradebook.db, rewrite "
            f"scores, edit helpers/ for every later student or kill the grader. To accept that "
            f"risk (e.g. inside a throw-away container), pass --no-sandbox.")


# --- files ------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def describe_entry(path: Path) -> str:
    """``" -> TARGET: symbolic link"``, ``": named pipe (FIFO)"``, ...: what ``path`` is,
    to follow its name in a message (a link is read, never followed)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return ": gone"
    if stat.S_ISLNK(mode):
        try:
            return f" -> {os.readlink(path)}: symbolic link"
        except OSError:
            return ": symbolic link"
    if stat.S_ISDIR(mode):
        return ": folder"
    if stat.S_ISREG(mode):
        return ": file"
    return f": {_kind(mode)}"


def copy_regular_files(source: Path, target: Path, skip_names: set[str] | frozenset[str] = frozenset(),
                       skip_suffixes: tuple[str, ...] = ()) -> list[str]:
    """Copy the folders and regular files below ``source`` into ``target`` (replaced when
    it exists) and nothing else: symbolic links (never followed), FIFOs, sockets and
    devices are left out. Returns one line per entry left out (``"data/key -> ../x:
    symbolic link, not copied"``). Entries named in ``skip_names`` or ending in one of
    ``skip_suffixes`` are skipped silently. ``source`` itself may be reached through a
    link; nothing below it is. Files are opened without following links and checked
    after opening, so swapping a file for a link while it is copied does not help."""
    remove_path(target)
    target.mkdir(parents=True)
    dropped: list[str] = []
    root = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _copy_folder(root, target, "", dropped, skip_names, skip_suffixes)
    finally:
        os.close(root)
    return dropped


def _copy_folder(folder: int, target: Path, prefix: str, dropped: list[str],
                 skip_names, skip_suffixes) -> None:
    with os.scandir(folder) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        if name in skip_names or name.endswith(skip_suffixes):
            continue
        shown = prefix + name
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except OSError as error:
            dropped.append(f"{shown}: unreadable ({error.strerror}), not copied")
            continue
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as error:
                dropped.append(f"{shown}: unreadable folder ({error.strerror}), not copied")
                continue
            try:
                (target / name).mkdir()
                _copy_folder(child, target / name, shown + "/", dropped, skip_names, skip_suffixes)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            try:
                # O_NONBLOCK: a FIFO swapped in after the stat must not block the open
                handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
            except OSError as error:
                dropped.append(f"{shown}: unreadable ({error.strerror}), not copied")
                continue
            with open(handle, "rb") as reader:
                opened = os.fstat(reader.fileno())
                if not stat.S_ISREG(opened.st_mode):
                    dropped.append(f"{shown}: {_kind(opened.st_mode)}, not copied")
                    continue
                with open(target / name, "xb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
            os.utime(target / name, ns=(opened.st_atime_ns, opened.st_mtime_ns))
        else:
            detail = ""
            if stat.S_ISLNK(info.st_mode):
                try:
                    detail = " -> " + os.readlink(name, dir_fd=folder)
                except OSError:
                    pass
            dropped.append(f"{shown}{detail}: {_kind(info.st_mode)}, not copied")


def remove_path(path: Path) -> bool:
    """Remove ``path`` whatever it is (a folder with its content, a file, a link: the link
    itself, never its target); True when something was there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def irregular_entries(folder: Path) -> list[Path]:
    """Everything below ``folder`` (and ``folder`` itself) that is neither a folder nor a
    regular file: links, FIFOs, sockets, devices. Links are not followed."""
    found = []
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(info.st_mode):
        return [folder] if not stat.S_ISREG(info.st_mode) else []
    for parent, folders, files in os.walk(folder):  # os.walk does not descend into links
        for name in folders + files:
            path = Path(parent) / name
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                found.append(path)
    return sorted(found)


# --- the sandbox ------------------------------------------------------------------------


def _system_binds() -> list[str]:
    """Read-only binds of the system folders (a symlink such as /lib -> usr/lib is kept)."""
    args: list[str] = []
    for folder in _SYSTEM_FOLDERS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    return args


def _python_roots() -> list[Path]:
    """Folders the runner's interpreter imports from: the installation, the environment,
    site-packages outside them, and the helpers package itself (an editable install)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), _HELPERS_DIR}
    for entry in sys.path:
        if not entry:
            continue
        path = Path(entry).resolve()
        if path.is_dir() and ("site-packages" in path.parts or "dist-packages" in path.parts):
            roots.add(path)
    # An interpreter reached through a symlink (a venv's python -> /usr/bin/python3.11).
    roots.add(Path(os.path.realpath(sys.executable)).parent)
    return sorted(roots, key=lambda p: (len(p.parts), str(p)))


def _covered(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 5.0) -> int | None:
    """Close ``process``'s pipes, give it ``grace_seconds`` to exit, then kill its whole
    process group (it was started with ``start_new_session``); returns its exit code."""
    for stream in (process.stdin, process.stdout):
        if stream is None:
            continue
        try:
            stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return process.wait()


def scratch_data_dir(real_data: Path, scratch: Path) -> Path:
    """A writable data folder for one runner: links to every data set of ``real_data``
    (read-only in the sandbox) and a copy of each runs folder's artefacts that a lesson takes
    from an earlier one (``helpers.course.RUN_ARTEFACTS``: lesson 04's model, which lesson 05
    loads); the lessons write their own run artefacts here."""
    from helpers import course

    target = scratch / "data"
    target.mkdir(parents=True, exist_ok=True)
    if not real_data.is_dir():
        return target
    for entry in real_data.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.name.startswith("runs"):
            for artefact in course.RUN_ARTEFACTS:        # e.g. 04_training/best.keras for lesson 05
                source = entry / artefact
                if source.is_file():
                    (target / entry.name / artefact).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target / entry.name / artefact)
            continue
        link = target / entry.name
        if not link.exists():
            link.symlink_to(entry.resolve())
    return target


#: Not copied into the runner's private working folder: nbgrader's notebooks (the graded
#: one holds the hidden tests; the runner gets its cells from the grader, not the file).
_PRIVATE_SKIP_NAMES = frozenset({".ipynb_checkpoints", "__pycache__"})
_PRIVATE_SKIP_SUFFIXES = (".ipynb",)


def private_work_copy(workdir: Path, scratch: Path) -> Path:
    """``scratch/work``: the runner's own copy of the regular files and folders of
    ``workdir`` (no notebooks, no links), which the sandbox mounts at ``workdir``'s path."""
    target = scratch / "work"
    if not target.is_dir():
        copy_regular_files(workdir, target, _PRIVATE_SKIP_NAMES, _PRIVATE_SKIP_SUFFIXES)
    return target


def bwrap_command(inner: list[str], workdir: Path, connection_dir: Path, scratch: Path,
                  data_dir: Path, *, limits: Limits | None = None,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``inner`` isolated (see the module docstring).

    Args:
        inner: the command to run inside, e.g. :func:`runner_command`.
        workdir: the notebook's folder, the working directory; the runner sees (and may
            change) a private copy of it, ``scratch/work``, never the folder itself.
        connection_dir: a folder the runner may write besides (the scratch folder itself
            when there is none).
        scratch: a fresh folder for the runner's home, data folder and working copy.
        data_dir: the course's data folder (read-only).
        limits: sizes of ``/tmp`` and ``/dev/shm`` (the disk limit) and the limits the
            runner is told (default: from the environment).
        environ: where the allowed variables come from (default: ``os.environ``).
    Returns:
        The argument list, starting with the path of ``bwrap``. Start it with an empty
        environment, as :func:`main` does: the command sets the runner's.
    """
    limits = limits or Limits.from_environment()
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    data = scratch_data_dir(data_dir, scratch)
    work = private_work_copy(workdir, scratch)
    roots = _python_roots()
    options = _bwrap_options()
    tmpfs_size = ["--size", str(limits.disk)] if limits.disk and "--size" in options else []
    # /tmp first: mounts are made in order, and a tmpfs laid over /tmp after the binds would
    # hide an environment or a course that lives under /tmp (a CI clone, say).
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL"]
    if "--clearenv" in options:
        args.append("--clearenv")
    args += [*tmpfs_size, "--tmpfs", "/tmp", *_system_binds()]
    for root in roots:
        if not _covered(root, [Path(f) for f in _SYSTEM_FOLDERS if Path(f).is_dir()]):
            args += ["--ro-bind", str(root), str(root)]
    if data_dir.is_dir():
        args += ["--ro-bind", str(data_dir.resolve()), str(data_dir.resolve())]
    args += ["--proc", "/proc", "--dev", "/dev", *tmpfs_size, "--tmpfs", "/dev/shm"]
    if Path("/sys").is_dir():
        args += ["--ro-bind", "/sys", "/sys"]
    bound: list[Path] = []
    for folder in (scratch.resolve(), connection_dir.resolve()):
        if not _covered(folder, bound):
            args += ["--bind", str(folder), str(folder)]
            bound.append(folder)
    args += ["--bind", str(work.resolve()), str(workdir.resolve())]
    # nothing more can be made in the sandbox's root tmpfs or in /dev (memory no limit sees)
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    own = {
        "HOME": str(home), "TMPDIR": "/tmp", "MPLCONFIGDIR": str(home / ".matplotlib"),
        "KERAS_HOME": str(home / ".keras"), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(connection_dir.resolve()), "UNET_COURSE_DATA": str(data),
        "PYTHONDONTWRITEBYTECODE": "1", **limits.environment(),
    }
    for key, value in sorted(sandbox_environment(os.environ if environ is None else environ, own).items()):
        args += ["--setenv", key, value]
    args += ["--chdir", str(workdir.resolve()), "--", *inner]
    return args


# --- the commands: launcher outside, runner inside ----------------------------------------

#: ``python -I -c`` code of the launcher: isolated mode keeps the working folder (the
#: submission's) and PYTHONPATH off sys.path; this package's parent goes first instead.
_LAUNCHER_CODE = ("import sys; sys.path.insert(0, {parent!r}); "
                  "from helpers.grading.template import launch; sys.exit(launch())")
#: ``python -c`` code of the runner: the working folder ('' for -c) leaves sys.path before
#: anything is imported, and the read-only helpers go first.
_RUNNER_CODE = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
                "sys.path.insert(0, {parent!r}); "
                "from helpers.grading.sandbox import runner_main; sys.exit(runner_main())")


def launcher_command(scratch: Path) -> list[str]:
    """The command that starts :mod:`helpers.grading.runner` inside the sandbox (through
    :func:`main`, this interpreter in isolated mode, this very ``helpers`` package), with
    ``scratch`` as the folder of its home, data folder and working copy."""
    return [sys.executable, "-I", "-c", _LAUNCHER_CODE.format(parent=str(_HELPERS_DIR.parent)),
            "--runner", "--scratch", str(scratch)]


def runner_command() -> list[str]:
    """The command that starts the grading runner (inside the sandbox)."""
    return [sys.executable, "-c", _RUNNER_CODE.format(parent=str(_HELPERS_DIR.parent))]


def remove_scratch(scratch: Path) -> None:
    """Delete a scratch folder made for a runner, also where the runner took away the
    write permission of its folders (links are removed, never followed)."""
    if not os.path.lexists(scratch):
        return
    try:
        remove_path(scratch)
        return
    except OSError:
        pass
    for parent, folders, _files in os.walk(scratch):
        for name in [".", *folders]:
            path = os.path.join(parent, name)
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    os.chmod(path, 0o700)
            except OSError:
                continue
    shutil.rmtree(scratch, ignore_errors=True)


def _apply_rlimits(limits: Limits) -> None:
    """Backstops inside the sandbox: no core dumps, no file over the disk limit, and, where
    the kernel counts it per user namespace (Linux 5.14+), tasks a little above the thread
    limit."""
    import resource

    def lower(which: int, value: int) -> None:
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    lower(resource.RLIMIT_CORE, 0)
    if limits.disk:
        lower(resource.RLIMIT_FSIZE, limits.disk)
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if limits.threads and release and tuple(map(int, release.groups())) >= (5, 14):
        lower(resource.RLIMIT_NPROC, limits.threads + limits.processes + 64)


def runner_main() -> NoReturn:
    """Inside the sandbox (started by :func:`runner_command`): the resource backstops, then
    :func:`helpers.grading.runner.main` of the read-only ``helpers``; ends the process with
    its exit code (``os._exit``) rather than returning."""
    try:
        limits = Limits.from_environment()
    except ValueError as error:
        print(f"grading runner: {error}; using the default limits", file=sys.stderr)
        limits = Limits()
    _apply_rlimits(limits)
    from helpers.grading import runner as grading_runner

    code = grading_runner.main()
    # Every verdict has been written (os.write, unbuffered). End here: the interpreter's
    # clean-up takes seconds with TensorFlow loaded (the grader used to wait 5 s and then
    # kill the runner), and would run what a submission registered with atexit.
    os._exit(code)


# --- the watchdog -----------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, int]]:
    """PID -> (parent PID, number of threads) of every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        fields = text[text.rfind(b")") + 2:].split()
        try:
            table[int(name)] = (int(fields[1]), int(fields[17]))
        except (IndexError, ValueError):
            continue
    return table


def process_tree(root: int) -> dict[int, int]:
    """PID -> number of threads of ``root`` and all its descendants (a PID namespace keeps
    every process of the sandbox below its first process)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _threads) in table.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in tree or pid not in table:
            continue
        tree[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return tree


def _resident_bytes(pid: int) -> int:
    """Anonymous and shared-memory resident bytes of ``pid`` (mapped files, such as
    TensorFlow's libraries, are page cache and not counted)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith((b"RssAnon:", b"RssShmem:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return total


_ENTRY_BYTES = 1024


def folder_bytes(folder: Path, stop_at: int | None = None) -> int:
    """Disk used below ``folder``: allocated blocks plus 1 KiB per file or folder (so that
    a million empty files count too); links are not followed. Stops counting past
    ``stop_at``."""
    total, todo = 0, [str(folder)]
    while todo:
        try:
            with os.scandir(todo.pop()) as listing:
                for entry in listing:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512 + _ENTRY_BYTES
                    if stat.S_ISDIR(info.st_mode):
                        todo.append(entry.path)
        except OSError:
            continue
        if stop_at is not None and total > stop_at:
            break
    return total


def _tmpfs_bytes(path: str) -> int:
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    return (info.f_blocks - info.f_bfree) * info.f_frsize + (info.f_files - info.f_ffree) * _ENTRY_BYTES


def record_limit(name: str, limits: Limits, measured: str) -> None:
    """Append ``{"event": "limit", ...}`` to the grading trace (when there is one) and
    say it on stderr (nbgrader's log)."""
    described = limits.describe(name)
    print(f"grading sandbox: the runner exceeded the {described}: {measured}; stopped",
          file=sys.stderr, flush=True)
    _append_trace({"event": "limit", "limit": name, "detail": described, "measured": measured})


def _append_trace(record: dict) -> None:
    """Append ``record``, stamped with the time, to the grading trace named by
    :data:`TRACE_VARIABLE` (nothing when there is none; a write error is said on stderr)."""
    path = os.environ.get(TRACE_VARIABLE)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**record, "time": time.time()}) + "\n")
    except OSError as error:
        print(f"grading sandbox: cannot write the trace {path}: {error}", file=sys.stderr)


class JoinedRunner(Protocol):
    """A runner that joined a sandbox from outside it (:mod:`helpers.grading.template`)."""

    #: Its PID (in this process's PID namespace).
    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """Its exit code once it ended (negative: the signal), else None after ``timeout``
        seconds (None: wait as long as it runs)."""


class Watchdog:
    """Watches a running sandbox and kills it when it passes one of ``limits``; see the
    module docstring.

    ``folders`` are its writable folders on disk; with ``sandboxed``, its ``/tmp`` and
    ``/dev/shm`` are measured too (through ``/proc/PID/root``). What the folders hold when
    the watchdog is made (the working copy) does not count: make it before starting the
    process, then :meth:`run` it with the process (``bwrap``, or the runner when
    unsandboxed), whose standard output and error are pipes that :meth:`run` relays to
    the file descriptors ``streams`` (this process's own) and counts.
    """

    def __init__(self, limits: Limits, folders: list[Path], sandboxed: bool = True,
                 interval: float = 0.2, disk_interval: float = 1.0,
                 streams: tuple[int, int] = (1, 2)) -> None:
        self.limits, self.folders, self.streams = limits, folders, streams
        self.sandboxed, self.interval, self.disk_interval = sandboxed, interval, disk_interval
        self.baseline = sum(folder_bytes(folder) for folder in folders)
        #: The name of the limit that stopped the process, if one did.
        self.exceeded: str | None = None
        self.process: subprocess.Popen | None = None
        self._relayed = 0
        self._lock = threading.Lock()
        # Set when run() returns: a relay thread still draining a pipe (a grandchild holding it
        # open) must not write to, or redirect, ``streams`` after that, since those descriptor
        # numbers may by then belong to other files of this process.
        self._stopped = False
        #: Seconds :meth:`run` waits for the relays once the process has ended.
        self.relay_timeout = 10.0
        self._disk_checked = 0.0
        #: A runner forked from the grading template into this sandbox (not a descendant of
        #: ``bwrap``): watched, counted and killed with it (:meth:`run`'s ``joined``).
        self.joined: JoinedRunner | None = None

    def _roots(self) -> list[int]:
        """The PIDs whose process trees are the sandbox: ``bwrap``, and a joined runner."""
        assert self.process is not None, "run() sets the process"
        return [self.process.pid] + ([self.joined.pid] if self.joined is not None else [])

    def _tree(self) -> dict[int, int]:
        """PID -> threads of every process of the sandbox (see :meth:`_roots`)."""
        tree: dict[int, int] = {}
        for root in self._roots():
            tree.update(process_tree(root))
        return tree

    def check(self) -> tuple[str, str] | None:
        """``(limit name, what was measured)`` when a limit is exceeded now, else None."""
        assert self.process is not None, "run() sets the process"
        limits = self.limits
        if limits.output and self._relayed > limits.output:
            return "output", f"{format_size(self._relayed)} written"
        tree = self._tree()
        if limits.processes and len(tree) > limits.processes:
            return "processes", f"{len(tree)} processes"
        threads = sum(tree.values())
        if limits.threads and threads > limits.threads:
            return "threads", f"{threads} threads"
        if limits.memory:
            memory = sum(_resident_bytes(pid) for pid in tree)
            if memory > limits.memory:
                return "memory", f"{format_size(memory)} resident"
        now = time.monotonic()
        if limits.disk and now - self._disk_checked >= self.disk_interval:
            self._disk_checked = now
            used = sum(folder_bytes(folder, self.baseline + limits.disk) for folder in self.folders)
            used -= self.baseline
            inside = next((pid for pid in sorted(tree) if pid != self.process.pid), None)
            if self.sandboxed and inside is not None:
                used += sum(_tmpfs_bytes(f"/proc/{inside}/root{mount}") for mount in ("/tmp", "/dev/shm"))
            if used > limits.disk:
                return "disk", f"{format_size(used)} written"
        return None

    def kill(self) -> None:
        """SIGKILL the sandbox and every process in it."""
        assert self.process is not None, "run() sets the process"
        for pid in [self.process.pid, *self._roots(), *self._tree()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _relay(self, source, target: int) -> None:
        """Copy ``source`` (a pipe of the process) to the file descriptor ``target``,
        counting the bytes; past the output limit, read and drop. Then point ``target``
        at /dev/null when it is the standard output: the grader sees the end at once."""
        limit = self.limits.output
        with source:
            while True:
                try:
                    chunk = os.read(source.fileno(), 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    self._relayed += len(chunk)
                    if self._stopped or (limit and self._relayed > limit):
                        continue  # read and drop
                    try:
                        while chunk:
                            chunk = chunk[os.write(target, chunk):]
                    except OSError:
                        pass  # the reader is gone: keep draining, the process is stopped elsewhere
        with self._lock:
            if target == self.streams[0] and not self._stopped:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, target)
                os.close(devnull)

    @staticmethod
    def _reap(process: subprocess.Popen, joined: JoinedRunner | None) -> int:
        """Wait for a killed sandbox; the exit code of its runner."""
        code = process.wait()
        if joined is not None:
            joined_code = joined.wait(10.0)
            code = -signal.SIGKILL if joined_code is None else joined_code
        return code

    def run(self, process: subprocess.Popen, joined: JoinedRunner | None = None,
            outputs: tuple[BinaryIO, BinaryIO] | None = None) -> int:
        """Relay the output and watch ``process`` until it ends; return its exit code.

        Args:
            process: ``bwrap`` (or the runner itself when unsandboxed).
            joined: a runner forked from the grading template into ``process``'s sandbox;
                then the watch ends when that runner ends, the sandbox is killed at that
                point (as it ends with its first process today), and its exit code is
                returned.
            outputs: the read ends of the runner's standard output and error, when they
                are not ``process``'s own pipes.
        Returns:
            The exit code of the runner (negative: the signal that killed it).
        """
        self.process, self.joined = process, joined
        streams = outputs if outputs is not None else (process.stdout, process.stderr)
        relays = [threading.Thread(target=self._relay, args=(stream, fd), daemon=True)
                  for stream, fd in zip(streams, self.streams) if stream is not None]
        for relay in relays:
            relay.start()
        parent = os.getppid()
        code = None
        while code is None:
            if joined is not None:
                code = joined.wait(self.interval)
                if code is not None:
                    self.kill()  # what the runner left behind ends with it, as with bwrap's first process
                    process.wait()
                    break
            else:
                try:
                    code = process.wait(timeout=self.interval)
                    break
                except subprocess.TimeoutExpired:
                    pass
            if os.getppid() != parent:  # the grader is gone: so is the runner
                self.kill()
                code = self._reap(process, joined)
                break
            found = self.check()
            if found:
                self.exceeded = found[0]
                record_limit(found[0], self.limits, found[1])
                self.kill()
                code = self._reap(process, joined)
        for relay in relays:
            relay.join(timeout=self.relay_timeout)
        with self._lock:
            self._stopped = True
        return code


def trace_runner(forked: bool, reason: str) -> None:
    """Append ``{"event": "runner", "forked": ..., "reason": ...}`` to the grading trace
    (when there is one): whether the runner was forked from the grading template, and if
    not, why.

    Args:
        forked: True when the runner was forked from the template.
        reason: why it was not ("" when it was).
    """
    _append_trace({"event": "runner", "forked": forked, "reason": reason})


class ForkUnavailable(RuntimeError):
    """No runner can be forked into this sandbox (the message says why); a fresh one starts.
    ``quiet``: whether the launcher says nothing but the grading trace's record."""

    quiet = True


#: How :func:`main` forks a runner into its sandbox: ``(workdir, scratch, data_dir,
#: limits) -> exit code``, raising :class:`ForkUnavailable` where it cannot
#: (:func:`helpers.grading.template.launch` passes its own).
ForkedStart = Callable[[Path, Path, Path, "Limits"], int]


def main(argv: list[str] | None = None, start_forked: ForkedStart | None = None) -> int:
    """Launcher: ``... --runner --scratch FOLDER`` (see :func:`launcher_command`).

    Starts :mod:`helpers.grading.runner` inside bubblewrap (forked from the grading
    template where :func:`helpers.grading.template.unavailable_reason` allows it, else a
    fresh interpreter; directly when the sandbox was switched off with
    ``UNET_COURSE_NO_SANDBOX=1``) with the grader's standard input,
    relays its standard output and error, kills it at a limit (:class:`Watchdog`), waits
    for it, and removes its scratch folder. Returns the runner's exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--runner" not in argv or "--scratch" not in argv[:-1]:
        print("error: usage: python -m helpers.grading.sandbox --runner --scratch FOLDER", file=sys.stderr)
        return 2
    scratch = Path(argv[argv.index("--scratch") + 1]).resolve()
    try:
        limits = Limits.from_environment()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    inner = runner_command()
    sandboxed = not sandbox_disabled()
    if sandboxed:
        try:
            check_available()
        except SandboxUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
    from helpers import config

    scratch.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    process = None
    try:
        if sandboxed:
            reason = "no grading template (this launcher forks no runner)"
            if start_forked is not None:
                try:
                    return start_forked(Path.cwd(), scratch, config.data_dir(), limits)
                except ForkUnavailable as error:
                    reason = str(error)
                    if not error.quiet:
                        print(f"grading sandbox: starting a fresh runner ({reason})", file=sys.stderr, flush=True)
            trace_runner(False, reason)
        if sandboxed:
            command = bwrap_command(inner, Path.cwd(), scratch, scratch, config.data_dir(), limits=limits)
            environment: dict[str, str] = {}  # the command sets the runner's environment
            watchdog = Watchdog(limits, [scratch])
        else:
            command = inner
            environment = dict(os.environ, **limits.environment())
            watchdog = Watchdog(limits, [scratch, Path.cwd()], sandboxed=False)
        process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        return watchdog.run(process)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        remove_scratch(scratch)


if __name__ == "__main__":
    sys.exit(main())
