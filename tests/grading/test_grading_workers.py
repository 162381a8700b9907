"""The fast grading path (tests helpers/grading/worker.py and its use in commands.py).

``python -m helpers autograde`` runs ``nbgrader autograde`` of every submission in one
long-lived worker process per job instead of a new process each. Two claims, end to end
with the real nbgrader and bubblewrap, on the plain-Python example lesson (fast):

* **Scores unchanged**: a class with answers, blank, partial, faulty, runner-killing,
  endless-loop, exit-in-a-cell and repaired submissions gets exactly the same report rows
  (scores, statuses, reasons) and per-test-cell grades from the worker path as from one
  nbgrader process per submission.
* **Nothing of one submission reaches the next** graded by the same worker (``jobs=1``):
  a submission that leaves a thread, a file in ``/tmp`` and in ``$HOME``, an environment
  variable, monkey-patched modules and (tried: the runner refuses them) a forked child and a
  background process behind is followed by a probe whose solution cell fails when it sees
  any of it. A control submission that leaks and probes in one notebook shows that the
  probe names each leak when it is there.
"""

from __future__ import annotations

import copy

import nbformat
import pytest
from support.course import LOOP_MARKER
from support.example_grading import EXAMPLE, example_course, outcome, submit
from support.notebooks import cell_index, nbgrader_meta, prefixed, with_cell

from helpers.grading import commands as grading
from helpers.grading import execute as grading_execute

pytestmark = pytest.mark.slow


#: A cell that leaves every kind of state behind that a reused process could carry over.
LEAK = """
import os, sys, threading, time, builtins, json
import helpers.checks
os.environ["UNET_LEAK"] = "1"
for folder in ("/tmp", os.environ.get("HOME", "/tmp"), os.environ.get("TMPDIR", "/tmp")):
    try:
        open(os.path.join(folder, "unet-leak"), "w").write("leak")
    except OSError:
        pass
def _spin():
    while True:
        time.sleep(0.05)
threading.Thread(target=_spin, name="unet-leak", daemon=True).start()
helpers.checks.UNET_LEAK = True
json.UNET_LEAK = True
builtins.UNET_LEAK = True
sys.modules["unet_leak"] = json
for attempt in (lambda: os.fork(), lambda: __import__("subprocess").Popen(["sleep", "600"]),
                lambda: os.posix_spawn("/bin/sleep", ["sleep", "600"], dict(os.environ))):
    try:
        if attempt() == 0:
            while True:
                time.sleep(1)
    except (PermissionError, OSError):
        pass
"""

#: Prepended to a solution cell: it raises (so the exercise scores 0) on any leak.
PROBE = """
import os, sys, threading, builtins, json
import helpers.checks
_leaks = [name for name, found in (
    ("environment", "UNET_LEAK" in os.environ),
    ("tmp file", any(os.path.exists(os.path.join(f, "unet-leak"))
                     for f in ("/tmp", os.environ.get("HOME", "/tmp"), os.environ.get("TMPDIR", "/tmp")))),
    ("thread", any(t.name == "unet-leak" for t in threading.enumerate())),
    ("patched helpers", hasattr(helpers.checks, "UNET_LEAK")),
    ("patched json", hasattr(json, "UNET_LEAK")),
    ("builtins", hasattr(builtins, "UNET_LEAK")),
    ("sys.modules", "unet_leak" in sys.modules),
    ("process", any(open(f"/proc/{p}/cmdline", "rb").read().startswith(b"sleep")
                    for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline"))),
) if found]
assert not _leaks, f"state of an earlier submission: {_leaks}"
"""


#: What a runner sees of its sandbox (printed as ``VIEW {...}``); "import helpers" makes the
#: grader preload helpers, so that the runner is forked from the template where there is one.
VIEW = """
import glob, os, socket, tempfile
import helpers
def _read(path):
    try:
        return open(path).read()
    except OSError as error:
        return type(error).__name__
def _attempt(action):
    try:
        action()
        return "done"
    except OSError as error:
        return type(error).__name__
_status = dict(line.split(":", 1) for line in _read("/proc/self/status").splitlines() if ":" in line)
_pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
_view = {
    "uid": os.getuid(), "gid": os.getgid(),
    "capabilities": {k: _status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")},
    "network": _attempt(lambda: socket.create_connection(("192.0.2.1", 80), timeout=2)),
    "write /": _attempt(lambda: open("/unet-view", "w")),
    "write /usr": _attempt(lambda: open("/usr/unet-view", "w")),
    "write here": _attempt(lambda: open("unet-view", "w")),
    "cwd": os.getcwd(), "listing": sorted(os.listdir(".")),
    "environment": sorted(os.environ),
    "mounts": sorted(line.split()[4].replace(os.path.dirname(os.environ["HOME"]), "SCRATCH")
                     for line in _read("/proc/self/mountinfo").splitlines()),
    "pid 1": _read("/proc/1/cmdline").split("\\0")[0],
    "pids below 4": all(p < 4 for p in _pids),
    "template visible": any(b"grading.template" in open(f"/proc/{p}/cmdline", "rb").read() for p in _pids
                            if p != os.getpid() and os.path.exists(f"/proc/{p}/cmdline")),
    "template socket": glob.glob(os.path.join(tempfile.gettempdir(), "unet-course-template-*")),
    "temporary folder": tempfile.gettempdir(),
    "temporary file": _attempt(lambda: tempfile.NamedTemporaryFile().close()),
    "hostname": socket.gethostname(),
}
print("VIEW", repr(_view))
"""


def _runner_paths(root) -> dict[str, list[bool]]:
    """Per student: whether each runner of the last grading was forked from the template
    (the launcher's ``runner`` events in the grading traces)."""
    import json

    found = {}
    for trace in sorted((root / ".grading" / "traces").glob("*.jsonl")):
        events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line]
        found[trace.name.split("--")[0]] = [e["forked"] for e in events if e.get("event") == "runner"]
    return found


def test_the_worker_path_scores_exactly_like_one_process_per_submission(tmp_path):
    answers, release = example_course(tmp_path)
    partial = copy.deepcopy(release)
    partial.cells[cell_index(partial, "square")].source = answers.cells[cell_index(answers, "square")].source
    renamed = copy.deepcopy(answers)
    renamed.cells[cell_index(renamed, "square")].metadata["nbgrader"]["grade_id"] = "my_square"
    mean_source = answers.cells[cell_index(answers, "mean")].source
    submit(tmp_path, {
        "answers": answers,
        "blank": release,
        "partial": partial,
        "exit-last": prefixed(answers, "count_vowels", "import os\nos._exit(0)"),
        "kill-runner": with_cell(answers, "square_check", "import os, signal\nos.kill(1, signal.SIGKILL)"),
        "loop": prefixed(answers, "mean", f"# {LOOP_MARKER}\nwhile True:\n    pass\n" + mean_source),
        "renamed-id": renamed,
        "leaker": with_cell(answers, "setup", LEAK),
    })
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2, reuse_workers=False) == 0
    before = outcome(tmp_path)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2) == 0
    after = outcome(tmp_path)
    assert after == before
    rows = before[0]
    # the class exercises what it should: full, zero, partial marks, repairs and faults
    assert {rows[(s, EXAMPLE)]["auto_score"] for s in ("answers", "blank", "partial")} == {"5", "0", "1"}
    assert "replaced" in rows[("exit-last", EXAMPLE)]["reason"]
    assert rows[("kill-runner", EXAMPLE)]["auto_score"] == "5"
    assert rows[("renamed-id", EXAMPLE)]["status"] == "repaired"


def test_the_template_path_scores_exactly_like_fresh_runners(tmp_path):
    """The same class (every notebook names helpers, so its runner is forked from the
    template) graded with and without the template: the same rows, cells and reasons."""
    answers, release = example_course(tmp_path)
    partial = copy.deepcopy(release)
    partial.cells[cell_index(partial, "square")].source = answers.cells[cell_index(answers, "square")].source
    mean_source = answers.cells[cell_index(answers, "mean")].source
    uses = "import helpers.checks"
    students = {
        "answers": with_cell(answers, "setup", uses),
        "blank": with_cell(release, "setup", uses),
        "partial": with_cell(partial, "setup", uses),
        "exit-last": prefixed(with_cell(answers, "setup", uses), "count_vowels", "import os\nos._exit(0)"),
        "kill-runner": with_cell(with_cell(answers, "setup", uses), "square_check",
                                 "import os, signal\nos.kill(1, signal.SIGKILL)"),
        "loop": prefixed(with_cell(answers, "setup", uses), "mean",
                         f"# {LOOP_MARKER}\nwhile True:\n    pass\n" + mean_source),
        "leaker": with_cell(answers, "setup", LEAK),
    }
    submit(tmp_path, students)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2, template=False) == 0
    before = outcome(tmp_path)
    assert all(not any(paths) for paths in _runner_paths(tmp_path).values())
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2) == 0
    after = outcome(tmp_path)
    assert after == before
    forked = _runner_paths(tmp_path)
    assert set(forked) == set(students) and all(paths and all(paths) for paths in forked.values()), forked
    rows = before[0]
    assert {rows[(s, EXAMPLE)]["auto_score"] for s in ("answers", "blank", "partial")} == {"5", "0", "1"}
    assert "replaced" in rows[("exit-last", EXAMPLE)]["reason"]
    assert rows[("kill-runner", EXAMPLE)]["auto_score"] == "5"


def test_cells_after_the_last_graded_code_cell_are_not_run_and_change_no_score(tmp_path):
    """The same class graded with ``c.GradingExecute.run_ungraded_tail = True`` (every cell
    runs, as before) and by default (cells after the last graded code cell are not run): the
    same scores, statuses and reasons, per-cell grades included. A learner's cell added at the
    end shows the note and the output handed in instead of the grader's; one that kills the
    runner there is still flagged (the audit reads every cell) with the same score, but no
    longer costs a second run."""
    answers, release = example_course(tmp_path)
    partial = copy.deepcopy(release)
    partial.cells[cell_index(partial, "square")].source = answers.cells[cell_index(answers, "square")].source

    def appended(nb, source):
        nb = copy.deepcopy(nb)
        nb.cells.append(nbformat.v4.new_code_cell(source))
        nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="my own run\n")]
        return nb

    submit(tmp_path, {
        "answers": answers,
        "blank": release,
        "partial": partial,
        "exit-last": prefixed(answers, "count_vowels", "import os\nos._exit(0)"),
        "tail-demo": appended(answers, 'print("a demo after the last graded cell")'),
        "tail-exit": appended(partial, "import os\nos._exit(0)"),
    })
    config = tmp_path / "nbgrader_config.py"
    course_config = config.read_text()
    config.write_text(course_config + "\nc.GradingExecute.run_ungraded_tail = True\n")
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2) == 0
    every_cell = outcome(tmp_path)
    demo = nbformat.read(tmp_path / "autograded" / "tail-demo" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    assert "a demo after the last graded cell" in demo.cells[-1].outputs[0]["text"]
    config.write_text(course_config)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2) == 0
    rows, cells = outcome(tmp_path)
    assert cells == every_cell[1]
    changed = {key for key in rows if rows[key] != every_cell[0][key]}
    assert changed == {("tail-exit", EXAMPLE)}, changed
    before, after = every_cell[0][("tail-exit", EXAMPLE)], rows[("tail-exit", EXAMPLE)]   # os._exit: flagged
    assert "replaced" in before["reason"] and "replaced" not in after["reason"], (before, after)
    assert before["status"] == after["status"] == "flagged" and after["auto_score"] == before["auto_score"] == "1"
    assert {rows[(s, EXAMPLE)]["auto_score"] for s in ("answers", "blank", "partial", "tail-demo")} == {"5", "0", "1"}
    assert "replaced" in rows[("exit-last", EXAMPLE)]["reason"]          # a solution cell always runs
    demo = nbformat.read(tmp_path / "autograded" / "tail-demo" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    assert [output.get("text") for output in demo.cells[-1].outputs] == [grading_execute.NOT_RUN, "my own run\n"]


def test_a_lesson_with_a_long_ungraded_tail_scores_the_same_without_it(tmp_path):
    """Lesson 03 (the training run after its last graded cell is most of its grading time)
    and the class of ``benchmarks/grading_speed.py``: answers, the untouched release, the
    first exercise solved, and ``os._exit`` in the last exercise. Graded with every cell
    (``all_cells=True``) and by default: the same report rows and per-cell grades; by default
    the training cell is not run and shows the training log handed in (the answers' own)."""
    lesson = "03_loss_and_metrics"
    answers, release = example_course(tmp_path, lesson)
    solution = [i for i, cell in enumerate(answers.cells) if nbgrader_meta(cell).get("solution")
                and cell.cell_type == "code"]
    partial = copy.deepcopy(release)
    partial.cells[solution[0]].source = answers.cells[solution[0]].source
    faulty = copy.deepcopy(answers)
    faulty.cells[solution[-1]].source = "import os\nos._exit(0)\n" + faulty.cells[solution[-1]].source
    submit(tmp_path, {"answers": answers, "blank": release, "partial": partial, "faulty": faulty}, lesson)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2, all_cells=True) == 0
    every_cell = outcome(tmp_path)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2) == 0
    assert outcome(tmp_path) == every_cell
    rows = every_cell[0]
    assert rows[("answers", lesson)]["auto_score"] == rows[("answers", lesson)]["auto_max"] != "0"
    assert rows[("blank", lesson)]["auto_score"] == "0" and "replaced" in rows[("faulty", lesson)]["reason"]
    graded = nbformat.read(tmp_path / "autograded" / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    fit = next(i for i, cell in enumerate(graded.cells) if "model.fit(" in cell.source and "history =" in cell.source)
    handed_in = [output.text for output in answers.cells[fit].outputs if output.output_type == "stream"]
    assert "Epoch 3/3" in "".join(handed_in)
    assert [output.get("text") for output in graded.cells[fit].outputs] == [grading_execute.NOT_RUN, *handed_in]


def _view(root, student) -> dict:
    import ast

    graded = nbformat.read(root / "autograded" / student / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    text = "".join(output.get("text", "") for output in graded.cells[cell_index(graded, "setup") + 1].outputs)
    assert "VIEW " in text, text
    return ast.literal_eval(text.split("VIEW ", 1)[1].strip())


def test_a_forked_runner_sees_the_same_sandbox_as_a_fresh_one(tmp_path):
    """No capabilities, no network, a read-only root, the private work copy, the allowed
    environment only, a PID namespace of its own: the same from a runner forked from the
    template as from a fresh one; and no trace of the template (process, socket)."""
    answers, _release = example_course(tmp_path)
    submit(tmp_path, {"view": with_cell(answers, "setup", VIEW)})
    assert grading.autograde(root=tmp_path, quiet=True, jobs=1, template=False) == 0
    assert _runner_paths(tmp_path) == {"view": [False]}
    fresh = _view(tmp_path, "view")
    assert grading.autograde(root=tmp_path, quiet=True, jobs=1) == 0
    assert _runner_paths(tmp_path) == {"view": [True]}
    forked = _view(tmp_path, "view")
    assert forked == fresh
    assert set(forked["capabilities"].values()) == {"0000000000000000", "1"}, forked["capabilities"]
    assert forked["network"] != "done" and forked["write /"] != "done" and forked["write /usr"] != "done"
    assert forked["write here"] == "done"
    assert not [name for name in forked["environment"] if "TEMPLATE" in name or name.endswith("TRACE")]
    assert forked["pid 1"].endswith("bwrap") and forked["pids below 4"]
    assert forked["template visible"] is False and forked["template socket"] == []


def test_a_template_started_with_another_environment_is_refused_and_a_fresh_runner_grades(
        tmp_path, monkeypatch):
    """A variable that the libraries may read at import differs between the template and
    the sandbox: the template refuses, the launcher starts a fresh runner, the trace says
    why, and the score is the same."""
    from helpers.grading import template

    answers, _release = example_course(tmp_path)
    submit(tmp_path, {"answers": with_cell(answers, "setup", "import helpers.checks")})
    started_with = template.template_environment
    monkeypatch.setattr(template, "template_environment",
                        lambda base, home: dict(started_with(base, home), UNET_COURSE_IMPORT_SETTING="1"))
    assert grading.autograde(root=tmp_path, quiet=True, jobs=1) == 0
    rows, _cells = outcome(tmp_path)
    assert rows[("answers", EXAMPLE)]["auto_score"] == "5"
    import json

    trace = (tmp_path / ".grading" / "traces" / f"answers--{EXAMPLE}.jsonl").read_text(encoding="utf-8")
    runner = [json.loads(line) for line in trace.splitlines() if '"runner"' in line]
    assert len(runner) == 1 and runner[0]["forked"] is False, runner
    assert "another environment (UNET_COURSE_IMPORT_SETTING)" in runner[0]["reason"], runner


#: Cells that exceed each limit of the sandbox (as in test_grading_adversarial.py).
HOGS = {
    "memory-hog": ("chunks = []\nfor _ in range(40):\n    chunks.append(bytearray(256 * 2**20))",
                   "memory limit (4 GiB)"),
    "fork-bomb": ("import sys\n"  # a file name under sys.prefix passes the runner's own audit hook
                  "bomb = 'import subprocess\\nfor _ in range(2000):\\n    subprocess.Popen([\"sleep\", \"600\"])\\n'\n"
                  "exec(compile(bomb, sys.prefix + '/bomb.py', 'exec'), {})\n", "processes limit (128 processes)"),
    "thread-bomb": ("import threading, time\nfor _ in range(5000):\n"
                    "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()", "threads limit"),
    "output-flood": ("with open('/dev/stderr', 'wb', buffering=0) as log:\n"
                     "    for _ in range(256):\n        log.write(b'x' * 2**20)", "output limit (64 MiB)"),
    "disk-hog": ("for i in range(100):\n    with open(f'junk{i}.bin', 'wb') as f:\n"
                 "        f.write(b'x' * 2**25)", "disk limit (2 GiB)"),
}
SECRET = "unet-course-template-secret-4711"


def test_limits_and_the_environment_hold_for_forked_runners(tmp_path):
    """The watchdog watches a runner forked into its sandbox: each limit kills it and costs
    only its cell; the grader's secrets reach neither its environment nor /proc/*/environ."""
    answers, _release = example_course(tmp_path)
    uses = with_cell(answers, "setup", "import helpers.checks")
    students = {name: with_cell(uses, "square_check", cell) for name, (cell, _limit) in HOGS.items()}
    students["environ-proc"] = with_cell(uses, "square_check", "import os\nprint(dict(os.environ))\n"
                                         "for path in ('/proc/1/environ', '/proc/self/environ'):\n"
                                         "    print(open(path, 'rb').read())")
    submit(tmp_path, students)
    assert grading.autograde(root=tmp_path, quiet=True, jobs=2,
                             env={"SECRET_TOKEN": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET}) == 0
    forked = _runner_paths(tmp_path)
    assert all(paths and paths[0] for paths in forked.values()), forked  # the first run of each: forked
    rows, cells = outcome(tmp_path)
    for name, (_cell, limit) in HOGS.items():
        reason = rows[(name, EXAMPLE)]["reason"]
        assert f"replaced by one that raises: it exceeded the {limit}" in reason, (name, reason)
        assert cells[(name, EXAMPLE)]["square_check"] == 1, (name, cells[(name, EXAMPLE)])
    graded = nbformat.read(tmp_path / "autograded" / "environ-proc" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for output in graded.cells[cell_index(graded, "square_check") + 1].outputs)
    assert "HOME" in printed and SECRET not in printed, printed[:2000]
    assert rows[("environ-proc", EXAMPLE)]["auto_score"] == "5"


def test_nothing_of_one_submission_reaches_the_next_in_the_same_worker(tmp_path):
    answers, _release = example_course(tmp_path)
    probed = prefixed(answers, "square", PROBE)
    # graded in name order by one worker: every leaker is followed by a probe
    submit(tmp_path, {
        "a1-leaker": with_cell(answers, "setup", LEAK),
        "a2-probe": probed,
        "b1-leaker": with_cell(answers, "mean_check", LEAK),
        "b2-probe": probed,
        "c-control": with_cell(probed, "setup", LEAK),  # leak and probe in one notebook
    })
    assert grading.autograde(root=tmp_path, quiet=True, jobs=1) == 0
    rows, cells = outcome(tmp_path)
    # every runner (they all import helpers.checks) was forked from the one template
    assert all(paths and all(paths) for paths in _runner_paths(tmp_path).values()), _runner_paths(tmp_path)
    for probe in ("a2-probe", "b2-probe"):
        assert rows[(probe, EXAMPLE)]["auto_score"] == "5", rows[(probe, EXAMPLE)]
        assert "replaced" not in rows[(probe, EXAMPLE)]["reason"], rows[(probe, EXAMPLE)]
    # the probe sees each leak where there is one: in the control it raises, naming them
    control = nbformat.read(tmp_path / "autograded" / "c-control" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    errors = [output.evalue for output in control.cells[cell_index(control, "square")].outputs
              if output.output_type == "error"]
    assert errors and "state of an earlier submission" in errors[0], errors
    for leak in ("environment", "tmp file", "thread", "patched helpers", "patched json", "builtins",
                 "sys.modules"):
        assert repr(leak) in errors[0], (leak, errors[0])
    assert cells[("c-control", EXAMPLE)]["square_check"] == 0


def test_a_notebook_that_never_names_helpers_is_graded_without_importing_them(tmp_path):
    """``guard.needs_helpers``: the plain-Python example is graded by a runner that has not
    imported helpers, TensorFlow or Keras (seconds saved per submission); the same notebook
    with one cell that imports helpers gets them imported and snapshotted before its first
    cell. Both score full marks."""
    answers, _release = example_course(tmp_path)
    probe = ("import sys\n"   # the runner's own package is helpers.grading: look for lesson modules
             "print('loaded:', sorted({'tensor' + 'flow', 'ker' + 'as', 'hel' + 'pers.metrics'} & set(sys.modules)))")
    plain = with_cell(answers, "setup", probe)
    submit(tmp_path, {"plain": plain, "names-helpers": with_cell(plain, "square_check", "import helpers")})
    assert grading.autograde(root=tmp_path, quiet=True, jobs=1) == 0
    rows, _cells = outcome(tmp_path)
    seen = {}
    for student in ("plain", "names-helpers"):
        assert rows[(student, EXAMPLE)]["auto_score"] == "5", rows[(student, EXAMPLE)]
        graded = nbformat.read(tmp_path / "autograded" / student / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
        probe_cell = graded.cells[cell_index(graded, "setup") + 1]
        seen[student] = "".join(output.get("text", "") for output in probe_cell.outputs)
    assert "loaded: []" in seen["plain"], seen
    assert "loaded: ['helpers.metrics', 'keras', 'tensorflow']" in seen["names-helpers"], seen
