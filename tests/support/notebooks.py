"""Notebook helpers of the tests: nbgrader's cell roles, edited copies of a submission, and
the dead-end scan (cells that raised although they are neither an exercise nor its check)."""

from __future__ import annotations

import copy
import re

import nbformat


def nbgrader_meta(cell) -> dict:
    """The ``nbgrader`` metadata of a cell (empty for a plain cell)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test_cell(cell) -> bool:
    """A graded test (check) cell: a graded code cell that is not a solution."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell) -> bool:
    """A cell the learner fills in (code or a written answer)."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_written_answer(cell) -> bool:
    """A manually graded answer: a solution cell that is graded (markdown here)."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and bool(meta.get("solution"))


def cell_index(nb, grade_id: str) -> int:
    """Index of the cell with nbgrader ``grade_id`` (StopIteration where none has it)."""
    return next(i for i, cell in enumerate(nb.cells) if nbgrader_meta(cell).get("grade_id") == grade_id)


def with_cell(nb, after_id: str, source: str):
    """A copy of ``nb`` with a new plain code cell after the cell ``after_id``."""
    nb = copy.deepcopy(nb)
    nb.cells.insert(cell_index(nb, after_id) + 1, nbformat.v4.new_code_cell(source))
    return nb


def with_source(nb, grade_id: str, source: str):
    """A copy of ``nb`` whose cell ``grade_id`` holds ``source`` instead."""
    nb = copy.deepcopy(nb)
    nb.cells[cell_index(nb, grade_id)].source = source
    return nb


def prefixed(nb, grade_id: str, source: str):
    """A copy of ``nb`` whose cell ``grade_id`` starts with ``source``."""
    nb = copy.deepcopy(nb)
    cell = nb.cells[cell_index(nb, grade_id)]
    cell.source = source + "\n" + cell.source
    return nb


def exercise_or_check(cell) -> bool:
    """An exercise cell (the learner's blank) or a check cell: a graded test, or the ungraded
    check of a reading lesson's exercise, which opens with a ``"Check: ..."`` docstring."""
    meta = nbgrader_meta(cell)
    if meta.get("solution") or meta.get("grade"):
        return True
    statements = [line for line in cell.get("source", "").splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    return bool(statements) and re.match(r"""^(\"\"\"|'''|"|')Check:""", statements[0].lstrip()) is not None


def dead_ends(nb) -> list[str]:
    """``"cell N: <error>"`` for every executed code cell of ``nb`` that raised although it is
    neither an exercise nor a check: where a learner who left a blank empty would be stuck."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or exercise_or_check(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:200]}")
    return found
