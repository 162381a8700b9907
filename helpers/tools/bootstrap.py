"""Find or build the Python environment the course runs in; standard library only.

``python -m helpers <command>`` may start on a bare Python (no numpy, no TensorFlow).
:func:`ensure_environment` returns the interpreter of an environment that has the course
installed, creating the repository's ``.venv`` on first use, and :func:`reexec_inside`
runs the command again inside it. The rules, in order:

1. The running Python must satisfy ``requires-python`` of ``pyproject.toml`` (and have
   the tar extraction filters that the data code uses): checked before anything is built.
2. Which environment:

   * the repository's ``.venv`` (running inside it, or no environment active): used;
     created when missing, and rebuilt when half-built (no interpreter, or no pip, as a
     Debian Python without ``python3-venv`` leaves it);
   * the conda environment of ``environment.yml`` (``unet-course``): used, and counted as
     installed when every declared package is present (``conda env create`` installed
     them), so no network is needed;
   * any other active environment -- conda ``base``, another project's venv -- is used
     only when it already has everything installed; otherwise it is refused, unless the
     user passes ``--use-current-env`` (then the course installs into it).

3. Installation: ``pip install -e .[test] -c constraints.txt`` when the environment has
   not seen this ``pyproject.toml`` yet (a marker file records it). pip itself is upgraded
   only in the ``.venv`` the course created. ``UNET_COURSE_SKIP_INSTALL=1`` skips the
   installation (offline machines, hand-made environments); ``UNET_COURSE_UNPINNED=1``
   installs without the constraints file.

Nothing here imports a third-party package, so the commands work on any Python.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The repository: the folder above the ``helpers`` package (this file is helpers/tools/bootstrap.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = REPO_ROOT / "pyproject.toml"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
VENV_DIR = REPO_ROOT / ".venv"

#: Set in the environment of a command re-run inside the course environment: the
#: bootstrap is done, run the command itself.
BOOTSTRAPPED = "UNET_COURSE_BOOTSTRAPPED"
#: Set (to anything non-empty) to skip ``pip install``: offline or hand-made environments.
SKIP_INSTALL = "UNET_COURSE_SKIP_INSTALL"
#: Set to install without ``constraints.txt`` (the newest versions pyproject.toml allows).
UNPINNED = "UNET_COURSE_UNPINNED"
#: Command-line flag: install into the active environment even if the course did not make it.
USE_CURRENT_ENV = "--use-current-env"
#: File in an environment's folder recording which pyproject.toml was installed into it.
MARKER = ".unet-course-installed"
#: Name of the course's conda environment (``name:`` of environment.yml).
CONDA_ENV_NAME = "unet-course"
#: The distribution name of the course (``[project] name`` of pyproject.toml).
DISTRIBUTION = "unet-course"


class BootstrapError(RuntimeError):
    """The environment cannot be used or built; the message says why and what to do."""


# ------------------------------------------------------------------- Python version

def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def requires_python(pyproject: Path = PYPROJECT) -> str:
    """The ``requires-python`` specifier of ``pyproject`` (e.g. ``">=3.10.12,<3.13"``)."""
    match = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
    if not match:
        raise BootstrapError(f"{pyproject} has no requires-python line; restore it from git.")
    return match.group(1)


def python_satisfies(specifier: str, version: tuple[int, ...]) -> bool:
    """True when ``version`` (``(3, 11, 7)``) meets every clause of ``specifier``
    (``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=`` with dotted versions, comma-separated)."""
    for clause in specifier.split(","):
        match = re.fullmatch(r"\s*(>=|<=|==|!=|>|<)\s*([\d.]+)\s*", clause)
        if not match:
            raise BootstrapError(f"Cannot read the requires-python clause {clause!r} in {PYPROJECT}.")
        op, bound = match.group(1), _version_tuple(match.group(2))
        # compare on as many parts as the bound names: "<3.13" excludes 3.13.1 too
        have = tuple(version[:len(bound)]) + (0,) * (len(bound) - len(version))
        ok = {">=": have >= bound, ">": have > bound, "<=": have <= bound, "<": have < bound,
              "==": have == bound, "!=": have != bound}[op]
        if not ok:
            return False
    return True


def check_python(version: tuple[int, ...] | None = None, has_tar_filter: bool | None = None) -> None:
    """Raise :class:`BootstrapError` unless the running Python meets ``requires-python``
    and has ``tarfile``'s extraction filters (Python 3.10.12, 3.11.4 or newer)."""
    version = tuple(sys.version_info[:3]) if version is None else version
    shown = ".".join(map(str, version))
    specifier = requires_python()
    if not python_satisfies(specifier, version):
        raise BootstrapError(
            f"This is Python {shown} ({sys.executable}), but the course needs Python {specifier} "
            f"(requires-python in {PYPROJECT.name}). Run the command with a Python in that range, "
            f"e.g. `python3.11 -m helpers ...`.")
    has_tar_filter = hasattr(tarfile, "data_filter") if has_tar_filter is None else has_tar_filter
    if not has_tar_filter:
        raise BootstrapError(
            f"Python {shown} lacks the safe tar extraction filters (tarfile.data_filter, added in "
            f"3.10.12 and 3.11.4) that the data downloads use: update Python to a newer patch release.")


# ------------------------------------------------------------------- environments

@dataclass(frozen=True)
class Environment:
    """Where a command would run: the environment's folder, its interpreter and its kind
    (``course-venv``, ``course-conda``, ``conda-base``, ``foreign`` or ``none``)."""

    prefix: Path
    python: Path
    kind: str

    @property
    def created_by_course(self) -> bool:
        return self.kind == "course-venv"


def venv_python(env_dir: Path) -> Path:
    """The interpreter of the virtual environment in ``env_dir``."""
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def _same_path(a: Path | str, b: Path | str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def current_environment(prefix: str | None = None, base_prefix: str | None = None,
                        environ: Mapping[str, str] | None = None,
                        executable: str | None = None) -> Environment:
    """Classify the environment of the running interpreter (arguments for tests)."""
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = getattr(sys, "base_prefix", sys.prefix) if base_prefix is None else base_prefix
    environ = os.environ if environ is None else environ
    python = Path(sys.executable if executable is None else executable)
    if _same_path(prefix, VENV_DIR):
        return Environment(Path(prefix), python, "course-venv")
    is_venv = not _same_path(prefix, base_prefix)
    conda_prefix = environ.get("CONDA_PREFIX")
    is_conda = (Path(prefix) / "conda-meta").is_dir() or bool(
        conda_prefix and _same_path(conda_prefix, prefix))
    if is_venv:
        return Environment(Path(prefix), python, "foreign")
    if is_conda:
        name = environ.get("CONDA_DEFAULT_ENV", "") if conda_prefix and _same_path(conda_prefix, prefix) else ""
        name = name or Path(prefix).name
        in_envs = Path(prefix).parent.name == "envs"
        if name == CONDA_ENV_NAME or (in_envs and Path(prefix).name == CONDA_ENV_NAME):
            return Environment(Path(prefix), python, "course-conda")
        if name == "base" or not in_envs:
            return Environment(Path(prefix), python, "conda-base")
        return Environment(Path(prefix), python, "foreign")
    return Environment(Path(prefix), python, "none")


#: The extras that ``python -m helpers setup`` installs (``test`` pulls in ``lab`` and ``instructor``).
INSTALL_EXTRAS = ("lab", "instructor", "test")


def declared_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """Distribution names of ``dependencies`` and of the extras in :data:`INSTALL_EXTRAS`
    of ``pyproject`` whose environment marker applies to the running Python (the course's
    own name, which an extra uses to pull in the others, is left out)."""
    text = pyproject.read_text()
    names = []
    blocks = "|".join(("dependencies", *INSTALL_EXTRAS))
    for block in re.findall(rf'^(?:{blocks})\s*=\s*\[(.*?)^\]', text, re.MULTILINE | re.DOTALL):
        for item in re.findall(r'"([^"]+)"', block):
            if item.startswith(DISTRIBUTION + "["):
                continue
            requirement, _, marker = item.partition(";")
            marker_match = re.search(r"python_version\s*<\s*'([\d.]+)'", marker)
            if marker_match and not sys.version_info[:2] < _version_tuple(marker_match.group(1))[:2]:
                continue
            name = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip())
            if name is None:
                raise ValueError(f"{pyproject}: {item!r} does not start with a distribution name")
            names.append(name.group(0))
    return names


def missing_distributions(names: list[str] | None = None) -> list[str]:
    """Which of ``names`` (default: every declared requirement and the course itself) are
    not installed in the running interpreter (read from package metadata, nothing imported)."""
    names = declared_requirements() + [DISTRIBUTION] if names is None else names
    missing = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


# ------------------------------------------------------------------- installation

def install_fingerprint(python_version: str | None = None) -> str:
    """Hash of pyproject.toml, constraints.txt and the Python version: what an install covers."""
    digest = hashlib.sha256(PYPROJECT.read_bytes())
    if CONSTRAINTS.is_file():
        digest.update(CONSTRAINTS.read_bytes())
    digest.update((sys.version if python_version is None else python_version).encode())
    return digest.hexdigest()


def is_installed(env_dir: Path) -> bool:
    """True when ``env_dir`` holds the marker of an install of this pyproject.toml."""
    marker = env_dir / MARKER
    try:
        return marker.read_text().strip() == install_fingerprint()
    except OSError:
        return False


def mark_installed(env_dir: Path) -> None:
    (env_dir / MARKER).write_text(install_fingerprint() + "\n")


def venv_is_healthy(env_dir: Path, run=subprocess.run) -> bool:
    """True when ``env_dir`` is a complete virtual environment: ``pyvenv.cfg``, a working
    interpreter and pip (a Debian Python without python3-venv leaves neither pip nor,
    sometimes, the interpreter)."""
    python = venv_python(env_dir)
    if not (env_dir / "pyvenv.cfg").is_file() or not python.exists():
        return False
    probe = run([str(python), "-m", "pip", "--version"], capture_output=True, text=True)
    return probe.returncode == 0


def create_venv(env_dir: Path, builder=None) -> Path:
    """Create (or rebuild) the virtual environment ``env_dir`` with pip; returns its
    interpreter. A half-built folder is removed first."""
    if env_dir.exists():
        print(f"Rebuilding the incomplete virtual environment {env_dir} ...", flush=True)
        shutil.rmtree(env_dir)
    else:
        print(f"Creating a virtual environment in {env_dir} ...", flush=True)
    builder = builder or venv.EnvBuilder(with_pip=True)
    try:
        builder.create(env_dir)
    except (subprocess.CalledProcessError, OSError) as error:
        shutil.rmtree(env_dir, ignore_errors=True)
        raise BootstrapError(
            f"Could not create the virtual environment {env_dir} ({type(error).__name__}: {error}). "
            f"On Debian/Ubuntu install the venv module first: sudo apt install "
            f"python{sys.version_info[0]}.{sys.version_info[1]}-venv; then run the command again.") from error
    return venv_python(env_dir)


def constraints_args(python_version: tuple[int, ...] | None = None) -> list[str]:
    """``["-c", "constraints.txt"]`` when the file applies: it exists, ``UNET_COURSE_UNPINNED``
    is not set, and it was recorded with the same Python minor version (exact pins of one
    Python often have no wheels for another)."""
    if os.environ.get(UNPINNED) or not CONSTRAINTS.is_file():
        return []
    version = tuple(sys.version_info[:2]) if python_version is None else tuple(python_version[:2])
    recorded = re.search(r"Python (\d+)\.(\d+)", CONSTRAINTS.read_text())
    if recorded and (int(recorded.group(1)), int(recorded.group(2))) != version:
        print(f"Note: {CONSTRAINTS.name} was recorded with Python {recorded.group(1)}.{recorded.group(2)}; "
              f"installing the newest versions pyproject.toml allows for this Python instead.", flush=True)
        return []
    return ["-c", str(CONSTRAINTS)]


#: Where pip's full output goes while the course installs itself (git-ignored ``build/``).
PIP_LOG = REPO_ROOT / "build" / "pip-install.log"


def _run_logged(command: list[str], log_path: Path = PIP_LOG) -> subprocess.CompletedProcess:
    """Run ``command`` with its output appended to ``log_path``; show one progress line (the
    package pip is at and how many it has seen), rewritten in place on a terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    interactive = sys.stdout.isatty()
    seen = 0
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace")
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            log.write(line)
            match = re.match(r"\s*(Collecting|Requirement already satisfied:|Installing collected)\s*(\S*)", line)
            if match:
                seen += match.group(1) != "Installing collected"
                if interactive:
                    what = "installing" if match.group(1) == "Installing collected" else match.group(2)
                    sys.stdout.write(f"\r  pip: {seen} packages checked; {what[:40]:<40}")
                    sys.stdout.flush()
        returncode = process.wait()
    if interactive:
        sys.stdout.write("\n")
    return subprocess.CompletedProcess(command, returncode)


def pip_install(python: Path, upgrade_pip: bool, run=None) -> None:
    """Install the course (``-e .[test]``, constrained) with ``python``'s pip, its output kept in
    :data:`PIP_LOG` behind a one-line progress (``run``: a ``subprocess.run`` stand-in in tests).

    Raises:
        BootstrapError: pip failed; the message has the offline hint and the log's last lines.
    """
    commands = []
    if upgrade_pip:
        commands.append([str(python), "-m", "pip", "install", "--upgrade", "pip"])
    commands.append([str(python), "-m", "pip", "install", "-e", f"{REPO_ROOT}[test]", *constraints_args()])
    if run is None:
        print(f"  (pip's full output: {PIP_LOG})", flush=True)
    for command in commands:
        result = (run or _run_logged)(command)
        if result.returncode != 0:
            tail = ""
            if run is None and PIP_LOG.is_file():
                tail = "\n".join(PIP_LOG.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
                tail = f"\nThe last lines of {PIP_LOG}:\n{tail}\n"
            raise BootstrapError(
                f"`{' '.join(command)}` failed (exit code {result.returncode}). If this machine is "
                f"offline or behind a proxy, pip cannot download the packages: connect and run the "
                f"command again, or install them yourself (pip install -e '.[test]' -c constraints.txt, "
                f"e.g. from a wheelhouse) and set {SKIP_INSTALL}=1 so the course stops trying."
                f"{tail}")


def ensure_environment(use_current_env: bool = False, env: Environment | None = None,
                       run=None) -> Path:
    """Return the interpreter of an environment that has the course installed.

    Args:
        use_current_env: install into the active environment even when it is conda
            ``base`` or another project's environment (``--use-current-env``).
        env: the environment to judge (default: :func:`current_environment`); for tests.
        run: a ``subprocess.run`` stand-in (tests); by default pip's output goes to :data:`PIP_LOG`.

    Returns:
        Path of the Python interpreter to run the command with.

    Raises:
        BootstrapError: unsupported Python, refused environment, failed venv creation or
            failed installation; the message names the fix.
    """
    check_python()
    env = current_environment() if env is None else env
    skip = bool(os.environ.get(SKIP_INSTALL))

    if env.kind in ("course-venv", "none"):
        env_dir = VENV_DIR
        python = venv_python(env_dir)
        if is_installed(env_dir) and python.exists():
            return python
        if not venv_is_healthy(env_dir, run=run or subprocess.run):
            python = create_venv(env_dir)
        if not skip:
            print(f"Installing the course and its dependencies into {env_dir} "
                  f"(first run: a few minutes) ...", flush=True)
            pip_install(python, upgrade_pip=True, run=run)
            mark_installed(env_dir)
        return python

    if is_installed(env.prefix):
        return env.python
    missing = missing_distributions()
    if not missing:
        # e.g. `conda env create -f environment.yml` installed everything; the marker is
        # written only into the course's own conda environment (probing is cheap)
        if env.kind == "course-conda":
            try:
                mark_installed(env.prefix)
            except OSError:
                pass        # a read-only environment: probe again next time
        return env.python
    if env.kind != "course-conda" and not use_current_env:
        what = "the conda base environment" if env.kind == "conda-base" else "an environment the course did not create"
        raise BootstrapError(
            f"The active Python ({env.python}) belongs to {what} ({env.prefix}), which lacks "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}. The course does not install "
            f"into it without asking. Either deactivate it (`conda deactivate` or `deactivate`) and run "
            f"the command again, so that the course builds its own .venv, or create the course's conda "
            f"environment (conda env create -f environment.yml; conda activate {CONDA_ENV_NAME}), or "
            f"add {USE_CURRENT_ENV} to install into this environment anyway.")
    if skip:
        return env.python
    print(f"Installing the course and its dependencies into {env.prefix} ...", flush=True)
    pip_install(env.python, upgrade_pip=False, run=run)
    mark_installed(env.prefix)
    return env.python


def reexec_inside(python: Path | str, argv: list[str]) -> int:
    """Run ``python -m helpers argv`` in the repository with :data:`BOOTSTRAPPED` set and
    return its exit code."""
    environ = dict(os.environ, **{BOOTSTRAPPED: "1"})
    return subprocess.run([str(python), "-m", "helpers", *argv], cwd=REPO_ROOT, env=environ).returncode


def running_inside(python: Path | str) -> bool:
    """True when ``python`` is the running interpreter's environment."""
    return _same_path(Path(python).parent.parent, sys.prefix) or _same_path(python, sys.executable)
