"""File handling of helpers/grading/commands.py: what collect, staging, autograde and feedback copy,
and that no link or special file of a submission leads nbgrader (which runs outside the
sandbox) to a file of the host. Fast: nbgrader itself is replaced where it would run
(tests/grading/test_grading_adversarial.py grades for real)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.grading import commands as grading
from helpers.grading import sandbox
from support.fakes import unix_socket

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "00_example" / "00_example.ipynb"
LESSON = "00_example"


def _hostile_folder(folder: Path, answers: Path) -> None:
    """A submission folder: the notebook, a regular file and a nested one, links (to the
    answers, to a folder outside, dangling), a FIFO and a socket."""
    (folder / "sub").mkdir(parents=True)
    shutil.copy(FIXTURE, folder / f"{LESSON}.ipynb")
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "data.csv").write_text("1,2")
    (folder / "key.ipynb").symlink_to(answers / f"{LESSON}.ipynb")
    (folder / "sub" / "up").symlink_to(answers)
    (folder / "dangling").symlink_to(folder / "nowhere")
    os.mkfifo(folder / "pipe")
    unix_socket(folder / "sock")


@pytest.fixture
def course(tmp_path):
    """A minimal course root: the config, the example lesson's answers and release."""
    root = tmp_path / "course"
    for folder in ("answers", "notebooks"):
        (root / folder / LESSON).mkdir(parents=True)
        shutil.copy(FIXTURE, root / folder / LESSON / f"{LESSON}.ipynb")
    (root / "answers" / LESSON / f"{LESSON}.ipynb").write_text('{"cells": [], "answer": "KEY"}')
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


def test_copy_tree_drops_links_fifos_and_sockets(course, tmp_path):
    source = tmp_path / "submissions" / "mallory" / LESSON
    _hostile_folder(source, course / "answers" / LESSON)
    target = course / "submitted" / "mallory" / LESSON
    dropped = grading._copy_tree(source, target)
    assert sorted(p.name for p in target.iterdir()) == [f"{LESSON}.ipynb", "notes.txt", "sub"]
    assert sorted(p.name for p in (target / "sub").iterdir()) == ["data.csv"]
    assert len(dropped) == 5, dropped
    reasons = grading._dropped_reasons(dropped, "at collection")
    assert all(line.startswith("needs review: ") and "at collection" in line for line in reasons)


def test_collect_drops_links_and_fifos_and_notes_them_for_the_report(course, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grading, "add_students", lambda students, root=None: None)
    submissions = tmp_path / "submissions"
    _hostile_folder(submissions / "mallory" / LESSON, course / "answers" / LESSON)
    (submissions / "eve").symlink_to(submissions / "mallory")            # not a student's folder
    (submissions / "trudy").mkdir()
    (submissions / "trudy" / LESSON).symlink_to(course / "answers" / LESSON)  # the answers as a submission
    assert grading.collect(submissions, root=course, quiet=True) == 0
    err = capsys.readouterr().err
    submitted = course / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["mallory"]
    assert "eve: a symbolic link" in err and f"{LESSON}: a symbolic link" in err
    assert sorted(p.name for p in (submitted / "mallory" / LESSON).iterdir()) == [f"{LESSON}.ipynb", "notes.txt", "sub"]
    notes = grading._collect_notes(course, "mallory", LESSON)
    assert len(notes) == 5 and any(note.startswith("key.ipynb -> ") for note in notes), notes
    assert "not copied" in err
    # collected again without the links: the notes go
    for name in ("key.ipynb", "dangling", "pipe", "sock", "sub/up"):
        (submissions / "mallory" / LESSON / name).unlink()
    assert grading.collect(submissions, root=course, quiet=True) == 0
    assert grading._collect_notes(course, "mallory", LESSON) == []


def _fake_nbgrader(seen: dict, write_link_to: Path | None = None):
    """A stand-in for ``_run_logged`` that records the staged folder and, like a hostile
    runner could once, leaves links in nbgrader's output folder."""
    def run(args, folder, env, timeout):
        student = args[args.index("--student") + 1]
        stage = folder / grading._WORK / "staged" / student / LESSON
        seen["staged"] = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
        seen["links"] = [p for p in stage.rglob("*") if p.is_symlink()]
        seen["pre"] = sorted(p.name for p in (folder / "autograded" / student / LESSON).glob("*"))
        out = folder / "autograded" / student / LESSON
        out.mkdir(parents=True, exist_ok=True)
        if write_link_to is not None:
            (out / f"{LESSON}.ipynb").symlink_to(write_link_to)
            (out / "leak.html").symlink_to(write_link_to)
        with open(env[grading.TRACE_VARIABLE], "a") as trace:
            trace.write(json.dumps({"event": "start"}) + "\n" + json.dumps({"event": "complete"}) + "\n")
        return 0, ""
    return run


def test_staging_drops_links_and_the_report_says_so(course, tmp_path, monkeypatch):
    submitted = course / "submitted" / "mallory" / LESSON
    _hostile_folder(submitted, course / "answers" / LESSON)   # e.g. put there by nbgrader zip_collect or by hand
    stale = course / "autograded" / "mallory" / LESSON
    stale.mkdir(parents=True)
    (stale / "old.html").symlink_to(course / "answers" / LESSON / f"{LESSON}.ipynb")
    seen: dict = {}
    monkeypatch.setattr(grading, "_run_logged", _fake_nbgrader(seen, course / "answers" / LESSON / f"{LESSON}.ipynb"))
    monkeypatch.setattr(grading.time, "sleep", lambda seconds: None)
    result = grading._grade_one(course, LESSON, "mallory", {}, None)
    assert seen["links"] == [] and seen["pre"] == [], seen
    assert seen["staged"] == [f"{LESSON}.ipynb", "notes.txt", "sub", "sub/data.csv"]
    reasons = "\n".join(result.reasons)
    assert result.status == "failed"  # the fake nbgrader wrote a link, not a graded notebook
    for text in ("key.ipynb -> ", "when staged", "pipe: named pipe (FIFO)", "sock: socket",
                 "old.html -> ", "before nbgrader wrote", "leak.html -> ", "after grading"):
        assert text in reasons, (text, reasons)
    out = course / "autograded" / "mallory" / LESSON
    assert not any(p.is_symlink() for p in out.glob("*")), "links in the graded folder were left"
    assert json.loads((course / "answers" / LESSON / f"{LESSON}.ipynb").read_text())["answer"] == "KEY"


def test_a_linked_notebook_is_never_graded_as_the_submission(course, monkeypatch):
    submitted = course / "submitted" / "mallory" / LESSON
    submitted.mkdir(parents=True)
    (submitted / f"{LESSON}.ipynb").symlink_to(course / "answers" / LESSON / f"{LESSON}.ipynb")
    monkeypatch.setattr(grading, "_run_logged", lambda *a: pytest.fail("nbgrader must not run"))
    result = grading._grade_one(course, LESSON, "mallory", {}, None)
    assert result.status == "failed" and result.score == 0
    reasons = "\n".join(result.reasons)
    assert f"no {LESSON}.ipynb" in reasons and "symbolic link" in reasons, reasons


def test_collect_notes_reach_the_report_and_flag_it(course, monkeypatch):
    submitted = course / "submitted" / "mallory" / LESSON
    submitted.mkdir(parents=True)
    shutil.copy(FIXTURE, submitted / f"{LESSON}.ipynb")
    notes = grading._notes_file(course, "mallory", LESSON)
    notes.parent.mkdir(parents=True)
    notes.write_text(json.dumps(["key.ipynb -> ../../../answers/x: symbolic link, not copied"]))

    class _Book:
        def find_submission(self, lesson, student):
            grade = type("Grade", (), {"name": "square_check", "score": 5.0, "max_score": 5.0,
                                       "needs_manual_grade": False})()
            notebook = type("Notebook", (), {"grades": [grade]})()
            return type("Submission", (), {"score": 5.0, "notebooks": [notebook]})()

    monkeypatch.setattr(grading, "gradebook", lambda folder: contextlib.nullcontext(_Book()))
    fake = _fake_nbgrader({})

    def run(args, folder, env, timeout):
        code, log = fake(args, folder, env, timeout)
        (folder / "autograded" / "mallory" / LESSON / f"{LESSON}.ipynb").write_text("{}")
        return code, log

    monkeypatch.setattr(grading, "_run_logged", run)
    result = grading._grade_one(course, LESSON, "mallory", {}, None)
    assert result.status == "flagged" and result.score == 5, result
    assert any("key.ipynb -> ../../../answers/x" in r and "at collection" in r for r in result.reasons)


def test_limit_named_by_the_sandbox_becomes_the_reason(course, monkeypatch):
    submitted = course / "submitted" / "mallory" / LESSON
    submitted.mkdir(parents=True)
    shutil.copy(FIXTURE, submitted / f"{LESSON}.ipynb")
    calls = []

    def run(args, folder, env, timeout):
        calls.append(1)
        with open(env[grading.TRACE_VARIABLE], "a") as trace:
            nb = json.loads((folder / grading._WORK / "staged" / "mallory" / LESSON / f"{LESSON}.ipynb").read_text())
            cell = next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "square")
            trace.write(json.dumps({"event": "cell", "id": cell.get("id"), "grade_id": "square",
                                    "source": "".join(cell["source"])[:2000]}) + "\n")
            trace.write(json.dumps({"event": "limit", "limit": "memory", "detail": "memory limit (4 GiB)"}) + "\n")
        return 1, ""

    monkeypatch.setattr(grading, "_run_logged", run)
    result = grading._grade_one(course, LESSON, "mallory", {}, None)
    assert any("replaced by one that raises: it exceeded the memory limit (4 GiB)" in r for r in result.reasons), \
        result.reasons


def test_feedback_removes_links_before_and_after_nbgrader(course, monkeypatch, capsys):
    graded = course / "autograded" / "mallory" / LESSON
    graded.mkdir(parents=True)
    (graded / f"{LESSON}.ipynb").write_text("{}")
    (graded / "leak.html").symlink_to(course / "answers" / LESSON / f"{LESSON}.ipynb")
    page_dir = course / "feedback" / "mallory" / LESSON
    page_dir.mkdir(parents=True)
    (page_dir / f"{LESSON}.html").symlink_to(REPO_ROOT / "helpers" / "checks" / "__init__.py")
    (course / "autograded" / "ghost").symlink_to(course / "answers")  # nbgrader would read the answers
    seen = {}

    def fake(args, folder, env=None, quiet=False):
        seen["autograded"] = sorted(p.name for p in graded.iterdir())
        seen["students"] = sorted(p.name for p in (course / "autograded").iterdir())
        seen["feedback"] = sorted(p.name for p in page_dir.iterdir()) if page_dir.exists() else []
        page_dir.mkdir(parents=True, exist_ok=True)
        (page_dir / f"{LESSON}.html").write_text("<html>feedback</html>")
        (page_dir / "copied.html").symlink_to(course / "answers" / LESSON / f"{LESSON}.ipynb")
        return 0

    monkeypatch.setattr(grading, "run_nbgrader", fake)
    assert grading.feedback([LESSON], root=course, quiet=True) == 0
    assert seen == {"autograded": [f"{LESSON}.ipynb"], "students": ["mallory"], "feedback": []}
    assert (course / "answers" / LESSON / f"{LESSON}.ipynb").is_file()
    assert sorted(p.name for p in page_dir.iterdir()) == [f"{LESSON}.html"]
    assert (page_dir / f"{LESSON}.html").read_text() == "<html>feedback</html>"
    err = capsys.readouterr().err
    assert "leak.html" in err and "copied.html" in err
    assert (REPO_ROOT / "helpers" / "checks" / "__init__.py").is_file()


def test_a_typo_in_a_limit_stops_grading_before_it_starts(course, monkeypatch):
    (course / "submitted" / "mallory" / LESSON).mkdir(parents=True)
    monkeypatch.setenv(sandbox.MEMORY_VARIABLE, "four gigabytes")
    monkeypatch.setattr(sandbox, "check_available", lambda: None)
    with pytest.raises(grading.GradingError, match=sandbox.MEMORY_VARIABLE):
        grading.autograde(root=course, quiet=True)


def test_collect_skips_student_ids_that_are_not_plain(course, tmp_path, capsys, monkeypatch):
    """A student id ends up in the gradebook, the report and the formgrader's pages: folder
    names with markup, quotes or spaces are refused with a message, the others collected."""
    monkeypatch.setattr(grading, "add_students", lambda students, root=None: None)
    for name in ("alice", "bob.smith_2", '<img src=x onerror=alert(1)>', "eve 'quoted'"):
        folder = tmp_path / "submissions" / name / LESSON
        folder.mkdir(parents=True)
        shutil.copy(FIXTURE, folder / f"{LESSON}.ipynb")
    assert grading.collect(tmp_path / "submissions", root=course, quiet=True) == 0
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["alice", "bob.smith_2"]
    assert capsys.readouterr().err.count("a student id may hold") == 2
