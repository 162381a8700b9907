"""The lessons' prose is true to their committed outputs (see ``tests/claims.py``).

Each claim of ``tests/lesson_claims.py`` is checked against the answer notebook's printed
outputs; every decimal number or percentage in a lesson's markdown must be bound by a claim
or listed as given (not about the run). A re-run that changes a number the prose relies on
fails here until the sentence (and its claim) is rewritten.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from support.claims import (ROOT, Claim, FreshRun, Given, check_claim, markdown_cells, output_text,
                            unbound_numbers)
from support.lesson_claims import LEDGER

LESSONS = sorted(path.parent.name for path in (ROOT / "answers").glob("*/*.ipynb"))


def _notebook(lesson: str):
    return ROOT / "answers" / lesson / f"{lesson}.ipynb"


def test_every_lesson_has_a_ledger():
    assert sorted(LEDGER) == LESSONS, "add the new lesson's claims and givens to tests/lesson_claims.py"


@pytest.mark.parametrize("lesson", LESSONS)
def test_claims_hold_on_the_committed_outputs(lesson):
    prose, outputs = markdown_cells(_notebook(lesson)), output_text(_notebook(lesson))
    problems = [problem for claim in LEDGER[lesson] if isinstance(claim, Claim)
                if (problem := check_claim(claim, prose, outputs))]
    assert not problems, f"{lesson}: the prose and its outputs disagree:\n" + "\n".join(problems)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_number_in_the_prose_is_bound(lesson):
    prose = markdown_cells(_notebook(lesson))
    missing = [entry.prose for entry in LEDGER[lesson] if isinstance(entry, Given)
               if not any(re.search(entry.prose, source, flags=re.S) for source in prose)]
    assert not missing, f"{lesson}: givens whose sentence is gone (remove or rewrite them): {missing}"
    loose = unbound_numbers(LEDGER[lesson], prose)
    assert not loose, (f"{lesson}: numbers in the prose with no claim (about the run) or given "
                       f"(not about it) in tests/lesson_claims.py:\n" + "\n".join(loose))


def test_a_changed_output_fails_its_claim():
    prose = ["The model reaches a test Dice of 0.975 on the held-out images."]
    claim = Claim(r"test Dice of (\d\.\d+)", r"test Dice over \d+ held-out images: (\d\.\d+)")
    assert check_claim(claim, prose, "test Dice over 60 held-out images: 0.975") is None
    problem = check_claim(claim, prose, "test Dice over 60 held-out images: 0.968")
    assert problem and "0.968" in problem and "0.975" in problem
    assert "no output matches" in check_claim(claim, prose, "nothing printed")
    assert "no longer says" in check_claim(claim, ["The model is fine."], "test Dice over 60 held-out images: 0.975")


def test_relations_bound_rounding_and_behaviour():
    outputs = "val_dice: 0.9358\nEpoch 16: early stopping\n"
    assert check_claim(Claim(r"above (0\.9)", r"val_dice: (\d\.\d+)", "at_least"), ["above 0.9"], outputs) is None
    assert check_claim(Claim(r"below (0\.9)", r"val_dice: (\d\.\d+)", "at_most"), ["below 0.9"], outputs)
    assert check_claim(Claim(r"about (0\.94)", r"val_dice: (\d\.\d+)", "about", 0.01), ["about 0.94"], outputs) is None
    assert check_claim(Claim(r"(0\.94)", r"val_dice: (\d\.\d+)"), ["0.94"], outputs) is None
    assert check_claim(Claim(r"(0\.93)", r"val_dice: (\d\.\d+)"), ["0.93"], outputs)
    assert check_claim(Claim("stops early", r"early stopping", "shown"), ["it stops early"], outputs) is None
    assert check_claim(Claim("never stops", r"early stopping", "not_shown"), ["it never stops"], outputs)


def test_a_number_without_claim_or_given_is_reported():
    prose = ["The `0.5` in code is ignored, as is Exercise 2.1; 0.42 of the pixels is not."]
    loose = unbound_numbers([], prose)
    assert len(loose) == 1 and "'0.42'" in loose[0]
    assert unbound_numbers([Given(r"0\.42 of the pixels", "a definition")], prose) == []
    # scientific notation is a number too (a sensitivity "of about 1e-9" once went unchecked)
    assert ["'1e-9'" in item for item in unbound_numbers([], ["a sensitivity of about 1e-9 at epoch 2"])] == [True]


def test_a_claim_about_a_whole_table_is_a_function_of_the_outputs():
    def tumour_specificity_near_one(outputs, said):
        low = [line for line in outputs.splitlines() if line.startswith("necrosis") and float(line.split()[-1]) < 0.99]
        return f"below 0.99: {low}" if low else None
    claim = Claim("close to 1 for every tumour class", tumour_specificity_near_one)
    assert check_claim(claim, ["close to 1 for every tumour class"], "necrosis (1) 0.7 0.9 0.999") is None
    assert "below 0.99" in check_claim(claim, ["close to 1 for every tumour class"], "necrosis (1) 0.7 0.9 0.878")


def test_a_re_run_that_changes_a_relied_on_output_fails(tmp_path):
    """The committed lesson 05, with the post-processing printout changed as a re-run could
    change it: the sentence that relies on it is reported."""
    lesson = "05_prediction"
    notebook = nbformat.read(_notebook(lesson), as_version=4)
    assert _changed_05(notebook), "lesson 05 no longer prints the post-processing line this test changes"
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(notebook, path)
    outputs = output_text(path)
    problems = [check_claim(claim, markdown_cells(path), outputs) for claim in LEDGER[lesson]
                if isinstance(claim, Claim)]
    assert any(problem and "not a small gain" in problem for problem in problems), problems


def _changed_05(notebook) -> bool:
    """Lower lesson 05's post-processing result by 0.05, as a re-run could change it."""
    changed = False
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            if "after post-processing" in text:
                output["text"] = re.sub(r"-> (\d\.\d+)", lambda m: f"-> {float(m.group(1)) - 0.05:.4f}", text, count=1)
                changed = True
    return changed


def test_the_claims_are_checked_on_the_run_nbval_makes():
    """tests/conftest.py feeds every finished nbval cell of an answer notebook to a
    FreshRun: the outputs of a complete run are checked against the ledger on its last
    cell; a partial run is not judged."""
    lesson = "05_prediction"
    path = _notebook(lesson)
    notebook = nbformat.read(path, as_version=4)
    code = [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]

    def run(cells, skipped=()):
        fresh = FreshRun()
        verdicts = [fresh.record(path, len(code), number, None if number in skipped else outputs)
                    for number, outputs in enumerate(cells)]
        assert verdicts[:-1] == [None] * (len(code) - 1), "judged before the last cell"
        return verdicts[-1]

    assert run(code) == [], "the committed outputs, replayed as a run, break a claim"
    assert run(code, skipped={1}) is None, "a run with a cell that did not run was judged"
    assert _changed_05(notebook)
    changed = [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]
    problems = run(changed)
    assert any("not a small gain" in problem for problem in problems), problems
