"""Command line of the course: ``python -m helpers <command>``.

Commands (``python -m helpers --help`` lists them):

* ``setup``   create ``.venv`` if needed and install the course into it (``pip install -e .[test]``)
* ``course``  setup, generate the embedded data, execute every answer notebook, print a summary table
* ``test``    setup, then run the whole test suite (pytest: unit tests, nbval, nbgrader round trip)
* ``lab``     setup, then open JupyterLab on ``notebooks/``
* ``data``    list, download and prepare data sets (``python -m helpers data --help``)
* ``release``, ``collect``, ``autograde``, ``feedback``, ``export``: instructor commands around nbgrader

Only the standard library is imported here, so the commands work on a machine that has
nothing but Python: the first run creates the environment and re-runs itself inside it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAPPED = "UNET_COURSE_BOOTSTRAPPED"
SKIP_INSTALL = "UNET_COURSE_SKIP_INSTALL"
MARKER = ".unet-course-installed"

ENV_COMMANDS = {"setup", "course", "test", "lab"}
GRADING_COMMANDS = {"release", "collect", "autograde", "feedback", "export"}
PASS_THROUGH = {"test", "data", "lab"} | GRADING_COMMANDS


def _in_managed_environment() -> bool:
    """True inside a virtual environment or an active conda environment."""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return True
    conda_prefix = os.environ.get("CONDA_PREFIX")
    return bool(conda_prefix) and Path(conda_prefix).resolve() == Path(sys.prefix).resolve()


def _venv_python(env_dir: Path) -> Path:
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def _install_fingerprint() -> str:
    digest = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_environment() -> Path:
    """Return the Python interpreter of an environment that has the course installed.

    Uses the current environment when Python runs inside a venv or conda environment;
    otherwise creates ``.venv`` in the repository. Installs ``-e .[test]`` when the
    environment has not seen this version of ``pyproject.toml`` yet.
    """
    if _in_managed_environment():
        python = Path(sys.executable)
        env_dir = Path(sys.prefix)
    else:
        env_dir = REPO_ROOT / ".venv"
        python = _venv_python(env_dir)
        if not python.exists():
            print(f"Creating a virtual environment in {env_dir} ...", flush=True)
            venv.EnvBuilder(with_pip=True).create(env_dir)
    marker = env_dir / MARKER
    fingerprint = _install_fingerprint()
    installed = marker.is_file() and marker.read_text().strip() == fingerprint
    if not installed and not os.environ.get(SKIP_INSTALL):
        print(f"Installing the course and its dependencies into {env_dir} "
              "(first run: a few minutes) ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-e", f"{REPO_ROOT}[test]"], check=True)
        marker.write_text(fingerprint + "\n")
    return python


def _reexec_inside(python: Path, argv: list[str]) -> int:
    """Run ``python -m helpers argv`` in the prepared environment and return its exit code."""
    env = dict(os.environ, **{BOOTSTRAPPED: "1"})
    completed = subprocess.run([str(python), "-m", "helpers", *argv], cwd=REPO_ROOT, env=env)
    return completed.returncode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("setup", help="create .venv if needed and install the course")
    course = sub.add_parser("course", help="generate data, execute every answer notebook, print the summary")
    course.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all), e.g. 01 04")
    course.add_argument("--update-answers", action="store_true",
                        help="write the executed notebooks back into answers/ (maintainers)")
    sub.add_parser("test", help="run the whole test suite (extra arguments go to pytest)")
    sub.add_parser("lab", help="open JupyterLab on notebooks/")
    sub.add_parser("data", help="list, download and prepare data sets (python -m helpers data --help)")
    for name in sorted(GRADING_COMMANDS):
        sub.add_parser(name, help=f"nbgrader {name} (python -m helpers {name} --help)")
    return parser


def _split(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse the command; the arguments of pass-through commands (test, data, grading)
    are handed on verbatim, so `python -m helpers test -k dice` reaches pytest."""
    if argv and argv[0] in PASS_THROUGH:
        return argparse.Namespace(command=argv[0]), argv[1:]
    return _parser().parse_args(argv), []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _split(argv)
    if args.command in ENV_COMMANDS and not os.environ.get(BOOTSTRAPPED):
        python = ensure_environment()
        if args.command == "setup":
            print("The course is installed. Next: python -m helpers course")
            return 0
        return _reexec_inside(python, argv)

    if args.command == "setup":
        return 0
    if args.command == "course":
        from helpers import course

        return course.main(args.lessons, update_answers=args.update_answers)
    if args.command == "test":
        return subprocess.run([sys.executable, "-m", "pytest", *rest], cwd=REPO_ROOT).returncode
    if args.command == "lab":
        from helpers import lab

        return lab.main(rest)   # learner lab; `lab --instructor` keeps nbgrader's instructor tools
    if args.command == "data":
        from helpers.data import __main__ as data_cli

        return data_cli.main(rest)
    if args.command in GRADING_COMMANDS:
        from helpers import grading

        return grading.main([args.command, *rest])
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
