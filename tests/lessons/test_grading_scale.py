"""The grading scale (``UNET_COURSE_SCALE=0.1``, helpers/grading/commands.py's GRADING_SCALE)
runs the fewest training steps that still exercise the learner's code: no ``fit`` call of an
answer notebook trains for a fixed number of epochs above one, since ``config.scaled_epochs``
would give the same epochs at scale 1 and a tenth of them when grading."""

from __future__ import annotations

import ast

import nbformat
import pytest
from support.course import ANSWER_LESSONS, REPO_ROOT


def fixed_epochs(source: str) -> list[str]:
    """``"line N: epochs=K"`` for each call ``*.fit(..., epochs=K)`` in ``source`` whose ``K``
    is an integer literal above 1."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fit":
            for keyword in node.keywords:
                value = keyword.value
                if (keyword.arg == "epochs" and isinstance(value, ast.Constant) and isinstance(value.value, int)
                        and value.value > 1):
                    found.append(f"line {node.lineno}: epochs={value.value}")
    return found


@pytest.mark.parametrize("lesson", ANSWER_LESSONS)
def test_no_fit_trains_a_fixed_number_of_epochs(lesson):
    notebook = nbformat.read(REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    found = [f"cell {index}, {where}" for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             for where in fixed_epochs(cell.source)]
    assert not found, (f"answers/{lesson}: {'; '.join(found)} trains as long when grading at "
                       f"UNET_COURSE_SCALE=0.1 as at scale 1: write epochs=config.scaled_epochs(K), then re-execute "
                       f"(python -m helpers course {lesson[:2]} --update-answers) and release the lesson")


def test_the_scan_finds_a_literal_epoch_count_and_passes_a_scaled_one():
    assert fixed_epochs("model.fit(x, y, epochs=60, verbose=0)") == ["line 1: epochs=60"]
    assert fixed_epochs("m.fit(x, y, epochs=config.scaled_epochs(60))\nm.fit(x, y, epochs=1)") == []
