"""What a grading run decided, read back for comparisons between grading paths (one
nbgrader per submission or long-lived workers, fresh or forked runners, local or cluster)."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers.grading import commands as grading


def outcome(root: Path, manual_flags: bool = False) -> tuple[dict, dict]:
    """Report rows (without the seconds) and per-test-cell grades, by (student, lesson).

    Args:
        root: the course root of the run.
        manual_flags: also each cell's "needs manual grade" flag, as (score, flag).
    Returns:
        (rows, cells).
    """
    with open(root / "grading_report.csv", newline="") as handle:
        rows = {(r["student"], r["lesson"]): {k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(handle)}
    cells = {}
    with grading.gradebook(root) as gb:
        for student, lesson in rows:
            try:
                submission = gb.find_submission(lesson, student)
            except Exception:  # noqa: BLE001 - not in the gradebook: not graded
                continue
            cells[(student, lesson)] = {g.name: (g.score, g.needs_manual_grade) if manual_flags else g.score
                                        for g in submission.notebooks[0].grades}
    return rows, cells
