"""The lessons' timer and report, their time budgets and quality bars.

Each answer notebook starts a :class:`Lesson` in its setup cell and calls
:meth:`Lesson.finish` in its last cell with its key metrics; that writes
``runs_dir()/summary/<lesson>.json``. ``python -m helpers course``
(:mod:`helpers.tools.runner`) executes every answer notebook headless and prints one table
row per lesson from those files. The course kernel's settings are in
:mod:`helpers.tools.kernels`.
"""

from __future__ import annotations

import importlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from helpers import config

#: Time budget per lesson in minutes at the default scale (2 CPU cores).
TIME_BUDGET_MINUTES = {"01": 5, "02": 5, "03": 5, "04": 5, "05": 5, "06": 6, "07": 6, "08": 6, "09": 5}

#: Lessons that ``python -m helpers course`` runs only when named (``course 09``, or
#: ``python -m helpers challenge baseline``): the capstone's baseline is a real training run
#: that an instructor checks once before a workshop's finale, and keeping it out keeps the
#: ten-minute course budget for the teaching lessons 01-08.
CAPSTONE_LESSONS = ("09_challenge",)

#: Quality bars: lesson number -> {metric name: minimum value}.
QUALITY_BARS = {
    "04": {"test_dice": 0.95},
    "05": {"test_dice": 0.95},
    "06": {"volumetric_dice": 0.90},
    "07": {"mean_fold_dice": 0.85},
    "08": {"dice_WT": 0.80, "dice_TC": 0.70, "dice_ET": 0.60},
    "09": {"baseline_practice_dice": 0.85},
}


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
        return time.perf_counter() - self.started

    def finish(self, **metrics: float) -> dict:
        """Print the elapsed time and the key metrics, and save them for the summary table."""
        report = {
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


#: Names that moved to the course tooling (one release: ``course.<name>`` still finds them).
_MOVED = {**dict.fromkeys(("KERNEL_ENV", "kernel_env", "KERNEL_NAME", "KERNEL_DISPLAY_NAME", "kernelspec",
                           "install_kernelspec", "apply_kernel_env"), "helpers.tools.kernels"),
          **dict.fromkeys(("ANSWERS_DIR", "lesson_notebooks", "read_reports", "format_metric", "lesson_status",
                           "summary_table", "FRAMEWORK_NOISE", "drop_framework_noise", "log_path",
                           "execute_notebook", "main"), "helpers.tools.runner")}


def __getattr__(name: str):
    """Deprecated: ``course.apply_kernel_env`` and the other names of :data:`_MOVED`."""
    if name not in _MOVED:
        raise AttributeError(f"module 'helpers.course' has no attribute {name!r}")
    warnings.warn(f"helpers.course.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)
