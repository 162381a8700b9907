"""``python -m helpers course``: execute the answer notebooks headless, print the summary.

Each answer notebook starts a :class:`helpers.course.Lesson` in its setup cell and calls
:meth:`~helpers.course.Lesson.finish` in its last cell with its key metrics; that writes
``runs_dir()/summary/<lesson>.json``. :func:`main` executes every answer notebook, two at a
time on a machine with two or more CPUs (:func:`default_jobs`), and prints one table row per
lesson from those files (time against
:data:`helpers.course.TIME_BUDGET_MINUTES`, metrics against
:data:`helpers.course.QUALITY_BARS`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from helpers import config
from helpers.course import LESSONS, QUALITY_BARS, TIME_BUDGET_MINUTES, UNGRADED_LESSONS, summary_dir
from helpers.tools.kernels import THREAD_VARIABLES, apply_kernel_env, share_threads

ANSWERS_DIR = config.REPO_ROOT / "answers"


def lesson_notebooks(selection: list[str] | None = None) -> list[Path]:
    """Answer notebooks in course order, optionally only those whose folder starts with
    one of ``selection`` (``["01", "04"]``) or equals it (``["04_training"]``). Without a
    selection the :data:`CAPSTONE_LESSONS` and :data:`READING_LESSONS` are left out (run
    them by name)."""
    notebooks = sorted(ANSWERS_DIR.glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))
    if not selection:
        notebooks = [nb for nb in notebooks if nb.parent.name not in UNGRADED_LESSONS]
    if selection:
        notebooks = [nb for nb in notebooks
                     if any(nb.parent.name.startswith(item) for item in selection)]
        if not notebooks:
            raise SystemExit(f"No lesson in {ANSWERS_DIR} matches {selection}; "
                             f"try numbers such as 01 04.")
    return notebooks


def read_reports() -> dict[str, dict]:
    """The saved lesson reports of the current scale, by lesson name."""
    reports = {}
    for path in sorted(summary_dir().glob("*.json")):
        report = json.loads(path.read_text())
        reports[report["lesson"]] = report
    return reports


def format_metric(value: float) -> str:
    """``400`` for whole numbers (counts), ``0.982`` otherwise."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"


def lesson_status(minutes: float, budget: float, below_bars: list[str], error: str | None) -> str:
    """``ok``, ``FAILED`` (the notebook raised) or what is wrong: ``over time``, ``below bar``."""
    if error:
        return "FAILED"
    problems = (["over time"] if minutes > budget else []) + (["below bar"] if below_bars else [])
    return ", ".join(problems) or "ok"


def summary_table(reports: dict[str, dict]) -> str:
    """Format one row per lesson: elapsed time against its budget, key metrics against bars."""
    rows = [("lesson", "time", "budget", "key metrics", "status")]
    for name, report in sorted(reports.items()):
        number = name[:2]
        minutes = report["elapsed_seconds"] / 60
        budget = TIME_BUDGET_MINUTES.get(number, 5)
        parts, below_bars = [], []
        for key, value in report["metrics"].items():
            bar = QUALITY_BARS.get(number, {}).get(key)
            if bar is None:
                parts.append(f"{key} {format_metric(value)}")
                continue
            parts.append(f"{key} {format_metric(value)} (>= {bar})")
            if value < bar:
                below_bars.append(key)
        if report.get("error"):
            parts.append(report["error"])
        status = lesson_status(minutes, budget, below_bars, report.get("error"))
        rows.append((name, f"{minutes:.1f} min", f"{budget} min", "; ".join(parts) or "-", status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    scale = config.scale()
    title = f"Course summary (scale {scale:g}{'' if scale == 1 else ', quality bars apply at scale 1'})"
    return title + "\n" + "\n".join(lines)


#: Lines that TensorFlow's C++ runtime writes to stderr however quiet it is asked to be
#: (absl start-up notice, CUDA probing on a CPU machine, CPU feature notes).
FRAMEWORK_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|To enable the following instructions:)")


def drop_framework_noise(notebook) -> int:
    """Remove TensorFlow's C++ log lines from the stderr outputs of ``notebook`` (in place),
    so that saved answers show a learner only what the lesson prints. Returns the number
    of lines removed; stderr streams left empty are dropped."""
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept_outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = output["text"].splitlines(keepends=True)
                kept = [line for line in lines if not FRAMEWORK_NOISE.match(line)]
                removed += len(lines) - len(kept)
                if not "".join(kept).strip():
                    continue
                output["text"] = "".join(kept)
            kept_outputs.append(output)
        cell["outputs"] = kept_outputs
    return removed


def log_path() -> Path:
    """Where ``python -m helpers course`` writes the kernels' own console output
    (TensorFlow and ipykernel start-up messages): ``runs_dir()/course.log``."""
    return config.runs_dir() / "course.log"


def execute_notebook(path: Path, output: Path, timeout: int = 1200, log: Path | None = None) -> None:
    """Execute ``path`` headless in its own folder with the current environment's kernel
    and write the executed notebook to ``output``. What the kernel process itself writes
    to the console (ipykernel's transport warning, TensorFlow's C++ start-up lines) is
    appended to ``log`` when given; cell outputs are unaffected. Raises nbclient's error
    on failure."""
    import nbformat
    from nbclient import NotebookClient

    apply_kernel_env()  # inherited by the kernel this process starts
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    stream = None
    try:
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            stream = open(log, "a", encoding="utf-8")  # closed in finally
            stream.write(f"==== {path.name} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
            stream.flush()
            client.execute(stdout=stream, stderr=stream)   # Popen arguments of the kernel
        else:
            client.execute()
    finally:
        if stream is not None:
            stream.close()
        drop_framework_noise(notebook)
        output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output)


def default_jobs() -> int:
    """How many lessons ``python -m helpers course`` runs at a time: 2 on a machine with two or
    more CPUs, else 1.

    The lessons' networks are small (a few hundred thousand to two million weights, batches
    of 8-16 images), and TensorFlow gains little from a second thread on them:
    ``benchmarks/lesson_threads.py`` measures one training run with one thread, with all of
    them, and two one-thread runs side by side. Two lessons at a time, one thread each,
    use two cores where one lesson alone leaves the second mostly idle."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def lesson_order(names: list[str], expected_seconds: dict[str, float]) -> list[str]:
    """``names`` in the order lessons start when several run at once: the longest chain of
    work first (a lesson's expected seconds plus those of the lessons that need it, such as
    04 before 05), course order among equals. Unknown durations count as zero."""
    def chain(name: str) -> float:
        return expected_seconds.get(name, 0.0) + sum(
            chain(other) for other in names if name in lesson_needs(other))
    return sorted(names, key=lambda name: (-chain(name), names.index(name)))


def lesson_needs(name: str) -> set[str]:
    """The lessons whose runs ``name`` needs (from :attr:`helpers.course.LessonSpec.needs`)."""
    spec = next((spec for spec in LESSONS if spec.folder == name), None)
    return {need.split("/")[0] for need in spec.needs} if spec else set()


def recorded_seconds() -> dict[str, float]:
    """Each lesson's seconds in the last recorded run (``docs/results.json``); empty if none."""
    from helpers.tools import results

    try:
        recorded = results.read_results()
    except (OSError, ValueError):
        return {}
    return {name: float(entry.get("seconds", 0.0)) for name, entry in recorded.get("lessons", {}).items()}


def _run_one(path: Path, target: Path, log: Path, console: threading.Lock) -> bool:
    """Execute one lesson (see :func:`main`) and print its line; False if it failed."""
    name = path.parent.name
    started = time.perf_counter()
    try:
        execute_notebook(path, target, log=log)
    except Exception as error:  # report every lesson, then fail at the end
        message = str(error).strip().splitlines()
        with console:
            print(f"[{name}] FAILED after {time.perf_counter() - started:.0f} s: "
                  f"{message[-1] if message else type(error).__name__} (executed notebook: {target})",
                  flush=True)
        folder = summary_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps({
            "lesson": name, "elapsed_seconds": round(time.perf_counter() - started, 1),
            "scale": config.scale(), "metrics": {}, "error": "execution failed"}) + "\n")
        return False
    with console:
        print(f"[{name}] done in {time.perf_counter() - started:.0f} s", flush=True)
    return True


def main(selection: list[str] | None = None, update_answers: bool = False, record: bool = False,
         jobs: int | None = None) -> int:
    """Execute the answer notebooks and print the summary table; non-zero on any failure.

    Args:
        selection: lesson numbers or folder names; default the lessons 01-08.
        update_answers: write the executed notebooks back into ``answers/``.
        record: as ``update_answers``, then record the run in ``docs/results.json`` and
            ``docs/results.md`` and set the lessons' **Time** lines from it
            (:mod:`helpers.tools.results`), regenerating their release.
        jobs: lessons run at a time (default :func:`default_jobs`). With more than one, each
            kernel gets its share of the CPU threads (:func:`helpers.tools.kernels.share_threads`)
            unless the environment already sets them, and a lesson that needs an earlier one's run (05
            loads 04's model) starts only after it ends.

    Returns:
        0 when every lesson ran, 1 otherwise.
    """
    update_answers = update_answers or record
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise SystemExit(f"--jobs must be 1 or more, got {jobs}.")
    course_started = time.perf_counter()
    notebooks = lesson_notebooks(selection)
    if not notebooks:
        print(f"No answer notebooks found in {ANSWERS_DIR}.")
        return 1
    executed_dir = config.runs_dir() / "executed"
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")                      # this run's kernel messages only
    by_name = {path.parent.name: path for path in notebooks}
    jobs = min(jobs, len(by_name))
    if jobs > 1:
        share_threads(jobs)                       # inherited by every kernel started below
        print(f"Running {len(by_name)} lessons, {jobs} at a time, {os.environ[THREAD_VARIABLES[0]]} CPU "
              f"thread(s) each (--jobs 1: one after another, all threads).", flush=True)
    order = lesson_order(list(by_name), recorded_seconds())
    console = threading.Lock()
    failures = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[Future, str] = {}
        while order or running:
            ready = [name for name in order if not (lesson_needs(name) & set(order + list(running.values())))]
            if not ready and not running:
                raise RuntimeError(f"Lessons {order} wait on each other; check their `needs` in helpers/course.py.")
            for name in ready[:jobs - len(running)]:
                order.remove(name)
                target = by_name[name] if update_answers else executed_dir / by_name[name].name
                with console:
                    print(f"[{name}] started", flush=True)
                running[pool.submit(_run_one, by_name[name], target, log, console)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                running.pop(future)
                failures += not future.result()
    reports = {name: report for name, report in read_reports().items() if name in by_name}
    print()
    print(summary_table(reports))
    print()
    if not update_answers:
        print(f"Executed notebooks: {executed_dir}")
    print(f"Kernel start-up messages (TensorFlow, ipykernel): {log}")
    if record:
        return _record(reports, time.perf_counter() - course_started, failures, jobs)
    return 1 if failures else 0


def _record(reports: dict[str, dict], total_seconds: float, failures: int, jobs: int = 1) -> int:
    """The ``--record`` step of :func:`main`: results page, Time lines, release."""
    from helpers.tools import results

    if config.scale() != 1:
        print(f"Not recorded: the results page holds runs at the default scale, this one ran at "
              f"{config.SCALE_VARIABLE}={config.scale():g}.")
        return 1
    changed = results.record(reports, None if failures else total_seconds, jobs=jobs)
    print(f"Recorded {len(reports)} lesson(s) in {results.RESULTS_JSON} and {results.RESULTS_MD}"
          + (f"; Time lines updated: {', '.join(changed)}" if changed else ""))
    if changed:
        from helpers.grading import commands as grading

        # lesson 00 prints every lesson's Time line: run it again so that its table is current
        start_here = ANSWERS_DIR / "00_start_here" / "00_start_here.ipynb"
        if start_here.is_file():
            execute_notebook(start_here, start_here, log=log_path())
            changed = ["00_start_here", *changed]
        if grading.release(changed, quiet=True):
            return 1
        print(f"Released {', '.join(changed)} again (their headers changed).")
    return 1 if failures else 0
