"""The learner API is typed and documented (issue 28, item 5): every helpers function or class
that an answer notebook calls has full annotations and an ``Args`` / ``Returns`` (and, where
it raises, ``Raises``) section, and so does every public def and class of the lessons' modules.
The listing is static (tests/support/learner_api.py; no TensorFlow);
``python tests/support/learner_api.py`` prints it."""

from __future__ import annotations

import ast
import textwrap

from support import learner_api

#: Notebook-called names that may still lack annotations or sections: the visible debt.
#: Empty since the pass that documented all 158; add a name here only with a reason.
ALLOWED_INCOMPLETE: frozenset[str] = frozenset()


def test_every_notebook_called_helper_is_annotated_and_documented():
    entries = learner_api.listing()
    assert len(entries) > 100, f"the scan of answers/ found only {len(entries)} helpers calls: is it broken?"
    unresolved = sorted(name for name, entry in entries.items() if entry.kind == "other")
    assert not unresolved, f"notebook calls that resolve to no def or class in helpers: {unresolved}"
    incomplete = {name: entry.problems for name, entry in entries.items()
                  if not entry.complete and name not in ALLOWED_INCOMPLETE}
    assert not incomplete, "notebook-called helpers functions lacking annotations or docstring sections:\n" + \
        "\n".join(f"  {name}: {'; '.join(problems)}" for name, problems in sorted(incomplete.items()))
    stale = sorted(name for name in ALLOWED_INCOMPLETE if name not in entries or entries[name].complete)
    assert not stale, f"take these off ALLOWED_INCOMPLETE (done, or no longer called): {stale}"


#: Public functions of the lessons' modules that may still lack annotations or sections.
ALLOWED_INCOMPLETE_API: frozenset[str] = frozenset()


def test_the_public_api_of_the_lessons_modules_is_annotated_and_documented():
    """Beyond what the notebooks call today: every public def and class of the modules of the
    lessons' pipeline (learner_api.LESSON_MODULES), so a new function starts documented."""
    entries = learner_api.public_api()
    assert len(entries) > 200, f"only {len(entries)} public functions found: is the scan broken?"
    incomplete = {name: entry.problems for name, entry in entries.items()
                  if not entry.complete and name not in ALLOWED_INCOMPLETE_API}
    assert not incomplete, "public functions of the lessons' modules lacking annotations or docstring sections:\n" + \
        "\n".join(f"  {name}: {'; '.join(problems)}" for name, problems in sorted(incomplete.items()))
    stale = sorted(name for name in ALLOWED_INCOMPLETE_API if name not in entries or entries[name].complete)
    assert not stale, f"take these off ALLOWED_INCOMPLETE_API (done, or gone): {stale}"


def _function(source: str) -> ast.FunctionDef:
    node = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def test_the_rule_flags_what_is_missing():
    bare = _function('''
        def f(x, y=1):
            """One line."""
            if y < 0:
                raise ValueError("y")
            return x
    ''')
    problems = learner_api.function_problems(bare)
    assert "unannotated: x, y" in problems and "no return annotation" in problems
    assert {"no Args section", "no Returns section", "raises, no Raises section"} <= set(problems)

    partial = _function('''
        def f(x: int, *, y: int = 1, **kw: str) -> None:
            """One line.

            Args:
                x: a number.
                y: another.
            """
    ''')
    assert learner_api.function_problems(partial) == ["Args lacks: kw"]

    complete = _function('''
        def f(x: int) -> int:
            """One line.

            Args:
                x: a number.

            Returns:
                ``x``.

            Raises:
                ValueError: never, in fact.
            """
            try:
                return x
            except TypeError:
                raise
    ''')
    assert learner_api.function_problems(complete) == []


def test_the_scan_resolves_modules_and_reexports(tmp_path):
    import json

    cells = ["from helpers import checks, metrics\nfrom helpers.data.io import read_nifti\nimport helpers.viz as v",
             "%matplotlib inline\nmetrics.dice_numpy(a, b)\nchecks.check_dice(f)\nread_nifti(p)\nv.montage(x)\n"
             "helpers_free(1)"]
    notebook = tmp_path / "lesson.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c} for c in cells]}))
    calls = learner_api.calls_in_notebook(notebook)
    assert calls == {("helpers.metrics", "dice_numpy"), ("helpers.checks", "check_dice"),
                     ("helpers.data.io", "read_nifti"), ("helpers.viz", "montage")}
    assert learner_api.resolve("helpers.checks", "check_dice")[0] == "helpers.checks.metrics.check_dice"
    assert learner_api.resolve("helpers.data", "load_pairs")[0] == "helpers.data.io.load_pairs"
