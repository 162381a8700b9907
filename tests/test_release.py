"""notebooks/ is exactly what nbgrader generates from answers/, and the answer notebooks
follow the exercise conventions (tests helpers/grading/commands.py's release and nbgrader_config.py).

The release is regenerated into a temporary course root (``course_root`` in conftest.py)
and compared with the committed notebooks/ cell by cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import ANSWER_LESSONS, FIXTURE_LESSONS, FIXTURES, REPO_ROOT, lesson_names

from helpers.course import CAPSTONE_LESSONS, READING_LESSONS

FIX = "python -m helpers release"
MAX_NOTEBOOK_BYTES = 1_000_000
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def normalised(path: Path) -> dict:
    """What must match between a regenerated and a committed release notebook: the kernel,
    and per cell its type, source, nbgrader metadata and edit locks, and no outputs.
    Cell ids are left out (nbformat invents them for notebooks that have none)."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        cells.append({
            "cell_type": cell.cell_type,
            "source": cell.source,
            "nbgrader": meta.get("nbgrader"),
            "deletable": meta.get("deletable"),
            "editable": meta.get("editable"),
            "outputs": len(cell.get("outputs", [])),
            "executed": cell.get("execution_count") is not None,
        })
    return {"kernelspec": nb.metadata.get("kernelspec"), "cells": cells}


def first_difference(expected: dict, actual: dict) -> str:
    if expected["kernelspec"] != actual["kernelspec"]:
        return f"kernelspec {actual['kernelspec']} instead of {expected['kernelspec']}"
    if len(expected["cells"]) != len(actual["cells"]):
        return f"{len(actual['cells'])} cells instead of {len(expected['cells'])}"
    for index, (want, got) in enumerate(zip(expected["cells"], actual["cells"])):
        for key in want:
            if want[key] != got[key]:
                return f"cell {index}: {key} differs: committed {got[key]!r:.200} vs generated {want[key]!r:.200}"
    return "files other than the notebook differ"


@pytest.mark.parametrize("lesson", ANSWER_LESSONS)
def test_committed_release_matches_answers(lesson, course_root):
    generated_dir = course_root / "notebooks" / lesson
    committed_dir = REPO_ROOT / "notebooks" / lesson
    assert (generated_dir / f"{lesson}.ipynb").is_file(), (
        f"nbgrader generate_assignment could not release answers/{lesson}/: run `{FIX} "
        f"{lesson[:2]}` to see why.")
    assert committed_dir.is_dir(), (f"notebooks/{lesson}/ is missing: run `{FIX}` and commit "
                                    f"notebooks/{lesson}/.")
    generated = {p.relative_to(generated_dir): p for p in generated_dir.rglob("*") if p.is_file()}
    committed = {p.relative_to(committed_dir): p for p in committed_dir.rglob("*")
                 if p.is_file() and ".ipynb_checkpoints" not in p.parts}
    assert set(generated) == set(committed), (
        f"notebooks/{lesson}/ holds {sorted(map(str, committed))}, the release from answers/ "
        f"{sorted(map(str, generated))}: run `{FIX}` (and delete stale files).")
    for relative, path in generated.items():
        if path.suffix == ".ipynb":
            want, got = normalised(path), normalised(committed[relative])
            assert want == got, (f"notebooks/{lesson}/{relative} is out of date with "
                                 f"answers/{lesson}/ ({first_difference(want, got)}): run `{FIX}`.")
        else:
            assert path.read_bytes() == committed[relative].read_bytes(), (
                f"notebooks/{lesson}/{relative} differs from answers/{lesson}/: run `{FIX}`.")


def test_release_is_deterministic(course_root):
    """Generating twice gives identical files (no timestamps, stable cell ids)."""
    from helpers.grading import commands as grading

    lesson = FIXTURE_LESSONS[0]
    path = course_root / "notebooks" / lesson / f"{lesson}.ipynb"
    before = path.read_bytes()
    assert grading.release([lesson], root=course_root, quiet=True) == 0
    assert path.read_bytes() == before


def test_every_lesson_is_released_and_nothing_else():
    answers = set(lesson_names(REPO_ROOT / "answers"))
    released = set(lesson_names(REPO_ROOT / "notebooks"))
    assert not answers - released, (f"lessons without a release in notebooks/: "
                                    f"{sorted(answers - released)}: run `{FIX}`.")
    assert not released - answers, (f"notebooks/ has lessons without answers/: "
                                    f"{sorted(released - answers)}: delete them or restore the answers.")


def test_release_holds_no_solutions_or_hidden_tests():
    leaks = []
    for path in sorted((REPO_ROOT / "notebooks").rglob("*")):
        if path.is_file() and path.suffix in {".ipynb", ".py", ".md", ".txt"}:
            text = path.read_text(errors="replace")
            leaks += [f"{path.relative_to(REPO_ROOT)}: {marker}" for marker in FORBIDDEN if marker in text]
    assert not leaks, f"solutions or hidden tests in the student notebooks: {leaks}; run `{FIX}`."


def answer_notebooks():
    return ([pytest.param(REPO_ROOT / "answers" / n / f"{n}.ipynb", id=n) for n in ANSWER_LESSONS]
            + [pytest.param(FIXTURES / n / f"{n}.ipynb", id=f"fixture-{n}") for n in FIXTURE_LESSONS])


@pytest.mark.parametrize("path", answer_notebooks())
def test_answer_notebook_follows_the_exercise_conventions(path: Path):
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, (f"{path.name} is {size / 1e6:.1f} MB with outputs: lower the "
                                       f"figure dpi (72) and fit verbosity, print less.")
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    meta = [(i, c, c.get("metadata", {}).get("nbgrader")) for i, c in enumerate(nb.cells)]
    ids = [m["grade_id"] for _, _, m in meta if m]
    duplicates = sorted({gid for gid in ids if ids.count(gid) > 1})
    assert not duplicates, f"{path.name}: grade_id used twice: {duplicates}"
    tests = [(i, c, m) for i, c, m in meta
             if m and m.get("grade") and not m.get("solution") and c.cell_type == "code"]
    if path.parent.name in CAPSTONE_LESSONS:   # not autograded: no points, no blanks, every cell runs
        assert not tests and not any(m and m.get("solution") for _, _, m in meta), (
            f"{path.name}: the capstone is not autograded; it must have no graded or solution cells")
    elif path.parent.name in READING_LESSONS:  # nothing graded; a practice blank (00) is allowed
        assert not tests and not any(m and m.get("points") for _, _, m in meta), (
            f"{path.name}: a reading lesson holds no graded points")
    else:
        assert len(tests) >= 3, f"{path.name}: {len(tests)} graded test cells, at least 3 needed"
    for i, cell, m in tests:
        assert float(m.get("points", 0)) > 0, f"{path.name} cell {i} ({m['grade_id']}): no points"
        assert m.get("locked"), f"{path.name} cell {i} ({m['grade_id']}): a test cell must be locked"
    for i, cell, m in meta:
        if m and m.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                f"{path.name} cell {i} ({m['grade_id']}): solution cell without "
                f"### BEGIN SOLUTION / ### END SOLUTION")
        elif m and m.get("solution"):  # a written answer: the whole cell becomes "YOUR ANSWER HERE"
            assert m.get("grade") and float(m.get("points", 0)) > 0 and not m.get("task"), (
                f"{path.name} cell {i} ({m['grade_id']}): a markdown solution cell is a written answer, "
                f"graded by hand: grade: true, points > 0, task: false")
            assert "Rubric" in cell.source, (
                f"{path.name} cell {i} ({m['grade_id']}): a written answer holds its model answer and "
                f"the **Rubric** the instructor grades with")
    checked = [i for i, c, _ in meta
               if c.cell_type == "code" and c.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")]
    assert len(checked) >= 2, (f"{path.name}: {len(checked)} cells start with # NBVAL_CHECK_OUTPUT, "
                               f"at least 2 needed (deterministic shapes, counts, metric values)")
    assert all(cell.get("id") for cell in nb.cells), (
        f"{path.name}: cells without ids make the release change on every run; save it with "
        f"nbformat >= 5.1 (e.g. open and save it in JupyterLab).")


def _measured_seconds(readme: str) -> dict[str, int]:
    """The README's one measured run: ``| 04 | 105 | ... |`` rows."""
    import re

    rows = re.findall(r"^\| (\d\d) \| (\d+) \| [^\n]*\|$", readme, re.M)
    return {number: int(seconds) for number, seconds in rows}


def _compute_label(seconds: int) -> tuple[str, str]:
    """What the lesson table and a lesson's **Time** line say for ``seconds`` of compute:
    under a minute, else the nearest half minute."""
    if seconds < 60:
        return "< 1 min", "under a minute"
    text = f"~{round(seconds / 30) / 2:g} min"
    return text, text


def test_lesson_times_in_readme_and_headers_come_from_the_measured_run():
    import re

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    measured = _measured_seconds(readme)
    timed = [name for name in ANSWER_LESSONS if name not in READING_LESSONS]   # 00 and 10 train nothing
    assert sorted(measured) == sorted(name[:2] for name in timed), measured
    for number, seconds in measured.items():
        column, phrase = _compute_label(seconds)
        row = re.search(r"^\| \[" + number + r" [^\n]*\| ([^|\n]+) \|$", readme, re.M)
        assert row and row.group(1).strip() == column, (
            f"README lesson table, lesson {number}: compute {row and row.group(1)!r}, "
            f"the measured run says {seconds} s -> {column!r}")
        path = next((REPO_ROOT / "answers").glob(f"{number}_*/*.ipynb"))
        header = "".join(nbformat.read(path, as_version=4).cells[0].source)
        time_line = re.search(r"\*\*Time\*\*[^\n]*", header)
        assert time_line and f"in class, {phrase} of compute" in time_line.group(0), (
            f"{path.name}: the **Time** line says {time_line and time_line.group(0)!r}; the measured run "
            f"says {seconds} s -> {phrase!r}")


def _exercise_or_check(cell) -> bool:
    """An exercise cell (the learner's blank) or a check cell: a graded test, or the ungraded
    check of a reading lesson's exercise, which opens with a ``"Check: ..."`` docstring."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution") or meta.get("grade"):
        return True
    statements = [line for line in cell.get("source", "").splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    return bool(statements) and re.match(r"""^('''|"|')Check:""", statements[0].lstrip()) is not None


def dead_ends(path: Path, timeout: int = 900) -> list[str]:
    """Execute a released notebook as a learner who leaves every blank empty would (errors
    allowed) and return, for every other code cell that raised, ``"cell N: <error>"``."""
    from nbclient import NotebookClient

    from helpers.tools.kernels import apply_kernel_env

    apply_kernel_env()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or _exercise_or_check(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:200]}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("lesson", [name for name in ANSWER_LESSONS if name not in CAPSTONE_LESSONS])
def test_untouched_release_has_no_dead_end(lesson, monkeypatch):
    """No dead ends: with every blank of the released notebook left as it is, every cell but
    the exercises and their checks runs, with the reference from helpers standing in for each
    unfinished exercise (``checks.learner_or_reference``), at UNET_COURSE_SCALE=0.1."""
    monkeypatch.setenv("UNET_COURSE_SCALE", "0.1")
    path = REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb"
    found = dead_ends(path)
    assert not found, (f"{lesson}: cells that stop when the blanks are left empty (give them the "
                       f"reference with checks.learner_or_reference after the exercise's check): "
                       + "; ".join(found))
