"""Run the course: lesson timers, the per-lesson report and the course summary table.

The lessons' side lives here: each answer notebook starts a :class:`Lesson` in its setup
cell and calls :meth:`Lesson.finish` in its last cell with its key metrics; that writes
``runs_dir()/summary/<lesson>.json``, judged against :data:`TIME_BUDGET_MINUTES` and
:data:`QUALITY_BARS`. ``python -m helpers course`` (:mod:`helpers.tools.runner`) executes
every answer notebook headless and prints the summary table from those files; the course
kernel's settings are in :mod:`helpers.tools.kernels`.
"""

from __future__ import annotations

import importlib
import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from helpers import config

#: The answer notebooks (the lessons' source), one folder per lesson.
ANSWERS_DIR = config.REPO_ROOT / "answers"

LessonKind = Literal["reading", "core", "case study", "capstone"]


@dataclass(frozen=True)
class LessonSpec:
    """What the course knows about one lesson, in one place (the course manifest).

    The course runner, the lesson headers' test, the results page (``python -m helpers
    course --record``) and grading (what a lesson needs from an earlier one) read these facts
    from :data:`LESSONS` instead of keeping their own lists.

    Attributes:
        folder: the lesson's folder under ``answers/`` and ``notebooks/`` (``"04_training"``).
        title: the lesson's title, as its first heading says after the number.
        kind: ``"reading"`` (nothing trains or is graded), ``"core"`` (01-05, chest X-rays),
            ``"case study"`` (06-08) or ``"capstone"`` (09, the finale, not graded for points).
        datasets: the embedded data sets the lesson reads by default (``data.ensure_dataset``).
        budget_minutes: compute budget at the default scale on 2 CPU cores; ``None`` for reading.
        quality_bars: key metric -> minimum value the lesson's run must reach.
        needs: what the lesson takes from earlier lessons' runs, as paths under
            ``config.runs_dir()`` (lesson 05 loads lesson 04's best model).
    """

    folder: str
    title: str
    kind: LessonKind
    datasets: tuple[str, ...] = ()
    budget_minutes: float | None = None
    quality_bars: tuple[tuple[str, float], ...] = ()
    needs: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        """The two-digit lesson number (``"04"``)."""
        return self.folder[:2]

    @property
    def graded(self) -> bool:
        """Whether nbgrader grades the lesson for points (not the reading lessons or the capstone)."""
        return self.kind in ("core", "case study")

    @property
    def in_default_run(self) -> bool:
        """Whether ``python -m helpers course`` without lesson names runs it (01-08)."""
        return self.graded

    @property
    def bars(self) -> dict[str, float]:
        """:attr:`quality_bars` as a dictionary."""
        return dict(self.quality_bars)


_CXR = ("cxr_synthetic",)

#: The course manifest: every lesson in course order.
LESSONS: tuple[LessonSpec, ...] = (
    LessonSpec("00_start_here", "Start here", "reading"),
    LessonSpec("01_data_generator", "The data generator", "core", _CXR, 5),
    LessonSpec("02_architecture", "The U-Net architecture", "core", _CXR, 5),
    LessonSpec("03_loss_and_metrics", "Loss and metrics", "core", _CXR, 5),
    LessonSpec("04_training", "Training a U-Net", "core", _CXR, 5, (("test_dice", 0.95),)),
    LessonSpec("05_prediction", "Prediction and evaluation", "core", _CXR, 5, (("test_dice", 0.95),),
               needs=("04_training/best.keras",)),
    LessonSpec("06_lung_ct_3d", "3D lung segmentation in CT", "case study", ("lung_ct_synthetic_full",), 6,
               (("volumetric_dice", 0.90),)),
    LessonSpec("07_liver_ct", "Liver CT: 2D slices from 3D volumes, with k-fold cross-validation", "case study", ("liver_ct_synthetic",), 6,
               (("mean_fold_dice", 0.85),)),
    LessonSpec("08_brain_tumour", "Brain tumour segmentation, multi-class", "case study", ("brats_synthetic",), 6,
               (("dice_WT", 0.80), ("dice_TC", 0.70), ("dice_ET", 0.60))),
    LessonSpec("09_challenge", "The challenge", "capstone", _CXR, 5, (("baseline_practice_dice", 0.85),)),
    LessonSpec("10_where_next", "Where next", "reading"),
)


def lesson_spec(name: str) -> LessonSpec:
    """The :class:`LessonSpec` of a lesson given by number (``"04"``) or folder name.

    Raises:
        KeyError: no lesson has that number or name; the message lists the lessons.
    """
    for spec in LESSONS:
        if name in (spec.folder, spec.number):
            return spec
    raise KeyError(f"no lesson {name!r}; the lessons are {', '.join(spec.folder for spec in LESSONS)}")


def needs_of(lessons) -> tuple[str, ...]:
    """What the given lessons (numbers or folder names) take from earlier lessons' runs, as
    paths under ``config.runs_dir()`` (:attr:`LessonSpec.needs`); lessons the manifest does
    not know (a test fixture) need nothing.
    """
    found = set()
    for name in lessons:
        try:
            found.update(lesson_spec(name).needs)
        except KeyError:
            continue
    return tuple(sorted(found))


#: Every run artefact that a lesson takes from an earlier one (grading copies these into each
#: sandbox's scratch data folder).
RUN_ARTEFACTS = tuple(sorted({path for spec in LESSONS for path in spec.needs}))

#: Time budget per lesson in minutes at the default scale (2 CPU cores), from :data:`LESSONS`.
TIME_BUDGET_MINUTES = {spec.number: spec.budget_minutes for spec in LESSONS if spec.budget_minutes is not None}

#: Lessons that ``python -m helpers course`` runs only when named (``course 09``, or
#: ``python -m helpers challenge baseline``): the capstone's baseline is a real training run
#: that an instructor checks once before a workshop's finale, and keeping it out keeps the
#: ten-minute course budget for the teaching lessons 01-08.
CAPSTONE_LESSONS = tuple(spec.folder for spec in LESSONS if spec.kind == "capstone")

#: Lessons to read, with nothing to train or grade: the orientation (00) and the closing map
#: to MONAI and nnU-Net (10). They hold no graded points, have no time budget or quality bar,
#: and ``python -m helpers course`` runs them only when named (``course 00``), like the
#: capstone.
READING_LESSONS = tuple(spec.folder for spec in LESSONS if spec.kind == "reading")
#: Lessons whose answers hold no graded points (nbgrader has nothing to autograde).
UNGRADED_LESSONS = CAPSTONE_LESSONS + READING_LESSONS

#: Quality bars: lesson number -> {metric name: minimum value}, from :data:`LESSONS`.
QUALITY_BARS = {spec.number: spec.bars for spec in LESSONS if spec.quality_bars}


def summary_dir() -> Path:
    """Folder holding one JSON report per lesson for the current scale."""
    return config.runs_dir() / "summary"


@dataclass
class Lesson:
    """Timer and report of one lesson notebook.

    >>> lesson = Lesson("04_training")      # in the setup cell
    >>> lesson.finish(test_dice=0.96)       # in the last cell  # doctest: +SKIP
    """

    name: str

    def __post_init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed_seconds(self) -> float:
        """Seconds since the lesson started."""
        return time.perf_counter() - self.started

    def finish(self, **metrics: float) -> dict:
        """Print the elapsed time and the key metrics, and save them for the summary table."""
        report: dict[str, Any] = {
            "lesson": self.name,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "scale": config.scale(),
            "metrics": {key: float(value) for key, value in metrics.items()},
        }
        folder = summary_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}.json").write_text(json.dumps(report, indent=2) + "\n")
        shown = ", ".join(f"{key} = {value:.3f}" for key, value in report["metrics"].items())
        print(f"Lesson {self.name} finished in {report['elapsed_seconds'] / 60:.1f} min"
              + (f"; {shown}" if shown else ""))
        return report


def lesson_time_rows(answers_dir: Path | None = None) -> list[tuple[str, str, str]]:
    """One row per lesson in course order: its folder name, its compute budget from
    :data:`TIME_BUDGET_MINUTES` (``"-"`` for a lesson without one) and what the lesson's own
    **Time** line says (the text after ``**Time** —`` in its first cell, ``"-"`` if none).
    Read from the answer notebooks in ``answers_dir`` (default :data:`ANSWERS_DIR`) as
    plain JSON (the learner library does without nbformat).
    """
    rows = []
    for path in sorted((answers_dir or ANSWERS_DIR).glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb")):
        name = path.parent.name
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        first = cells[0] if cells else {}
        source = first.get("source", "") if first.get("cell_type") == "markdown" else ""
        header = "".join(source) if isinstance(source, list) else source
        match = re.search(r"\*\*Time\*\*\s*[—–-]+\s*(.+?)(?:\n\s*\n|\Z)", header, re.S)
        said = " ".join(match.group(1).split()) if match else "-"
        budget = TIME_BUDGET_MINUTES.get(name[:2])
        rows.append((name, f"{budget} min" if budget is not None else "-", said))
    return rows


def lesson_time_table(answers_dir: Path | None = None) -> str:
    """:func:`lesson_time_rows` as an aligned text table (what lesson 00 prints).

    Args:
        answers_dir: the folder of the lessons (default: the course's ``answers/``).

    Returns:
        The table, a header line, a rule and one line per lesson.
    """
    rows = [("lesson", "compute budget", "what the lesson's Time line says")] + lesson_time_rows(answers_dir)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}" for row in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * len(rows[0][2])}")
    return "\n".join(lines)


#: Names that moved to the course tooling (one release: ``course.<name>`` still finds them).
_MOVED = {**dict.fromkeys(("KERNEL_ENV", "kernel_env", "KERNEL_NAME", "KERNEL_DISPLAY_NAME", "kernelspec",
                           "install_kernelspec", "apply_kernel_env"), "helpers.tools.kernels"),
          **dict.fromkeys(("lesson_notebooks", "read_reports", "format_metric", "lesson_status",
                           "summary_table", "FRAMEWORK_NOISE", "drop_framework_noise", "log_path",
                           "execute_notebook", "main"), "helpers.tools.runner")}


def __getattr__(name: str):
    """Deprecated: ``course.apply_kernel_env`` and the other names of :data:`_MOVED`."""
    if name not in _MOVED:
        raise AttributeError(f"module 'helpers.course' has no attribute {name!r}")
    warnings.warn(f"helpers.course.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)
