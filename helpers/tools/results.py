"""The measured results page: ``python -m helpers course --record``.

One run of the course is the source of every time and key metric that the documentation
quotes. ``--record`` executes the lessons (saving their outputs into ``answers/``, as
``--update-answers`` does), then

* merges each lesson's report (seconds, key metrics, scale, date, the machine's CPU count
  and load) into ``docs/results.json``, the machine-readable record;
* renders ``docs/results.md`` from it (generated: never edit it by hand);
* rewrites the compute part of each recorded lesson's **Time** line ("about 50 min in class,
  ~2 min of compute on a laptop CPU") from its measured seconds, and regenerates the release.

``tests/lessons/test_release.py`` checks that the headers, the results page and the course manifest
(:data:`helpers.course.LESSONS`) agree, so no measured figure is kept in step by hand.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import platform
import re
from pathlib import Path

import nbformat

from helpers import config
from helpers.course import LESSONS, LessonSpec, lesson_spec

DOCS_DIR = config.REPO_ROOT / "docs"
RESULTS_JSON = DOCS_DIR / "results.json"
RESULTS_MD = DOCS_DIR / "results.md"

#: The Time line of a lesson header: ``**Time** — about 50 min in class, ~2 min of compute ...``.
TIME_LINE = re.compile(r"(\*\*Time\*\*\s*[—–-]+\s*about [^,\n]+ in class, )(under a minute|~[\d.]+ min)( of compute)")


def compute_phrase(seconds: float) -> str:
    """What a lesson's **Time** line says for ``seconds`` of compute: ``under a minute``, else
    the nearest half minute (``~2.5 min``)."""
    if seconds < 60:
        return "under a minute"
    return f"~{round(seconds / 30) / 2:g} min"


#: CPU flags that select TensorFlow's (oneDNN's, Eigen's) kernels, and so the order of its sums.
_NUMERIC_FLAGS = re.compile(r"^(avx\w*|amx\w*|fma\w*|f16c|sse4\w*)$")


def numerics() -> dict:
    """What decides a lesson's numbers bit for bit, besides the code and the seeds: the CPU's
    vector instruction sets (TensorFlow picks its kernels by them, so the same run gives other
    last digits on another CPU, and a long training run other results) and the TensorFlow
    threads each kernel gets (``TF_NUM_INTRAOP_THREADS``, as :func:`helpers.tools.kernels.share_threads`
    sets it; ``"all"`` when unset).

    Returns:
        ``{"cpu_features": "avx avx2 ...", "threads": "1"}``; ``cpu_features`` is ``"unknown"``
        where ``/proc/cpuinfo`` cannot be read.
    """
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    features = " ".join(sorted({flag for flag in flags if _NUMERIC_FLAGS.match(flag)})) or "unknown"
    return {"cpu_features": f"{platform.machine()} {features}",
            "threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "all")}


def same_numerics(context: dict) -> bool:
    """Whether a run here reproduces, bit for bit, a lesson recorded with this ``context``
    (its entry's ``"context"`` in ``docs/results.json``): same CPU instruction sets and threads.
    A record from before this was noted (no ``cpu_features``) never matches."""
    here = numerics()
    return "unknown" not in here["cpu_features"] and all(context.get(key) == value for key, value in here.items())


def machine_context() -> dict:
    """The conditions of a measurement: CPU count, load averages, Python and platform, and
    what decides its numbers bit for bit (:func:`numerics`)."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:           # not available on this platform
        load = []
    return {"cpus": os.cpu_count(), "load_average": load, "python": platform.python_version(),
            "platform": platform.platform(terse=True), **numerics()}


def read_results(path: Path = RESULTS_JSON) -> dict:
    """The recorded results (``{"lessons": {folder: entry}, "courses": [...]}``); empty if none yet.

    Raises:
        ValueError: the file exists but is not the JSON this module writes (names the file).
    """
    if not path.is_file():
        return {"lessons": {}, "courses": []}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); restore it from git or record again "
                         f"with `python -m helpers course --record`") from error
    if not isinstance(results.get("lessons"), dict):
        raise ValueError(f"{path}: no 'lessons' table; restore it from git or record again")
    results.setdefault("courses", [])
    return results


def merge_reports(results: dict, reports: dict[str, dict], context: dict, when: str,
                  total_seconds: float | None) -> dict:
    """``results`` with the lesson ``reports`` of one run put in, each stamped with ``when`` and
    the machine ``context``; a run of the default lessons also adds its whole-course time."""
    lessons = dict(results.get("lessons", {}))
    courses = list(results.get("courses", []))
    merged = {"lessons": lessons, "courses": courses}
    for name, report in sorted(reports.items()):
        lessons[name] = {
            "seconds": round(float(report["elapsed_seconds"]), 1),
            "scale": report.get("scale", 1.0),
            "metrics": {key: round(float(value), 4) for key, value in report.get("metrics", {}).items()},
            "error": report.get("error"),
            "recorded": when,
            "context": context,
        }
    default = sorted(spec.folder for spec in LESSONS if spec.in_default_run)
    if total_seconds is not None and sorted(reports) == default:
        courses.append({"seconds": round(total_seconds, 1), "recorded": when, "context": context,
                        "lessons": default})
    return merged


def _bar_text(spec: LessonSpec, metrics: dict[str, float]) -> str:
    parts = []
    for key, value in metrics.items():
        bar = spec.bars.get(key)
        shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"
        parts.append(f"{key} {shown}" + (f" (bar {bar:g}{' ✓' if value >= bar else ' ✗ below'})" if bar else ""))
    return "; ".join(parts) or "—"


def _jobs_text(context: dict) -> str:
    """``"; 2 at a time"`` for a lesson recorded beside another one, else nothing."""
    jobs = context.get("jobs", 1)
    return f"; {jobs} at a time" if jobs > 1 else ""


def render_markdown(results: dict) -> str:
    """``docs/results.md`` from the recorded ``results`` (deterministic: same input, same text)."""
    lines = ["# Measured results", "",
             "Generated by `python -m helpers course --record` from `docs/results.json`; do not edit by",
             "hand. Each lesson's **Time** line and the figures the documentation quotes come from here",
             "(`tests/lessons/test_release.py` checks that they agree). Times on a 2-core VM vary by up to a half",
             "from run to run; the load average says how busy the machine was (1-minute, 5, 15; idle",
             "is below about 0.5). Lessons that ran side by side (`course --jobs 2`, one CPU thread",
             "each) show the load of both and a time a little above what they take alone.", "",
             "| lesson | seconds | budget | key metrics at the default scale | recorded | CPUs, load when recorded |",
             "|---|---|---|---|---|---|"]
    for spec in LESSONS:
        entry = results["lessons"].get(spec.folder)
        if spec.budget_minutes is None:
            continue
        if entry is None:
            lines.append(f"| {spec.folder} | — | {spec.budget_minutes:g} min | not recorded yet | — | — |")
            continue
        context = entry.get("context", {})
        load = ", ".join(f"{value:g}" for value in context.get("load_average", [])) or "?"
        status = " (execution failed)" if entry.get("error") else ""
        within = "" if entry["seconds"] <= spec.budget_minutes * 60 else " **over budget**"
        lines.append(f"| {spec.folder} | {entry['seconds']:.0f}{within} | {spec.budget_minutes:g} min | "
                     f"{_bar_text(spec, entry['metrics'])}{status} | {entry['recorded']} | "
                     f"{context.get('cpus', '?')}, {load}{_jobs_text(context)} |")
    lines += ["", "## Whole course (lessons 01–08 in one run)", ""]
    if results.get("courses"):
        lines += ["| recorded | minutes | lessons at a time | CPUs, load at the end |", "|---|---|---|---|"]
        for run in results["courses"][-5:]:
            context = run.get("context", {})
            load = ", ".join(f"{value:g}" for value in context.get("load_average", [])) or "?"
            lines.append(f"| {run['recorded']} | {run['seconds'] / 60:.1f} | {context.get('jobs', 1)} | "
                         f"{context.get('cpus', '?')}, {load} |")
    else:
        lines.append("Not recorded yet: `python -m helpers course --record` on an idle 2-core machine.")
    notes = results.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def update_time_line(header: str, seconds: float) -> str:
    """``header`` (a lesson's first markdown cell) with the compute part of its **Time** line
    set from ``seconds``.

    Raises:
        ValueError: the header has no Time line of the form the lessons use.
    """
    if not TIME_LINE.search(header):
        raise ValueError("no '**Time** — about N min in class, ... of compute' line in the lesson's first cell")
    return TIME_LINE.sub(lambda match: match.group(1) + compute_phrase(seconds) + match.group(3), header, count=1)


def record(reports: dict[str, dict], total_seconds: float | None, answers_dir: Path | None = None,
           results_path: Path = RESULTS_JSON, markdown_path: Path = RESULTS_MD,
           when: str | None = None, jobs: int = 1) -> list[str]:
    """Record one run: merge ``reports`` into ``results_path``, render ``markdown_path`` and set
    the Time lines of the recorded lessons' answer notebooks. ``jobs`` is how many lessons
    ran at a time (``python -m helpers course --jobs``); the pages say so. Returns the lessons
    whose Time line changed (their release must be regenerated)."""
    when = when or _datetime.date.today().isoformat()
    context = {**machine_context(), "jobs": jobs}
    results = merge_reports(read_results(results_path), reports, context, when, total_seconds)
    whole_course = len(results["courses"]) > len(read_results(results_path)["courses"])
    # notes explain where older figures came from; a whole-course run replaces them all
    results["notes"] = [] if whole_course else read_results(results_path).get("notes", [])
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(results), encoding="utf-8")
    changed = []
    for name, report in sorted(reports.items()):
        spec = lesson_spec(name)
        if spec.budget_minutes is None or report.get("error"):
            continue
        path = (answers_dir or config.REPO_ROOT / "answers") / name / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        updated = update_time_line(notebook.cells[0].source, report["elapsed_seconds"])
        if updated != notebook.cells[0].source:
            notebook.cells[0].source = updated
            nbformat.write(notebook, path)
            changed.append(name)
    return changed
