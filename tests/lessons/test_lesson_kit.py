"""The learner's kit of every lesson (issue 27, item 6), checked on the answer notebooks:

* the header states the questions the lesson answers and its prerequisites, and a lesson with
  class time splits it into teaching and exercise minutes that add up to the **Time** line;
* exercises are numbered by lesson, ``Exercise 4.3`` = lesson 04's third, 1..n in order, written
  answers included (no other numbering);
* every graded code exercise says what its cell must define, what the check prints when it
  works (bound to the check's committed output) and has a folded ``<details>`` hint before its
  check;
* every link to a glossary entry (``glossary.md#hu``) names an anchor that docs/glossary.md has.

The rules are functions that return problems in words, so the tests below also show that each
rule fails on a deliberately broken copy of a lesson.
"""

from __future__ import annotations

import copy
import re
import nbformat
import pytest
from support.course import ANSWER_LESSONS, REPO_ROOT

from helpers.course import UNGRADED_LESSONS

GRADED = [name for name in ANSWER_LESSONS if name not in UNGRADED_LESSONS]
GLOSSARY = REPO_ROOT / "docs" / "glossary.md"

HEADING = re.compile(r"^#{2,4} (Exercise|Written answer) (\d+)\.(\d+)\b", re.M)
HINT = re.compile(r"<details>\s*<summary>\s*Hints?\s*</summary>.+?</details>", re.S)
PRINTS = re.compile(r"the check prints `(✓[^`]+)`")
IN_CLASS = re.compile(r"\*\*In class\*\*\s*[—–-]+\s*~(\d+) min of teaching and ~(\d+) min of exercises")
CLASS_TIME = re.compile(r"\*\*Time\*\*\s*[—–-]+\s*about (\d+) min in class")
GLOSSARY_LINK = re.compile(r"\]\((?:[./]*docs/|\.\./\.\./docs/|)glossary\.md#([\w-]+)\)")
DEFINED = re.compile(r"^(?:def|class) (\w+)", re.M)


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO_ROOT / "answers" / name / f"{name}.ipynb", as_version=4)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_check(cell) -> bool:
    meta = _nbgrader(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def header_problems(nb) -> list[str]:
    """What the first cell lacks: questions, prerequisites, objectives, the split class time."""
    header = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    problems = [f"the first cell has no **{part}** paragraph" for part in ("Questions", "Prerequisites", "Objectives")
                if f"**{part}**" not in header]
    if "**Questions**" in header and "?" not in header.split("**Questions**", 1)[1].split("\n\n", 1)[0]:
        problems.append("the **Questions** paragraph asks no question")
    time = CLASS_TIME.search(header)
    if time:
        split = IN_CLASS.search(header)
        if not split:
            problems.append("the Time line gives class time but no '**In class** — ~A min of teaching and "
                            "~B min of exercises' line splits it")
        elif int(split.group(1)) + int(split.group(2)) != int(time.group(1)):
            problems.append(f"teaching {split.group(1)} + exercises {split.group(2)} min is not the "
                            f"{time.group(1)} min in class of the Time line")
    return problems


def numbering_problems(nb, lesson: int) -> list[str]:
    """Exercise headings: ``Exercise <lesson>.<n>``, n = 1, 2, ... in order; no other scheme."""
    problems, expected = [], 1
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for kind, major, minor in HEADING.findall(cell.source):
            if kind != "Exercise":
                problems.append(f"'{kind} {major}.{minor}': written answers are numbered as exercises")
            if int(major) != lesson or int(minor) != expected:
                problems.append(f"'Exercise {major}.{minor}' should be 'Exercise {lesson}.{expected}'")
            expected += 1
    return problems


def _output_lines(cell) -> list[str]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return [line.strip() for line in text.splitlines()]


def _prints_match(expected: str, lines: list[str]) -> bool:
    """``expected`` (``…`` stands for any text) is one whole line of the check's output."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return any(re.fullmatch(pattern, line) for line in lines)


def exercise_problems(nb) -> list[str]:
    """For every graded check cell: the text of its exercise (from its heading to the check) holds
    a folded hint, the success line (matching the committed output) and the names its solution
    cells define."""
    problems = []
    cells = nb.cells
    for index, cell in enumerate(cells):
        if not _is_check(cell):
            continue
        name = _nbgrader(cell).get("grade_id")
        text, defined, start = [], [], index - 1
        while start >= 0 and not (cells[start].cell_type == "markdown" and HEADING.search(cells[start].source)):
            if _is_check(cells[start]):
                break
            if cells[start].cell_type == "markdown":
                text.append(cells[start].source)
            elif _nbgrader(cells[start]).get("solution"):
                defined += DEFINED.findall(cells[start].source)
            start -= 1
        if start < 0 or _is_check(cells[start]):
            problems.append(f"{name}: no '### Exercise' heading before this check")
            continue
        text.append(cells[start].source[HEADING.search(cells[start].source).start():])
        words = "\n".join(text)
        if not HINT.search(words):
            problems.append(f"{name}: no <details><summary>Hint</summary> … </details> before the check")
        said = PRINTS.search(words)
        if not said:
            problems.append(f"{name}: the text does not say what the check prints ('the check prints `✓ …`')")
        elif cell.get("outputs") and not _prints_match(said.group(1), _output_lines(cell)):
            problems.append(f"{name}: the text says the check prints {said.group(1)!r}, its output is "
                            f"{_output_lines(cell)[:1]}")
        for function in defined:
            if f"`{function}" not in words:
                problems.append(f"{name}: the text never names `{function}`, which the cell must define")
    return problems


def glossary_anchors() -> set[str]:
    return set(re.findall(r'<a id="([\w-]+)"></a>', GLOSSARY.read_text(encoding="utf-8")))


def glossary_link_problems(markdown: str, anchors: set[str]) -> list[str]:
    return [f"glossary.md#{anchor} is not an anchor of docs/glossary.md"
            for anchor in GLOSSARY_LINK.findall(markdown) if anchor not in anchors]


def _markdown(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


@pytest.mark.parametrize("name", ANSWER_LESSONS)
def test_every_lesson_states_its_questions_prerequisites_and_time(name):
    problems = header_problems(read(name))
    assert not problems, f"answers/{name}: {problems}"


@pytest.mark.parametrize("name", GRADED)
def test_exercises_are_numbered_by_lesson_and_each_has_a_hint_and_its_success_line(name):
    nb = read(name)
    problems = numbering_problems(nb, int(name[:2])) + exercise_problems(nb)
    assert not problems, f"answers/{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", GRADED)
def test_every_lesson_links_its_words_to_glossary_entries_that_exist(name):
    markdown = _markdown(read(name))
    assert len(set(GLOSSARY_LINK.findall(markdown))) >= 3, f"answers/{name} links fewer than 3 glossary entries"
    assert not glossary_link_problems(markdown, glossary_anchors())


def test_glossary_links_of_the_docs_and_the_release_resolve():
    anchors = glossary_anchors()
    assert {"hu", "affine", "spacing", "dice", "iou", "hd95"} <= anchors
    problems = []
    for path in sorted((REPO_ROOT / "docs").rglob("*.md")) + [REPO_ROOT / "README.md"]:
        problems += [f"{path.name}: {p}" for p in glossary_link_problems(path.read_text(encoding="utf-8"), anchors)]
    for path in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        problems += [f"{path.name}: {p}" for p in glossary_link_problems(_markdown(nb), anchors)]
    assert not problems, problems


# The rules fail on broken copies -------------------------------------------------------------

def _first(nb, predicate):
    return next(cell for cell in nb.cells if predicate(cell))


def test_the_rules_catch_a_lesson_without_questions_or_a_wrong_time_split():
    nb = copy.deepcopy(read("04_training"))
    assert not header_problems(nb)
    nb.cells[0].source = nb.cells[0].source.replace("**Questions**", "**Framing**")
    assert any("Questions" in p for p in header_problems(nb))
    nb = copy.deepcopy(read("04_training"))
    nb.cells[0].source = IN_CLASS.sub("**In class** — ~5 min of teaching and ~5 min of exercises", nb.cells[0].source)
    assert any("is not the" in p for p in header_problems(nb))


def test_the_rules_catch_section_numbering_and_a_missing_hint():
    nb = copy.deepcopy(read("03_loss_and_metrics"))
    assert not numbering_problems(nb, 3) and not exercise_problems(nb)
    heading = _first(nb, lambda c: c.cell_type == "markdown" and "### Exercise 3.4" in c.source)
    heading.source = heading.source.replace("### Exercise 3.4", "### Exercise 2.1")      # the old scheme
    assert "'Exercise 2.1' should be 'Exercise 3.4'" in numbering_problems(nb, 3)
    heading.source = HINT.sub("", heading.source)
    assert any(p.startswith("iou_check: no <details>") for p in exercise_problems(nb))


def test_the_rules_catch_a_wrong_success_line_and_an_unnamed_function():
    nb = copy.deepcopy(read("06_lung_ct_3d"))
    heading = _first(nb, lambda c: c.cell_type == "markdown" and "### Exercise 6.1 " in c.source)
    heading.source = heading.source.replace("✓ window_hu: correct", "✓ window_hu: wrong")
    assert any(p.startswith("window_hu_check: the text says the check prints") for p in exercise_problems(nb))
    heading.source = heading.source.replace("`window_hu", "`the_window")
    assert any("never names `window_hu`" in p for p in exercise_problems(nb))


def test_the_rules_catch_a_written_answer_numbered_apart_and_a_missing_anchor():
    nb = copy.deepcopy(read("07_liver_ct"))
    heading = _first(nb, lambda c: c.cell_type == "markdown" and "### Exercise 7.7" in c.source)
    heading.source = heading.source.replace("### Exercise 7.7", "### Written answer 7.1")
    assert any("written answers are numbered as exercises" in p for p in numbering_problems(nb, 7))
    assert glossary_link_problems("[HU](../../docs/glossary.md#no-such-word)", glossary_anchors())
    assert not glossary_link_problems("[HU](../../docs/glossary.md#hu)", glossary_anchors())


def test_success_lines_match_with_ellipses():
    lines = ["✓ AHEAD = 'residual': what the last-epoch difference and this run's noise support."]
    assert _prints_match("✓ AHEAD = …: what the last-epoch difference and this run's noise support.", lines)
    assert not _prints_match("✓ AHEAD = …: something else.", lines)
