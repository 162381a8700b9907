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
from support import notebooks
from support.course import ANSWER_LESSONS, FIXTURE_LESSONS, FIXTURES, REPO_ROOT, lesson_names

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


def test_lesson_headers_results_page_and_manifest_agree():
    """One source for measured figures: every timed lesson of the manifest has a recorded run
    in docs/results.json, its **Time** line says that run's compute time, docs/results.md is
    rendered from the JSON, and the manifest's folders and titles are the lessons'."""
    from helpers.course import LESSONS
    from helpers.tools import results

    assert [spec.folder for spec in LESSONS] == ANSWER_LESSONS, "helpers.course.LESSONS must list every lesson"
    recorded = results.read_results()
    for spec in LESSONS:
        header = "".join(nbformat.read(REPO_ROOT / "answers" / spec.folder / f"{spec.folder}.ipynb",
                                       as_version=4).cells[0].source)
        assert header.startswith(f"# {spec.number} · {spec.title}\n"), (
            f"{spec.folder}: the first heading should be '# {spec.number} · {spec.title}' (helpers.course.LESSONS)")
        if spec.budget_minutes is None:
            continue
        entry = recorded["lessons"].get(spec.folder)
        assert entry, f"{spec.folder} has no recorded run in docs/results.json: python -m helpers course {spec.number} --record"
        phrase = results.compute_phrase(entry["seconds"])
        line = re.search(r"\*\*Time\*\*[^\n]*", header)
        assert line and f"in class, {phrase} of compute" in line.group(0), (
            f"{spec.folder}: the **Time** line says {line and line.group(0)!r}; docs/results.json records "
            f"{entry['seconds']:.0f} s -> {phrase!r} (python -m helpers course {spec.number} --record sets it)")
    assert (REPO_ROOT / "docs" / "results.md").read_text(encoding="utf-8") == results.render_markdown(recorded), (
        "docs/results.md is generated from docs/results.json: do not edit it; re-record or re-render it")


def dead_ends(path: Path, timeout: int = 900) -> list[str]:
    """Execute a released notebook as a learner who leaves every blank empty would (errors
    allowed) and return, for every other code cell that raised, ``"cell N: <error>"``."""
    from nbclient import NotebookClient

    from helpers.tools.kernels import apply_kernel_env

    apply_kernel_env()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebooks.dead_ends(notebook)


@pytest.mark.slow
@pytest.mark.parametrize("lesson", [name for name in ANSWER_LESSONS if name in READING_LESSONS])
def test_untouched_release_has_no_dead_end(lesson, monkeypatch):
    """No dead ends: with every blank of the released notebook left as it is, every cell but
    the exercises and their checks runs, with the reference from helpers standing in for each
    unfinished exercise (``checks.learner_or_reference``), at UNET_COURSE_SCALE=0.1.

    Here for the reading lessons, which the nbgrader round trip does not grade; for every
    graded lesson, tests/grading/test_grading.py asserts the same on the untouched release it grades
    at that scale (``test_untouched_release_has_no_dead_end`` there), so that no lesson runs
    twice. The capstone has no blanks."""
    monkeypatch.setenv("UNET_COURSE_SCALE", "0.1")
    path = REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb"
    found = dead_ends(path)
    assert not found, (f"{lesson}: cells that stop when the blanks are left empty (give them the "
                       f"reference with checks.learner_or_reference after the exercise's check): "
                       + "; ".join(found))


def test_the_dead_end_scan_names_stuck_cells_and_ignores_exercises_and_checks():
    """The scan behind both dead-end tests: an error in a plain cell is a dead end; errors in
    the learner's blank, its graded check or a reading lesson's "Check:" cell are not."""
    def cell(source, error=None, **nbgrader):
        made = nbformat.v4.new_code_cell(source)
        if nbgrader:
            made.metadata["nbgrader"] = nbgrader
        if error:
            made.outputs = [nbformat.v4.new_output("error", ename=error, evalue="boom", traceback=[])]
        return made

    nb = nbformat.v4.new_notebook(cells=[
        cell("raise NotImplementedError()", "NotImplementedError", solution=True, grade_id="blank"),
        cell("check()", "AssertionError", grade=True, grade_id="blank_check", points=1),
        cell('"""Check: the practice exercise."""\ncheck()', "AssertionError"),
        cell("print('fine')"),
        cell("use(blank)", "NameError"),
    ])
    assert notebooks.dead_ends(nb) == ["cell 4: NameError: boom"]
