"""Where the course lives, its lessons, and the nbgrader settings of the test course root."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

#: Marker in a cell that test_grading.py injects to loop forever; the test course root's
#: config gives such cells a short time limit (every other cell keeps the course's limit).
LOOP_MARKER = "ENDLESS LOOP injected by tests/grading/test_grading.py"
LOOP_TIMEOUT_SECONDS = 10

#: Appended to ``nbgrader_config.py`` in every temporary course root of the tests.
TEST_CONFIG = f'''

# --- appended by tests/support/course.py (test course root only) -------------------------
def _cell_timeout(cell, _default=c.Execute.timeout):
    """A short limit for the endless loop that tests/grading/test_grading.py injects."""
    return {LOOP_TIMEOUT_SECONDS} if {LOOP_MARKER!r} in cell.source else _default


c.Execute.timeout_func = _cell_timeout
'''


def lesson_names(folder: Path) -> list[str]:
    """Lessons ``<folder>/<lesson>/<lesson>.ipynb``, in course order."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}.ipynb").is_file())


#: Lessons of the course (answers/) and the example lessons of tests/fixtures/.
ANSWER_LESSONS = lesson_names(REPO_ROOT / "answers")
FIXTURE_LESSONS = lesson_names(FIXTURES)
