"""Points for thinking, not typing (issue 27, item 3), checked on the answer notebooks.

* every graded lesson has instructor notes whose table lists each ``Exercise N.M`` of the answer
  notebook, in order, with the points of its graded cells and how they are graded, and whose
  ``Dictated: D of T points.`` line adds the table up;
* the notes README's summary table is the one :func:`helpers.tools.dictation.summary_table`
  renders from those files, and the figure its text states is the table's;
* at most 10 % of each lesson's points are dictated (so at most 10 % of the course's);
* an exercise the notes call *not dictated* names none of its answer's distinctive calls or
  keyword values in its own text (markdown, hint, released code): the mechanical half of the
  reader's verdict.

Each rule is also shown failing on a broken copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from support.course import REPO_ROOT

from helpers.course import UNGRADED_LESSONS
from helpers.tools import dictation

GRADED = [path.name for path in sorted((REPO_ROOT / "answers").iterdir())
          if path.is_dir() and path.name[:2].isdigit() and path.name not in UNGRADED_LESSONS
          and path.name != "00_start_here"]
COURSE_GOAL = 0.10


def notes_problems(lesson: str, notes_path: Path | None = None, answer: Path | None = None) -> list[str]:
    """Where a lesson's notes disagree with its answer notebook, in words."""
    notes_path = notes_path or dictation.NOTES_DIR / f"{lesson}.md"
    if not notes_path.is_file():
        return [f"{lesson}: no instructor notes at {notes_path}"]
    rows, line = dictation.read_notes(notes_path)
    found = dictation.exercises(answer or dictation.answer_path(lesson))
    problems = []
    if [row.number for row in rows] != [exercise.number for exercise in found]:
        problems.append(f"{lesson}: the notes list exercises {[row.number for row in rows]}, "
                        f"the notebook has {[exercise.number for exercise in found]}")
    for row, exercise in zip(rows, found):
        if row.points != exercise.points:
            problems.append(f"{lesson} {row.number}: the notes say {row.points} points, the graded cells "
                            f"under its heading hold {exercise.points:g}")
        if row.graded != exercise.kind:
            problems.append(f"{lesson} {row.number}: the notes say '{row.graded}', the notebook grades it "
                            f"'{exercise.kind}'")
    dictated = sum(row.points for row in rows if row.dictated)
    total = sum(row.points for row in rows)
    if line is None:
        problems.append(f"{lesson}: no 'Dictated: D of T points.' line")
    elif line != (dictated, total):
        problems.append(f"{lesson}: 'Dictated: {line[0]} of {line[1]} points.' but the table adds up to "
                        f"{dictated} of {total}")
    return problems


def undictated_but_named(lesson: str, answer: Path | None = None, notes_path: Path | None = None) -> list[str]:
    """Exercises the notes call not dictated whose own text names their answer's calls."""
    answer = answer or dictation.answer_path(lesson)
    rows, _ = dictation.read_notes(notes_path or dictation.NOTES_DIR / f"{lesson}.md")
    verdicts = {row.number: row.dictated for row in rows}
    defined = dictation.defined_names(answer)
    problems = []
    for exercise in dictation.exercises(answer):
        named = dictation.named_in_text(exercise, defined)
        if verdicts.get(exercise.number) is False and named:
            problems.append(f"{lesson} {exercise.number}: called not dictated, but its text names {named}")
    return problems


@pytest.mark.parametrize("lesson", GRADED)
def test_notes_list_every_exercise_with_its_points_and_grading(lesson):
    assert not notes_problems(lesson), "\n".join(notes_problems(lesson))


def test_notes_readme_table_is_rendered_from_the_notes_and_states_its_figure():
    readme = (dictation.NOTES_DIR / "README.md").read_text(encoding="utf-8")
    table = dictation.summary_table(GRADED)
    assert table in readme, ("docs/instructor_notes/README.md's table differs from "
                             "`python -m helpers.tools.dictation --table`; paste its output:\n" + table)
    tallies = [dictation.tally(lesson) for lesson in GRADED]
    dictated, total = sum(t.dictated for t in tallies), sum(t.total for t in tallies)
    stated = re.search(r"the measured figure is \*\*([\d.]+) %\*\* \((\d+) of (\d+)\)", readme)
    assert stated, "the README states the measured figure as '**P %** (D of T)'"
    assert (float(stated.group(1)), int(stated.group(2)), int(stated.group(3))) == (
        round(100 * dictated / total, 1), dictated, total), "the README's measured figure is not the table's"


@pytest.mark.parametrize("lesson", GRADED)
def test_at_most_the_goal_share_of_a_lessons_points_is_dictated(lesson):
    tally = dictation.tally(lesson)
    assert tally.dictated <= COURSE_GOAL * tally.total, (
        f"{lesson}: {tally.dictated} of {tally.total} points dictated, goal ≤ {COURSE_GOAL:.0%}; "
        f"`python -m helpers.tools.dictation {lesson[:2]}` lists the exercises")


@pytest.mark.parametrize("lesson", GRADED)
def test_an_exercise_called_not_dictated_names_none_of_its_answer_calls(lesson):
    problems = undictated_but_named(lesson)
    assert not problems, "\n".join(problems)


def _broken_copy(tmp_path: Path, lesson: str, edit) -> Path:
    notebook = nbformat.read(dictation.answer_path(lesson), as_version=4)
    edit(notebook)
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(notebook, path)
    return path


def _first_graded_code_exercise(lesson: str) -> dictation.Exercise:
    return next(exercise for exercise in dictation.exercises(dictation.answer_path(lesson))
                if exercise.kind == "auto" and dictation.answer_calls(exercise, dictation.defined_names(
                    dictation.answer_path(lesson)))[0])


def test_the_rules_catch_changed_points_and_a_missing_exercise(tmp_path):
    lesson = GRADED[0]

    def double_a_check(notebook):
        cell = next(c for c in notebook.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
        cell.metadata["nbgrader"]["points"] = float(cell.metadata["nbgrader"]["points"]) * 2 + 1

    assert any("graded cells under its heading hold" in p
               for p in notes_problems(lesson, answer=_broken_copy(tmp_path, lesson, double_a_check)))
    notes = (dictation.NOTES_DIR / f"{lesson}.md").read_text(encoding="utf-8")
    first_row = next(line for line in notes.splitlines() if re.match(r"^\|\s*\d+\.\d+ ", line))
    broken_notes = tmp_path / f"{lesson}.md"
    broken_notes.write_text(notes.replace(first_row + "\n", ""), encoding="utf-8")
    problems = notes_problems(lesson, notes_path=broken_notes)
    assert any("the notes list exercises" in p for p in problems), problems
    assert any("adds up to" in p for p in problems), problems


def test_the_scan_catches_an_answer_call_named_in_the_text(tmp_path):
    lesson = GRADED[0]
    exercise = _first_graded_code_exercise(lesson)
    call = dictation.answer_calls(exercise, dictation.defined_names(dictation.answer_path(lesson)))[0][0]

    def name_the_call(notebook):
        for cell in notebook.cells:
            if cell.cell_type == "markdown" and f"Exercise {exercise.number} " in cell.source:
                cell.source += f"\n\nUse `{call}` here.\n"

    broken = _broken_copy(tmp_path, lesson, name_the_call)
    notes = tmp_path / f"{lesson}.md"
    text = (dictation.NOTES_DIR / f"{lesson}.md").read_text(encoding="utf-8")
    notes.write_text(re.sub(rf"^(\|\s*{re.escape(exercise.number)} [^|]+\|[^|]+\|[^|]+\|)\s*yes\s*\|",
                            r"\1 no |", text, flags=re.M), encoding="utf-8")
    problems = undictated_but_named(lesson, answer=broken, notes_path=notes)
    assert any(call in p for p in problems), problems


def test_answer_calls_leave_out_generic_calls_reuse_and_parameters():
    exercise = dictation.Exercise("x", "9.1", "t", solutions=[
        "    ### BEGIN SOLUTION\n    out = np.sum(ndimage.rotate(image, 3, order=0)) + my_dice(a, b) + model(x)\n"
        "    ### END SOLUTION\n"], local_names={"model"})
    calls, keywords = dictation.answer_calls(exercise, defined={"my_dice"})
    assert calls == ["ndimage.rotate"] and keywords == ["order=0"]
    exercise.visible = ["scipy's rotate, order=0"]        # code spans and released code: names count
    assert dictation.named_in_text(exercise) == ["ndimage.rotate", "order=0"]
    exercise.visible = ["turn the image, nearest neighbour"]
    assert dictation.named_in_text(exercise) == []


def test_the_goal_fails_a_lesson_whose_notes_call_its_exercises_dictated(tmp_path, monkeypatch):
    lesson = GRADED[0]
    text = (dictation.NOTES_DIR / f"{lesson}.md").read_text(encoding="utf-8")
    broken = re.sub(r"^(\|\s*\d+\.\d+ [^|]+\|[^|]+\|[^|]+\|)\s*no\s*\|", r"\1 yes |", text, flags=re.M)
    assert broken != text
    (tmp_path / f"{lesson}.md").write_text(broken, encoding="utf-8")
    monkeypatch.setattr(dictation, "NOTES_DIR", tmp_path)
    with pytest.raises(AssertionError, match="goal"):
        test_at_most_the_goal_share_of_a_lessons_points_is_dictated(lesson)
