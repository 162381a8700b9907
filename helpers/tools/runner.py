"""``python -m helpers course``: execute the answer notebooks headless, print the summary.

Each answer notebook starts a :class:`helpers.course.Lesson` in its setup cell and calls
:meth:`~helpers.course.Lesson.finish` in its last cell with its key metrics; that writes
``runs_dir()/summary/<lesson>.json``. :func:`main` executes every answer notebook and
prints one table row per lesson from those files (time against
:data:`helpers.course.TIME_BUDGET_MINUTES`, metrics against
:data:`helpers.course.QUALITY_BARS`).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from helpers import config
from helpers.course import QUALITY_BARS, TIME_BUDGET_MINUTES, UNGRADED_LESSONS, summary_dir
from helpers.tools.kernels import apply_kernel_env

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


def main(selection: list[str] | None = None, update_answers: bool = False, record: bool = False) -> int:
    """Execute the answer notebooks and print the summary table; non-zero on any failure.

    Args:
        selection: lesson numbers or folder names; default the lessons 01-08.
        update_answers: write the executed notebooks back into ``answers/``.
        record: as ``update_answers``, then record the run in ``docs/results.json`` and
            ``docs/results.md`` and set the lessons' **Time** lines from it
            (:mod:`helpers.tools.results`), regenerating their release.
    """
    update_answers = update_answers or record
    course_started = time.perf_counter()
    notebooks = lesson_notebooks(selection)
    if not notebooks:
        print(f"No answer notebooks found in {ANSWERS_DIR}.")
        return 1
    executed_dir = config.runs_dir() / "executed"
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")                      # this run's kernel messages only
    failures = 0
    for path in notebooks:
        name = path.parent.name
        target = path if update_answers else executed_dir / path.name
        print(f"[{name}] ", end="", flush=True)      # one console line per lesson
        started = time.perf_counter()
        try:
            execute_notebook(path, target, log=log)
        except Exception as error:  # report every lesson, then fail at the end
            failures += 1
            message = str(error).strip().splitlines()
            print(f"FAILED after {time.perf_counter() - started:.0f} s: "
                  f"{message[-1] if message else type(error).__name__} (executed notebook: {target})",
                  flush=True)
            folder = summary_dir()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(json.dumps({
                "lesson": name, "elapsed_seconds": round(time.perf_counter() - started, 1),
                "scale": config.scale(), "metrics": {}, "error": "execution failed"}) + "\n")
            continue
        print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    reports = {name: report for name, report in read_reports().items()
               if any(nb.parent.name == name for nb in notebooks)}
    print()
    print(summary_table(reports))
    print()
    if not update_answers:
        print(f"Executed notebooks: {executed_dir}")
    print(f"Kernel start-up messages (TensorFlow, ipykernel): {log}")
    if record:
        return _record(reports, time.perf_counter() - course_started, failures)
    return 1 if failures else 0


def _record(reports: dict[str, dict], total_seconds: float, failures: int) -> int:
    """The ``--record`` step of :func:`main`: results page, Time lines, release."""
    from helpers.tools import results

    if config.scale() != 1:
        print(f"Not recorded: the results page holds runs at the default scale, this one ran at "
              f"{config.SCALE_VARIABLE}={config.scale():g}.")
        return 1
    changed = results.record(reports, None if failures else total_seconds)
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
