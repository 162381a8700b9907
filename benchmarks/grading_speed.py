"""How fast does a class grade? Plain ``nbgrader autograde`` (one process, one student after
the other) against ``python -m helpers autograde --jobs N`` (one sandboxed run per
submission, N at a time), on the same synthetic class, measured in one run.

    python benchmarks/grading_speed.py                      # lessons 00 (example) and 03, 2 jobs
    python benchmarks/grading_speed.py --lessons 03 05 --copies 3 --jobs 2

The class, per lesson and copy: the answer notebook, the untouched release, a partly solved
notebook (first exercise only) and a faulty one (``os._exit`` in the last exercise). Both
ways grade at the grading scale (``UNET_COURSE_SCALE=0.1`` unless set). Prints seconds per
submission for each way, their ratio, and what a class of 100 students x 8 lessons would
take at the parallel rate (a projection from this mix, not a measurement).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from helpers.grading import commands as grading  # noqa: E402


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def build_class(root: Path, lesson: str, copies: int) -> int:
    """Write the synthetic class of ``lesson`` under ``root/submissions``; return its size."""
    answers = nbformat.read(root / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    solutions = {_meta(c)["grade_id"]: c.source for c in answers.cells if _meta(c).get("solution")}
    partial = copy.deepcopy(release)
    first = next(c for c in partial.cells if _meta(c).get("solution"))
    first.source = solutions[_meta(first)["grade_id"]]
    faulty = copy.deepcopy(answers)
    last = [c for c in faulty.cells if _meta(c).get("solution")][-1]
    last.source = "import os\nos._exit(0)\n" + last.source
    count = 0
    for index in range(copies):
        for kind, nb in (("answers", answers), ("blank", release), ("partial", partial), ("faulty", faulty)):
            folder = root / "submissions" / f"{kind}-{index}" / lesson
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / f"{lesson}.ipynb")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", default=["00", "03"], help="lesson numbers (00: the example)")
    parser.add_argument("--copies", type=int, default=2, help="copies of the 4-notebook class per lesson")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("UNET_COURSE_SCALE", grading.GRADING_SCALE)
    work = Path(tempfile.mkdtemp(prefix="grading-speed-"))
    try:
        root = work / "course"
        (root / "answers").mkdir(parents=True)
        shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
        sources = {p.name: p for p in (REPO / "answers").iterdir()}
        sources.update({p.name: p for p in (REPO / "tests" / "fixtures").iterdir()})
        lessons = grading.select_lessons(args.lessons, sorted(sources))
        for name in lessons:
            shutil.copytree(sources[name], root / "answers" / name)
        grading.release(root=root, quiet=True)
        total = sum(build_class(root, name, args.copies) for name in lessons)
        grading.collect(root / "submissions", root=root, quiet=True)
        grading.prepare_grading_data(root, lessons, {})
        print(f"{total} submissions of {', '.join(lessons)}; {args.jobs} job(s) in parallel")

        started = time.perf_counter()
        for name in lessons:  # plain nbgrader: one process grades the lesson's students in turn
            subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--force"], cwd=root,
                           env=grading._tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        serial = (time.perf_counter() - started) / total
        shutil.rmtree(root / "autograded", ignore_errors=True)

        started = time.perf_counter()
        grading.autograde(root=root, quiet=True, jobs=args.jobs)
        parallel = (time.perf_counter() - started) / total
        print(f"plain nbgrader autograde, serial : {serial:6.1f} s per submission")
        print(f"helpers autograde --jobs {args.jobs:<2d}      : {parallel:6.1f} s per submission")
        print(f"ratio serial / parallel          : {serial / parallel:6.2f}")
        print(f"100 students x 8 lessons at the parallel rate of this mix: ~{800 * parallel / 3600:.1f} h "
              f"(projection)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
