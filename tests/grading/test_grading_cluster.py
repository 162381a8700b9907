"""Grading on a Dask cluster (tests helpers/grading/cluster.py and ``autograde --cluster``).

End to end with the real nbgrader, bubblewrap and a local Dask cluster of two worker
processes on 127.0.0.1 (``LocalCluster(processes=True)``), on the plain-Python example lesson:

* **Scores unchanged**: the same class (answers, blank, partial, a faulty one whose cell
  kills its runner, an unreadable notebook, a slow one) graded locally and on the cluster
  gets the same report rows (scores, statuses, reasons) and per-test-cell grades.
* **A killed worker costs a retry, never a lost or a second score**: the worker process
  grading the slow submission is killed (SIGKILL) while its cell runs; the submission is
  graded again by another worker and merged into the gradebook exactly once, with the
  local score, and neither the nbgrader process nor the grading template of the killed
  worker outlives it.
* **Workers fork runners from their grading template** where a notebook names helpers,
  as the local path does.
* **An unreachable scheduler** fails at once with an error naming the address and the fix.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import stat
import threading
import time

import pytest
from support.course import REPO_ROOT
from support.example_grading import EXAMPLE, example_course, outcome, submit
from support.notebooks import cell_index, prefixed, with_cell
from support.processes import descendants

from helpers.grading import cluster as grading_cluster
from helpers.grading import commands as grading
from helpers.tools import cli

#: Seconds the slow submission's first cell sleeps (the window in which its worker is killed).
SLEEP_SECONDS = 15
#: A cell that makes a notebook need helpers (so its runner is forked from the template).
USES_HELPERS = "import helpers.checks"


def _class(answers, release) -> dict:
    partial = copy.deepcopy(release)
    partial.cells[cell_index(partial, "square")].source = answers.cells[cell_index(answers, "square")].source
    return {
        "answers": answers,
        "blank": release,
        "partial": partial,
        "faulty": with_cell(answers, "square_check", "import os, signal\nos.kill(1, signal.SIGKILL)"),
        "broken": None,  # not a notebook at all
        # these two name helpers: their runners are forked from the grading template
        "helpers": with_cell(answers, "setup", USES_HELPERS),
        "sleeper": prefixed(with_cell(answers, "setup", USES_HELPERS), "square",
                            f"import time\ntime.sleep({SLEEP_SECONDS})"),
    }


@pytest.fixture(scope="module")
def local_cluster():
    """Two single-threaded worker processes (with nannies) on 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    saved = os.environ.get("PYTHONPATH")
    # the workers import the course's helpers, as `PYTHONPATH=COURSE dask worker` would
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), saved) if p)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as running:
            yield running
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _worker_pids(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        return client.run(os.getpid)


def _grading_process(pids: dict[str, int], student: str) -> tuple[str, int] | None:
    """(worker address, nbgrader pid) of the worker whose sandboxed runner grades ``student``."""
    for address, pid in pids.items():
        below = descendants(pid)
        nbgrader = [p for p, command in below.items() if "nbgrader" in command and f"--student {student}" in command]
        if nbgrader and any("bwrap" in command for command in below.values()):
            return address, nbgrader[0]
    return None


@pytest.mark.slow
def test_cluster_grades_like_the_local_path_and_a_killed_worker_costs_only_a_retry(
        tmp_path, local_cluster, monkeypatch):
    local, remote = tmp_path / "local", tmp_path / "cluster"
    answers, release = example_course(local)
    example_course(remote)
    students = _class(answers, release)
    submit(local, students)
    submit(remote, students)
    assert grading.autograde(root=local, quiet=True, jobs=2) == 1  # "broken" cannot be graded
    expected = outcome(local, manual_flags=True)

    merged: list[tuple[str, str]] = []
    forked: dict[str, list[bool]] = {}
    real_merge = grading_cluster.merge

    def counting_merge(folder, task, outcome):
        merged.append((task.student, outcome.worker))
        forked[task.student] = outcome.forked
        return real_merge(folder, task, outcome)

    monkeypatch.setattr(grading_cluster, "merge", counting_merge)
    address = local_cluster.scheduler_address
    pids = _worker_pids(address)
    assert len(pids) == 2
    finished: dict[str, object] = {}

    def run():
        try:
            finished["code"] = grading.autograde(root=remote, quiet=True, remote=grading_cluster.Cluster(address))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            finished["code"] = error

    grader = threading.Thread(target=run)
    grader.start()
    try:
        deadline = time.monotonic() + 150
        found = None
        while found is None and time.monotonic() < deadline and grader.is_alive():
            found = _grading_process(pids, "sleeper")
            time.sleep(0.2)
        assert found is not None, "the slow submission was never seen grading on a worker"
        killed_address, nbgrader_pid = found
        time.sleep(1)  # its runner is in the sleeping cell
        templates = [p for p, command in descendants(pids[killed_address]).items() if "unet-course-template" in command]
        assert templates, "the worker grading the slow submission has no grading template"
        os.kill(pids[killed_address], signal.SIGKILL)
        # the killed worker's nbgrader process dies with it (PR_SET_PDEATHSIG), at once:
        # left alone it would go on grading the sleeping cell for seconds
        for _ in range(50):
            if nbgrader_pid not in descendants(1):
                break
            time.sleep(0.1)
        assert nbgrader_pid not in descendants(1), "the killed worker's nbgrader process outlived it"
    finally:
        grader.join(timeout=300)
    assert not grader.is_alive(), "grading on the cluster did not finish"
    assert finished["code"] == 1, finished["code"]  # "broken" again, nothing else failed

    # what the killed worker's nbgrader had started (its sandboxed runner, in the killed
    # worker's scratch folder task-PID-*) did not outlive the cell it was running either
    scratch = f"task-{pids[killed_address]}-"
    assert not [c for c in descendants(1).values() if scratch in c], "the killed worker's sandbox is still running"
    assert not set(templates) & set(descendants(1)), "the killed worker's grading template outlived it"
    # runners were forked from each worker's template where the notebook names helpers
    assert forked["helpers"] == forked["sleeper"] == [True], forked
    assert forked["answers"] == [False], forked       # NumPy only: a fresh runner, as locally

    sleeper_merges = [worker for student, worker in merged if student == "sleeper"]
    assert len(sleeper_merges) == 1, merged           # graded exactly once ...
    assert sleeper_merges[0] != killed_address        # ... by another worker than the killed one
    assert sorted(student for student, _ in merged) == sorted(students)  # one merge each
    rows, cells = outcome(remote, manual_flags=True)
    assert rows == expected[0]
    assert cells == expected[1]
    assert rows[("sleeper", EXAMPLE)]["auto_score"] == rows[("answers", EXAMPLE)]["auto_score"]
    assert (remote / "autograded" / "sleeper" / EXAMPLE / f"{EXAMPLE}.ipynb").is_file()


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_fast_naming_the_address(tmp_path, capsys):
    pytest.importorskip("distributed")
    answers, release = example_course(tmp_path / "course")
    submit(tmp_path / "course", {"answers": answers})
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    code = cli.main(["autograde", "--root", str(tmp_path / "course"), "--cluster", address])
    error = capsys.readouterr().err
    assert code == 2
    assert address in error and "dask scheduler" in error
    assert not (tmp_path / "course" / "grading_report.csv").exists()
    # the grading module alone cannot reach a cluster (the cluster module builds on it):
    # without the factory that `python -m helpers` passes, --cluster says which command to run
    assert grading.main(["autograde", "--root", str(tmp_path / "course"), "--cluster", address]) == 2
    assert "python -m helpers autograde" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["../answers/00_example.ipynb", "/etc/passwd", "a/../../b", ""])
def test_paths_from_a_worker_never_leave_the_submissions_folder(path):
    with pytest.raises(ValueError):
        grading_cluster._safe_relative(path)
    assert str(grading_cluster._safe_relative("sub/figure.png")) == "sub/figure.png"


def test_a_submission_folder_travels_as_it_was_collected(tmp_path):
    """Files, folders, links (not followed) and FIFOs reach the worker as such, so that
    staging there keeps and drops what it keeps and drops locally."""
    source = tmp_path / "submitted"
    (source / "data").mkdir(parents=True)
    (source / "00_example.ipynb").write_text("{}")
    (source / "data" / "notes.txt").write_bytes(b"\x00binary")
    (source / "answers").symlink_to("../../answers")
    os.mkfifo(source / "pipe")
    entries = grading_cluster.submission_entries(source)
    assert {(e.path, e.kind) for e in entries} == {("00_example.ipynb", "file"), ("data", "dir"),
                                                   ("data/notes.txt", "file"), ("answers", "link"),
                                                   ("pipe", "special")}
    copy = tmp_path / "worker"
    grading_cluster._write_entries(copy, entries)
    assert (copy / "data" / "notes.txt").read_bytes() == b"\x00binary"
    assert os.readlink(copy / "answers") == "../../answers"
    assert stat.S_ISFIFO(os.lstat(copy / "pipe").st_mode)
