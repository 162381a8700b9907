"""Tests of helpers/checks/_common.py: the one failure format, the one success line, and how
a learner's function is called."""

from __future__ import annotations

import pytest
from support.course import REPO_ROOT

from helpers import checks
from helpers.checks._common import call, fail, learner_or_reference, name_of, ok


def test_fail_names_function_case_problem_and_hint():
    with pytest.raises(AssertionError) as info:
        fail("dice_coefficient", "two empty masks", "expected 1.0, got nan.", "add `smooth` to both.")
    assert str(info.value) == ("dice_coefficient — case 'two empty masks': expected 1.0, got nan. "
                               "Hint: add `smooth` to both.")
    with pytest.raises(AssertionError, match=r"^compile: The model is not compiled\.$"):
        fail("compile", None, "The model is not compiled.")


def test_fail_keeps_the_learners_error_as_the_cause():
    error = ZeroDivisionError("division by zero")
    with pytest.raises(AssertionError, match=r"^f — case 'x': raised ZeroDivisionError\.$") as info:
        fail("f", "x", "raised ZeroDivisionError.", cause=error)
    assert info.value.__cause__ is error


def test_every_check_failure_goes_through_fail():
    """No module of helpers/checks raises AssertionError itself: the one message format of
    _common.fail (name, case, problem, hint) holds for every failing check. Only _common
    raises it (fail, and call's "not written yet", which learner_or_reference recognises)."""
    import ast
    from pathlib import Path

    folder = Path(checks.__file__).parent
    raising = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id == "AssertionError":
                    raising.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Assert):
                raising.append(f"{path.name}:{node.lineno} (assert)")
    assert not raising, f"raise through checks._common.fail instead: {raising}"


def test_ok_prints_one_tick_line(capsys):
    ok("threshold: 5 cases passed.")
    assert capsys.readouterr().out == "✓ threshold: 5 cases passed.\n"


def test_call_turns_accidents_into_check_failures():
    def unfinished(x):
        raise NotImplementedError()

    def broken(x):
        return x / 0

    def no_return(x):
        x + 1

    def nested_check(x):
        raise AssertionError("inner check")

    with pytest.raises(AssertionError, match="not written yet"):
        call(unfinished, "unfinished", "a case", 1)
    with pytest.raises(AssertionError, match=r"broken — case 'zero': raised ZeroDivisionError") as info:
        call(broken, name_of(broken), "zero", 1)
    assert isinstance(info.value.__context__, ZeroDivisionError)
    with pytest.raises(AssertionError, match="returned None.*forget `return`"):
        call(no_return, "no_return", "one", 1)
    assert call(no_return, "no_return", "one", 1, allow_none=True) is None
    with pytest.raises(AssertionError, match="^inner check$"):
        call(nested_check, "nested_check", "one", 1)
    assert call(lambda x, y=0: x + y, "add", "two", 1, y=2) == 3


def test_checks_package_re_exports_every_check_explicitly():
    import helpers.checks as package

    assert not hasattr(package, "__getattr__"), "names must be re-exported, not searched"
    for name in package.__all__:
        # checks, the fallback after a check, and the reference decision a fallback uses (best_...)
        assert (name.startswith(("check_", "best_")) or name == "learner_or_reference") and callable(getattr(checks, name))
    from helpers.checks import architecture, brain, generator, liver_ct, lung_ct, metrics, prediction, training

    exported = {"learner_or_reference"}
    for module in (generator, architecture, metrics, training, prediction, lung_ct, liver_ct, brain):
        exported |= set(module.__all__)
    assert exported == set(package.__all__)
    assert not {"fake_cxr_pairs", "random_blobs"} & set(dir(package))


def test_every_check_the_notebooks_call_is_exported():
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    used = set()
    for notebook in sorted(root.glob("answers/*/*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                used |= set(re.findall(r"\bchecks\.(\w+)", "".join(cell["source"])))
    assert len(used) >= 40
    missing = sorted(name for name in used if name not in checks.__all__)
    assert not missing, f"the answer notebooks call checks that helpers.checks does not export: {missing}"


def _check_doubles(fn):
    """A check in the course's style: a ✓ line, or an AssertionError naming the problem."""
    result = call(fn, name_of(fn), "two", 2)
    if result != 4:
        fail(name_of(fn), "two", f"expected 4, got {result}.", "multiply by 2.")
    ok(f"{name_of(fn)}: doubles")


def _reference(x):
    return 2 * x


def test_learner_or_reference_keeps_a_working_version_silently(capsys):
    def mine(x):
        return x + x

    assert learner_or_reference("double", lambda: mine, _reference, _check_doubles) is mine
    assert capsys.readouterr().out == ""   # not even the check's own tick line


@pytest.mark.parametrize("learner, reason", [
    ("unfinished", "yours raised NotImplementedError"),
    ("wrong", "yours does not pass its check (wrong — case 'two': expected 4, got 5. Hint: multiply by 2.)"),
    ("broken", "yours does not pass its check (broken — case 'two': raised ZeroDivisionError: division by zero)"),
    ("undefined", "yours is not defined"),
])
def test_learner_or_reference_falls_back_with_one_line(capsys, learner, reason):
    def unfinished(x):
        raise NotImplementedError()

    def wrong(x):
        return x + 3

    def broken(x):
        return x / 0

    functions = {"unfinished": unfinished, "wrong": wrong, "broken": broken}

    def get():
        return functions[learner] if learner in functions else undefined_name  # noqa: F821

    assert learner_or_reference("double", get, _reference, _check_doubles) is _reference
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"using the reference `double`: {reason}"), out


def test_learner_or_reference_builds_the_reference_only_when_needed(capsys):
    built = []

    def make():
        built.append(1)
        return "reference model"

    assert learner_or_reference("model", lambda: "my model", make, lambda m: None, build=True) == "my model"
    assert built == []
    def unfinished_model():
        raise NotImplementedError()

    assert learner_or_reference("model", unfinished_model, make, build=True) == "reference model"
    assert built == [1]
    assert capsys.readouterr().out == "using the reference `model`: yours raised NotImplementedError\n"


def test_learner_or_reference_without_a_check_only_needs_the_name():
    assert learner_or_reference("THRESHOLD", lambda: 0.4, 0.5) == 0.4


def test_learner_or_reference_cuts_a_long_check_message(capsys):
    def long_check(fn):
        fail("double", None, "x" * 500)

    learner_or_reference("double", lambda: _reference, _reference, long_check)
    line = capsys.readouterr().out
    assert len(line) < 260 and line.rstrip().endswith("...)")


def test_learner_or_reference_leaves_the_random_numbers_of_the_lesson_alone():
    import random

    import keras
    import numpy as np

    def noisy_check(fn):
        keras.utils.set_random_seed(123)            # as check_train_step does
        keras.random.uniform((3,))
        np.random.random(5)
        random.random()

    keras.utils.set_random_seed(7)
    keras.random.uniform((2,))                       # the global seed generator exists and moved
    expected = (random.random(), np.random.random(), np.asarray(keras.random.uniform((2,))))
    keras.utils.set_random_seed(7)
    keras.random.uniform((2,))
    learner_or_reference("double", lambda: _reference, _reference, noisy_check)
    got = (random.random(), np.random.random(), np.asarray(keras.random.uniform((2,))))
    assert got[0] == expected[0] and got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])


def test_an_object_the_reference_made_is_marked_and_graded_as_the_reference():
    """Moving the fallback cell above the check cannot score: the grader's guard sees the mark."""
    from helpers.grading import guard as grading_guard
    from helpers.checks._common import REFERENCE_TAG

    class History:          # like keras.callbacks.History: an object with attributes
        pass

    def unfinished():
        raise NotImplementedError()

    made = learner_or_reference("history", unfinished, History, build=True)
    assert getattr(made, REFERENCE_TAG) == "history"
    snapshot = grading_guard.Snapshot()
    assert "made by the course's reference" in snapshot.stands_in(made, "history")
    assert snapshot.stands_in(History(), "history") is None            # the learner's own
    assert learner_or_reference("pair", unfinished, ("val_dice", "max")) == ("val_dice", "max")  # no mark possible
    assert not hasattr(_reference, REFERENCE_TAG)                        # functions are known by identity
    learner_or_reference("double", unfinished, _reference)
    assert not hasattr(_reference, REFERENCE_TAG)


def test_a_quiet_check_leaves_no_retracing_warning_behind():
    """Models built by a quiet check do not count towards TensorFlow's retracing warning. In a
    fresh interpreter: TensorFlow counts traces process-wide, so models that earlier tests
    built would trigger the warning whatever the check does."""
    import subprocess
    import sys

    script = """
import logging, io
import keras, numpy as np
from helpers.checks._common import learner_or_reference
log = io.StringIO()
logging.getLogger("tensorflow").addHandler(logging.StreamHandler(log))

def reference(x):
    return 2 * x

def fits_small_models(fn):
    for _ in range(6):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.zeros((2, 4)), np.zeros((2, 1)), verbose=0)

learner_or_reference("double", lambda: reference, reference, fits_small_models)
for _ in range(2):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((2, 4)), np.zeros((2, 1)), verbose=0)
print("RETRACING" if "retracing" in log.getvalue() else "QUIET")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=str(REPO_ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "QUIET", result.stdout + result.stderr[-2000:]


def test_a_wrong_choice_from_evidence_is_told_without_naming_the_answer():
    """check_best_choice: a wrong (but measured) option fails with the criterion to apply,
    and the message names neither the best option nor the scores that would give it away."""
    import pytest

    from helpers.checks._common import check_best_choice

    evidence = {0.0: 0.800, 0.2: 0.834, 0.5: 0.871}
    for wrong in (0.0, 0.2):
        with pytest.raises(AssertionError) as failure:
            check_best_choice("EMPTY_FRACTION", wrong, evidence, criterion="mean Dice of fold 1")
        message = str(failure.value)
        assert "another option has a higher mean Dice of fold 1" in message, message
        assert "0.5" not in message and "0.871" not in message, message
    with pytest.raises(AssertionError) as failure:
        check_best_choice("SPACING", "2 mm", {"2 mm": 9.1, "4 mm": 7.5}, criterion="HD95", higher_is_better=False)
    assert "lower HD95" in str(failure.value) and "4 mm" not in str(failure.value)
    check_best_choice("EMPTY_FRACTION", 0.5, evidence, criterion="mean Dice of fold 1")
