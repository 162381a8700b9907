"""Shared fixtures of the test suite, and the course summary at the end of a run.

* ``course_root``: a temporary nbgrader course root (copy of ``nbgrader_config.py``, every
  lesson of ``answers/`` plus the example lesson of ``tests/fixtures/``), released once per
  session with ``helpers.grading.commands.release``. Used by test_release.py and test_grading.py.
* The terminal summary prints the course table (``helpers.tools.runner.summary_table``) when
  lesson reports exist (``python -m helpers course`` or nbval runs of the answers write
  them), and the seconds the nbgrader round trip took per lesson.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.tools import kernels

# Kernels started by nbval and nbgrader inherit this (see helpers.tools.kernels.KERNEL_ENV).
kernels.apply_kernel_env()

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: The fixture notebooks are nbgrader sources, not tests: nbval must not collect them.
collect_ignore_glob = ["fixtures/*"]

#: Marker in a cell that test_grading.py injects to loop forever; the test course root's
#: config gives such cells a short time limit (every other cell keeps the course's limit).
LOOP_MARKER = "ENDLESS LOOP injected by tests/test_grading.py"
LOOP_TIMEOUT_SECONDS = 10

_TEST_CONFIG = f'''

# --- appended by tests/conftest.py (test course root only) ---------------------------
def _cell_timeout(cell, _default=c.Execute.timeout):
    """A short limit for the endless loop that tests/test_grading.py injects."""
    return {LOOP_TIMEOUT_SECONDS} if {LOOP_MARKER!r} in cell.source else _default


c.Execute.timeout_func = _cell_timeout
'''

#: Seconds that one nbgrader autograde call took, by lesson (filled by test_grading.py).
GRADING_SECONDS: dict[str, float] = {}


def lesson_names(folder: Path) -> list[str]:
    """Lessons ``<folder>/<lesson>/<lesson>.ipynb``, in course order."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}.ipynb").is_file())


#: Lessons of the course (answers/) and the example lessons of tests/fixtures/.
ANSWER_LESSONS = lesson_names(REPO_ROOT / "answers")
FIXTURE_LESSONS = lesson_names(FIXTURES)


@pytest.fixture(scope="session")
def course_root(tmp_path_factory) -> Path:
    """A released temporary course root holding every answer lesson and the fixture lessons."""
    from helpers.grading import commands as grading

    root = tmp_path_factory.mktemp("course")
    config_text = (REPO_ROOT / "nbgrader_config.py").read_text()
    (root / "nbgrader_config.py").write_text(config_text + _TEST_CONFIG)
    for base, names in ((REPO_ROOT / "answers", ANSWER_LESSONS), (FIXTURES, FIXTURE_LESSONS)):
        for name in names:
            shutil.copytree(base / name, root / "answers" / name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # A lesson that nbgrader cannot release fails its own tests (no notebooks/<lesson> here).
    grading.release(root=root, quiet=True)
    return root


@pytest.fixture(scope="session")
def grading_seconds() -> dict[str, float]:
    """Where test_grading.py records how long each lesson's autograde call took."""
    return GRADING_SECONDS


def pytest_collection_modifyitems(config, items):
    """Mark as ``slow`` what ``python -m helpers test --quick`` leaves out: every answer
    notebook run by nbval, and every test that needs the nbgrader-released course root.
    Tests that train a model carry ``@pytest.mark.slow`` themselves."""
    for item in items:
        if item.path.suffix == ".ipynb" or "course_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


_SESSION_STARTED: list[float] = []


def pytest_sessionstart(session):
    import time

    _SESSION_STARTED.append(time.time())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the grading times, and the course summary table of the lesson reports that
    this run wrote (nbval executing the answers writes them)."""
    if GRADING_SECONDS:
        terminalreporter.write_sep("-", "nbgrader round trip (one autograde call per lesson)")
        for name, seconds in sorted(GRADING_SECONDS.items()):
            terminalreporter.write_line(f"{name:28s} {seconds:6.0f} s")
    try:
        from helpers import course
        from helpers.tools import runner

        started = _SESSION_STARTED[0] if _SESSION_STARTED else 0.0
        fresh = {path.stem for path in course.summary_dir().glob("*.json") if path.stat().st_mtime >= started}
        reports = {name: report for name, report in runner.read_reports().items() if name in fresh}
    except (OSError, ValueError) as error:  # unreadable report: say so, do not hide the run
        terminalreporter.write_line(f"(course summary not available: {error})")
        return
    if reports:
        terminalreporter.write_sep("-", "course summary")
        terminalreporter.write_line(runner.summary_table(reports))
