"""A small class of the example lesson (``tests/fixtures/00_example``) graded end to end, and
what a grading run decided, read back: for comparing ways of grading (one nbgrader per
submission or long-lived workers, fresh or forked runners, local or on a cluster)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nbformat
import pytest
from support.course import FIXTURES, REPO_ROOT, TEST_CONFIG

from helpers.grading import commands as grading
from helpers.grading import sandbox

#: The plain-Python example lesson: fast to grade.
EXAMPLE = "00_example"


def example_course(root: Path, lesson: str = EXAMPLE) -> tuple:
    """A released course root at ``root`` holding the example lesson, or the course's
    ``lesson`` from ``answers/`` (skips the test where bubblewrap is missing). Returns its
    answer and release notebooks."""
    if sandbox._probe():
        pytest.skip(f"no sandbox here: {sandbox._probe()} (CI installs bubblewrap)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text((REPO_ROOT / "nbgrader_config.py").read_text() + TEST_CONFIG)
    shutil.copytree((FIXTURES if lesson == EXAMPLE else REPO_ROOT / "answers") / lesson, root / "answers" / lesson)
    assert grading.release(root=root, quiet=True) == 0
    answers = nbformat.read(root / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    return answers, release


def submit(root: Path, students: dict, lesson: str = EXAMPLE) -> None:
    """Hand in ``students`` (name -> notebook; None: a file that is not a notebook at all)
    of ``lesson`` and collect them."""
    for student, nb in students.items():
        folder = root / "submissions" / student / lesson
        folder.mkdir(parents=True)
        if nb is None:
            (folder / f"{lesson}.ipynb").write_text("{ this is not json", encoding="utf-8")
        else:
            nbformat.write(nb, folder / f"{lesson}.ipynb")
    assert grading.collect(root / "submissions", root=root, quiet=True) == 0


def outcome(root: Path, manual_flags: bool = False) -> tuple[dict, dict]:
    """Report rows (without the seconds) and per-test-cell grades, by (student, lesson).

    Args:
        root: the course root of the run.
        manual_flags: also each cell's "needs manual grade" flag, as (score, flag).
    Returns:
        (rows, cells).
    """
    with open(root / "grading_report.csv", newline="") as handle:
        rows = {(r["student"], r["lesson"]): {k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(handle)}
    cells = {}
    with grading.gradebook(root) as gb:
        for student, lesson in rows:
            try:
                submission = gb.find_submission(lesson, student)
            except Exception:  # noqa: BLE001 - not in the gradebook: not graded
                continue
            cells[(student, lesson)] = {g.name: (g.score, g.needs_manual_grade) if manual_flags else g.score
                                        for g in submission.notebooks[0].grades}
    return rows, cells
