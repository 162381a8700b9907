"""The sandbox that grading kernels run in (Linux, bubblewrap).

A student's submission is untrusted code. When ``python -m helpers autograde`` (or a plain
``nbgrader autograde`` in the course root) executes it, the grading runner is started
through :func:`main`, which wraps it (:mod:`helpers.grading_runner`) in ``bwrap``:

* the file system is empty except for what the kernel needs, all read-only: the system
  folders (``/usr``, ``/etc``, ...), the Python installation and its environment, the
  ``helpers`` package and the data folder (generated data sets, trained models);
* writable: the notebook's own folder (nbgrader's scratch copy of the submission,
  ``autograded/<student>/<lesson>/``), the kernel's connection folder, and a fresh home
  folder and data folder of its own (the lessons' run artefacts go there and are deleted
  with it); ``/tmp`` is an empty tmpfs;
* not visible at all: ``answers/``, other submissions, ``gradebook.db``, the nbgrader
  configuration, the rest of the course root and of the home folder;
* no network (a new network namespace; the kernel talks to nbgrader over Unix sockets in
  its connection folder), its own PID namespace (it cannot signal nbgrader), and it dies
  with its parent.

Where bubblewrap cannot run (macOS, Windows, no user namespaces, package missing),
:func:`check_available` raises :class:`SandboxUnavailable` with what is missing; the
grading commands stop rather than grade unsandboxed, unless the instructor passes
``--no-sandbox`` (environment variable ``UNET_COURSE_NO_SANDBOX=1``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: Set to 1 to grade without a sandbox (the instructor accepts the risk).
NO_SANDBOX_VARIABLE = "UNET_COURSE_NO_SANDBOX"

#: Added to the course kernel's settings for the grading runner: nbgrader scores a test cell that
#: writes anything to stderr 0, so Python warnings and text progress bars stay quiet.
GRADING_ENV = {"PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}

_HELPERS_DIR = Path(__file__).resolve().parent
_SYSTEM_FOLDERS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot isolate a kernel on this machine; the message says why and what to do."""


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
    """Folders the kernel's interpreter imports from: the installation, the environment,
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


def scratch_data_dir(real_data: Path, scratch: Path) -> Path:
    """A writable data folder for one kernel: links to every data set of ``real_data``
    (read-only in the sandbox) and a copy of the trained lesson-04 model of each runs
    folder (lesson 05 loads it); the lessons write their own run artefacts here."""
    target = scratch / "data"
    target.mkdir(parents=True, exist_ok=True)
    if not real_data.is_dir():
        return target
    for entry in real_data.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.name.startswith("runs"):
            model = entry / "04_training" / "best.keras"
            if model.is_file():
                (target / entry.name / "04_training").mkdir(parents=True, exist_ok=True)
                shutil.copy2(model, target / entry.name / "04_training" / "best.keras")
            continue
        link = target / entry.name
        if not link.exists():
            link.symlink_to(entry.resolve())
    return target


def bwrap_command(inner: list[str], workdir: Path, connection_dir: Path, scratch: Path,
                  data_dir: Path) -> list[str]:
    """The ``bwrap`` command line that runs ``inner`` isolated (see the module docstring).

    Args:
        inner: the command to run inside, e.g. ``[python, "-m", "helpers.grading_kernel", ...]``.
        workdir: the notebook's folder (writable, the working directory).
        connection_dir: folder of the kernel's connection file and Unix sockets (writable).
        scratch: a fresh folder for the kernel's home and data folder (writable).
        data_dir: the course's data folder (read-only).
    Returns:
        The argument list, starting with the path of ``bwrap``.
    """
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    data = scratch_data_dir(data_dir, scratch)
    roots = _python_roots()
    # /tmp first: mounts are made in order, and a tmpfs laid over /tmp after the binds would
    # hide an environment or a course that lives under /tmp (a CI clone, say).
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--tmpfs", "/tmp", *_system_binds()]
    for root in roots:
        if not _covered(root, [Path(f) for f in _SYSTEM_FOLDERS if Path(f).is_dir()]):
            args += ["--ro-bind", str(root), str(root)]
    if data_dir.is_dir():
        args += ["--ro-bind", str(data_dir.resolve()), str(data_dir.resolve())]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if Path("/sys").is_dir():
        args += ["--ro-bind", "/sys", "/sys"]
    for folder in (scratch, connection_dir, workdir):
        folder = folder.resolve()
        args += ["--bind", str(folder), str(folder)]
    environment = {
        "HOME": str(home), "TMPDIR": "/tmp", "MPLCONFIGDIR": str(home / ".matplotlib"),
        "KERAS_HOME": str(home / ".keras"), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(connection_dir.resolve()), "UNET_COURSE_DATA": str(data),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for key, value in environment.items():
        args += ["--setenv", key, value]
    # The kernel would watch this PID, which its own PID namespace does not have, and quit;
    # --die-with-parent ends it with the launcher instead.
    args += ["--unsetenv", "JPY_PARENT_PID"]
    args += ["--chdir", str(workdir.resolve()), "--", *inner]
    return args


#: Python code that drops the working folder from ``sys.path`` before importing anything
#: else: the launcher and the runner start in the submission's folder, where a ``helpers/``
#: or ``json.py`` must not shadow the course's modules.
_SAFE_START = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
               "from {module} import main; sys.exit(main())")


def launcher_command(scratch: Path) -> list[str]:
    """The command that starts :mod:`helpers.grading_runner` inside the sandbox (through
    :func:`main`), with ``scratch`` as the folder of its home and data folder."""
    return [sys.executable, "-c", _SAFE_START.format(module="helpers.sandbox"), "--runner",
            "--scratch", str(scratch)]


def remove_scratch(scratch: Path) -> None:
    """Delete a scratch folder made for a runner (files the sandbox made read-only too)."""
    shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Launcher: ``... --runner --scratch FOLDER`` (see :func:`launcher_command`).

    Starts :mod:`helpers.grading_runner` inside bubblewrap (or directly when the sandbox
    was switched off with ``UNET_COURSE_NO_SANDBOX=1``), with its standard input and output
    (the grader's pipes), waits for it, and removes its scratch folder. Returns the
    runner's exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--runner" not in argv or "--scratch" not in argv:
        print("error: usage: python -m helpers.sandbox --runner --scratch FOLDER", file=sys.stderr)
        return 2
    scratch = Path(argv[argv.index("--scratch") + 1]).resolve()
    inner = [sys.executable, "-c", _SAFE_START.format(module="helpers.grading_runner")]
    if sandbox_disabled():
        return subprocess.call(inner)
    try:
        check_available()
    except SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    from helpers import config

    scratch.mkdir(parents=True, exist_ok=True)
    try:
        command = bwrap_command(inner, Path.cwd(), scratch, scratch, config.data_dir())
        return subprocess.call(command)
    finally:
        remove_scratch(scratch)


if __name__ == "__main__":
    sys.exit(main())
