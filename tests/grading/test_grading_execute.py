"""The grader's side of the runner protocol (helpers/grading/execute.py): which names a
test grades, how the runner's replies become nbgrader outputs, and that only replies with
the grader's token count. Fast: a small Python process stands in for the runner
(tests/grading/test_grading_adversarial.py grades for real)."""

from __future__ import annotations

import subprocess
import sys
import time

import nbformat
import pytest

from helpers.grading import execute as grading_execute
from support.course import REPO_ROOT


def _cell(source: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def test_exercise_names_are_what_the_solution_cells_before_a_test_define():
    cells = [_cell("import numpy as np\nfrom helpers import checks"),
             _cell("def dice(a, b):\n    return 1\nSMOOTH = 1.0", solution=True, grade_id="dice"),
             _cell("checks.check_dice(dice)", grade=True, grade_id="dice_check", points=1),
             _cell("from helpers import metrics\niou = metrics.iou", solution=True, grade_id="iou"),
             _cell("x, (y, z) = 1, (2, 3)", solution=True, grade_id="more"),
             _cell("checks.check_iou(iou)", grade=True, grade_id="iou_check", points=1)]
    assert grading_execute.exercise_names(cells) == {2: {"dice", "SMOOTH"}, 5: {"metrics", "iou", "x", "y", "z"}}
    assert grading_execute.defined_names("def broken(:\n") == set()


def test_grading_runs_up_to_the_last_graded_code_cell_and_no_further():
    """``ungraded_tail``: the cells after the last code cell with points (a graded test, a
    graded answer) cannot change a score, so grading need not run them; a written answer in
    markdown runs nothing and does not hold them back; a notebook with an nbgrader task runs
    whole; one without graded code runs nothing."""
    written = nbformat.v4.new_markdown_cell("the mean of an empty list is undefined")
    written.metadata["nbgrader"] = {"grade": True, "solution": True, "grade_id": "why", "points": 1}
    by_hand = _cell("def explain():\n    return 'because'", grade=True, solution=True, grade_id="code_why", points=1)
    cells = [_cell("import numpy as np"),
             _cell("def f(x):\n    return x", solution=True, grade_id="f"),
             _cell("assert f(2) == 2", grade=True, grade_id="f_check", points=1),
             _cell("print(f(3))"),                        # the learner's evidence, handed in
             written,
             _cell("import os\nos._exit(1)"),              # after every graded code cell
             nbformat.v4.new_markdown_cell("## Summary")]
    assert grading_execute.ungraded_tail(cells) == 3
    assert grading_execute.ungraded_tail(cells[:4] + [by_hand] + cells[4:]) == 5   # a code answer graded by hand runs
    assert grading_execute.ungraded_tail([cells[0], cells[3], written]) == 0
    task = nbformat.v4.new_markdown_cell("Plot the loss curve below.")
    task.metadata["nbgrader"] = {"task": True, "grade": False, "solution": False, "grade_id": "plot", "points": 2}
    assert grading_execute.ungraded_tail(cells + [task, _cell("plot()")]) == len(cells) + 2


def test_a_cell_grading_does_not_run_shows_what_was_handed_in_cleaned_and_bounded():
    """``KeepSubmittedOutputs`` keeps a code cell's handed-in outputs in its metadata before
    nbgrader clears them; ``_submitted_outputs`` takes them out again with the runner's
    cleaning (text and PNG only, no HTML or JavaScript), and only up to its size limit."""
    keep = grading_execute.KeepSubmittedOutputs()
    cell = _cell("show()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="validation Dice 0.93\n"),
                    nbformat.v4.new_output("display_data", data={"text/html": "<script>alert(1)</script>",
                                                                 "image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    markdown = nbformat.v4.new_markdown_cell("text")
    markdown.metadata[grading_execute._SUBMITTED] = [{"output_type": "stream", "name": "stdout", "text": "forged"}]
    keep.preprocess_cell(cell, {}, 0)
    keep.preprocess_cell(markdown, {}, 1)
    assert grading_execute._SUBMITTED not in markdown.metadata
    cell.outputs = []                                   # what nbgrader's ClearOutput does next
    [kept, nothing] = grading_execute._submitted_outputs([cell, markdown])
    assert nothing == [] and grading_execute._SUBMITTED not in cell.metadata
    assert [output.output_type for output in kept] == ["stream", "display_data"]
    assert kept[0].text == "validation Dice 0.93\n"
    assert set(kept[1].data) == {"image/png", "text/plain"}
    huge = _cell("flood()")
    huge.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (grading_execute.MAX_SUBMITTED_BYTES + 1))]
    keep.preprocess_cell(huge, {}, 2)
    [[note]] = grading_execute._submitted_outputs([huge])
    assert "MB kept per cell" in note.text and len(note.text) < 200
    # many cells just under the limit each: the notebook's total is bounded too
    many = [_cell(f"flood({i})") for i in range(12)]
    for index, each in enumerate(many):
        each.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                               text="x" * (grading_execute.MAX_SUBMITTED_BYTES - 100))]
        keep.preprocess_cell(each, {}, index)
    kept_many = grading_execute._submitted_outputs(many)
    assert sum(len(outputs[0].text) for outputs in kept_many) <= grading_execute.MAX_SUBMITTED_TOTAL
    assert "MB kept per notebook" in kept_many[-1][0].text and len(kept_many[0][0].text) > 1000
    for index, each in enumerate(many):   # only the cells grading does not run keep theirs
        keep.preprocess_cell(each, {}, index)
    assert [bool(outputs) for outputs in grading_execute._submitted_outputs(many, start=10)] == [False] * 10 + [True] * 2
    assert not any(grading_execute._SUBMITTED in each.metadata for each in many)


def test_a_warm_up_check_closes_its_exercise_but_only_a_read_only_one():
    """An ungraded warm-up (its unfinished function handed over to the reference by the
    lesson) is not graded by the next graded test; a cell that merely looks like a check,
    or lost its grade_id (nbgrader strips ids the database does not know), closes nothing."""
    warm_up = _cell('"Check: dice_loss (warm-up, no points)."\nchecks.check_dice_loss(dice_loss)',
                    locked=True, grade=False, solution=False, grade_id="dice_loss_check")
    cells = [_cell("def dice_loss(a, b):\n    return 0", solution=True, grade_id="dice_loss"),
             warm_up,
             _cell("dice_loss = checks.learner_or_reference('dice_loss', dice_loss, losses.dice_loss)"),
             _cell("def iou(a, b):\n    return 1", solution=True, grade_id="iou"),
             _cell("checks.check_iou(iou)", grade=True, grade_id="iou_check", points=1)]
    assert grading_execute.exercise_names(cells) == {4: {"iou"}}
    for forged in (_cell(warm_up.source),                                   # no nbgrader metadata
                   _cell(warm_up.source, locked=True, grade=False, solution=False),   # id stripped
                   _cell("checks.check_dice_loss(dice_loss)", locked=True, grade_id="x")):  # no "Check"
        assert grading_execute.exercise_names([cells[0], forged, *cells[2:]]) == {4: {"dice_loss", "iou"}}


def test_every_warm_up_check_of_the_course_is_read_only_with_a_grade_id():
    """Grading knows where a warm-up ends only from a read-only check cell (see above): a
    lesson's ungraded "Check: ..." cell without that metadata would let the next graded test
    grade the warm-up's names (and fail when the lesson handed them to the reference)."""
    loose = []
    for path in sorted((REPO_ROOT / "answers").glob("*/*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            meta = cell.metadata.get("nbgrader", {})
            if (cell.cell_type == "code" and not meta.get("grade") and not meta.get("solution")
                    and cell.source.lstrip().startswith(('"Check', '"""Check'))
                    and not grading_execute.is_warm_up_check(cell)):
                loose.append(f"{path.relative_to(REPO_ROOT)} cell {index}")
    assert not loose, ("warm-up checks that are not read-only nbgrader cells with a grade_id "
                       "(set metadata.nbgrader = {grade: false, locked: true, solution: false, "
                       "grade_id: '<name>_check'}): " + ", ".join(loose))


def test_a_failed_test_shows_its_error_first_and_no_result_can_be_read_as_partial_credit():
    raw = [{"output_type": "execute_result", "data": {"text/plain": "13"}, "execution_count": 1},
           {"output_type": "stream", "name": "stdout", "text": "looks fine\n"},
           {"output_type": "display_data", "data": {"text/html": "<script>x</script>"}},
           {"output_type": "error", "ename": "AssertionError", "evalue": "wrong", "traceback": ["t"]}]
    outputs = grading_execute._clean_outputs(raw, test=True, status="error")
    assert [o.output_type for o in outputs] == ["error", "display_data", "stream"]
    assert outputs[0].ename == "AssertionError" and outputs[1].data == {"text/plain": "13"}
    passed = grading_execute._clean_outputs(raw, test=True, status="ok")
    assert "error" not in [o.output_type for o in passed]
    assert "execute_result" not in [o.output_type for o in passed]
    failed_silently = grading_execute._clean_outputs([], test=True, status="error")
    assert failed_silently[0].output_type == "error", "a failed test must carry an error output"
    plain = grading_execute._clean_outputs(raw, test=False, status="ok")
    assert plain[0].output_type == "execute_result"


def _fake_runner(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_only_replies_with_the_token_for_the_cell_count():
    script = ("import sys\n"
              "w = sys.stdout.write\n"
              "w('forged 3 ok []\\n')\n"            # no token
              "w('TOKEN 2 ok []\\n')\n"             # another cell
              "w('TOKEN 3 maybe []\\n')\n"          # not a status
              "w('TOKEN 3 error [{\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": \"hi\"}]\\n')\n")
    process = _fake_runner(script)
    reader = grading_execute._Reader(process, "TOKEN")
    status, outputs = reader.receive(3, time.monotonic() + 30)
    assert status == "error" and outputs[0]["text"] == "hi"
    assert reader.receive(4, time.monotonic() + 30) is None, "the runner closed: no reply"
    process.wait()


def test_a_reply_that_does_not_parse_is_reported_not_trusted():
    process = _fake_runner("print('TOKEN 0 ok [__import__(\"os\")]')")
    status, outputs = grading_execute._Reader(process, "TOKEN").receive(0, time.monotonic() + 30)
    assert status == "ok" and "could not read" in outputs[0]["text"]
    process.wait()


def test_a_silent_runner_is_stuck_and_a_flood_is_an_output_limit(monkeypatch):
    process = _fake_runner("import time; time.sleep(30)")
    assert grading_execute._Reader(process, "TOKEN").receive(0, time.monotonic() + 1) == "stuck"
    process.kill()
    process.wait()
    monkeypatch.setattr(grading_execute, "MAX_REPLY_BYTES", 1000)
    process = _fake_runner("import sys; sys.stdout.write('x' * 100000)")
    reader = grading_execute._Reader(process, "TOKEN")
    with pytest.raises(grading_execute.RunnerDied, match="more than"):
        reader.receive(0, time.monotonic() + 30)
    assert reader.overflow
    process.kill()
    process.wait()


def test_profile_stages_split_a_run_by_its_trace():
    from helpers.grading import commands as grading

    events = [{"event": "start", "time": 102.0}, {"event": "spawn", "time": 102.5},
              {"event": "ready", "time": 110.0, "runner_started": 103.0, "imported": 109.5},
              {"event": "cell", "index": 0, "grade_id": None, "time": 110.0},
              {"event": "cell", "index": 3, "grade_id": "dice_check", "time": 111.0},
              {"event": "complete", "time": 114.0}, {"event": "cell", "index": 9}]  # untimed: ignored
    stages = grading.profile_stages(events, launched=100.0, ended=115.5)
    assert stages == {"process start": 2.0, "sandbox": 0.5, "runner imports": 6.5, "cell 1": 1.0,
                      "cell dice_check": 3.0, "nbgrader after cells": 1.5}
    assert grading.profile_stages([], 0.0, 1.0) == {}


def test_the_runner_imports_helpers_only_for_notebooks_that_can_use_them():
    """``guard.needs_helpers``: a notebook whose cells never name helpers, TensorFlow or Keras,
    and whose solutions define no name that helpers binds, is graded without importing them
    (the runner starts in a fraction of a second); any other notebook gets the full snapshot."""
    from helpers.grading import guard

    names = guard.helper_names()
    assert {"dice_coefficient", "build_unet", "random_flip", "SegmentationDataset"} <= names
    assert "autograde" not in names and "sandbox_environment" not in names   # tools hold no references
    plain = ["def square(x):\n    return x * x", "assert square(3) == 9"]
    assert not guard.needs_helpers(plain, {"square"})
    for word in ("from helpers import checks", "import tensorflow as tf", "from keras import ops"):
        assert guard.needs_helpers(plain + [word], {"square"}), word
    # the reference guard needs helpers wherever an exercise has a reference's name
    assert guard.needs_helpers(["def dice_coefficient(a, b):\n    return 1.0"], {"dice_coefficient"})
    assert guard.needs_helpers(["class SegmentationDataset:\n    pass"], {"SegmentationDataset"})
