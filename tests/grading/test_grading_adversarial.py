"""Autograding under attack (tests helpers/grading/: commands.py, sandbox.py, runner.py,
guard.py, execute.py and audit.py end to end, with the real
nbgrader and bubblewrap).

One class of cheeky students, graded in ONE ``grading.autograde(jobs=2)`` call, in a
temporary course root holding the plain-Python example lesson (fast) and lesson 03 (the
checks and references of a real lesson). Each submission must score what it deserves
(0 for no own work, the earned points otherwise), be flagged or repaired as its report row
says, and leave the gradebook, ``helpers/``, ``answers/`` and other submissions alone;
the batch completes and the exit code says that one submission could not be graded.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import shutil
import time

import nbformat
import pytest
from support.notebooks import cell_index, nbgrader_meta, with_cell, with_source
from support.course import FIXTURES, LOOP_MARKER, REPO_ROOT, TEST_CONFIG

from helpers.grading import commands as grading
from helpers.grading import sandbox

pytestmark = pytest.mark.slow

EXAMPLE, LESSON = "00_example", "03_loss_and_metrics"
HELPERS_FILE = REPO_ROOT / "helpers" / "checks" / "__init__.py"


#: A secret in the grader's environment that no output may show.
SECRET = "grader-secret-0f1e2d3c4b5a"
#: What a student's module writes beside itself when a process outside the sandbox imports it.
IMPORTED_OUTSIDE = "IMPORTED-OUTSIDE"
_HOSTILE_MODULE = ("import os, sys\n"
                   "sys.stderr.write('student module imported\\n')\n"
                   "open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "
                   f"{IMPORTED_OUTSIDE!r}), 'a').write(__name__)\n")


def _link_to_answers(folder):
    (folder / "key.ipynb").symlink_to("../../../answers/00_example/00_example.ipynb")


def _fifo_and_link(folder):
    os.mkfifo(folder / "pipe")
    (folder / "passwd.txt").symlink_to("/etc/passwd")


def _notebook_is_a_link(folder):
    (folder / "00_example.ipynb").unlink()
    (folder / "00_example.ipynb").symlink_to("../../../answers/00_example/00_example.ipynb")


def _hostile_modules(folder):
    for name in ("json.py", "subprocess.py", "signal.py", "selectors.py"):
        (folder / name).write_text(_HOSTILE_MODULE)


def _hostile_helpers(folder):
    for name in ("__init__.py", "sandbox.py", "grading_runner.py", "grading_guard.py", "grading/__init__.py",
                 "grading/sandbox.py", "grading/runner.py", "grading/guard.py", "checks/__init__.py"):
        (folder / "helpers" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "helpers" / name).write_text(_HOSTILE_MODULE)


def _example_class(answers, release) -> dict:
    """Example-lesson submissions: (notebook or raw text, expected score, expected status[,
    a function that adds files to the submission folder])."""
    renamed = copy.deepcopy(answers)
    renamed.cells[cell_index(renamed, "square")].metadata["nbgrader"]["grade_id"] = "my_square"
    extra = with_cell(answers, "square_check", 'print("free points")')
    extra.cells[cell_index(extra, "square_check") + 1].metadata["nbgrader"] = {
        "grade": True, "grade_id": "bonus", "locked": False, "points": 10, "schema_version": 3,
        "solution": False, "task": False}
    ungraded = copy.deepcopy(answers)
    ungraded.cells[cell_index(ungraded, "mean_check")].metadata["nbgrader"]["grade"] = False
    to_markdown = copy.deepcopy(answers)
    to_markdown.cells[cell_index(to_markdown, "count_vowels_check")].cell_type = "markdown"
    to_markdown.cells[cell_index(to_markdown, "count_vowels_check")].pop("outputs", None)
    to_markdown.cells[cell_index(to_markdown, "count_vowels_check")].pop("execution_count", None)
    steal = ("import json\n"
             "nb = json.load(open('../../../answers/00_example/00_example.ipynb'))\n"
             "for cell in nb['cells']:\n"
             "    if cell['metadata'].get('nbgrader', {}).get('solution'):\n"
             "        exec(''.join(cell['source']))\n")
    gradebook = ("import sqlite3, pathlib\n"
                 "for path in ['../../../gradebook.db', str(pathlib.Path.cwd().parents[2] / 'gradebook.db')]:\n"
                 "    db = sqlite3.connect(path)\n"
                 "    db.execute('UPDATE grade SET manual_score = 100')\n"
                 "    db.commit()\n")
    edit_helpers = ("import pathlib, helpers\n"
                    "target = pathlib.Path(helpers.__file__).parent / 'checks' / '__init__.py'\n"
                    "target.write_text(target.read_text() + '\\n# edited by a student\\n')\n")
    host_link = ("import os, pathlib, helpers\n"
                 "target = pathlib.Path(helpers.__file__).parent / 'checks' / '__init__.py'\n"
                 "if os.path.lexists('00_example.ipynb'):\n    os.remove('00_example.ipynb')\n"
                 "os.symlink(target, '00_example.ipynb')\n")
    html_link = ("import os\n"
                 "os.symlink('../../../answers/00_example/00_example.ipynb', 'answers.html')\n"
                 "os.symlink(os.path.abspath('../../../answers/00_example/00_example.ipynb'), '00_example.html')\n")
    steal_link = ("import json\nnb = json.load(open('key.ipynb'))\n"
                  "for cell in nb['cells']:\n"
                  "    if cell['metadata'].get('nbgrader', {}).get('solution'):\n"
                  "        exec(''.join(cell['source']))\n")
    fork_bomb = ("import sys\n"  # a file name under sys.prefix passes the runner's own audit hook
                 "bomb = 'import subprocess\\nfor _ in range(2000):\\n    subprocess.Popen([\"sleep\", \"600\"])\\n'\n"
                 "exec(compile(bomb, sys.prefix + '/bomb.py', 'exec'), {})\n")
    return {
        # 1. links and special files, made by the runner or handed in
        "link-notebook": (with_cell(answers, "square_check", host_link), 5, "flagged"),
        "link-html": (with_cell(answers, "square_check", html_link), 5, "flagged"),
        "link-submitted": (with_cell(release, "setup", steal_link), 0, "flagged", _link_to_answers),
        "fifo-submitted": (answers, 5, "flagged", _fifo_and_link),
        "linked-notebook": (answers, 0, "failed", _notebook_is_a_link),
        # 2. modules beside the notebook
        "json-module": (answers, 5, "graded", _hostile_modules),
        "helpers-module": (answers, 5, "graded", _hostile_helpers),
        # 3. the grader's environment
        "environ": (with_cell(answers, "square_check", "import os\nprint(dict(os.environ))"), 5, "graded"),
        "environ-proc": (with_cell(answers, "square_check",
                                    "for path in ('/proc/1/environ', '/proc/self/environ'):\n"
                                    "    print(open(path, 'rb').read())"), 5, "flagged"),
        # 4. resources: each limit kills the sandbox, the cell is replaced, the rest keeps its points
        "memory-hog": (with_cell(answers, "square_check",
                                  "chunks = []\nfor _ in range(40):\n    chunks.append(bytearray(256 * 2**20))"),
                       5, "repaired"),
        "fork-bomb": (with_cell(answers, "square_check", fork_bomb), 5, "flagged"),
        "thread-bomb": (with_cell(answers, "square_check",
                                   "import threading, time\nfor _ in range(5000):\n"
                                   "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()"),
                        5, "flagged"),
        "output-flood": (with_cell(answers, "square_check",
                                    "with open('/dev/stderr', 'wb', buffering=0) as log:\n"
                                    "    for _ in range(256):\n        log.write(b'x' * 2**20)"), 5, "flagged"),
        "disk-hog": (with_cell(answers, "square_check",
                                "for i in range(100):\n    with open(f'junk{i}.bin', 'wb') as f:\n"
                                "        f.write(b'x' * 2**25)"), 5, "flagged"),
        "answers": (answers, 5, "graded"),
        "blank": (release, 0, "graded"),
        "kill-grader": (with_cell(answers, "square_check",
                                   "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                   "os.kill(1, signal.SIGKILL)"), 5, "flagged"),
        "exit-last": (with_source(answers, "count_vowels",
                                   "import os\nos._exit(0)\n" + answers.cells[cell_index(answers, "count_vowels")].source),
                      3, "flagged"),
        "sigint-proof": (with_source(answers, "mean",
                                      f"# {LOOP_MARKER}\nimport signal\n"
                                      "for number in (signal.SIGINT, signal.SIGALRM, signal.SIGTERM):\n"
                                      "    signal.signal(number, signal.SIG_IGN)\n"
                                      "while True:\n    pass\n"), 3, "flagged"),
        "renamed-id": (renamed, 5, "repaired"),
        "extra-graded": (extra, 5, "repaired"),
        "grade-false": (ungraded, 5, "repaired"),
        "test-as-markdown": (to_markdown, 5, "repaired"),
        "read-answers": (with_cell(release, "setup", steal), 0, "flagged"),
        "gradebook": (with_cell(release, "setup", gradebook), 0, "flagged"),
        "edit-helpers": (with_cell(release, "setup", edit_helpers), 0, "flagged"),
        "invalid-json": ('{"cells": [ this is not json', 0, "failed"),
    }


def _lesson_class(answers, release) -> dict:
    """Lesson-03 submissions that attack the checks and the references."""
    first = next(nbgrader_meta(c)["grade_id"] for c in release.cells if nbgrader_meta(c).get("solution"))
    quiet = ("class _Quiet:\n    def __getattr__(self, name):\n        return lambda *a, **k: print('ok')\n"
             "checks = _Quiet()\n")
    patch = ("import helpers.checks.metrics as target\n"
             "for name in dir(target):\n"
             "    if name.startswith('check_'):\n"
             "        setattr(target, name, lambda *a, **k: print('ok'))\n")
    reference = ('def dice_coefficient(y_true, y_pred, smooth=1.0):\n'
                 '    "Soft Dice, averaged over the batch."\n'
                 '    return metrics.dice_coefficient(y_true, y_pred, smooth=smooth)\n')
    # Kind: errors that never reach the grader (hooks of IPython, the kernel, the runner).
    custom_exc = ("%time pass\n"
                  "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n")
    display_hook = ("import sys, builtins\n"
                    "sys.excepthook = lambda *a: None\n"
                    "sys.displayhook = lambda value: None\n"
                    "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
                    "get_ipython().displayhook.write_output_prompt = lambda: None\n")
    do_execute = ("import ipykernel.ipkernel as kernel\n"
                  "async def do_execute(self, *args, **kwargs):\n"
                  "    return {'status': 'ok', 'execution_count': 1, 'user_expressions': {}}\n"
                  "kernel.IPythonKernel.do_execute = do_execute\n"
                  "get_ipython().kernel.session.send = lambda *a, **k: None\n")
    forge = ("import os\n"
             "for fd in range(1, 64):\n"
             "    try:\n"
             "        os.write(fd, b'0123456789abcdef 9 ok []\\n' * 20)\n"
             "    except OSError:\n"
             "        pass\n")
    runner_patch = ("import sys\n"
                    "for name, module in list(sys.modules.items()):\n"
                    "    if name.startswith('helpers.grading'):\n"
                    "        for key, value in list(vars(module).items()):\n"
                    "            if callable(value) and not key.startswith('__'):\n"
                    "                setattr(module, key, lambda *a, **k: [])\n"
                    "import numpy as np\n"
                    "np.allclose = np.isclose = lambda *a, **k: True\n"
                    "np.testing.assert_allclose = lambda *a, **k: None\n")
    spoiler = ("import threading, time\n"
               "import helpers.checks as target\n"
               "def spoil():\n"
               "    while True:\n"
               "        for name in dir(target):\n"
               "            if name.startswith('check_'):\n"
               "                setattr(target, name, lambda *a, **k: None)\n"
               "        time.sleep(0.001)\n"
               "threading.Thread(target=spoil, daemon=True).start()\n")
    # Kind: the reference, reached without calling it by name from a same-name function.
    bind = "from helpers import metrics\ndice_coefficient = metrics.dice_coefficient\n"
    wrap = ("import functools\nfrom helpers import metrics\n"
            "dice_coefficient = functools.partial(metrics.dice_coefficient, smooth=1.0)\n")
    reach = ("from helpers import losses\n"
             "def dice_coefficient(y_true, y_pred, smooth=1.0):\n"
             "    return 1.0 - losses.dice_loss(y_true, y_pred, smooth=smooth)\n")
    return {
        "custom-exc": (with_cell(release, first, custom_exc), 0, "flagged"),
        "display-hook": (with_cell(release, first, display_hook), 0, "flagged"),
        "do-execute": (with_cell(release, first, do_execute), 0, "flagged"),
        "forge-results": (with_cell(release, first, forge), 0, "flagged"),
        "runner-patch": (with_cell(release, first, runner_patch), 0, "flagged"),
        "thread-spoiler": (with_cell(release, first, spoiler), 0, "flagged"),
        "bind-reference": (with_source(answers, "dice_coefficient", bind), None, "flagged"),
        "wrap-reference": (with_source(answers, "dice_coefficient", wrap), None, "flagged"),
        "reach-reference": (with_source(answers, "dice_coefficient", reach), None, None),
        "transformer": (with_source(release, first,
                                     "get_ipython().input_transformers_cleanup.append(lambda lines: [])"),
                        0, "flagged"),
        "rebind-checks": (with_cell(release, first, quiet), 0, "flagged"),
        "patch-checks": (with_cell(release, first, patch), 0, "flagged"),
        "call-reference": (with_source(answers, "dice_coefficient", reference), None, "flagged"),
    }


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """The graded class: root, expected outcomes, exit code, report rows, scores."""
    if sandbox._probe():
        if os.environ.get("CI"):
            pytest.fail(f"CI must grade with the sandbox, but: {sandbox._probe()}")
        pytest.skip(f"no sandbox here: {sandbox._probe()} (CI installs bubblewrap)")
    root = tmp_path_factory.mktemp("attacked")
    (root / "nbgrader_config.py").write_text((REPO_ROOT / "nbgrader_config.py").read_text() + TEST_CONFIG)
    shutil.copytree(FIXTURES / EXAMPLE, root / "answers" / EXAMPLE)
    shutil.copytree(REPO_ROOT / "answers" / LESSON, root / "answers" / LESSON)
    assert grading.release(root=root, quiet=True) == 0
    expected = {}
    for lesson, build in ((EXAMPLE, _example_class), (LESSON, _lesson_class)):
        answers = nbformat.read(root / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
        release = nbformat.read(root / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
        for student, (nb, score, status, *extra) in build(answers, release).items():
            folder = root / "submissions" / student / lesson
            folder.mkdir(parents=True)
            text = nb if isinstance(nb, str) else nbformat.writes(nb)
            (folder / f"{lesson}.ipynb").write_text(text)
            for add_files in extra:
                add_files(folder)
            expected[(student, lesson)] = (score, status)
    # an innocent student graded with the others, whose score must survive them
    assert grading.collect(root / "submissions", root=root, quiet=True) == 0
    helpers_hash = hashlib.sha256(HELPERS_FILE.read_bytes()).hexdigest()
    answers_hash = hashlib.sha256((root / "answers" / EXAMPLE / f"{EXAMPLE}.ipynb").read_bytes()).hexdigest()
    host = _host_files(root)
    started = time.monotonic()
    status = grading.autograde(root=root, quiet=True, jobs=2,
                               env={"SECRET_TOKEN": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET})
    seconds = time.monotonic() - started
    with open(root / "grading_report.csv", newline="") as handle:
        rows = {(row["student"], row["lesson"]): row for row in csv.DictReader(handle)}
    scores, cells = {}, {}
    with grading.gradebook(root) as gb:
        for student, lesson in expected:
            try:
                submission = gb.find_submission(lesson, student)
            except Exception:  # noqa: BLE001 - not in the gradebook: not graded
                continue
            scores[(student, lesson)] = submission.score
            cells[(student, lesson)] = {g.name: g.score for g in submission.notebooks[0].grades}
    return {"root": root, "expected": expected, "status": status, "rows": rows, "scores": scores,
            "cells": cells, "helpers_hash": helpers_hash, "answers_hash": answers_hash, "host": host,
            "seconds": seconds}


def _host_files(root) -> dict[str, str]:
    """Path -> digest of every file that grading must leave alone: the host's helpers/, and
    in the test root everything but what grading writes (gradebook.db, autograded/,
    feedback/, .grading/, the reports). Links are recorded as links, FIFOs by kind."""
    found = {}
    bases = [(REPO_ROOT / "helpers", "helpers")]
    written = {"gradebook.db", "autograded", "feedback", ".grading", "grading_report.csv",
               "grading_report.html", "grades.csv", ".nbgrader.log"}
    bases += [(path, f"root/{path.name}") for path in sorted(root.iterdir()) if path.name not in written]
    for base, label in bases:
        paths = [base] if not base.is_dir() or base.is_symlink() else sorted(base.rglob("*"))
        for path in paths:
            name = label if path == base else f"{label}/{path.relative_to(base)}"
            if "__pycache__" in path.parts:
                continue
            if path.is_symlink():
                found[name] = "link -> " + os.readlink(path)
            elif path.is_file():
                found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif not path.is_dir():
                found[name] = "special"
    return found


CASES = [(s, EXAMPLE) for s in ("answers", "blank", "kill-grader", "exit-last", "sigint-proof",
                                 "renamed-id", "extra-graded", "grade-false", "test-as-markdown",
                                 "read-answers", "gradebook", "edit-helpers", "invalid-json")] + \
        [(s, LESSON) for s in ("transformer", "rebind-checks", "patch-checks", "call-reference",
                                "custom-exc", "display-hook", "do-execute", "forge-results",
                                "runner-patch", "thread-spoiler", "bind-reference", "wrap-reference",
                                "reach-reference")]
REFERENCE_CASES = ("call-reference", "bind-reference", "wrap-reference", "reach-reference")


@pytest.mark.parametrize("student,lesson", CASES, ids=[c[0] for c in CASES])
def test_each_submission_scores_what_it_deserves(attacked, student, lesson):
    score, status = attacked["expected"][(student, lesson)]
    row = attacked["rows"].get((student, lesson))
    assert row is not None, f"{student}/{lesson} has no row in grading_report.csv"
    if status is not None:
        assert row["status"] == status, f"{student}: status {row['status']!r}, expected {status!r}: {row['reason']}"
    if status == "failed":
        assert row["reason"], "a failed submission must say why"
        return
    if score is not None:
        assert attacked["scores"][(student, lesson)] == pytest.approx(score), (
            f"{student}/{lesson} scored {attacked['scores'][(student, lesson)]}, deserves {score}: "
            f"{row['reason']}; cells {attacked['cells'][(student, lesson)]}")
        assert float(row["auto_score"]) == pytest.approx(score)
    if status == "flagged":
        assert "needs review" in row["reason"], row["reason"]


@pytest.mark.parametrize("student", REFERENCE_CASES)
def test_using_the_reference_costs_that_exercise_only(attacked, student):
    """Calling, binding, wrapping or reaching the reference through another helper: the
    exercise scores 0, the learner's other exercises keep their points."""
    cells = attacked["cells"][(student, LESSON)]
    assert cells["dice_coefficient_check"] == 0, f"{student}: a dice_coefficient that uses the reference got points"
    assert cells["iou_check"] > 0 and cells["multiclass_dice_check"] > 0, cells
    if student == "call-reference":
        assert "calls the reference" in attacked["rows"][(student, LESSON)]["reason"]


def test_the_reason_a_reference_test_failed_is_in_the_graded_notebook(attacked):
    graded = nbformat.read(attacked["root"] / "autograded" / "wrap-reference" / LESSON / f"{LESSON}.ipynb",
                           as_version=4)
    cell = graded.cells[cell_index(graded, "dice_coefficient_check")]
    errors = [output for output in cell.outputs if output.output_type == "error"]
    assert errors and errors[0] is cell.outputs[0], "a failed test's error must come first"
    assert errors[0].ename == "ReferenceCallError" and "reference" in errors[0].evalue


def test_faults_are_repaired_cell_by_cell(attacked):
    for student in ("exit-last", "sigint-proof"):
        reason = attacked["rows"][(student, EXAMPLE)]["reason"]
        assert "replaced by one that raises" in reason, f"{student}: {reason}"
    assert "did not stop" in attacked["rows"][("sigint-proof", EXAMPLE)]["reason"]
    assert "died while it ran" in attacked["rows"][("exit-last", EXAMPLE)]["reason"]
    cells = attacked["cells"][("exit-last", EXAMPLE)]
    # the written answer (graded by hand) is never scored automatically: 0 until a grader marks it
    assert cells == {"square_check": 1, "mean_check": 2, "count_vowels_check": 0, "mean_written": 0}, cells


def test_nothing_outside_the_sandbox_changed(attacked):
    assert hashlib.sha256(HELPERS_FILE.read_bytes()).hexdigest() == attacked["helpers_hash"], \
        "a submission edited helpers/checks/__init__.py"
    root = attacked["root"]
    assert hashlib.sha256((root / "answers" / EXAMPLE / f"{EXAMPLE}.ipynb").read_bytes()).hexdigest() \
        == attacked["answers_hash"]
    assert attacked["scores"][("answers", EXAMPLE)] == 5, "another student's score was changed"
    # killing "the parent" from inside the sandbox reaches neither nbgrader nor the batch
    assert attacked["scores"][("kill-grader", EXAMPLE)] == 5
    # byte for byte: the host's helpers/, the test root's answers/, notebooks/, config,
    # submissions/ and submitted/ (other students' work)
    after = _host_files(root)
    changed = sorted(name for name in set(after) | set(attacked["host"])
                     if after.get(name) != attacked["host"].get(name))
    assert not changed, f"grading changed files outside the sandbox: {changed[:10]}"


#: The students of _example_class that attack the host (links, modules, environment, limits).
HOST_CASES = ("link-notebook", "link-html", "link-submitted", "fifo-submitted", "linked-notebook",
              "json-module", "helpers-module", "environ", "environ-proc", "memory-hog", "fork-bomb",
              "thread-bomb", "output-flood", "disk-hog")


@pytest.mark.parametrize("student", HOST_CASES)
def test_each_host_attack_scores_what_it_deserves(attacked, student):
    test_each_submission_scores_what_it_deserves(attacked, student, EXAMPLE)


def test_links_and_special_files_never_reach_nbgrader(attacked):
    root, rows = attacked["root"], attacked["rows"]
    for folder in ("submitted", "autograded", ".grading"):
        links = [p for p in (root / folder).rglob("*") if p.is_symlink() or not (p.is_file() or p.is_dir())]
        assert not links, f"links or special files in {folder}/: {links[:5]}"
    reason = rows[("link-submitted", EXAMPLE)]["reason"]
    assert "key.ipynb -> ../../../answers/00_example/00_example.ipynb: symbolic link" in reason, reason
    reason = rows[("fifo-submitted", EXAMPLE)]["reason"]
    assert "pipe: named pipe (FIFO)" in reason and "passwd.txt -> /etc/passwd" in reason, reason
    reason = rows[("linked-notebook", EXAMPLE)]["reason"]
    assert "no 00_example.ipynb" in reason and "symbolic link" in reason, reason
    for student in ("link-notebook", "link-html"):
        folder = root / "autograded" / student / EXAMPLE
        assert sorted(p.name for p in folder.iterdir()) == [f"{EXAMPLE}.ipynb"], student


def test_no_student_module_ran_outside_the_sandbox(attacked):
    found = list(attacked["root"].rglob(IMPORTED_OUTSIDE)) + list((REPO_ROOT / "helpers").rglob(IMPORTED_OUTSIDE))
    assert not found, f"a student's module was imported outside the sandbox: {found}"


def test_no_secret_of_the_grader_in_outputs(attacked):
    root = attacked["root"]
    printed = (root / "autograded" / "environ" / EXAMPLE / f"{EXAMPLE}.ipynb").read_text()
    assert "'HOME'" in printed and "UNET_COURSE_SCALE" in printed, "the environment was not printed"
    for path in [*root.rglob("*.ipynb"), *(root / ".grading").rglob("*")]:
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_text(errors="replace"), f"the grader's secret is in {path}"


@pytest.mark.parametrize("student,limit", [("memory-hog", "memory limit (4 GiB)"),
                                           ("fork-bomb", "processes limit (128 processes)"),
                                           ("thread-bomb", "threads limit"),
                                           ("output-flood", "output limit (64 MiB)"),
                                           ("disk-hog", "disk limit (2 GiB)")])
def test_limits_are_named_and_cost_only_their_cell(attacked, student, limit):
    reason = attacked["rows"][(student, EXAMPLE)]["reason"]
    assert f"replaced by one that raises: it exceeded the {limit}" in reason, reason
    assert attacked["cells"][(student, EXAMPLE)] == {"square_check": 1, "mean_check": 2, "count_vowels_check": 2,
                                                     "mean_written": 0}


def test_batch_completes_and_exit_code_tells_the_truth(attacked):
    assert set(attacked["rows"]) == set(attacked["expected"]), "some submissions have no report row"
    assert attacked["status"] == 1, "one submission (invalid JSON) could not be graded: exit code must be 1"
    html = (attacked["root"] / "grading_report.html").read_text()
    assert "invalid-json" in html and "failed" in html


def test_grading_refuses_without_a_sandbox(tmp_path, monkeypatch, capsys):
    root = tmp_path / "course"
    (root / "submitted" / "alice" / EXAMPLE).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text((REPO_ROOT / "nbgrader_config.py").read_text())
    monkeypatch.setattr(sandbox, "_probe", lambda: "bubblewrap is not installed (test)")
    monkeypatch.delenv(sandbox.NO_SANDBOX_VARIABLE, raising=False)
    with pytest.raises(grading.GradingError, match="--no-sandbox"):
        grading.autograde(root=root, quiet=True)
    assert grading.main(["autograde", "--root", str(root)]) == 2
    assert "bubblewrap is not installed" in capsys.readouterr().err


def test_report_columns(attacked):
    with open(attacked["root"] / "grading_report.csv", newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames) == grading.REPORT_COLUMNS
    json.dumps(list(attacked["rows"].values()))  # plain strings only


def test_feedback_and_export_name_the_skipped_submission(attacked, capsys):
    root = attacked["root"]
    capsys.readouterr()
    assert grading.feedback([EXAMPLE], root=root, quiet=True) == 0
    assert "invalid-json/00_example" in capsys.readouterr().err
    assert (root / "feedback" / "exit-last" / EXAMPLE / f"{EXAMPLE}.html").is_file()
    assert grading.export("grades.csv", root=root, quiet=True) == 0
    assert "invalid-json/00_example" in capsys.readouterr().err
    with open(root / "grades.csv", newline="") as handle:
        exported = {(row["student_id"], row["assignment"]): float(row["score"]) for row in csv.DictReader(handle)}
    assert exported[("exit-last", EXAMPLE)] == 3 and exported[("answers", EXAMPLE)] == 5
    for student in ("link-html", "link-notebook", "environ"):
        folder = root / "feedback" / student / EXAMPLE
        assert sorted(p.name for p in folder.iterdir()) == [f"{EXAMPLE}.html"], student
        assert not (folder / f"{EXAMPLE}.html").is_symlink()
        assert SECRET not in (folder / f"{EXAMPLE}.html").read_text()
    assert not [p for p in (root / "feedback").rglob("*") if p.is_symlink()]
