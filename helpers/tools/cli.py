"""Command line of the course: ``python -m helpers <command>``.

Commands (``python -m helpers --help`` lists them):

* ``setup``   create ``.venv`` if needed and install the course into it (``pip install -e .[test]``)
* ``course``  setup, generate the embedded data, execute the answer notebooks of lessons 01-08 (``course 09``:
  the capstone; ``course 00 10``: the reading lessons), print a summary table
* ``test``    setup, then run the whole test suite (pytest: unit tests, nbval, nbgrader round trip);
  ``test --quick`` runs the unit tests only (no notebook, no training, no nbgrader)
* ``lab``     setup, then open JupyterLab on ``notebooks/``
* ``data``    list, download and prepare data sets (``python -m helpers data --help``)
* ``challenge`` the hackathon finale: hidden test set, scoring, leaderboard (``python -m helpers challenge --help``)
* ``release``, ``collect``, ``autograde``, ``feedback``, ``export``: instructor commands around nbgrader

Every command first finds or builds the course environment (:mod:`helpers.tools.bootstrap`,
standard library only) and runs again inside it, so the commands work on a machine that
has nothing but Python. ``--use-current-env`` (anywhere on the line) lets the course
install into an active environment it did not create, such as conda ``base``.

``helpers/__main__.py`` only calls :func:`main`; this module and :mod:`helpers.tools.bootstrap`
import nothing but the standard library at import time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from helpers.tools import bootstrap as _bootstrap
from helpers.tools.bootstrap import BOOTSTRAPPED, MARKER, REPO_ROOT, SKIP_INSTALL, USE_CURRENT_ENV  # noqa: F401

# Older code reached the bootstrap through these names (helpers/grading/commands.py now
# imports helpers.tools.bootstrap itself).
ensure_environment = _bootstrap.ensure_environment
_reexec_inside = _bootstrap.reexec_inside

GRADING_COMMANDS = {"release", "collect", "autograde", "feedback", "export"}
PASS_THROUGH = {"test", "data", "lab", "challenge"} | GRADING_COMMANDS
#: ``python -m helpers test --quick``: what pytest runs instead of the whole suite.
QUICK_PYTEST_ARGS = ["tests", "-m", "not slow and not browser"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n\n")[0],
                                     epilog=f"{USE_CURRENT_ENV}: install into the active Python environment "
                                            "even if the course did not create it (e.g. conda base).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("setup", help="create .venv if needed and install the course")
    course = sub.add_parser("course", help="generate data, execute every answer notebook, print the summary")
    course.add_argument("lessons", nargs="*", help="lesson numbers or names (default: 01-08), e.g. 01 04")
    course.add_argument("--update-answers", action="store_true",
                        help="write the executed notebooks back into answers/ (maintainers)")
    course.add_argument("--record", action="store_true",
                        help="as --update-answers, then record the run in docs/results.md and set the "
                             "lessons' Time lines from it (maintainers; run on an idle machine)")
    course.add_argument("--jobs", type=int, default=None,
                        help="lessons run at a time, one CPU thread each (default: 2 on a machine with "
                             "2 or more CPUs; 1 runs them one after another with every thread)")
    sub.add_parser("test", help="run the whole test suite; --quick: unit tests only (extra arguments go to pytest)")
    sub.add_parser("lab", help="open JupyterLab on notebooks/")
    sub.add_parser("data", help="list, download and prepare data sets (python -m helpers data --help)")
    sub.add_parser("challenge", help="the finale: make the hidden test set, score submissions, leaderboard "
                                     "(python -m helpers challenge --help)")
    for name in sorted(GRADING_COMMANDS):
        sub.add_parser(name, help=f"nbgrader {name} (python -m helpers {name} --help)")
    return parser


def _split(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse the command; the arguments of pass-through commands (test, data, grading)
    are handed on verbatim, so `python -m helpers test -k dice` reaches pytest."""
    if argv and argv[0] in PASS_THROUGH:
        return argparse.Namespace(command=argv[0]), argv[1:]
    return _parser().parse_args(argv), []


def test_workers() -> int:
    """pytest-xdist workers of ``python -m helpers test``: 2 on a machine with two or more CPUs,
    else 0 (no workers: one process). Most of the suite's time is TensorFlow training small
    networks, which gains little from a second thread; two workers with one thread each
    (tests/conftest.py) use both cores (``benchmarks/lesson_threads.py`` measures it)."""
    return 2 if (os.cpu_count() or 1) >= 2 else 0


def _chooses_workers(args: list[str]) -> bool:
    """Whether pytest ``args`` already say how to distribute (``-n``, ``--numprocesses``,
    ``--dist``, ``-p no:xdist``)."""
    return any(arg == "-n" or arg.startswith(("-n=", "--numprocesses", "--dist")) or
               (arg.startswith("-n") and arg[2:].isdigit()) or arg in ("no:xdist", "-pno:xdist")
               for arg in args)


def pytest_args(rest: list[str]) -> list[str]:
    """The pytest arguments of ``python -m helpers test REST``: ``--quick`` becomes
    :data:`QUICK_PYTEST_ARGS`; the rest goes to pytest unchanged, after
    ``-n WORKERS --dist loadfile`` (:func:`test_workers`) unless it chooses workers itself
    (``-n 0`` runs everything in one process). tests/conftest.py keeps each notebook, each
    test module and the tests that share the released course root on one worker."""
    args = QUICK_PYTEST_ARGS + [arg for arg in rest if arg != "--quick"] if "--quick" in rest else list(rest)
    workers = test_workers()
    if workers and not _chooses_workers(args):
        args = ["-n", str(workers), "--dist", "loadfile", *args]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    use_current_env = USE_CURRENT_ENV in argv
    argv = [arg for arg in argv if arg != USE_CURRENT_ENV]
    args, rest = _split(argv)
    if not os.environ.get(BOOTSTRAPPED):
        try:
            python = _bootstrap.ensure_environment(use_current_env=use_current_env)
        except _bootstrap.BootstrapError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if not _bootstrap.running_inside(python):
            if args.command == "setup":  # install the kernelspec with the course's Python
                code = _bootstrap.reexec_inside(python, argv)
                print(f"The course is installed ({python}). Next: python -m helpers course")
                return code
            return _bootstrap.reexec_inside(python, argv)
        os.environ[BOOTSTRAPPED] = "1"      # for the processes this command starts

    if args.command == "setup":
        from helpers.tools import kernels

        print(f"Course kernel installed in {kernels.install_kernelspec()}")
        return 0
    if args.command == "course":
        from helpers.tools import runner

        return runner.main(args.lessons, update_answers=args.update_answers, record=args.record,
                           jobs=args.jobs)
    if args.command == "test":
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args(rest)], cwd=REPO_ROOT).returncode
    if args.command == "lab":
        from helpers.tools import lab

        return lab.main(rest)   # learner lab; `lab --instructor` keeps nbgrader's instructor tools
    if args.command == "data":
        from helpers.data import __main__ as data_cli

        return data_cli.main(rest)
    if args.command == "challenge":
        from helpers import challenge

        return challenge.main(rest)
    if args.command in GRADING_COMMANDS:
        from helpers.grading import cluster as grading_cluster
        from helpers.grading import commands as grading

        return grading.main([args.command, *rest], remote_factory=grading_cluster.Cluster)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
