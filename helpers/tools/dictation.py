"""Dictation audit of the graded exercises (issue 27: points for thinking, not typing).

An exercise is *dictated* when the code of its answer can be copied or transcribed from what the
learner reads before its check. Whether it is so is a reader's judgement, written down per
exercise in ``docs/instructor_notes/<lesson>.md``; this module gives that judgement two
mechanical footholds:

* :func:`exercises` reads an answer notebook into its exercises: the number and title of each
  ``Exercise N.M`` heading, the points of the graded cells under it, how they are graded
  (``auto``, ``by hand``, or ``warm-up`` for a blank with a check but no points), the calls its
  solution regions make and what the learner can read of it before its check (the markdown's
  code spans and blocks, hint included, and the released code of its cells, from the heading
  to the check);
* :func:`named_in_text` lists the answer's distinctive calls (``ndimage.rotate``,
  ``ops.cast``, ``layers.Conv2D``; generic ones such as ``len`` or ``ops.sum`` left out) and
  keyword values (``connectivity=2``) that this text names: an exercise the notes call *not
  dictated* must name none;
* :func:`read_notes` parses a notes file's table and its ``Dictated: D of T points.`` line.

``python -m helpers.tools.dictation [lessons]`` prints the audit. Standard library plus
``nbformat`` only; it reads files and changes nothing.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTES_DIR = REPO_ROOT / "docs" / "instructor_notes"

#: ``### Exercise 4.3 — One training step by hand (3 points)``
HEADING = re.compile(r"^#{2,4} Exercise (\d+)\.(\d+)\s*[—–-]+\s*(.+?)\s*$", re.M)
SECTION = re.compile(r"^#{1,2} ", re.M)
SOLUTION = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)
CODE_SPAN = re.compile(r"```.*?```|`[^`\n]+`", re.S)
NOTES_ROW = re.compile(r"^\|\s*(\d+)\.(\d+)\s+([^|]+?)\s*\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|\s*(yes|no)\s*\|", re.M)
NOTES_TOTAL = re.compile(r"^Dictated: (\d+) of (\d+) points?\.", re.M)

#: Calls too common to say anything about an answer (builtins, NumPy/keras.ops reductions and
#: constructors, container methods), by their last name.
GENERIC_CALLS = frozenset({
    "abs", "all", "any", "append", "array", "asarray", "astype", "bool", "copy", "dict", "enumerate",
    "extend", "float", "get", "int", "isinstance", "items", "keys", "len", "list", "max", "mean", "min",
    "ones", "ones_like", "print", "range", "reshape", "round", "set", "shape", "sorted", "str", "sum",
    "super", "tuple", "values", "zeros", "zeros_like", "zip",
})


@dataclass
class Exercise:
    """One ``Exercise N.M`` of an answer notebook."""

    lesson: str
    number: str                      #: "4.3"
    title: str                       #: the heading after the dash, points note included
    points: float = 0.0              #: sum of the graded cells' points under the heading
    kind: str = "warm-up"            #: "auto", "by hand" or "warm-up" (no points)
    solutions: list[str] = field(default_factory=list)   #: the solution regions' code
    visible: list[str] = field(default_factory=list)     #: what the learner reads of it
    local_names: set[str] = field(default_factory=set)   #: parameters and variables of its cells
    checked: bool = False            #: its check has been read (later cells come after the attempt)


@dataclass
class NotesRow:
    """One row of a lesson's instructor-notes table."""

    number: str
    title: str
    points: int
    graded: str
    dictated: bool


def _nbgrader(cell: Any) -> dict[str, Any]:
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def _released(source: str) -> str:
    """A cell's source as the release shows it: solution regions and hidden tests removed."""
    return HIDDEN.sub("", SOLUTION.sub("", source))


def _markdown_code(source: str) -> str:
    """The code spans and blocks of a markdown text, one per line."""
    return "\n".join(match.strip("`") for match in CODE_SPAN.findall(source))


def exercises(path: Path) -> list[Exercise]:
    """The exercises of the answer notebook ``path``, in order.

    Args:
        path: an answer notebook (``answers/<lesson>/<lesson>.ipynb``).

    Returns:
        One :class:`Exercise` per ``Exercise N.M`` heading; the cells from the heading to the next
        exercise heading or section (``#``/``##``) belong to it.
    """
    notebook = nbformat.read(path, as_version=4)
    found: list[Exercise] = []
    current: Exercise | None = None
    for cell in notebook.cells:
        meta = _nbgrader(cell)
        if cell.cell_type == "markdown" and not meta.get("solution"):
            heading = HEADING.search(cell.source)
            if heading:
                current = Exercise(path.stem, f"{heading.group(1)}.{heading.group(2)}", heading.group(3))
                found.append(current)
                current.visible.append(_markdown_code(cell.source[heading.start():]))
                continue
            if SECTION.search(cell.source):
                current = None
            elif current is not None and not current.checked:
                current.visible.append(_markdown_code(cell.source))
            continue
        if current is None:
            continue
        if meta.get("grade"):
            current.points += float(meta.get("points") or 0)
            manual = cell.cell_type == "markdown" or (meta.get("solution") and cell.cell_type != "code")
            kind = "by hand" if manual else "auto"
            current.kind = kind if current.kind in ("warm-up", kind) else "auto + by hand"
        if cell.cell_type == "code":
            current.solutions.extend(region for region in SOLUTION.findall(cell.source))
            current.local_names |= _local_names(cell.source)
            if not current.checked:
                current.visible.append(_released(cell.source))
        if meta.get("grade") or _is_warm_up_check(cell):
            current.checked = True      # what follows the check is read after the attempt
    return found


def _is_warm_up_check(cell: Any) -> bool:
    """An ungraded check cell: a code cell whose docstring title starts with "Check"."""
    return cell.cell_type == "code" and cell.source.lstrip().startswith(('"Check', '"""Check'))


def _local_names(source: str) -> set[str]:
    """Parameters and assigned names of a code cell (calling them is not a dictated call)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    return names


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return None


def answer_calls(exercise: Exercise, defined: set[str] | frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """The distinctive calls and literal keyword arguments of an exercise's solution regions.

    Args:
        exercise: from :func:`exercises`.
        defined: names the notebook defines itself (the learner's own functions): calling
            them is reuse, not a dictated call.

    Returns:
        ``(calls, keywords)``: dotted call names (``ndimage.rotate``) whose last name is not in
        :data:`GENERIC_CALLS`, and ``name=value`` strings for keyword arguments given a literal.
    """
    calls: set[str] = set()
    keywords: set[str] = set()
    for region in exercise.solutions:
        code = "\n".join(line for line in region.splitlines() if "### " not in line)
        try:
            tree = ast.parse(_dedent(code))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            if name:
                last = name.rsplit(".", 1)[-1]
                own = "." not in name and name in exercise.local_names
                if last not in GENERIC_CALLS and name.split(".")[0] != "self" and last not in defined and not own:
                    calls.add(name)
            for keyword in node.keywords:
                if keyword.arg and isinstance(keyword.value, ast.Constant) and keyword.value.value is not None:
                    keywords.add(f"{keyword.arg}={keyword.value.value!r}")
    return sorted(calls), sorted(keywords)


def _dedent(code: str) -> str:
    lines = [line for line in code.splitlines() if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in lines), default=0)
    body = "\n".join(line[indent:] for line in code.splitlines())
    return body if not body.lstrip().startswith(("return", "yield")) else f"def _():\n{code}"


def named_in_text(exercise: Exercise, defined: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The answer's distinctive calls and keyword values that the exercise's own text names.

    A call counts as named when its last name appears as a word in the markdown's code spans or
    in the released code of the exercise's cells (``rotate`` for ``ndimage.rotate``); a keyword
    value when ``name=value`` appears there, spaces ignored.

    Args:
        exercise: from :func:`exercises`.
        defined: the notebook's own function names (see :func:`answer_calls`).

    Returns:
        The named calls and keyword values, sorted; empty for an exercise that names none.
    """
    text = "\n".join(exercise.visible)
    squeezed = re.sub(r"\s+", "", text).replace('"', "'")
    calls, keywords = answer_calls(exercise, defined)
    named = [call for call in calls if re.search(rf"(?<![\w]){re.escape(call.rsplit('.', 1)[-1])}(?![\w])", text)]
    named += [keyword for keyword in keywords if keyword.replace('"', "'") in squeezed]
    return named


def defined_names(path: Path) -> set[str]:
    """Function and class names that the answer notebook ``path`` defines at top level."""
    notebook = nbformat.read(path, as_version=4)
    names: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            names.update(re.findall(r"^(?:def|class) (\w+)", cell.source, re.M))
    return names


def read_notes(path: Path) -> tuple[list[NotesRow], tuple[int, int] | None]:
    """The exercise rows of a notes file and its ``Dictated: D of T points.`` line.

    Args:
        path: ``docs/instructor_notes/<lesson>.md``.

    Returns:
        ``(rows, (dictated, total))``; the pair is None when the line is missing.
    """
    text = path.read_text(encoding="utf-8")
    rows = [NotesRow(f"{m.group(1)}.{m.group(2)}", m.group(3), int(m.group(4)), m.group(5), m.group(6) == "yes")
            for m in NOTES_ROW.finditer(text)]
    total = NOTES_TOTAL.search(text)
    return rows, ((int(total.group(1)), int(total.group(2))) if total else None)


def answer_path(lesson: str) -> Path:
    """``answers/<lesson>/<lesson>.ipynb`` of the checkout."""
    return REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb"


@dataclass
class LessonTally:
    """A lesson's points: dictated, graded automatically, by hand, and in all."""

    lesson: str
    dictated: int
    auto: int
    by_hand: int
    total: int


def tally(lesson: str) -> LessonTally:
    """Count a lesson's points from its answer notebook and the verdicts of its notes file.

    Args:
        lesson: the lesson's folder name (``04_training``).

    Returns:
        The :class:`LessonTally`; an exercise missing from the notes counts as dictated.
    """
    rows, _ = read_notes(NOTES_DIR / f"{lesson}.md")
    verdicts = {row.number: row.dictated for row in rows}
    found = exercises(answer_path(lesson))
    points = [(int(exercise.points), exercise.kind, verdicts.get(exercise.number, True)) for exercise in found]
    return LessonTally(lesson,
                       dictated=sum(p for p, _, dictated in points if dictated),
                       auto=sum(p for p, kind, _ in points if kind == "auto"),
                       by_hand=sum(p for p, kind, _ in points if kind == "by hand"),
                       total=sum(p for p, _, _ in points))


def noted_lessons() -> list[str]:
    """The lessons that have a notes file, in order."""
    return [path.stem for path in sorted(NOTES_DIR.glob("[0-9][0-9]_*.md"))]


def summary_table(lessons: list[str] | None = None) -> str:
    """The Markdown table of dictated points per lesson and for the course (notes README).

    Args:
        lessons: lesson folder names (default: :func:`noted_lessons`).

    Returns:
        The table, header to course line, without a trailing newline.
    """
    tallies = [tally(lesson) for lesson in (lessons or noted_lessons())]
    lines = ["| lesson | dictated | auto | by hand | total | dictated share |", "|---|---|---|---|---|---|"]
    for t in tallies:
        name = lesson_title(t.lesson)
        lines.append(f"| {name} | {t.dictated} | {t.auto} | {t.by_hand} | {t.total} | {_share(t.dictated, t.total)} |")
    dictated, auto = sum(t.dictated for t in tallies), sum(t.auto for t in tallies)
    by_hand, total = sum(t.by_hand for t in tallies), sum(t.total for t in tallies)
    lines.append(f"| **course** | **{dictated}** | **{auto}** | **{by_hand}** | **{total}** | "
                 f"**{_share(dictated, total, digits=1)}** |")
    return "\n".join(lines)


def lesson_title(lesson: str) -> str:
    """``06 Lung CT in 3D``: the notes file's first heading without its suffix."""
    first = (NOTES_DIR / f"{lesson}.md").read_text(encoding="utf-8").splitlines()[0]
    title = re.sub(r"^#\s*", "", first).split(" — ")[0].replace(" · ", " ")
    return title or lesson


def _share(part: int, whole: int, digits: int = 0) -> str:
    return f"{100 * part / whole:.{digits}f} %" if whole else "-"


def main(argv: list[str] | None = None) -> int:
    """Print, per exercise, its points, how it is graded, the notes' verdict and named calls."""
    parser = argparse.ArgumentParser(prog="python -m helpers.tools.dictation", description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson folders or numbers (default: every lesson with notes)")
    parser.add_argument("--table", action="store_true", help="print only the notes README's summary table")
    args = parser.parse_args(argv)
    if args.table:
        print(summary_table())
        return 0
    notes = sorted(NOTES_DIR.glob("[0-9][0-9]_*.md"))
    wanted = [note for note in notes if not args.lessons or any(note.stem.startswith(lesson) for lesson in args.lessons)]
    course_dictated = course_total = 0
    for note in wanted:
        rows, _ = read_notes(note)
        verdicts = {row.number: row for row in rows}
        path = answer_path(note.stem)
        defined = defined_names(path)
        print(f"\n{note.stem}")
        for exercise in exercises(path):
            row = verdicts.get(exercise.number)
            verdict = "?" if row is None else ("dictated" if row.dictated else "not dictated")
            named = named_in_text(exercise, defined)
            print(f"  {exercise.number:5s} {exercise.points:4g} pt  {exercise.kind:8s} {verdict:13s} "
                  f"named in its text: {', '.join(named) if named else '-'}")
            course_total += int(exercise.points)
            course_dictated += int(exercise.points) if row is not None and row.dictated else 0
    if course_total:
        print(f"\ndictated: {course_dictated} of {course_total} points ({100 * course_dictated / course_total:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
