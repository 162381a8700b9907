"""Where the course lives, its lessons, and the nbgrader settings of the test course root."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from helpers import course

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


#: The test files whose tests share the released course root (the ``course_root`` session
#: fixture): one worker runs them all, so that the root is released once.
COURSE_ROOT_FILES = ("tests/grading/test_grading.py", "tests/lessons/test_release.py")


def worker_group(nodeid: str) -> str:
    """The pytest-xdist work unit of a test, from its node id: what one worker runs, in order.

    * an answer notebook's cells share one kernel: one unit per notebook, and a lesson that
      loads an earlier one's run (05 loads 04's model: ``LessonSpec.needs``) joins that
      lesson's unit, after it;
    * the tests of :data:`COURSE_ROOT_FILES` form one unit;
    * any other test stays with its module (module-scoped fixtures are built once).
    """
    path = nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        lesson = PurePosixPath(path).parent.name
        needed = sorted(need.split("/")[0] for need in course.needs_of([lesson]))
        return f"notebook-{needed[0] if needed else lesson}"
    if path in COURSE_ROOT_FILES:
        return "course-root"
    return "module-" + path


#: Work units that start first under pytest-xdist, longest first, so that the last minutes do
#: not leave one worker alone with a long unit (seconds in the last full run: the round
#: trip ~450, lesson 04 with 05 ~180, 08 ~160, 07 ~130).
FIRST_GROUPS = ("course-root", "notebook-04_training", "notebook-08_brain_tumour",
                "notebook-07_liver_ct", "module-tests/grading/test_grading_adversarial.py",
                "notebook-09_challenge", "notebook-06_lung_ct_3d", "notebook-02_architecture")
