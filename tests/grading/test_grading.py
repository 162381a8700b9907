"""nbgrader round trip of every lesson (tests helpers/grading/commands.py and nbgrader_config.py).

For every lesson in answers/ (and the plain-Python example lesson in tests/fixtures/),
in a temporary course root with the real nbgrader and its SQLite gradebook, submissions
are built from the answer and release notebooks and graded in ONE ``nbgrader autograde``
call per lesson, at ``UNET_COURSE_SCALE=0.1``. Scores are read from the gradebook.

Students of a lesson, in the order nbgrader grades them:

* ``a-raises`` (example lesson only): the release with a first cell that raises -> 0.
* ``b-partial`` (the example lesson, 01 and 03: ``PARTIAL_LESSONS``): the release with the
  first exercise solved, the first test cell deleted, the last test cell edited to print
  success, and an endless loop in the last solution cell -> the deleted test is restored and
  passes, the edited one is graded with the original test and fails, the loop times out in
  its cell and the rest still runs.
* ``c-answers``: the answer notebook -> full automatic marks; its written answers (manually
  graded solution cells) "need manual grading", their points reported apart.
* ``d-untouched``: the release notebook -> 0 automatic points, and its hidden tests are back
  when graded; its written answers, left as released, score 0 and need no grader.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from support import notebooks
from support.course import ANSWER_LESSONS, FIXTURE_LESSONS, LOOP_MARKER, REPO_ROOT
from support.notebooks import is_solution_cell, is_test_cell, is_written_answer, nbgrader_meta

from helpers.grading import commands as grading

LESSONS = FIXTURE_LESSONS + ANSWER_LESSONS
#: Lessons that also get the ``b-partial`` student. What it tests (a deleted test cell
#: restored, an edited one graded with the original, an endless loop cut off while the batch
#: goes on, partial points) is the grading engine's, the same for every lesson; it runs on the
#: plain-Python example and on two course lessons with blanks, guarded references and hidden
#: tests, the ones that execute fastest. Every lesson still gets the answers (full marks) and
#: the untouched release (zero, no dead end).
PARTIAL_LESSONS = (*FIXTURE_LESSONS, "01_data_generator", "03_loss_and_metrics")
SCALE = "0.1"


# --- building submissions -----------------------------------------------------------------


def written_points(nb) -> dict[str, float]:
    """Points of every manually graded answer, by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
            for c in nb.cells if is_written_answer(c)}


def check_cell_indices(nb) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if is_test_cell(cell)]


def points(nb) -> dict[str, float]:
    """Points of every graded test cell, by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
            for c in nb.cells if is_test_cell(c)}


def partial_submission(release, answers):
    """The release with the first exercise solved from the answers, its test cell deleted,
    the last test cell edited, and an endless loop in the last exercise's solution cell."""
    nb = copy.deepcopy(release)
    solutions = {nbgrader_meta(c)["grade_id"]: c.source for c in answers.cells if is_solution_cell(c)}
    tests = check_cell_indices(nb)
    first, last = tests[0], tests[-1]
    for cell in nb.cells[:first]:
        if is_solution_cell(cell):
            cell.source = solutions[nbgrader_meta(cell)["grade_id"]]
    loop_cells = [i for i in range(tests[-2] + 1, last)
                  if is_solution_cell(nb.cells[i]) and nb.cells[i].cell_type == "code"]
    assert loop_cells, "the last graded test cell must follow a solution cell of its own"
    nb.cells[loop_cells[-1]].source = f"# {LOOP_MARKER}\nwhile True:\n    pass\n"
    nb.cells[last].source = 'print("All tests passed.")  # edited by the student'
    del nb.cells[first]
    return nb


def raising_submission(release):
    """The release with a new first cell that raises."""
    nb = copy.deepcopy(release)
    nb.cells.insert(0, nbformat.v4.new_code_cell('raise RuntimeError("broken on purpose")'))
    return nb


# --- one autograde call per lesson ----------------------------------------------------------


class Graded:
    """Submissions of one lesson after autograding: notebooks, scores and paths."""

    def __init__(self, root: Path, lesson: str):
        self.root, self.lesson = root, lesson
        self.answers = nbformat.read(root / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
        released = root / "notebooks" / lesson / f"{lesson}.ipynb"
        assert released.is_file(), (f"nbgrader generate_assignment could not release {lesson}: "
                                    f"run `python -m helpers release {lesson[:2]}` to see why.")
        self.release = nbformat.read(released, as_version=4)
        self.points = points(self.answers)
        self.max_score = sum(self.points.values())
        self.test_ids = [nbgrader_meta(self.answers.cells[i])["grade_id"]
                         for i in check_cell_indices(self.answers)]
        self.submissions = {
            "c-answers": self.answers,
            "d-untouched": self.release,
        }
        if lesson in PARTIAL_LESSONS:
            self.submissions["b-partial"] = partial_submission(self.release, self.answers)
        if lesson in FIXTURE_LESSONS:
            self.submissions["a-raises"] = raising_submission(self.release)
        self.scores: dict[str, float] = {}
        self.auto_scores: dict[str, float] = {}
        self.cell_scores: dict[str, dict[str, float]] = {}
        self.pending: dict[str, dict[str, bool]] = {}  # written answers: needs manual grading

    def run(self) -> None:
        source = self.root / "submissions"
        for student, nb in self.submissions.items():
            folder = source / student / self.lesson
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / f"{self.lesson}.ipynb")
        assert grading.collect(source, [self.lesson], root=self.root, quiet=True) == 0
        with grading.gradebook(self.root) as gb:
            known = {student.id for student in gb.students}
        missing = set(self.submissions) - known
        assert not missing, f"collect did not add {missing} to the gradebook"
        # all_cells: the dead-end test reads every cell of the untouched release, those after
        # the last graded code cell too (grading skips them by default: they change no score;
        # tests/grading/test_grading_workers.py compares both ways)
        self.status = grading.autograde([self.lesson], root=self.root, quiet=True,
                                        env={"UNET_COURSE_SCALE": SCALE}, all_cells=True)
        with open(self.root / "grading_report.csv", newline="") as handle:
            report = {row["student"]: row for row in csv.DictReader(handle) if row["lesson"] == self.lesson}
        self.report = report
        failed = {student: report.get(student, {}).get("reason") for student in self.submissions
                  if report.get(student, {}).get("status") == "failed"}
        assert not failed, f"{self.lesson}: submissions not graded (grading_report.csv): {failed}"
        with grading.gradebook(self.root) as gb:
            for student in self.submissions:
                submission = gb.find_submission(self.lesson, student)
                self.scores[student] = submission.score
                notebook = submission.notebooks[0]
                self.cell_scores[student] = {grade.name: grade.score for grade in notebook.grades}
                self.auto_scores[student], _ = grading.submission_scores(notebook.grades, self.release)
                self.pending[student] = {grade.name: grade.needs_manual_grade for grade in notebook.grades
                                         if grade.name in written_points(self.answers)}

    def autograded(self, student: str):
        path = self.root / "autograded" / student / self.lesson / f"{self.lesson}.ipynb"
        assert path.is_file(), f"nbgrader wrote no autograded notebook for {student}: {path}"
        return nbformat.read(path, as_version=4)

    def errors(self, student: str, grade_id: str) -> str:
        """The error text of a graded cell in the autograded notebook (for messages)."""
        for cell in self.autograded(student).cells:
            if nbgrader_meta(cell).get("grade_id") == grade_id:
                return "\n".join(f"{o.get('ename', o.get('name'))}: {o.get('evalue', o.get('text', ''))}"[:300]
                                 for o in cell.get("outputs", [])
                                 if o.output_type == "error" or o.get("name") == "stderr")
        return "(cell not found)"


def ungraded(lesson: str) -> bool:
    """True for a lesson whose answers hold no graded points: the capstone (09), which is not
    autograded (its checks only validate a submission's format), and the reading lessons
    (00 start here, 10 where next)."""
    path = REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb"
    return path.is_file() and not points(nbformat.read(path, as_version=4))


def test_only_the_capstone_and_the_reading_lessons_have_no_graded_points():
    from helpers import course

    assert [lesson for lesson in ANSWER_LESSONS if ungraded(lesson)] == sorted(course.UNGRADED_LESSONS)


@pytest.fixture(scope="module", params=LESSONS)
def graded(request, course_root, grading_seconds) -> Graded:
    if ungraded(request.param):
        pytest.skip(f"{request.param} has no graded points (the capstone, a reading lesson): nothing to autograde")
    result = Graded(course_root, request.param)
    started = time.perf_counter()
    result.run()
    grading_seconds[request.param] = time.perf_counter() - started
    return result


def _fix(lesson: str) -> str:
    return (f"run `UNET_COURSE_SCALE={SCALE} python -m helpers course {lesson[:2]}` "
            f"and read the failing check cell of answers/{lesson}/{lesson}.ipynb")


# --- tests ------------------------------------------------------------------------------------


def test_config_of_the_course():
    """The repository's nbgrader_config.py: folders, a per-cell limit that fits training."""
    course = grading._coursedir(REPO_ROOT)
    assert Path(course.root) == REPO_ROOT
    assert (course.source_directory, course.release_directory) == ("answers", "notebooks")
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config()
    assert loaded.Execute.timeout >= 600, "training cells need minutes, not nbgrader's 30 s"
    assert loaded.Execute.interrupt_on_timeout is True
    assert loaded.OverwriteCells.add_missing_cells is True
    assert "raise NotImplementedError()" in loaded.ClearSolutions.code_stub["python"]


def test_answers_score_full_marks(graded):
    scores = graded.cell_scores["c-answers"]
    failed = {gid: (scores.get(gid), pts) for gid, pts in graded.points.items() if scores.get(gid) != pts}
    assert not failed, (
        f"{graded.lesson}: the answer notebook loses points under nbgrader at scale {SCALE} "
        f"in {failed} (got, max). nbgrader gives 0 to a test cell that raises OR writes to "
        f"stderr (warnings, logs, progress bars). Errors:\n"
        + "\n".join(f"{gid}: {graded.errors('c-answers', gid)}" for gid in failed)
        + f"\nFix: {_fix(graded.lesson)}")
    assert graded.auto_scores["c-answers"] == pytest.approx(graded.max_score)
    assert float(graded.report["c-answers"]["auto_score"]) == pytest.approx(graded.max_score)
    assert float(graded.report["c-answers"]["auto_max"]) == pytest.approx(graded.max_score)


def test_written_answers_need_manual_grading(graded):
    """A manually graded answer: "YOUR ANSWER HERE" in the release; the answers' model answer
    needs manual grading (no automatic points won or lost), the untouched one scores 0 and
    needs no grader; the report states the manual points apart."""
    written = written_points(graded.answers)
    if not written:
        pytest.skip(f"{graded.lesson} has no written answer")
    released = {nbgrader_meta(c).get("grade_id"): c for c in graded.release.cells}
    for grade_id in written:
        assert released[grade_id].source.strip() == "YOUR ANSWER HERE", released[grade_id].source
    assert graded.pending["c-answers"] == {gid: True for gid in written}, (
        f"{graded.lesson}: the model answers should need manual grading: {graded.pending['c-answers']}")
    assert all(graded.cell_scores["c-answers"][gid] == 0 for gid in written)
    assert graded.pending["d-untouched"] == {gid: False for gid in written}
    manual = sum(written.values())
    for student, waiting in (("c-answers", manual), ("d-untouched", 0)):
        row = graded.report[student]
        assert float(row["manual_max"]) == pytest.approx(manual), row
        assert float(row["needs_manual_grading"]) == pytest.approx(waiting), row


def test_untouched_release_scores_zero(graded):
    scores = graded.cell_scores["d-untouched"]
    passing = [gid for gid, score in scores.items() if score]
    assert not passing, (f"{graded.lesson}: the untouched exercise notebook gets points for "
                         f"{passing}: those checks pass without the student's code; make them "
                         f"test what the solution cell computes.")
    assert graded.scores["d-untouched"] == 0 and graded.auto_scores["d-untouched"] == 0


def test_untouched_release_has_no_dead_end(graded):
    """No dead ends: the untouched release, graded at UNET_COURSE_SCALE=0.1 with every cell
    (``all_cells``), ran every cell but the exercises and their checks, with the reference from helpers standing in for each
    unfinished exercise (``checks.learner_or_reference``). (tests/lessons/test_release.py asserts
    the same for the reading lessons, which are not graded.)"""
    if graded.lesson in FIXTURE_LESSONS:
        pytest.skip("the example lesson of tests/fixtures has no references to stand in")
    assert graded.report["d-untouched"]["status"] == "graded", graded.report["d-untouched"]
    found = notebooks.dead_ends(graded.autograded("d-untouched"))
    assert not found, (f"{graded.lesson}: cells that stop when the blanks are left empty (give them the "
                       f"reference with checks.learner_or_reference after the exercise's check): "
                       + "; ".join(found))


def test_answers_and_untouched_release_are_not_flagged(graded):
    """The grader's audit and guards never mistake the course's own code for a cheat."""
    for student in ("c-answers", "d-untouched"):
        row = graded.report[student]
        assert row["status"] == "graded", (
            f"{graded.lesson}: the {student} notebook was {row['status']}: {row['reason']}")


def needs_partial(graded) -> None:
    if "b-partial" not in graded.submissions:
        pytest.skip(f"the partly solved student is graded in {', '.join(PARTIAL_LESSONS)} (PARTIAL_LESSONS)")


def test_partly_solved_scores_in_between(graded):
    needs_partial(graded)
    score = graded.scores["b-partial"]
    assert 0 < score < graded.max_score, (
        f"{graded.lesson}: a notebook with only the first exercise solved scored {score} of "
        f"{graded.max_score}; first check: {graded.errors('b-partial', graded.test_ids[0])}")


def test_deleted_test_cell_is_restored_and_run(graded):
    needs_partial(graded)
    first = graded.test_ids[0]
    assert graded.cell_scores["b-partial"][first] == graded.points[first], (
        f"{graded.lesson}: the deleted test cell {first} (its exercise solved) was not restored "
        f"and passed: {graded.errors('b-partial', first)}")
    restored = [c for c in graded.autograded("b-partial").cells if nbgrader_meta(c).get("grade_id") == first]
    assert restored and "was missing from the submission" in restored[0].source


def test_edited_test_cell_is_graded_with_the_original(graded):
    needs_partial(graded)
    last = graded.test_ids[-1]
    assert graded.cell_scores["b-partial"][last] == 0, (
        f"{graded.lesson}: the edited test cell {last} kept the student's version "
        f"(is it locked, with grade: true?)")
    cell = next(c for c in graded.autograded("b-partial").cells if nbgrader_meta(c).get("grade_id") == last)
    original = next(c for c in graded.answers.cells if nbgrader_meta(c).get("grade_id") == last)
    assert cell.source == original.source, "the graded test cell should be the original, hidden tests included"


def test_endless_loop_times_out_and_grading_goes_on(graded):
    needs_partial(graded)
    cells = graded.autograded("b-partial").cells
    loop = next(i for i, c in enumerate(cells) if LOOP_MARKER in c.source)
    enames = [o.get("ename") for o in cells[loop].outputs if o.output_type == "error"]
    assert "CellTimeoutError" in enames, f"the endless loop was not stopped by the time limit: {enames}"
    later = [c for c in cells[loop + 1:] if c.cell_type == "code" and c.get("outputs")]
    assert later, "no cell after the timed-out one was executed"
    # the batch went on: students graded after this one have their scores
    assert graded.scores["c-answers"] > 0 and "d-untouched" in graded.scores


def test_first_cell_raising_scores_zero_without_stopping_the_batch(graded):
    if "a-raises" not in graded.submissions:
        pytest.skip("run on the example lesson only: it is nbgrader's behaviour, not the lesson's")
    assert graded.scores["a-raises"] == 0
    first = graded.autograded("a-raises").cells[0]
    assert any(o.get("ename") == "RuntimeError" for o in first.outputs)
    assert graded.scores["c-answers"] == pytest.approx(graded.max_score)


def test_hidden_tests_absent_from_release_and_present_when_grading(graded):
    release_text = json.dumps(graded.release)
    assert "BEGIN HIDDEN TESTS" not in release_text and "BEGIN SOLUTION" not in release_text
    hidden = {nbgrader_meta(c)["grade_id"]: c.source for c in graded.answers.cells
              if is_test_cell(c) and "BEGIN HIDDEN TESTS" in c.source}
    graded_cells = {nbgrader_meta(c).get("grade_id"): c.source
                    for c in graded.autograded("d-untouched").cells}
    for gid, source in hidden.items():
        assert graded_cells.get(gid) == source, f"{graded.lesson}: hidden tests of {gid} missing when grading"


def test_kernel_is_the_current_environment(graded):
    if graded.lesson not in FIXTURE_LESSONS:
        pytest.skip("the example lesson prints its interpreter")
    setup = graded.autograded("c-answers").cells[2]
    text = "".join(o.get("text", "") for o in setup.outputs)
    assert f"kernel: {sys.executable}" in text, (
        f"nbgrader ran another interpreter than this environment's ({sys.executable}): {text!r}")


def test_feedback_and_export(graded):
    if graded.lesson not in FIXTURE_LESSONS:
        pytest.skip("the commands are the same for every lesson: checked on the example lesson")
    root, lesson = graded.root, graded.lesson
    assert grading.feedback([lesson], root=root, quiet=True) == 0
    for student in graded.submissions:
        page = root / "feedback" / student / lesson / f"{lesson}.html"
        assert page.is_file(), f"no feedback page for {student}: {page}"
    assert grading.export("grades.csv", root=root, quiet=True) == 0
    with open(root / "grades.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["assignment"] == lesson]
    exported = {row["student_id"]: float(row["score"]) for row in rows}
    assert exported == pytest.approx(graded.scores)


def test_collect_downloaded_files(graded, tmp_path):
    if graded.lesson not in FIXTURE_LESSONS:
        pytest.skip("collecting is the same for every lesson: checked on the example lesson")
    root, lesson = graded.root, graded.lesson
    notebook = nbformat.writes(graded.release)
    with zipfile.ZipFile(tmp_path / "zoe.zip", "w") as archive:
        archive.writestr(f"{lesson}.ipynb", notebook)
    (tmp_path / f"yann_le_{lesson}.ipynb").write_text(notebook)
    (tmp_path / "yann_le_99_other.ipynb").write_text(notebook)  # not a lesson: skipped
    assert grading.collect(tmp_path, [lesson], root=root, quiet=True) == 0
    for student in ("zoe", "yann_le"):
        assert (root / "submitted" / student / lesson / f"{lesson}.ipynb").is_file(), student
    assert not (root / "submitted" / "yann_le" / "99_other").exists()
    with grading.gradebook(root) as gb:
        assert {"zoe", "yann_le"} <= {student.id for student in gb.students}
