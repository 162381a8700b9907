"""Shared fixtures of the test suite, and the course summary at the end of a run.

* ``course_root``: a temporary nbgrader course root (copy of ``nbgrader_config.py``, every
  lesson of ``answers/`` plus the example lesson of ``tests/fixtures/``), released once per
  session with ``helpers.grading.commands.release``. Used by test_release.py and test_grading.py.
* ``no_process_left_behind`` (autouse, per test module): every process a module's tests
  started (servers, kernels, sandboxes, workers) has ended when the module ends; leftovers
  are killed and the module's last test errors, naming them.
* The terminal summary prints the course table (``helpers.tools.runner.summary_table``) when
  lesson reports exist (``python -m helpers course`` or nbval runs of the answers write
  them), and the seconds the nbgrader round trip took per lesson.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from helpers.tools import kernels
from support.course import (ANSWER_LESSONS, COURSE_ROOT_FILES, FIRST_GROUPS, FIXTURE_LESSONS, FIXTURES,
                            REPO_ROOT, TEST_CONFIG, worker_group)
from support.claims import FreshRun
from support.processes import descendants, left_behind

# Kernels started by nbval and nbgrader inherit this (see helpers.tools.kernels.KERNEL_ENV).
kernels.apply_kernel_env()

#: Under pytest-xdist (``python -m helpers test`` starts two workers on two CPUs), each
#: worker, and every kernel and grader it starts, gets its share of the CPUs as threads,
#: as ``python -m helpers course`` gives lessons that run side by side.
if os.environ.get("PYTEST_XDIST_WORKER"):
    kernels.share_threads(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))

#: The fixture notebooks are nbgrader sources, not tests: nbval must not collect them.
collect_ignore_glob = ["fixtures/*"]

#: Seconds that one nbgrader autograde call took, by lesson (filled by test_grading.py).
GRADING_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="session")
def course_root(tmp_path_factory) -> Path:
    """A released temporary course root holding every answer lesson and the fixture lessons."""
    from helpers.grading import commands as grading

    root = tmp_path_factory.mktemp("course")
    config_text = (REPO_ROOT / "nbgrader_config.py").read_text()
    (root / "nbgrader_config.py").write_text(config_text + TEST_CONFIG)
    for base, names in ((REPO_ROOT / "answers", ANSWER_LESSONS), (FIXTURES, FIXTURE_LESSONS)):
        for name in names:
            shutil.copytree(base / name, root / "answers" / name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # A lesson that nbgrader cannot release fails its own tests (no notebooks/<lesson> here).
    grading.release(root=root, quiet=True)
    return root


@pytest.fixture(scope="session")
def grading_seconds() -> dict[str, float]:
    """Where test_grading.py records how long each lesson's autograde call took."""
    return GRADING_SECONDS


@pytest.fixture(autouse=True, scope="module")
def no_process_left_behind():
    """A test module leaves no process running: leftovers are killed, and named in an error."""
    before = set(descendants(os.getpid()))
    yield
    leftovers = left_behind(before)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if leftovers:
        pytest.fail("processes left running after this test module (killed now; stop them in the test or "
                    "its fixture, also when it fails): "
                    + "; ".join(f"{pid}: {command[:120]}" for pid, command in sorted(leftovers.items())),
                    pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Distribute whole :func:`worker_group` units (``python -m helpers test`` passes ``-n 2
    --dist loadfile``; any load-balancing ``--dist`` gets the same), in the order the workers
    collected them: :data:`FIRST_GROUPS` first."""
    if config.getoption("dist") not in ("load", "loadscope", "loadfile", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False      # keep the collection's order (FIRST_GROUPS first)
    return CourseScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Mark as ``slow`` what ``python -m helpers test --quick`` leaves out: every answer
    notebook run by nbval, and every test that needs the nbgrader-released course root.
    Tests that train a model carry ``@pytest.mark.slow`` themselves. Under pytest-xdist,
    put each test in its :func:`worker_group`, the long groups first."""
    for item in items:
        if item.path.suffix == ".ipynb" or "course_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            if item.path.suffix != ".ipynb" and item.nodeid.split("::")[0] not in COURSE_ROOT_FILES:
                raise pytest.UsageError(f"{item.nodeid} uses the course_root fixture: add its file to "
                                        f"COURSE_ROOT_FILES in tests/conftest.py (one worker releases the root)")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: index for index, name in enumerate(FIRST_GROUPS)}
        items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(rank)))  # stable: order kept


_SESSION_STARTED: list[float] = []

#: The answer notebooks' outputs as nbval runs them (see support.claims.FreshRun).
_FRESH_RUN = FreshRun()


#: Per answer notebook run by nbval: whether its claims were checked on this run's outputs, or why not.
FRESH_CLAIMS: dict[str, str] = {}


def _reproduces_the_record(lesson: str) -> str | None:
    """``None`` when a run here reproduces ``lesson``'s committed outputs bit for bit (same CPU
    instruction sets and TensorFlow threads as its record in docs/results.json), else why not."""
    from helpers.tools import results

    try:
        entry = results.read_results().get("lessons", {}).get(lesson)
    except ValueError as error:
        return str(error)
    if entry is None:
        return "no record in docs/results.json"
    context, here = entry.get("context", {}), results.numerics()
    if context.get("cpu_features") != here["cpu_features"]:
        return f"recorded {entry.get('recorded')} on a CPU with other vector instructions (or not noted)"
    if not results.same_numerics(context):
        return f"recorded with {context.get('threads')} TensorFlow thread(s), here {here['threads']}"
    return None


class _FreshClaims:
    """Registered as a plugin by :func:`pytest_configure`, so that it sees the cells of the
    answer notebooks (a hook of this conftest alone only sees the items under tests/)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """The lessons' claims hold on this run's outputs too: when nbval has run the last code
        cell of an answer notebook, that cell fails if a claim of ``tests/support/lesson_claims.py``
        does not hold on the outputs this run printed (``tests/lessons/test_claims.py`` checks the
        committed ones). Only where the run reproduces the record bit for bit (same CPU vector
        instructions and threads, :func:`helpers.tools.results.same_numerics`): on another CPU a
        training run ends elsewhere by design, and the terminal summary says which lessons were
        checked and why the others were not."""
        outcome = yield
        notebook = getattr(getattr(item, "parent", None), "nb", None)
        if call.when != "call" or notebook is None or item.path.parent.parent != REPO_ROOT / "answers":
            return
        report = outcome.get_result()
        code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
        problems = _FRESH_RUN.record(item.path, code_cells, item.cell_num, None if report.skipped else item.test_outputs)
        if problems is None:
            return
        lesson = item.path.parent.name
        reason = _reproduces_the_record(lesson)
        FRESH_CLAIMS[lesson] = f"not checked: {reason}" if reason else (
            f"{len(problems)} claim(s) broken" if problems else "checked, all hold")
        if problems and reason is None and report.passed:
            report.outcome = "failed"
            report.longrepr = (f"{lesson}: this run reproduces the record's numerics, and its outputs contradict the "
                               "lesson's prose (the claims of tests/support/lesson_claims.py):\n" + "\n".join(problems))


def pytest_configure(config):
    """Register the check of the claims on this run's outputs (:class:`_FreshClaims`)."""
    config.pluginmanager.register(_FreshClaims(), "unet-course-fresh-claims")


def pytest_sessionfinish(session):
    """A pytest-xdist worker hands its grading times to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["grading_seconds"] = json.dumps(GRADING_SECONDS)
        workeroutput["fresh_claims"] = json.dumps(FRESH_CLAIMS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller collects each worker's grading times (see :func:`pytest_sessionfinish`)."""
    GRADING_SECONDS.update(json.loads(getattr(node, "workeroutput", {}).get("grading_seconds", "{}")))
    FRESH_CLAIMS.update(json.loads(getattr(node, "workeroutput", {}).get("fresh_claims", "{}")))


def pytest_sessionstart(session):

    _SESSION_STARTED.append(time.time())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the grading times, and the course summary table of the lesson reports that
    this run wrote (nbval executing the answers writes them)."""
    if GRADING_SECONDS:
        terminalreporter.write_sep("-", "nbgrader round trip (one autograde call per lesson)")
        for name, seconds in sorted(GRADING_SECONDS.items()):
            terminalreporter.write_line(f"{name:28s} {seconds:6.0f} s")
    if FRESH_CLAIMS:
        terminalreporter.write_sep("-", "the lessons' claims on this run's outputs")
        for name, verdict in sorted(FRESH_CLAIMS.items()):
            terminalreporter.write_line(f"{name:28s} {verdict}")
    try:
        from helpers import course
        from helpers.tools import runner

        started = _SESSION_STARTED[0] if _SESSION_STARTED else 0.0
        fresh = {path.stem for path in course.summary_dir().glob("*.json") if path.stat().st_mtime >= started}
        reports = {name: report for name, report in runner.read_reports().items() if name in fresh}
    except (OSError, ValueError) as error:  # unreadable report: say so, do not hide the run
        terminalreporter.write_line(f"(course summary not available: {error})")
        return
    if reports:
        terminalreporter.write_sep("-", "course summary")
        terminalreporter.write_line(runner.summary_table(reports))
