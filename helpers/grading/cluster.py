"""Grading on the workers of a Dask distributed cluster (``python -m helpers autograde --cluster``).

The coordinator (the instructor's machine, where ``python -m helpers autograde --cluster
tcp://HOST:8786`` runs) sends whole submissions to the workers of an existing Dask
scheduler; each worker grades one submission at a time per thread, exactly as the local path
does, and only the coordinator writes the gradebook, ``autograded/`` and the report.

**What a worker does** (:func:`grade_submission`, one Dask task per submission). It needs a
read-only copy of the course at ``--cluster-root`` (default: the coordinator's own course
root, for a shared filesystem), the course's environment, and bubblewrap. It builds a
*scratch course root* of its own in its temporary folder: ``nbgrader_config.py`` (the
course's, with the root and the gradebook pointed at the scratch folder), the lesson's
release ``notebooks/<lesson>/`` and the non-notebook files of ``answers/<lesson>/`` from the
course copy (their checksums must equal the coordinator's: a stale copy is refused, never
graded against), a *template gradebook* sent by the coordinator (a copy of the course's
gradebook with this lesson only and no student, so no other student's scores leave the
coordinator), the submission's files as collected, and what ``collect`` noted about them.
Each worker process keeps a grading template (:func:`_worker_template`), started at its first
submission, from which the runners are forked already imported, as locally.
Then it runs the very function the local path runs, :func:`helpers.grading.commands._grade_one`
(audit, repair, one sandboxed ``nbgrader autograde`` per attempt, the replacement of a faulty
cell), against that scratch root: nbgrader writes the scratch gradebook, never the real one.
It returns the :class:`~helpers.grading.commands.GradingResult`, the files of the scratch
``autograded/<student>/<lesson>/``, nbgrader's log when grading failed, and the submission's
timestamp; the scratch folder is then removed (one left by a killed worker is removed by
the next task on that machine).

**How the coordinator merges** (:func:`merge`, once per submission, after its task's result
arrived). It writes the returned autograded files into ``autograded/<student>/<lesson>/``
and then runs, in process, the two nbgrader steps of ``nbgrader autograde`` that write the
gradebook, on that autograded notebook and the course's real gradebook: the submission
record (``update_or_create_submission`` with the timestamp, as ``Autograde.init_assignment``
does), then nbgrader's own ``SaveAutoGrades`` and ``AssignLatePenalties`` preprocessors,
configured from the course's ``nbgrader_config.py``. Those two read only the notebook the
grading wrote (outputs and nbgrader metadata; the preprocessors after ``SaveAutoGrades`` in
the course's list change no cell) and the gradebook, so the grades, comments,
"needs manual grading" flags (which depend on manual scores only the real gradebook holds)
and late penalties are what a local ``nbgrader autograde`` would have written. This is the
robust way: copying the scratch gradebook's rows instead would mean restating nbgrader's
rules (and would reset manual scores an instructor entered). The score of the report is then
read from the real gradebook, as the local path reads it.

**A worker that dies** mid-submission (killed, out of memory, its machine gone) loses only
its scratch folder: Dask's scheduler gives the task to another worker (up to its
``distributed.scheduler.allowed-failures``, 3 by default; after that the submission is
reported ``failed`` with the reason). The nbgrader process a task starts dies with the
worker (``PR_SET_PDEATHSIG``); the sandboxed runner it had started loses its pipes and
ends too (a runner forked from the worker's grading template dies with its sandbox, and the
template with the worker: its standard input closes) (by the time the submission is graded again, the test finds nothing left of it).
Nothing is written before a result arrives, and each submission's future resolves once, so a
retried task never scores twice; the merge itself is idempotent (it updates the one
submission record) as well.

**What is and is not protected.** On a worker, student code runs in bubblewrap exactly as
locally (a worker refuses to grade without it unless the coordinator passed
``--no-sandbox``). The Dask connection itself is not authenticated or encrypted: whoever
can reach the scheduler's port can run code on the workers and send the coordinator
results. Keep the scheduler and workers on a private network or behind a firewall (or set
up Dask's TLS security in the Dask configuration the scheduler, workers and coordinator
read; this course does not test it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import sys
import tempfile
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from helpers.grading import commands

#: Seconds to wait for the scheduler (and for a first worker) before giving up.
CONNECT_TIMEOUT = 10.0
#: Folder, in a worker's temporary folder, of the scratch course roots (``-UID`` appended).
SCRATCH_FOLDER = "unet-course-cluster"
#: What is added to the course's ``nbgrader_config.py`` in a scratch course root.
_SCRATCH_CONFIG = """

# --- added by helpers.grading.cluster: this folder is the scratch course root of one
# --- submission graded on a cluster worker; its gradebook is a scratch copy.
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
"""


@dataclass
class Entry:
    """One entry of a submission's folder as ``collect`` left it in ``submitted/``."""

    #: Path relative to ``submitted/<student>/<lesson>/``, with ``/`` separators.
    path: str
    #: ``dir``, ``file``, ``link`` (``data`` is the link's target) or ``special`` (a FIFO,
    #: socket or device: recreated as a FIFO, which staging leaves out as it would the original).
    kind: str
    data: bytes = b""


@dataclass
class RemoteTask:
    """Everything a worker needs to grade one submission (see the module docstring)."""

    lesson: str
    student: str
    #: Where the course lives on the workers (a read-only copy or a shared folder).
    remote_root: str
    #: SHA-256 of the coordinator's ``nbgrader_config.py`` and release notebook of the lesson.
    config_sha256: str
    release_sha256: str
    #: The template gradebook (SQLite file): this lesson, no student.
    gradebook: bytes
    files: list[Entry]
    collect_notes: list[str]
    #: The extra environment of the grading run (scale, limits, ...), as the local path gets it.
    env: dict[str, str]
    timeout: float | None


@dataclass
class RemoteOutcome:
    """What a worker sends back for one submission."""

    result: commands.GradingResult
    #: Files of the scratch ``autograded/<student>/<lesson>/`` (relative path, contents).
    autograded: list[tuple[str, bytes]] = field(default_factory=list)
    #: nbgrader's log, when grading failed (the report names its path).
    log: str | None = None
    #: The submission's timestamp as nbgrader read it (None: none).
    timestamp: datetime.datetime | None = None
    #: The scratch course root's path on the worker (replaced by the course root in reasons).
    scratch: str = ""
    #: Address of the worker that graded it.
    worker: str = ""
    #: For each attempt, whether its runner was forked from the worker's grading template.
    forked: list[bool] = field(default_factory=list)


# --- the worker side ------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this process when the thread that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


class _Runner:
    """Runs each ``nbgrader`` attempt of :func:`commands._grade_one` as its own process in
    the scratch root (the ``pool`` argument), one that dies with the worker."""

    def __init__(self, folder: Path, sandboxed: bool) -> None:
        self.folder = folder
        self.sandboxed = sandboxed

    def run(self, args: list[str], env: dict[str, str], timeout: float | None,
            timed_out: int) -> tuple[int, str]:
        """Run ``python -m nbgrader ARGS`` in the scratch root with the environment ``env``.

        Args:
            args: nbgrader's command line.
            env: the complete environment of the run.
            timeout: seconds after which it is killed (None: no limit).
            timed_out: the code returned when it was.
        Returns:
            (exit code, end of its log).
        """
        if self.sandboxed:  # the coordinator asked for the sandbox: the worker's own
            # environment cannot switch it off
            from helpers.grading import sandbox

            env = {key: value for key, value in env.items() if key != sandbox.NO_SANDBOX_VARIABLE}
        return commands.run_nbgrader_process(args, self.folder, env, timeout, timed_out, _die_with_parent)


def _remove_stale_scratch(base: Path) -> None:
    """Remove the scratch roots of worker processes that no longer run (killed mid-task)."""
    for path in base.glob("task-*"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            continue


def _safe_relative(path: str) -> PurePosixPath:
    """``path`` when it is a plain relative path (no ``..``, not absolute); else ValueError."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or not pure.parts or any(part in ("", ".", "..") for part in pure.parts):
        raise ValueError(f"unsafe path {path!r}")
    return pure


def _write_entries(target: Path, entries: list[Entry]) -> None:
    """Recreate a submission's folder from :class:`Entry` records."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        path = target / _safe_relative(entry.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            path.mkdir(exist_ok=True)
        elif entry.kind == "file":
            path.write_bytes(entry.data)
        elif entry.kind == "link":
            os.symlink(os.fsdecode(entry.data), path)
        else:
            os.mkfifo(path)


def _scratch_root(task: RemoteTask, base: Path) -> Path:
    """Build the scratch course root of ``task`` (see the module docstring).

    Raises:
        commands.GradingError: the course copy on this worker is missing or differs.
    """
    course = Path(task.remote_root)
    config_file = course / "nbgrader_config.py"
    release = course / "notebooks" / task.lesson / f"{task.lesson}.ipynb"
    host = os.uname().nodename
    for path, expected in ((config_file, task.config_sha256), (release, task.release_sha256)):
        if not path.is_file():
            raise commands.GradingError(f"{path} is missing on worker {host}: copy the course root there "
                                        f"(or mount the shared folder) and pass its path as --cluster-root.")
        if _sha256(path) != expected:
            raise commands.GradingError(f"{path} on worker {host} differs from the coordinator's: copy the "
                                        f"course root to the worker again (python -m helpers release first).")
    scratch = Path(tempfile.mkdtemp(prefix=f"task-{os.getpid()}-", dir=base))
    db_url = f"sqlite:///{scratch / 'gradebook.db'}"
    (scratch / "nbgrader_config.py").write_text(
        config_file.read_text(encoding="utf-8") + _SCRATCH_CONFIG.format(root=str(scratch), db_url=db_url),
        encoding="utf-8")
    (scratch / "gradebook.db").write_bytes(task.gradebook)
    shutil.copytree(release.parent, scratch / "notebooks" / task.lesson, symlinks=True)
    source = course / "answers" / task.lesson
    if source.is_dir():  # nbgrader copies the lesson's other files into autograded/
        shutil.copytree(source, scratch / "answers" / task.lesson, symlinks=True,
                        ignore=shutil.ignore_patterns("*.ipynb"))
    _write_entries(scratch / "submitted" / task.student / task.lesson, task.files)
    if task.collect_notes:
        notes = commands._notes_file(scratch, task.student, task.lesson)
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(json.dumps(task.collect_notes), encoding="utf-8")
    return scratch


#: This worker process's grading templates, by the launchers' environment (:func:`_worker_template`).
_TEMPLATES: dict[tuple[tuple[str, str], ...], str | None] = {}
_TEMPLATES_LOCK = threading.Lock()
_TEMPLATES_STACK = contextlib.ExitStack()
#: Most templates one worker process keeps (one per grading setting; each holds TensorFlow).
_MAX_TEMPLATES = 2


def _worker_template(env: dict[str, str], base: Path) -> str | None:
    """The socket of this worker process's grading template (:mod:`helpers.grading.template`)
    for runs with the environment ``env``: started at the first submission that needs it and
    kept for the process's lifetime, so that runners are forked already imported, as with
    ``python -m helpers autograde`` locally. The template ends with the worker process, also
    when it is killed (its standard input closes); a task thread's end does not matter.

    Args:
        env: the environment of the task's ``nbgrader`` runs (without the template's variable).
        base: the worker's scratch folder (the template's log goes there).
    Returns:
        The socket path, or None (no sandbox, too many settings, or the template did not start:
        runners then import their libraries themselves).
    """
    from helpers.grading import sandbox
    from helpers.grading import template as grading_template
    from helpers.tools import kernels

    if env.get(sandbox.NO_SANDBOX_VARIABLE) == "1":
        return None
    launcher_env = {**kernels.kernel_env(commands._tool_env(env)), **sandbox.GRADING_ENV}
    key = tuple(sorted(launcher_env.items()))
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            if len(_TEMPLATES) >= _MAX_TEMPLATES:
                return None
            if not _TEMPLATES:
                atexit.register(_TEMPLATES_STACK.close)
            log = base / f"template-{os.getpid()}.log"
            _TEMPLATES[key] = _TEMPLATES_STACK.enter_context(grading_template.running(launcher_env, log))
        return _TEMPLATES[key]


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def grade_submission(task: RemoteTask) -> RemoteOutcome:
    """Grade one submission on this machine (the Dask task; see the module docstring).

    Args:
        task: the submission and what grading it needs.
    Returns:
        The result, the autograded files, nbgrader's log when it failed, and the timestamp.
    Raises:
        commands.GradingError: the course copy on this worker is missing or differs from the
            coordinator's, or the environment variables of ``task`` are invalid.
    """
    from nbgrader.api import Gradebook

    from helpers.grading import sandbox
    from helpers.tools import kernels

    base = Path(tempfile.gettempdir()) / f"{SCRATCH_FOLDER}-{os.getuid()}"  # one per user
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(base)
    env = dict(task.env)
    python_path = [task.remote_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
        if threads > 1:  # as the local path with --jobs: each grader gets its share of the CPUs
            kernels.share_threads(threads, env)
    scratch = _scratch_root(task, base)
    try:
        commands.prepare_grading_data(scratch, [task.lesson], env)
        from helpers.grading import template as grading_template

        socket_path = _worker_template(env, base)
        if socket_path is not None:
            env[grading_template.TEMPLATE_VARIABLE] = socket_path
        result = commands._grade_one(scratch, task.lesson, task.student, env, task.timeout,
                                    _Runner(scratch, env.get(sandbox.NO_SANDBOX_VARIABLE) != "1"))
        outcome = RemoteOutcome(result, scratch=str(scratch), worker=_worker_address())
        trace = scratch / commands._WORK / "traces" / f"{task.student}--{task.lesson}.jsonl"
        outcome.forked = [bool(event.get("forked")) for event in commands._read_trace(trace)
                          if event.get("event") == "runner"]
        graded = scratch / "autograded" / task.student / task.lesson
        if result.status != "failed" and graded.is_dir():
            for path in sorted(graded.rglob("*")):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    outcome.autograded.append((path.relative_to(graded).as_posix(), path.read_bytes()))
            with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as scratch_book:
                outcome.timestamp = scratch_book.find_submission(task.lesson, task.student).timestamp
        log = scratch / commands._WORK / "logs" / f"{task.student}--{task.lesson}.log"
        if log.is_file():
            outcome.log = log.read_text(encoding="utf-8", errors="replace")
        return outcome
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_worker(remote_root: str, sandboxed: bool) -> str:
    """What keeps this worker from grading (empty when nothing does); run on every worker.

    Args:
        remote_root: where the course lives on the workers.
        sandboxed: whether grading needs bubblewrap (False with ``--no-sandbox``).
    Returns:
        The problems, one sentence each, or ``""``.
    """
    from helpers.grading import sandbox

    host = os.uname().nodename
    problems = []
    if not (Path(remote_root) / "nbgrader_config.py").is_file():
        problems.append(f"worker {host} has no course at {remote_root} (no nbgrader_config.py): mount the "
                        f"shared folder there, or copy the course root and pass its path as --cluster-root")
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        problems.append(f"worker {host} runs a Python without nbgrader ({sys.executable}): start `dask worker` "
                        f"from the course's environment")
    reason = sandbox._probe() if sandboxed else ""  # whatever this worker's environment says
    if reason:
        problems.append(f"worker {host} cannot run the grading sandbox: {reason} (install bubblewrap there, "
                        f"see the instructor guide)")
    return "; ".join(problems)


# --- the coordinator side ---------------------------------------------------------------------


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client`` of the scheduler at ``address`` that has at least one worker.

    Args:
        address: the scheduler, e.g. ``tcp://10.0.0.5:8786``.
        timeout: seconds to wait for the scheduler and for a worker.
    Returns:
        The connected client (close it).
    Raises:
        commands.GradingError: ``distributed`` is missing, the scheduler cannot be reached,
            or no worker joined it within ``timeout``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise commands.GradingError("--cluster needs the package `distributed`: pip install -e '.[instructor]' "
                                    "-c constraints.txt") from None
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise commands.GradingError(
            f"Cannot reach the Dask scheduler at {address} ({error}). Start one there with `dask scheduler` "
            f"(and workers with `dask worker {address}`), or check the address, port and firewall.") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as error:
        client.close()
        raise commands.GradingError(f"The Dask scheduler at {address} has no worker ({error}): start one on each "
                                    f"grading machine with `dask worker {address}` (see the instructor "
                                    f"guide).") from None
    return client


def gradebook_template(folder: Path, lesson: str) -> bytes:
    """A copy of the course's gradebook with only ``lesson`` and no student (the scratch
    gradebook a worker grades against).

    Args:
        folder: the course root.
        lesson: the lesson.
    Returns:
        The SQLite file's bytes.
    Raises:
        commands.GradingError: the course's gradebook is not the SQLite file ``gradebook.db``
            (a ``db_url`` of its own), or the lesson was never released into it.
    """
    from nbgrader.api import Gradebook, MissingEntry

    if commands._custom_db_url(folder):
        raise commands.GradingError(f"{folder / 'nbgrader_config.py'} sets its own CourseDirectory.db_url: "
                                    f"--cluster works with the course's SQLite gradebook.db only.")
    source = folder / "gradebook.db"
    with tempfile.TemporaryDirectory(prefix="unet-gradebook-") as scratch:
        copy = Path(scratch) / "gradebook.db"
        with contextlib.closing(sqlite3.connect(source)) as original, \
                contextlib.closing(sqlite3.connect(copy)) as target:
            original.backup(target)  # a consistent copy, even while something else reads it
        with commands._scripts_on_path(), Gradebook(f"sqlite:///{copy}") as book:
            try:
                book.find_assignment(lesson)
            except MissingEntry:
                raise commands.GradingError(f"{lesson} is not in {source}: run `python -m helpers release "
                                            f"{lesson}` first.") from None
            for student in [s.id for s in book.students]:
                book.remove_student(student)
            for other in [a.name for a in book.assignments if a.name != lesson]:
                book.remove_assignment(other)
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            connection.execute("VACUUM")
        return copy.read_bytes()


def submission_entries(source: Path) -> list[Entry]:
    """The entries of ``submitted/<student>/<lesson>/`` as :class:`Entry` records (no link
    followed; staging on the worker decides what to keep, as locally)."""
    entries: list[Entry] = []
    if not source.is_dir() or source.is_symlink():
        return entries
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            entries.append(Entry(relative, "link", os.fsencode(os.readlink(path))))
        elif stat.S_ISDIR(mode):
            entries.append(Entry(relative, "dir"))
        elif stat.S_ISREG(mode):
            entries.append(Entry(relative, "file", path.read_bytes()))
        else:
            entries.append(Entry(relative, "special"))
    return entries


def save_grades(folder: Path, lesson: str, student: str, timestamp: datetime.datetime | None) -> None:
    """Write the grades of ``autograded/<student>/<lesson>/<lesson>.ipynb`` into the course's
    gradebook with nbgrader's own steps (see the module docstring).

    Args:
        folder: the course root.
        lesson: the lesson.
        student: the student.
        timestamp: the submission's timestamp (None: keep the recorded one).
    """
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from sqlalchemy.exc import SAWarning
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    coursedir = commands._coursedir(folder)
    with commands._scripts_on_path(), warnings.catch_warnings():
        # nbgrader's update_or_create_submission makes SQLAlchemy warn about its autoflush
        # (a `nbgrader autograde` run writes the same warnings to its log)
        warnings.simplefilter("ignore", category=SAWarning)
        with Gradebook(coursedir.db_url, coursedir.course_id) as book:
            book.update_or_create_student(student)
            if timestamp:
                book.update_or_create_submission(lesson, student, timestamp=timestamp)
            else:
                book.update_or_create_submission(lesson, student)
        notebook = nbformat.read(folder / "autograded" / student / lesson / f"{lesson}.ipynb", as_version=4)
        resources = {"nbgrader": {"notebook": lesson, "assignment": lesson, "student": student,
                                  "db_url": coursedir.db_url}}
        for step in (SaveAutoGrades(config=loaded), AssignLatePenalties(config=loaded)):
            notebook, resources = step.preprocess(notebook, resources)


def merge(folder: Path, task: RemoteTask, outcome: RemoteOutcome) -> commands.GradingResult:
    """Take one worker's outcome into the course: its log, its autograded files and, when it
    was graded, its grades (:func:`save_grades`); the score is then read from the gradebook.

    Args:
        folder: the course root.
        task: the task the outcome answers.
        outcome: what the worker sent back.
    Returns:
        The submission's result, as the local path would have reported it.
    """
    from helpers.grading import sandbox

    result = outcome.result
    if outcome.scratch:
        result.reasons = [reason.replace(outcome.scratch, str(folder)) for reason in result.reasons]
    if outcome.log is not None:
        log = folder / commands._WORK / "logs" / f"{task.student}--{task.lesson}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(outcome.log, encoding="utf-8")
    if result.status == "failed":
        return result
    dropped = commands._clear_output_folder(folder, "autograded", task.student, task.lesson)
    target = folder / "autograded" / task.student / task.lesson
    sandbox.remove_path(target)
    for relative, data in outcome.autograded:
        path = target / _safe_relative(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    dropped += commands._dropped_reasons(commands._remove_irregular(target, folder), "after grading")
    if dropped:
        result.reasons += dropped
        result.status = "flagged"
    save_grades(folder, task.lesson, task.student, outcome.timestamp)
    release = json.loads((folder / "notebooks" / task.lesson / f"{task.lesson}.ipynb").read_text(encoding="utf-8"))
    with commands.gradebook(folder) as opened:
        graded = opened.find_submission(task.lesson, task.student).notebooks[0]
        result.score, result.needs_manual_grading = commands.submission_scores(graded.grades, release)
    return result


def _failed(folder: Path, lesson: str, student: str, reason: str) -> commands.GradingResult:
    release = json.loads((folder / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    return commands.GradingResult(student, lesson, 0.0, commands._max_score(release), "failed", [reason],
                                  manual_max=sum(commands._graded_points(release, manual=True).values()))


class Cluster:
    """A Dask cluster as :func:`helpers.grading.commands.autograde`'s remote grader
    (``python -m helpers autograde --cluster ADDRESS [--cluster-root PATH]``).

    Args:
        address: the Dask scheduler's address, e.g. ``tcp://host:8786``.
        cluster_root: where the course root lives on the workers (default: the
            coordinator's course root, for a shared filesystem).
    """

    def __init__(self, address: str, cluster_root: str | None = None) -> None:
        self.address, self.cluster_root = address, cluster_root
        self.where = f"on the cluster at {address}"

    def grade(self, folder: Path, tasks: list[tuple[str, str]], env: dict[str, str], timeout: float | None,
              on_result: Callable[[commands.GradingResult], None] | None) -> list[commands.GradingResult]:
        """Grade ``tasks`` on the cluster's workers (:func:`grade_on_cluster`)."""
        return grade_on_cluster(self.address, folder, tasks, env, timeout, self.cluster_root, on_result)


def grade_on_cluster(address: str, folder: Path, tasks: list[tuple[str, str]], env: dict[str, str],
                     timeout: float | None, remote_root: str | None = None,
                     on_result: Callable[[commands.GradingResult], None] | None = None,
                     connect_timeout: float = CONNECT_TIMEOUT) -> list[commands.GradingResult]:
    """Grade ``tasks`` on the workers of the Dask scheduler at ``address``.

    Args:
        folder: the course root (the coordinator's).
        tasks: ``(lesson, student)`` of every submission to grade.
        env: the extra environment of each grading run (as :func:`commands.autograde` builds it).
        timeout: seconds one nbgrader run may take (None: no limit).
        remote_root: where the course lives on the workers (default: ``folder``, a shared filesystem).
        on_result: called with each result as it is merged (e.g. to print it).
        connect_timeout: seconds to wait for the scheduler and a first worker.
    Returns:
        One result per task, in the order they finished.
    Raises:
        commands.GradingError: the scheduler cannot be reached, has no worker, or a worker
            cannot grade (no course copy, no nbgrader, no sandbox).
    """
    from helpers.grading import sandbox

    root = str(remote_root or folder)
    client = connect(address, connect_timeout)
    try:
        sandboxed = env.get(sandbox.NO_SANDBOX_VARIABLE) != "1"
        try:
            problems = client.run(check_worker, root, sandboxed)
        except Exception as error:  # noqa: BLE001 - a worker that cannot even unpickle the check
            raise commands.GradingError(
                f"The workers of {address} cannot run the course's grading ({error!r}): start each with "
                f"`PYTHONPATH=COURSE_ROOT dask worker {address}` in the course's environment.") from None
        problems = {worker: text for worker, text in problems.items() if text}
        if problems:
            raise commands.GradingError("Workers cannot grade: " + "; ".join(
                f"{worker}: {text}" for worker, text in sorted(problems.items())) + ".")
        config_sha = _sha256(folder / "nbgrader_config.py")
        templates = {lesson: gradebook_template(folder, lesson) for lesson in sorted({lesson for lesson, _ in tasks})}
        futures = {}
        for lesson, student in tasks:
            task = RemoteTask(lesson, student, root, config_sha,
                              _sha256(folder / "notebooks" / lesson / f"{lesson}.ipynb"), templates[lesson],
                              submission_entries(folder / "submitted" / student / lesson),
                              commands._collect_notes(folder, student, lesson), dict(env), timeout)
            future = client.submit(grade_submission, task, key=f"grade-{lesson}-{student}-{uuid.uuid4().hex}",
                                   pure=False)
            futures[future] = task
        return _gather(client, folder, futures, on_result)
    finally:
        client.close()


def _gather(client, folder: Path, futures: dict, on_result) -> list[commands.GradingResult]:
    """Merge each task's outcome as it arrives, once per submission."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    results: list[commands.GradingResult] = []
    merged: set[tuple[str, str]] = set()
    for future in as_completed(list(futures), loop=client.loop):
        task = futures[future]
        if (task.lesson, task.student) in merged:  # never two scores for one submission
            continue
        merged.add((task.lesson, task.student))
        try:
            outcome = future.result()
            result = merge(folder, task, outcome)
        except KilledWorker:
            result = _failed(folder, task.lesson, task.student,
                             "the cluster workers grading it died again and again (Dask's allowed-failures)")
        except commands.GradingError as error:
            result = _failed(folder, task.lesson, task.student, f"worker could not grade it: {error}")
        except Exception as error:  # noqa: BLE001 - one submission must not stop the batch
            log = folder / commands._WORK / "logs" / f"{task.student}--{task.lesson}.grader-error.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
            result = _failed(folder, task.lesson, task.student,
                             f"grader error: {error!r} (traceback: {log.relative_to(folder)})")
            result.max_score = 0.0
            result.manual_max = 0.0
        future.release()
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
