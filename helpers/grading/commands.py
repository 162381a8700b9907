"""Instructor commands around nbgrader: release, collect, autograde, feedback, export.

Every lesson is one nbgrader assignment (``answers/<lesson>/<lesson>.ipynb`` is its source,
``notebooks/<lesson>/<lesson>.ipynb`` its release); ``nbgrader_config.py`` at the course
root holds the settings. These functions only arrange files and call nbgrader's own
commands (``python -m nbgrader ...`` in the course root, so they read that config), and its
gradebook API for students; scores live in ``gradebook.db``.

    python -m helpers release [LESSON ...]            regenerate notebooks/ from answers/
    python -m helpers collect [--from submissions]    copy submissions into submitted/
    python -m helpers autograde [--lesson L] [--student S]
    python -m helpers feedback  [--lesson L] [--student S]   HTML into feedback/
    python -m helpers export    [--to grades.csv]

Every command takes ``--root FOLDER`` to work on another course root (a folder with a
copy of ``nbgrader_config.py``, ``answers/`` and ``notebooks/``); the default is the
repository.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import html
import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from helpers import config
from helpers.tools.bootstrap import BOOTSTRAPPED as _BOOTSTRAPPED

#: Environment variable naming the trace file of a grading run (see helpers.grading.execute).
TRACE_VARIABLE = "UNET_COURSE_GRADING_TRACE"
#: ``1``: grading also runs the cells after a notebook's last graded code cell (``--all-cells``;
#: :mod:`helpers.grading.execute` skips them by default).
ALL_CELLS_VARIABLE = "UNET_COURSE_GRADING_ALL_CELLS"

#: What a student id (a folder name under ``submissions/``) may look like.
_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
#: Folders a student submission may not bring along into ``submitted/``.
_SKIP_NAMES = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}


class GradingError(RuntimeError):
    """A grading step cannot go on; the message says which file or folder and the fix."""


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course root (folder of ``nbgrader_config.py``); the repository by default.

    Raises GradingError when the folder has no ``nbgrader_config.py``.
    """
    folder = Path(root).resolve() if root is not None else config.REPO_ROOT
    if not (folder / "nbgrader_config.py").is_file():
        raise GradingError(f"{folder} has no nbgrader_config.py: run the grading commands in the "
                           f"course repository, or copy its nbgrader_config.py into {folder}.")
    return folder


def lessons(root: str | os.PathLike | None = None, folder: str = "answers") -> list[str]:
    """Lesson names (``"03_loss_and_metrics"``) that have ``<folder>/<lesson>/<lesson>.ipynb``,
    in course order."""
    base = course_root(root) / folder
    return sorted(path.name for path in base.glob("*") if (path / f"{path.name}.ipynb").is_file())


def select_lessons(selection: list[str] | None, available: list[str]) -> list[str]:
    """The lessons of ``available`` whose name starts with one of ``selection`` (``["03"]``,
    ``["03_loss_and_metrics"]``); all of them when ``selection`` is empty.
    Raises GradingError naming the choices when nothing matches."""
    if not selection:
        return list(available)
    chosen = [name for name in available if any(name.startswith(item) for item in selection)]
    if not chosen:
        raise GradingError(f"No lesson matches {' '.join(selection)}; "
                           f"lessons: {', '.join(available) or '(none)'}.")
    return chosen


def _tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment with this interpreter's scripts folder first on PATH:
    nbgrader's gradebook runs the ``alembic`` command, which an environment that is not
    activated (``.venv/bin/python -m helpers ...``) would not find. The kernels nbgrader
    starts get :data:`helpers.tools.kernels.KERNEL_ENV` where the environment does not set it."""
    from helpers.tools import kernels

    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        path = scripts + os.pathsep + path if path else scripts
    return dict(kernels.kernel_env(), PATH=path, **(extra or {}))


@contextlib.contextmanager
def gradebook(root: str | os.PathLike | None = None):
    """Open the course's gradebook (``nbgrader.api.Gradebook``) for reading scores::

        with grading.gradebook() as gb:
            gb.find_submission("03_loss_and_metrics", "alice").score
    """
    from nbgrader.api import Gradebook

    coursedir = _coursedir(course_root(root))
    with _scripts_on_path(), Gradebook(coursedir.db_url, coursedir.course_id) as opened:
        yield opened


@contextlib.contextmanager
def _scripts_on_path():
    """Put this interpreter's scripts folder on PATH while the gradebook is open."""
    saved = os.environ.get("PATH")
    os.environ["PATH"] = _tool_env()["PATH"]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def run_nbgrader(args: list[str], root: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None, quiet: bool = False) -> int:
    """Run ``python -m nbgrader <args>`` in the course root with this interpreter (so the
    notebooks execute in this environment's ``python3`` kernel) and return its exit code.
    ``env`` entries are added to the current environment."""
    folder = course_root(root)
    command = [sys.executable, "-m", "nbgrader", *args]
    full_env = _tool_env(env)
    completed: subprocess.CompletedProcess  # of text when quiet, else of nothing captured
    if quiet:
        completed = subprocess.run(command, cwd=folder, env=full_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if completed.returncode:
            sys.stderr.write(completed.stdout)
    else:
        print("$ nbgrader " + " ".join(args), flush=True)
        completed = subprocess.run(command, cwd=folder, env=full_env)
    return completed.returncode


def _coursedir(root: Path):
    """nbgrader's CourseDirectory configured from the root's ``nbgrader_config.py``."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return CourseDirectory(config=loaded)


def add_students(students: list[str], root: str | os.PathLike | None = None) -> None:
    """Create the students (ids as in ``submitted/<student>/``) in the gradebook if missing."""
    with gradebook(root) as opened:
        for student in students:
            opened.update_or_create_student(student)


# --- commands -----------------------------------------------------------------------------


def release(selection: list[str] | None = None, root: str | os.PathLike | None = None,
            quiet: bool = False) -> int:
    """Regenerate ``notebooks/<lesson>/`` from ``answers/<lesson>/`` with
    ``nbgrader generate_assignment --force`` (solutions and hidden tests removed, outputs
    cleared) for the selected lessons (default: all); returns 0 when every lesson worked."""
    folder = course_root(root)
    chosen = select_lessons(selection, lessons(folder))
    if not chosen:
        print(f"No lessons in {folder / 'answers'}: nothing to release.")
        return 0
    if selection:
        failed = [name for name in chosen
                  if run_nbgrader(["generate_assignment", name, "--force"], folder, quiet=quiet)]
    elif run_nbgrader(["generate_assignment", "[0-9]*", "--force"], folder, quiet=quiet):
        # every lesson in one nbgrader run (nbgrader expands the pattern itself)
        failed = [name for name in chosen
                  if not (folder / "notebooks" / name / f"{name}.ipynb").is_file()] or chosen
    else:
        failed = []
    orphans = sorted(set(lessons(folder, "notebooks")) - set(lessons(folder)))
    for name in orphans:
        print(f"notebooks/{name} has no answers/{name}: delete it, or restore its answer notebook.",
              file=sys.stderr)
    if failed:
        print(f"Release failed for {', '.join(failed)} (see the nbgrader messages above).",
              file=sys.stderr)
        return 1
    if not quiet:
        print(f"Released {len(chosen)} lesson(s) into {folder / 'notebooks'}.")
    return 0


def _copy_tree(source: Path, target: Path) -> list[str]:
    """Replace ``target`` by a copy of the folders and regular files of ``source``: no
    symbolic link is followed or copied, no FIFO, socket or device either (a student's
    link to ``../../../answers/...`` would otherwise bring the answers along). Returns one
    line per entry left out."""
    from helpers.grading import sandbox

    return sandbox.copy_regular_files(source, target, frozenset(_SKIP_NAMES))


def _notes_file(folder: Path, student: str, lesson: str) -> Path:
    """Where collect leaves, for the grading report, what it did not copy of a submission."""
    return folder / _WORK / "collect-notes" / f"{student}--{lesson}.json"


def _dropped_reasons(dropped: list[str], when: str) -> list[str]:
    """Report lines for entries left out or removed (``when``: "at collection", ...)."""
    return [f"needs review: {line} {when} (only regular files and folders are graded)"
            for line in dropped]


def _files_in(folder: Path) -> list[str]:
    """Names of the .zip/.ipynb files in ``folder`` and of the files inside those zips."""
    names = []
    for path in folder.iterdir():
        if path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    names.extend(archive.namelist())
            except zipfile.BadZipFile as error:
                raise GradingError(f"{path} is not a readable zip file ({error}); "
                                   f"download it again or remove it.") from None
        elif path.is_file():
            names.append(path.name)
    return names


def collect(source: str | os.PathLike = "submissions", selection: list[str] | None = None,
            student: str | None = None, root: str | os.PathLike | None = None,
            quiet: bool = False) -> int:
    """Copy student submissions into ``submitted/<student>/<lesson>/`` and add the students
    to the gradebook; returns 0 on success.

    Two layouts are understood. Student folders, ``<source>/<student>/<lesson>/*.ipynb``
    (e.g. what students handed in on a shared drive), are copied as they are. Downloaded
    files, ``<source>/*.zip`` or ``<source>/*.ipynb`` (from an LMS), go through
    ``nbgrader zip_collect`` (staged as ``downloaded/<lesson>/archive/<student>/<lesson>.ipynb``).

    Naming rule for downloaded files: each file is ONE student's, the one its name says.

    * ``<student>_<lesson>.ipynb`` (or ``<student>-<lesson>.ipynb``) is that student's.
    * ``<student>.zip`` or ``<student>_<lesson>.zip`` holds that student's notebook, named
      ``<lesson>.ipynb`` or ``<student>_<lesson>.ipynb``, at the top or in a folder named
      for the student, the lesson or the archive. A notebook in it whose path names anyone
      else (``bob/<lesson>.ipynb``, ``bob_<lesson>.ipynb`` in ``alice.zip``) is refused:
      it can only come in bob's own download. Unpack an LMS's bulk download (one zip of
      everybody's files) into the folder first.
    * Also refused: archive members with an absolute path or ``..``, symbolic links,
      encrypted members, notebooks over 64 MiB unpacked, archives inside archives, and a
      student with two downloads for one lesson. Nothing is extracted as it is: accepted
      notebooks are read (size-limited) and written under ``downloaded/``.

    Every refusal is printed (the archive, the student it is named for, the fix); the
    other files are still collected (:func:`helpers.grading.feedback.stage_downloads`).
    """
    folder = course_root(root)
    source = Path(source)
    if not source.is_absolute():
        source = (Path.cwd() / source) if (Path.cwd() / source).exists() else folder / source
    if not source.is_dir():
        raise GradingError(f"{source} does not exist: put the submissions there as "
                           f"<student>/<lesson>/<lesson>.ipynb, or as downloaded .zip/.ipynb files.")
    known = lessons(folder, "notebooks")
    if not known:
        raise GradingError(f"{folder / 'notebooks'} has no released lessons: run "
                           f"`python -m helpers release` first.")
    chosen = select_lessons(selection, known)
    submitted = folder / "submitted"
    loose = [path for path in source.iterdir() if path.is_file() and path.suffix in {".zip", ".ipynb"}]

    if loose:  # downloaded files: nbgrader zip_collect, one lesson at a time
        folders = [p.name for p in source.iterdir() if p.is_dir() and p.name not in _SKIP_NAMES]
        if folders:
            print(f"Ignoring the folders {', '.join(folders)} in {source}: a folder of downloaded "
                  f"files is read as .zip/.ipynb files only.", file=sys.stderr)
        names = _files_in(source)
        found = [name for name in chosen if any(n.endswith(f"{name}.ipynb") for n in names)]
        if not found:
            raise GradingError(f"No file in {source} ends with <lesson>.ipynb for "
                               f"{', '.join(chosen)}; name them <student>_<lesson>.ipynb "
                               f"or put <lesson>.ipynb in <student>.zip.")
        from helpers.grading import feedback as grading_feedback

        status = 0
        for name in found:
            archive = folder / "downloaded" / name / "archive"
            if archive.exists():
                shutil.rmtree(archive)
            archive.mkdir(parents=True)
        # each file only for the student its name says (see the naming rule above)
        for message in grading_feedback.stage_downloads(
                loose, known, found, lambda lesson: folder / "downloaded" / lesson / "archive"):
            print(message, file=sys.stderr)
        for name in found:
            status |= run_nbgrader(["zip_collect", name, "--force"], folder, quiet=quiet)
        if status:
            return status
    else:  # student folders
        copied = 0
        for student_dir in sorted(p for p in source.iterdir() if p.is_dir()):
            if student_dir.name in _SKIP_NAMES or (student and student_dir.name != student):
                continue
            if student_dir.is_symlink():  # e.g. a link to another student's folder
                print(f"Skipping {student_dir}: a symbolic link, not a student's folder.", file=sys.stderr)
                continue
            if not _STUDENT_ID.fullmatch(student_dir.name):  # shown by the formgrader and reports
                print(f"Skipping {student_dir!s:.200}: a student id may hold letters, digits and . _ @ + - "
                      f"only (no spaces, quotes or <>); rename the folder.", file=sys.stderr)
                continue
            for lesson_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
                if lesson_dir.name in _SKIP_NAMES:
                    continue
                if lesson_dir.is_symlink():  # e.g. a link to answers/<lesson>
                    print(f"Skipping {lesson_dir}: a symbolic link, not a submission folder.",
                          file=sys.stderr)
                    continue
                if lesson_dir.name not in known:
                    print(f"Skipping {lesson_dir}: no released lesson of that name "
                          f"(lessons: {', '.join(known)}).", file=sys.stderr)
                    continue
                if lesson_dir.name not in chosen:
                    continue
                if not list(lesson_dir.glob("*.ipynb")):
                    print(f"Skipping {lesson_dir}: no notebook in it.", file=sys.stderr)
                    continue
                dropped = _copy_tree(lesson_dir, submitted / student_dir.name / lesson_dir.name)
                notes = _notes_file(folder, student_dir.name, lesson_dir.name)
                notes.unlink(missing_ok=True)
                if dropped:
                    notes.parent.mkdir(parents=True, exist_ok=True)
                    notes.write_text(json.dumps(dropped, indent=1), encoding="utf-8")
                    print(f"{student_dir.name}/{lesson_dir.name}: not copied: " + "; ".join(dropped),
                          file=sys.stderr)
                copied += 1
        if not quiet:
            print(f"Collected {copied} submission(s) from {source} into {submitted}.")
    students = sorted(p.name for p in submitted.glob("*") if p.is_dir()) if submitted.is_dir() else []
    add_students(students, folder)
    return 0


def _submitted_lessons(folder: Path, student: str | None) -> list[str]:
    pattern = f"{student or '*'}/*"
    return sorted({p.name for p in (folder / "submitted").glob(pattern) if p.is_dir()})


#: Work scale at which submissions are graded unless UNET_COURSE_SCALE says otherwise: the
#: tests check code, not how well a model trains, so training does the least work that
#: still runs every line.
GRADING_SCALE = "0.1"
#: Columns of ``grading_report.csv``: the automatic score (test cells) apart from the
#: points of the written answers an instructor grades by hand (nbgrader's manually graded
#: solution cells), which autograde leaves "needs manual grading".
REPORT_COLUMNS = ("student", "lesson", "auto_score", "auto_max", "manual_max", "needs_manual_grading",
                  "status", "reason", "seconds")
#: Times a submission is graded again with one more faulty cell replaced.
_MAX_ATTEMPTS = 6
_WORK = ".grading"


@dataclass
class GradingResult:
    """One row of the grading report.

    ``status`` is ``graded`` (nothing to say), ``repaired`` (metadata put back or a faulty
    cell replaced; the other exercises kept their points), ``flagged`` (graded as usual,
    but the integrity audit found code to review) or ``failed`` (no score: see ``reason``).

    ``score`` and ``max_score`` are the automatic points (test cells). The written answers
    (manually graded solution cells) are apart: ``manual_max`` is their points, and
    ``needs_manual_grading`` the points still waiting for an instructor in the formgrader
    (an answer left as released scores 0 without a grader).
    """

    student: str
    lesson: str
    score: float
    max_score: float
    status: str
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manual_max: float = 0.0
    needs_manual_grading: float = 0.0
    #: Seconds per stage of grading it (see :func:`profile_stages`); not in the report.
    profile: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        return {"student": self.student, "lesson": self.lesson, "auto_score": f"{self.score:g}",
                "auto_max": f"{self.max_score:g}", "manual_max": f"{self.manual_max:g}",
                "needs_manual_grading": f"{self.needs_manual_grading:g}", "status": self.status,
                "reason": "; ".join(self.reasons), "seconds": f"{self.seconds:.1f}"}


def _is_manual(meta: dict) -> bool:
    """True for the nbgrader metadata of a manually graded answer (solution and grade)."""
    return bool(meta.get("grade")) and bool(meta.get("solution"))


def _graded_points(release: dict, manual: bool) -> dict[str, float]:
    """Points by ``grade_id`` of the release's test cells (``manual=False``) or of its
    manually graded answers (``manual=True``)."""
    found = {}
    for cell in release.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        if meta.get("grade") and _is_manual(meta) == manual:
            found[str(meta.get("grade_id"))] = float(meta.get("points", 0) or 0)
    return found


def _max_score(release: dict) -> float:
    """The automatic points of a release (its graded test cells)."""
    return sum(_graded_points(release, manual=False).values())


def submission_scores(grades, release: dict) -> tuple[float, float]:
    """The automatic score of a graded submission and the manual points still to grade.

    Args:
        grades: the submission's nbgrader ``Grade`` records (``name``, ``score``,
            ``max_score``, ``needs_manual_grade``), e.g. ``SubmittedNotebook.grades``.
        release: the released notebook (JSON), which says which cells are written answers.

    Returns:
        ``(auto_score, needs_manual_grading)``: the points of the test cells, and the points
        of the written answers that autograde left "needs manual grading".
    """
    manual = _graded_points(release, manual=True)
    auto_score = sum(float(grade.score or 0) for grade in grades if grade.name not in manual)
    pending = sum(float(grade.max_score or 0) for grade in grades
                  if grade.name in manual and grade.needs_manual_grade)
    return auto_score, pending


def _replacement(reason: str) -> str:
    return (f"# Removed by the grader: {reason}.\n"
            f"raise RuntimeError({('This cell was removed by the grader: ' + reason + '. See the grading report.')!r})\n")


def _read_trace(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _culprits(event: dict, nb: dict) -> list[int]:
    """Indices of the cells of ``nb`` to replace for the cell that ``event`` (a trace record)
    names: that cell itself, or, when it is a graded test (nbgrader restores those), the
    solution cells of its exercise (between the previous graded test and it)."""
    cells = nb["cells"]
    found = None
    for index, cell in enumerate(cells):
        if event.get("id") and cell.get("id") == event.get("id"):
            found = index
            break
    if found is None:
        for index, cell in enumerate(cells):
            if "".join(cell.get("source", ""))[:2000] == event.get("source"):
                found = index
                break
    if found is None and event.get("grade_id"):
        for index, cell in enumerate(cells):
            if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == event["grade_id"]:
                found = index
                break
    if found is None:
        return []
    meta = cells[found].get("metadata", {}).get("nbgrader") or {}
    if not (meta.get("locked") and not meta.get("solution")):
        return [found]
    previous = max((i for i in range(found) if ((cells[i].get("metadata", {}).get("nbgrader") or {}).get("grade")
                    and not (cells[i].get("metadata", {}).get("nbgrader") or {}).get("solution"))), default=-1)
    return [i for i in range(previous + 1, found)
            if cells[i].get("cell_type") == "code"
            and not ((cells[i].get("metadata", {}).get("nbgrader") or {}).get("locked")
                     and not (cells[i].get("metadata", {}).get("nbgrader") or {}).get("solution"))]


def profile_stages(events: list[dict], launched: float, ended: float) -> dict[str, float]:
    """Seconds per stage of one nbgrader run from its grading trace.

    Args:
        events: the trace records of the run (:mod:`helpers.grading.execute` writes them).
        launched: ``time.time()`` when the run was started.
        ended: ``time.time()`` when it had exited.
    Returns:
        ``process start`` (the grading process up to its Execute step), ``sandbox``
        (launcher and bubblewrap up to the runner's first statement), ``runner imports``,
        one ``cell <grade_id or number>`` per cell, and ``nbgrader after cells`` (the other
        preprocessors, the gradebook write, the process's exit); stages the trace does
        not reach are left out.
    """
    stages: dict[str, float] = {}
    events = [e for e in events if isinstance(e.get("time"), (int, float))]  # untimed: no stage
    first = {e.get("event"): e for e in reversed(events)}
    if "start" in first:
        stages["process start"] = first["start"]["time"] - launched
    ready = first.get("ready", {})
    if "spawn" in first and isinstance(ready.get("runner_started"), float):
        stages["sandbox"] = ready["runner_started"] - first["spawn"]["time"]
        if isinstance(ready.get("imported"), float):
            stages["runner imports"] = ready["imported"] - ready["runner_started"]
    timed = [e for e in events if e.get("event") in ("cell", "complete") and "time" in e]
    for event, following in zip(timed, timed[1:]):
        if event["event"] == "cell":
            name = f"cell {event.get('grade_id') or event.get('index', 0) + 1}"
            stages[name] = stages.get(name, 0.0) + following["time"] - event["time"]
    if "complete" in first:
        stages["nbgrader after cells"] = ended - first["complete"]["time"]
    return stages


def _grade_one(folder: Path, lesson: str, student: str, env: dict[str, str],
               timeout: float | None, pool=None) -> GradingResult:
    """Audit, repair and grade one submission; grade again with a faulty cell replaced when
    the grading process died or a cell could not be stopped (at most ``_MAX_ATTEMPTS`` runs).
    Each run is one ``nbgrader autograde`` in a worker of ``pool``
    (:class:`helpers.grading.worker.WorkerPool`), or in a process of its own without one."""
    from helpers.grading import audit as grading_audit

    started = time.perf_counter()
    profile: dict[str, float] = {}
    release = json.loads((folder / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    result = GradingResult(student, lesson, 0.0, _max_score(release), "failed",
                           manual_max=sum(_graded_points(release, manual=True).values()))
    source = folder / "submitted" / student / lesson
    work = folder / _WORK
    stage = work / "staged" / student / lesson
    notebook = stage / f"{lesson}.ipynb"
    try:
        # The staged copy is what nbgrader reads: folders and regular files only, so no link
        # leads nbgrader (outside the sandbox) to a file of the host, not even the notebook.
        dropped = _dropped_reasons(_collect_notes(folder, student, lesson), "at collection")
        if source.is_dir():
            dropped += _dropped_reasons(_copy_tree(source, stage), "when staged")
        else:
            _remove(stage)
        if not notebook.is_file():
            result.reasons += dropped
            result.reasons.append(f"no {lesson}.ipynb in submitted/{student}/{lesson}/")
            return result
        try:
            submission = json.loads(notebook.read_text(encoding="utf-8"))
            if not isinstance(submission, dict) or not isinstance(submission.get("cells"), list):
                raise ValueError("no list of cells")
        except (ValueError, UnicodeDecodeError) as error:
            result.reasons += dropped
            result.reasons.append(f"{lesson}.ipynb is not a readable notebook ({error})")
            return result
        audit_started = time.perf_counter()
        with _AST_LOCK:  # CPython 3.11's ast.parse is not thread-safe ("AST constructor
            # recursion depth mismatch" when two grading threads parse at once)
            repaired, notes = grading_audit.repair(submission, release)
            findings = grading_audit.audit(repaired, release)
        profile["audit"] = time.perf_counter() - audit_started
        replaced: dict[int, str] = {}
        trace = work / "traces" / f"{student}--{lesson}.jsonl"
        trace.parent.mkdir(parents=True, exist_ok=True)
        graded = False
        log_tail = ""
        startup_failures = 0
        for _attempt in range(_MAX_ATTEMPTS):
            staged = copy.deepcopy(repaired)
            for index, reason in replaced.items():
                staged["cells"][index]["source"] = _replacement(reason)
                staged["cells"][index]["outputs"] = []
            (stage / f"{lesson}.ipynb").write_text(json.dumps(staged, indent=1), encoding="utf-8")
            trace.unlink(missing_ok=True)
            dropped += _clear_output_folder(folder, "autograded", student, lesson)
            args = ["autograde", lesson, "--force", "--student", student,
                    f"--CourseDirectory.submitted_directory={_WORK}/staged"]
            if not _custom_db_url(folder):
                # parallel runs share one SQLite file: wait for a writer instead of failing
                args.append(f"--CourseDirectory.db_url=sqlite:///{folder / 'gradebook.db'}?timeout=300")
            launched = time.time()
            run_env = dict(env, **{TRACE_VARIABLE: str(trace)})
            if pool is None:
                code, log_tail = _run_logged(args, folder, run_env, timeout)
            else:
                code, log_tail = pool.run(args, _tool_env(run_env), timeout, _TIMED_OUT)
            ended = time.time()
            events = _read_trace(trace)
            output = folder / "autograded" / student / lesson / f"{lesson}.ipynb"
            # nbgrader wrote the graded notebook as a regular file in a folder of regular files
            dropped += _dropped_reasons(_remove_irregular(output.parent, folder), "after grading")
            if code == 0 and any(e.get("event") == "complete" for e in events) and _is_regular(output):
                graded = True
                profile.update(profile_stages(events, launched, ended))
                break
            profile["retries"] = profile.get("retries", 0.0) + ended - launched
            cells = [e for e in events if e.get("event") == "cell"]
            if not cells:
                if startup_failures < 2:  # nbgrader failed before running anything: once more
                    startup_failures += 1
                    time.sleep(2 * startup_failures)
                    continue
                break
            stuck = any(e.get("event") == "stuck" for e in events) or code == _TIMED_OUT
            limit = next((e for e in reversed(events) if e.get("event") == "limit"), None)
            if limit is not None:  # the sandbox's watchdog stopped it (helpers.grading.sandbox)
                reason = f"it exceeded the {limit.get('detail') or str(limit.get('limit')) + ' limit'}"
            elif stuck:
                reason = "it did not stop at the time limit, nor when interrupted"
            else:
                reason = "the grading process died while it ran"
            targets = [i for i in _culprits(cells[-1], staged) if i not in replaced]
            if not targets:
                break
            for index in targets:
                replaced[index] = reason
        result.reasons += notes
        result.reasons += [f"cell {i + 1} replaced by one that raises: {why}" for i, why in sorted(replaced.items())]
        result.reasons += [f"needs review: {finding}" for finding in findings]
        result.reasons += dropped
        if not graded:
            lines = [line for line in log_tail.splitlines() if "ERROR" in line or "Error" in line]
            result.reasons.append("nbgrader could not grade it" + (f" ({lines[-1].strip()[:200]})" if lines else ""))
            log = work / "logs" / f"{student}--{lesson}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(log_tail, encoding="utf-8")
            result.reasons.append(f"nbgrader's log: {log.relative_to(folder)}")
            return result
        read_started = time.perf_counter()
        with gradebook(folder) as opened:
            graded_notebook = opened.find_submission(lesson, student).notebooks[0]
            result.score, result.needs_manual_grading = submission_scores(graded_notebook.grades, release)
        profile["gradebook read"] = time.perf_counter() - read_started
        result.status = "flagged" if (findings or dropped) else "repaired" if (notes or replaced) else "graded"
        return result
    finally:
        result.seconds = time.perf_counter() - started
        result.profile = profile


_TIMED_OUT = -9
_AST_LOCK = threading.Lock()


def _collect_notes(folder: Path, student: str, lesson: str) -> list[str]:
    """What collect did not copy of this submission (see :func:`collect`)."""
    try:
        notes = json.loads(_notes_file(folder, student, lesson).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(note) for note in notes] if isinstance(notes, list) else []


def _is_regular(path: Path) -> bool:
    """True when ``path`` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _remove(path: Path) -> bool:
    """Remove ``path``, whatever it is (a link itself, never its target)."""
    from helpers.grading import sandbox

    return sandbox.remove_path(path)


def _remove_irregular(folder: Path, root: Path) -> list[str]:
    """Remove every link, FIFO, socket or device below ``folder``; one line per removal
    (paths relative to ``root``)."""
    from helpers.grading import sandbox

    removed = []
    for path in sandbox.irregular_entries(folder):
        removed.append(f"{path.relative_to(root)}{sandbox.describe_entry(path)}, removed")
        sandbox.remove_path(path)
    return removed


def _clear_output_folder(folder: Path, kind: str, student: str, lesson: str,
                         when: str = "before nbgrader wrote") -> list[str]:
    """Before nbgrader writes ``<kind>/<student>/<lesson>/`` (kind: autograded, feedback):
    none of those three folders may be a link or a special file (nbgrader would write
    through it), nor hold one (nbgrader copies them along and chmods them)."""
    from helpers.grading import sandbox

    problems = []
    path = folder
    for part in (kind, student, lesson):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return problems
        if not stat.S_ISDIR(mode):
            problems.append(f"{path.relative_to(folder)}{sandbox.describe_entry(path)}, removed")
            sandbox.remove_path(path)
            return _dropped_reasons(problems, when)
    problems += _remove_irregular(path, folder)
    return _dropped_reasons(problems, when)


def _custom_db_url(folder: Path) -> bool:
    """True when the course's nbgrader_config.py chooses its own gradebook database."""
    text = (folder / "nbgrader_config.py").read_text(encoding="utf-8")
    return bool(re.search(r"^\s*c\.CourseDirectory\.db_url\s*=", text, re.M))


def _run_logged(args: list[str], folder: Path, env: dict[str, str], timeout: float | None) -> tuple[int, str]:
    """Run ``python -m nbgrader ARGS`` in ``folder``; return its exit code (``_TIMED_OUT``
    when it ran past ``timeout`` seconds and was killed) and the end of its log."""
    return run_nbgrader_process(args, folder, _tool_env(env), timeout)


def run_nbgrader_process(args: list[str], folder: Path, env: dict[str, str], timeout: float | None,
                         timed_out: int = _TIMED_OUT,
                         preexec_fn: Callable[[], None] | None = None) -> tuple[int, str]:
    """Run ``python -m nbgrader ARGS`` as a process group of its own in ``folder``.

    Args:
        args: nbgrader's command line.
        folder: the course root it runs in.
        env: its complete environment.
        timeout: seconds after which the group is killed (None: no limit).
        timed_out: the code returned when it was.
        preexec_fn: run in the child before nbgrader starts (e.g. to die with its parent).
    Returns:
        (exit code, the last 20 000 characters of its log).
    """
    command = [sys.executable, "-m", "nbgrader", *args]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True, preexec_fn=preexec_fn)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = timed_out
        log.seek(0)
        return code, log.read()[-20000:]


def _lesson_datasets(folder: Path, lesson: str) -> list[str]:
    """Data set names the lesson chooses (``DATASET = "..."`` in its release notebook)."""
    nb = json.loads((folder / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    names = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            source = "".join(cell.get("source", ""))
            names.update(re.findall(r"""^\s*DATASET\s*=\s*["']([A-Za-z0-9_.-]+)["']""", source, re.M))
    return sorted(names)


def prepare_grading_data(folder: Path, lessons_to_grade: list[str], env: dict[str, str]) -> None:
    """Generate the data sets the lessons read (and lesson 04's model that lesson 05 loads)
    outside the sandbox, where the grading runners see them read-only."""
    from helpers import course

    names = sorted({name for lesson in lessons_to_grade for name in _lesson_datasets(folder, lesson)})
    # lesson 05 loads lesson 04's model: the course manifest says which lesson needs what
    needs_model = "04_training/best.keras" in course.needs_of(lessons_to_grade)
    if not names and not needs_model:
        return
    code = ("import sys\nfrom helpers import data\nfrom helpers.tools import kernels\nkernels.apply_kernel_env()\n"
            f"for name in {names!r}:\n    data.ensure_dataset(name)\n")
    if needs_model:
        code += "from helpers import training\ntraining.load_or_train_cxr_model(verbose=0)\n"
    completed = subprocess.run([sys.executable, "-c", code], cwd=folder, env=_tool_env(env),
                               capture_output=True, text=True)
    if completed.returncode:
        raise GradingError(f"Could not prepare the data sets {', '.join(names)} for grading:\n"
                           + completed.stderr[-2000:])


def write_report(results: list[GradingResult], folder: Path) -> tuple[Path, Path]:
    """Write ``grading_report.csv`` and ``grading_report.html`` in the course root (one row
    per submission: ``results`` replace the rows of the same student and lesson, rows of
    earlier runs stay) and return their paths."""
    csv_path, html_path = folder / "grading_report.csv", folder / "grading_report.html"
    merged: dict[tuple[str, str], dict[str, str]] = {}
    if csv_path.is_file():  # rows of earlier runs (other lessons or students) stay
        with open(csv_path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if set(REPORT_COLUMNS) <= set(row):
                    merged[(row["lesson"], row["student"])] = {key: row[key] for key in REPORT_COLUMNS}
    for result in results:
        merged[(result.lesson, result.student)] = result.row()
    rows = [merged[key] for key in sorted(merged)]
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    colours = {"graded": "#e8f5e9", "repaired": "#fff8e1", "flagged": "#ffe0b2", "failed": "#ffcdd2"}
    body = "\n".join(
        f'<tr style="background:{colours.get(row["status"], "white")}">'
        + "".join(f"<td>{html.escape(row[key])}</td>" for key in REPORT_COLUMNS) + "</tr>"
        for row in rows)
    counts = Counter(row["status"] for row in rows)
    waiting = [row for row in rows if float(row["needs_manual_grading"] or 0)]
    manual_note = (f"</p><p>auto_score/auto_max are the automatic points (test cells); manual_max "
                   f"the written answers graded by hand in the formgrader, not counted above. "
                   f"{len(waiting)} submission(s) have written answers that need manual grading "
                   f"({sum(float(row['needs_manual_grading']) for row in waiting):g} points).")
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'><title>Grading report</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd;"
        "vertical-align:top}</style><h1>Grading report</h1><p>"
        + ", ".join(f"{counts[key]} {key}" for key in ("graded", "repaired", "flagged", "failed"))
        + manual_note  # numbers only: nothing of a submission
        + "</p><table><tr>" + "".join(f"<th>{key}</th>" for key in REPORT_COLUMNS) + "</tr>"
        + body + "</table>", encoding="utf-8")
    return csv_path, html_path


def autograde(lesson: list[str] | None = None, student: str | None = None,
              root: str | os.PathLike | None = None, env: dict[str, str] | None = None,
              quiet: bool = False, jobs: int | None = None, sandboxed: bool = True,
              submission_timeout: float | None = 3600.0, reuse_workers: bool = True,
              template: bool = True, remote: RemoteGrader | None = None, all_cells: bool = False) -> int:
    """Grade every collected submission (or those of ``lesson``/``student``), ``jobs`` at a
    time (default: the number of CPU cores), each by one ``nbgrader autograde`` run
    with the course's sandboxed runner, and write ``grading_report.csv``/``.html``.

    Before grading, each submission's nbgrader metadata is repaired from the release and
    its code audited (:mod:`helpers.grading.audit`). A runner that dies or a cell that
    cannot be stopped costs only its own exercise: the submission is graded again with that
    cell replaced by one that raises. Returns 0 when every submission was graded, 1 when
    some could not be (the report says which and why), 2 when grading could not start.
    ``submission_timeout`` bounds one nbgrader run (a safety net: the per-cell limit of
    ``nbgrader_config.py`` normally stops a runaway cell long before).
    ``reuse_workers`` (default) runs the ``nbgrader autograde`` of every submission in one
    long-lived process per job (:mod:`helpers.grading.worker`) instead of a new process
    each; the submissions' code runs in a fresh sandboxed runner either way.
    ``template`` (default, sandboxed only) starts one grading template for the run
    (:mod:`helpers.grading.template`): the runners of notebooks that use ``helpers`` are
    forked from it, already imported, into their sandboxes instead of importing TensorFlow,
    Keras and ``helpers`` each.
    ``remote`` grades the submissions elsewhere instead (``--cluster``: a Dask cluster's
    workers, :class:`helpers.grading.cluster.Cluster`); only this process writes the
    gradebook and the report.
    ``all_cells`` (``--all-cells``) also runs the cells after a notebook's last graded code
    cell, which cannot change a score and are skipped by default
    (:func:`helpers.grading.execute.ungraded_tail`).
    """
    from helpers.grading import sandbox
    from helpers.grading import worker as grading_worker

    folder = course_root(root)
    collected = _submitted_lessons(folder, student)
    if not collected:
        raise GradingError(f"Nothing collected in {folder / 'submitted'}: run "
                           f"`python -m helpers collect` first.")
    env = dict(env or {})
    env.setdefault(config.SCALE_VARIABLE, os.environ.get(config.SCALE_VARIABLE) or GRADING_SCALE)
    if all_cells:
        env[ALL_CELLS_VARIABLE] = "1"
    try:  # the sandbox's limits (UNET_COURSE_GRADING_MEMORY, ...): a typo stops here
        sandbox.Limits.from_environment({**os.environ, **env})
    except ValueError as error:
        raise GradingError(str(error)) from None
    if not sandboxed:
        env[sandbox.NO_SANDBOX_VARIABLE] = "1"
        print("warning: grading WITHOUT the sandbox (--no-sandbox): submissions run with your "
              "permissions.", file=sys.stderr)
    elif remote is not None:  # each worker checks its own sandbox (helpers.grading.cluster)
        env.pop(sandbox.NO_SANDBOX_VARIABLE, None)
    else:
        env.pop(sandbox.NO_SANDBOX_VARIABLE, None)
        saved = os.environ.pop(sandbox.NO_SANDBOX_VARIABLE, None)
        try:
            sandbox.check_available()
        except sandbox.SandboxUnavailable as error:
            raise GradingError(str(error)) from None
        finally:
            if saved is not None:
                os.environ[sandbox.NO_SANDBOX_VARIABLE] = saved
    chosen = select_lessons(lesson, collected)
    if remote is None:  # on a cluster, the workers prepare their own
        prepare_grading_data(folder, chosen, env)
    tasks = [(name, path.parent.name) for name in chosen
             for path in sorted((folder / "submitted").glob(f"{student or '*'}/{name}")) if path.is_dir()]
    jobs = max(1, jobs or os.cpu_count() or 1)
    if jobs > 1 and remote is None:  # each grader's TensorFlow gets its share of the CPUs
        from helpers.tools import kernels

        kernels.share_threads(jobs, env)
    if not quiet:
        print(f"Grading {len(tasks)} submission(s) of {', '.join(chosen)}, "
              f"{remote.where if remote is not None else str(jobs) + ' at a time'}, "
              f"at {config.SCALE_VARIABLE}={env[config.SCALE_VARIABLE]} ...", flush=True)
    results: list[GradingResult] = []
    if remote is not None:
        results = remote.grade(folder, tasks, env, submission_timeout, None if quiet else _print_result)
        tasks = []  # all graded there
    workers = grading_worker.WorkerPool(folder, jobs) if reuse_workers and tasks else None
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=jobs) as pool:
        if workers is not None:
            stack.callback(workers.close)
        if template and sandboxed and tasks:  # (none left to grade here after --cluster)
            from helpers.grading import template as grading_template
            from helpers.tools import kernels as course_kernels

            launcher_env = {**course_kernels.kernel_env(_tool_env(env)), **sandbox.GRADING_ENV}
            log = folder / _WORK / "logs" / "template.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            socket_path = stack.enter_context(grading_template.running(launcher_env, log))
            if socket_path is not None:
                env[grading_template.TEMPLATE_VARIABLE] = socket_path
        futures = {pool.submit(_grade_one, folder, name, who, env, submission_timeout, workers): (name, who)
                   for name, who in tasks}
        for future in as_completed(futures):
            name, who = futures[future]
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - one submission must not stop the batch
                log = folder / _WORK / "logs" / f"{who}--{name}.grader-error.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(traceback.format_exc(), encoding="utf-8")
                result = GradingResult(who, name, 0.0, 0.0, "failed",
                                       [f"grader error: {error!r} (traceback: {log.relative_to(folder)})"])
            results.append(result)
            if not quiet:
                _print_result(result)
    csv_path, html_path = write_report(results, folder)
    _write_profile(results, folder)
    failed = [r for r in results if r.status == "failed"]
    if not quiet or failed:
        counts = Counter(r.status for r in results)
        print(f"{len(results)} submission(s): " + ", ".join(f"{counts[k]} {k}" for k in
              ("graded", "repaired", "flagged", "failed")) + f". Report: {csv_path.name}, {html_path.name}",
              file=sys.stderr if failed else sys.stdout)
        for result in failed:
            print(f"  not graded: {result.student}/{result.lesson}: {'; '.join(result.reasons)}",
                  file=sys.stderr)
    return 1 if failed else 0


class RemoteGrader(Protocol):
    """Where :func:`autograde` sends every submission instead of grading it here
    (:class:`helpers.grading.cluster.Cluster` for ``--cluster``). The grader returns one
    :class:`GradingResult` per task, each written to this course's gradebook already."""

    #: How the progress line names it, e.g. "on the cluster at tcp://host:8786".
    where: str

    def grade(self, folder: Path, tasks: list[tuple[str, str]], env: dict[str, str],
              timeout: float | None, on_result: Callable[[GradingResult], None] | None) -> list[GradingResult]:
        """Grade ``tasks`` ((lesson, student) pairs) of the course root ``folder``."""
        ...


def _print_result(result: GradingResult) -> None:
    """Print one submission's line of ``python -m helpers autograde``."""
    manual = (f" + {result.manual_max:g} by hand ({result.needs_manual_grading:g} to grade)"
              if result.manual_max else "")
    print(f"  {result.lesson} {result.student:20s} {result.score:g}/{result.max_score:g}{manual} "
          f"{result.status} ({result.seconds:.0f} s)", flush=True)


#: Seconds per stage of every submission of the last autograde run (one JSON object a line).
PROFILE_FILE = f"{_WORK}/profile.jsonl"


def _write_profile(results: list[GradingResult], folder: Path) -> None:
    """Write :data:`PROFILE_FILE`: per submission its student, lesson, total seconds and
    stages (what ``benchmarks/grading_speed.py --profile`` tabulates)."""
    path = folder / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps({"student": result.student, "lesson": result.lesson,
                                     "seconds": result.seconds, "stages": result.profile}) + "\n")


def _ungraded(folder: Path, lesson: list[str] | None, student: str | None) -> list[str]:
    """``student/lesson`` of collected submissions that have no autograded notebook."""
    missing = []
    for path in sorted((folder / "submitted").glob(f"{student or '*'}/*")):
        if not path.is_dir() or (lesson and not any(path.name.startswith(item) for item in lesson)):
            continue
        if not (folder / "autograded" / path.parent.name / path.name / f"{path.name}.ipynb").is_file():
            missing.append(f"{path.parent.name}/{path.name}")
    return missing


def feedback(lesson: list[str] | None = None, student: str | None = None,
             root: str | os.PathLike | None = None, quiet: bool = False) -> int:
    """Write HTML feedback ``feedback/<student>/<lesson>/<lesson>.html`` for every autograded
    submission (``nbgrader generate_feedback``); returns 0 on success."""
    folder = course_root(root)
    graded = sorted({p.name for p in (folder / "autograded").glob(f"{student or '*'}/*") if p.is_dir()})
    if not graded:
        raise GradingError(f"Nothing autograded in {folder / 'autograded'}: run "
                           f"`python -m helpers autograde` first.")
    status = 0
    for name in select_lessons(lesson, graded):
        # nbgrader copies every file of autograded/<student>/<lesson>/ into feedback/,
        # following links, and writes the HTML through whatever is at its path: links and
        # special files go first, and are looked for again afterwards.
        who = [student] if student else sorted(p.name for p in (folder / "autograded").iterdir())
        removed = []
        for person in who:
            removed += _clear_output_folder(folder, "autograded", person, name, "before nbgrader read")
            removed += _clear_output_folder(folder, "feedback", person, name)
        args = ["generate_feedback", name, "--force"] + (["--student", student] if student else [])
        status = max(status, run_nbgrader(args, folder, quiet=quiet))
        for person in who:
            removed += _clear_output_folder(folder, "feedback", person, name, "after nbgrader wrote")
        for line in removed:
            print(f"warning: {line.removeprefix('needs review: ')}", file=sys.stderr)
    skipped = _ungraded(folder, lesson, student)
    if skipped:
        print(f"No feedback for {len(skipped)} submission(s) that were not graded: "
              f"{', '.join(skipped)} (see grading_report.csv).", file=sys.stderr)
    return status


def export(to: str | os.PathLike = "grades.csv", root: str | os.PathLike | None = None,
           quiet: bool = False) -> int:
    """Export every score of the gradebook to a CSV file (``nbgrader export``; one row per
    student and lesson: score, max_score, timestamp, late penalty); returns 0 on success."""
    folder = course_root(root)
    target = Path(to)
    if not target.is_absolute():
        target = folder / target
    status = run_nbgrader(["export", f"--to={target}"], folder, quiet=quiet)
    skipped = _ungraded(folder, None, None)
    if skipped:
        print(f"{len(skipped)} collected submission(s) were not graded and count as 0 in "
              f"{target.name}: {', '.join(skipped)} (see grading_report.csv).", file=sys.stderr)
    return status


# --- command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers",
                                     description="Instructor commands around nbgrader.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, help_text):
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--root", default=None,
                             help="course root with nbgrader_config.py (default: the repository)")
        return command

    command = add("release", "regenerate notebooks/ from answers/ (nbgrader generate_assignment)")
    command.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    command = add("collect", "copy submissions into submitted/ and add the students to the gradebook")
    command.add_argument("--from", dest="source", default="submissions",
                         help="submissions/<student>/<lesson>/*.ipynb, or a folder of downloaded "
                              ".zip/.ipynb files (default: submissions)")
    command.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
    command.add_argument("--student", help="only this student (student folders only)")
    for name, text in (("autograde", "execute and score the collected submissions, sandboxed "
                                     "and in parallel; writes grading_report.csv/.html"),
                       ("feedback", "HTML feedback per autograded submission (nbgrader generate_feedback)")):
        command = add(name, text)
        command.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
        command.add_argument("--student", help="only this student")
        if name == "autograde":
            command.add_argument("--jobs", type=int, default=None,
                                 help="submissions graded at once (default: the number of CPU cores)")
            command.add_argument("--all-cells", action="store_true",
                                 help="also run the cells after each notebook's last graded code cell "
                                      "(they change no score; the feedback then shows their outputs)")
            command.add_argument("--no-sandbox", action="store_true",
                                 help="grade without bubblewrap: submissions then run with your "
                                      "permissions and can read answers/ and the gradebook")
            command.add_argument("--cluster", metavar="ADDRESS", default=None,
                                 help="grade on the workers of the Dask scheduler at ADDRESS "
                                      "(tcp://HOST:8786); only this machine writes the gradebook "
                                      "and the report (see the instructor guide)")
            command.add_argument("--cluster-root", metavar="PATH", default=None,
                                 help="where the course root lives on the cluster's workers "
                                      "(default: this course root, for a shared filesystem)")
    command = add("export", "export the gradebook to CSV (nbgrader export)")
    command.add_argument("--to", default="grades.csv", help="CSV file (default: grades.csv in the course root)")
    return parser


def _absolute(argv: list[str]) -> list[str]:
    """``argv`` with the paths of --root, --from and --to made absolute (the command is
    re-run from the repository root)."""
    result, expect_path = [], False
    for item in argv:
        if expect_path:
            item, expect_path = str(Path(item).resolve()), False
        elif item in {"--root", "--from", "--to"}:
            expect_path = True
        elif item.split("=", 1)[0] in {"--root", "--from", "--to"}:
            key, value = item.split("=", 1)
            item = f"{key}={Path(value).resolve()}"
        result.append(item)
    return result


def main(argv: list[str] | None = None,
         remote_factory: Callable[[str, str | None], RemoteGrader] | None = None) -> int:
    """Entry point of ``python -m helpers release|collect|autograde|feedback|export``.

    Args:
        argv: the command line (default: ``sys.argv[1:]``).
        remote_factory: what ``autograde --cluster ADDRESS [--cluster-root PATH]`` grades
            with, called with the address and the path (:class:`helpers.grading.cluster.Cluster`,
            passed by :mod:`helpers.tools.cli`: the cluster module builds on this one).
    Returns:
        The exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if importlib.util.find_spec("nbgrader") is None and not os.environ.get(_BOOTSTRAPPED):
        # a bare Python (`python -m helpers release`): run inside the course environment,
        # created on first use like `python -m helpers course` does
        from helpers.tools import bootstrap as _bootstrap

        try:
            python = _bootstrap.ensure_environment()
        except _bootstrap.BootstrapError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return _bootstrap.reexec_inside(python, _absolute(argv))
    try:
        if args.command == "release":
            return release(args.lessons, args.root)
        if args.command == "collect":
            return collect(args.source, args.lesson, args.student, args.root)
        if args.command == "autograde":
            remote = None
            if args.cluster:
                if remote_factory is None:
                    raise GradingError("--cluster is available through `python -m helpers autograde "
                                       "--cluster ADDRESS` (helpers.tools.cli); run that command.")
                remote = remote_factory(args.cluster, args.cluster_root)
            return autograde(args.lesson, args.student, args.root, jobs=args.jobs,
                             sandboxed=not args.no_sandbox, remote=remote, all_cells=args.all_cells)
        if args.command == "feedback":
            return feedback(args.lesson, args.student, args.root)
        if args.command == "export":
            return export(args.to, args.root)
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
