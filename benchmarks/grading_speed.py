"""How fast does a class grade? Stock serial ``nbgrader autograde`` (nbgrader's own Execute
preprocessor in a Jupyter kernel, no sandbox, one student after the other: what an
instructor without this course would run) against ``python -m helpers autograde --jobs N``
(sandboxed, N at a time), on the same synthetic class, measured in one run.

    python benchmarks/grading_speed.py                      # lessons 00 (example) and 03, 2 jobs
    python benchmarks/grading_speed.py --lessons 03 05 --copies 3 --jobs 2
    python benchmarks/grading_speed.py --profile --no-stock # where a submission's time goes

``--compare-all-cells`` grades the class first with ``--all-cells`` (the cells after each
notebook's last graded code cell run too, as before grading skipped them), then by default.

``--compare-template`` grades the class first without the grading template
(:mod:`helpers.grading.template`: every runner imports TensorFlow, Keras and ``helpers``
itself), then with it, in the same run.

``--profile`` prints, per lesson, the mean seconds per submission of each stage of
``helpers autograde`` (read from ``.grading/profile.jsonl``): the grading process's start,
the sandbox, the runner's imports, the cells (the slowest by name), what nbgrader does
after the cells (other preprocessors, gradebook write, exit), the audit, the gradebook
read, and the re-runs of faulty submissions. Stage times are measured inside the parallel
jobs, so they include waiting for the CPU the other job uses.

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


#: nbgrader_config.py of the stock run: the course's, with nbgrader's own preprocessors.
_STOCK_CONFIG = """
c = get_config()
c.CourseDirectory.course_id = "unet-course"
c.CourseDirectory.source_directory = "answers"
c.CourseDirectory.release_directory = "notebooks"
c.Execute.timeout = 900
c.Execute.interrupt_on_timeout = True
c.OverwriteCells.add_missing_cells = True
"""


def print_profile(path: Path, top: int = 3) -> None:
    """Print the stage table of a ``.grading/profile.jsonl``: rows are stages, columns
    lessons, values mean seconds per submission."""
    import json
    from collections import defaultdict

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    by_lesson: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_lesson[record["lesson"]].append(record)
    order = ["process start", "sandbox", "runner imports", "cells", "nbgrader after cells", "audit",
             "gradebook read", "retries", "other", "total"]
    table: dict[str, dict[str, float]] = defaultdict(dict)
    slowest: dict[str, list[tuple[float, str]]] = {}
    for lesson, items in sorted(by_lesson.items()):
        sums: dict[str, float] = defaultdict(float)
        cells: dict[str, float] = defaultdict(float)
        for item in items:
            for stage, seconds in item["stages"].items():
                if stage.startswith("cell "):
                    sums["cells"] += seconds
                    cells[stage[5:]] += seconds
                else:
                    sums[stage] += seconds
            sums["total"] += item["seconds"]
        sums["other"] = sums["total"] - sum(v for k, v in sums.items() if k != "total")
        for stage in order:
            table[stage][lesson] = sums.get(stage, 0.0) / len(items)
        slowest[lesson] = sorted(((v / len(items), k) for k, v in cells.items()), reverse=True)[:top]
    lessons = sorted(by_lesson)
    width = max(8, *(len(name[:14]) for name in lessons))
    print("\nprofile of helpers autograde: mean seconds per submission by stage")
    print(f"{'stage':22s}" + "".join(f"{name[:14]:>{width + 2}s}" for name in lessons))
    for stage in order:
        print(f"{stage:22s}" + "".join(f"{table[stage][name]:{width + 2}.2f}" for name in lessons))
    for lesson in lessons:
        print(f"  slowest cells of {lesson}: "
              + ", ".join(f"{name} {seconds:.2f} s" for seconds, name in slowest[lesson]))


def stock_serial(root: Path, lessons: list[str], scale: str | None = None) -> dict[str, float]:
    """Seconds that stock ``nbgrader autograde`` (its own Execute, a Jupyter kernel, no
    sandbox, serial) takes for each of ``lessons`` in a copy of the course ``root``, at the
    course scale ``scale`` (default: the grading scale both ways use)."""
    stock = root.parent / "stock"
    shutil.rmtree(stock, ignore_errors=True)
    stock.mkdir()
    for name in ("answers", "notebooks", "submitted"):
        shutil.copytree(root / name, stock / name)
    shutil.copy(root / "gradebook.db", stock / "gradebook.db")  # the assignments and students
    (stock / "nbgrader_config.py").write_text(_STOCK_CONFIG, encoding="utf-8")
    env = grading._tool_env()
    if scale is not None:
        env["UNET_COURSE_SCALE"] = scale
    seconds = {}
    for name in lessons:  # one process grades the lesson's students in turn
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--force"], cwd=stock,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds[name] = time.perf_counter() - started
    graded = sum(1 for _ in (stock / "autograded").glob("*/*/*.ipynb"))
    if not graded:
        print("warning: stock nbgrader graded nothing (see its log in a manual run)", file=sys.stderr)
    return seconds


def print_lessons(stock: dict[str, float], path: Path, jobs: int, sizes: dict[str, int]) -> None:
    """Per lesson: stock serial seconds per submission against helpers' (the mean time of a
    submission inside the parallel run, from ``.grading/profile.jsonl``, divided by the jobs
    that ran side by side: its share of the wall clock), and their ratio."""
    import json
    from collections import defaultdict

    inside: dict[str, list[float]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            record = json.loads(line)
            inside[record["lesson"]].append(record["seconds"])
    print("\nper lesson, seconds per submission (helpers: time inside the parallel run / jobs)")
    print(f"{'lesson':22s}{'stock serial':>14s}{'helpers':>10s}{'ratio':>8s}")
    for name, seconds in stock.items():
        if inside.get(name):
            ours = sum(inside[name]) / len(inside[name]) / jobs
            print(f"{name:22s}{seconds / sizes[name]:14.1f}{ours:10.1f}{seconds / sizes[name] / ours:8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", default=["00", "03"], help="lesson numbers (00: the example)")
    parser.add_argument("--copies", type=int, default=2, help="copies of the 4-notebook class per lesson")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", action="store_true", help="print the stage table of helpers autograde")
    parser.add_argument("--compare-old", action="store_true",
                        help="also grade with one nbgrader process per submission (the path before "
                             "the long-lived workers) and print its profile")
    parser.add_argument("--compare-template", action="store_true",
                        help="also grade without the grading template (every runner imports TensorFlow, "
                             "Keras and helpers itself) and print its profile")
    parser.add_argument("--compare-all-cells", action="store_true",
                        help="also grade running every cell (--all-cells: the cells after each "
                             "notebook's last graded code cell too, as before they were skipped)")
    parser.add_argument("--stock-scale", default=None,
                        help="UNET_COURSE_SCALE of the stock run (default: the grading scale of both runs; "
                             "1: the notebooks' own defaults, as plain nbgrader without this course's "
                             "grading scale runs them)")
    parser.add_argument("--no-stock", dest="stock", action="store_false",
                        help="skip stock nbgrader (when only the profile is wanted)")
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
        sizes = {name: build_class(root, name, args.copies) for name in lessons}
        total = sum(sizes.values())
        grading.collect(root / "submissions", root=root, quiet=True)
        grading.prepare_grading_data(root, lessons, {})
        print(f"{total} submissions of {', '.join(lessons)}; {args.jobs} job(s) in parallel")

        stock = stock_serial(root, lessons, args.stock_scale) if args.stock else {}
        if args.stock:
            print(f"stock nbgrader at UNET_COURSE_SCALE={args.stock_scale or os.environ['UNET_COURSE_SCALE']}, "
                  f"helpers at {os.environ['UNET_COURSE_SCALE']}")
        serial = sum(stock.values()) / total if args.stock else None

        def seconds_per_submission(title: str | None, **options) -> float:
            """Grade the class once with ``options``; print its profile under ``title``."""
            started = time.perf_counter()
            grading.autograde(root=root, quiet=True, jobs=args.jobs, **options)
            seconds = (time.perf_counter() - started) / total
            if args.profile and title:
                print(f"\n[{title}]", end="")
                print_profile(root / grading.PROFILE_FILE)
                print()
            return seconds

        old = (seconds_per_submission("one nbgrader process per submission", reuse_workers=False)
               if args.compare_old else None)
        fresh = (seconds_per_submission("no grading template: every runner imports its libraries", template=False)
                 if args.compare_template else None)
        every = (seconds_per_submission("every cell run (--all-cells)", all_cells=True)
                 if args.compare_all_cells else None)
        parallel = seconds_per_submission(None)
        if serial is not None:
            print(f"stock nbgrader autograde, serial : {serial:6.1f} s per submission")
        if old is not None:
            print(f"helpers, one nbgrader per subm.  : {old:6.1f} s per submission "
                  f"(ratio to the workers: {old / parallel:.2f})")
        if fresh is not None:
            print(f"helpers, no grading template     : {fresh:6.1f} s per submission "
                  f"(ratio to the template: {fresh / parallel:.2f})")
        if every is not None:
            print(f"helpers, every cell run          : {every:6.1f} s per submission "
                  f"(ratio to skipping the ungraded tail: {every / parallel:.2f})")
        print(f"helpers autograde --jobs {args.jobs:<2d}      : {parallel:6.1f} s per submission")
        if serial is not None:
            print(f"ratio stock serial / helpers      : {serial / parallel:6.2f}  (goal: 6)")
        print(f"100 students x 8 lessons at the helpers rate of this mix: ~{800 * parallel / 3600:.2f} h "
              f"(projection; goal: 1 h)")
        if args.profile:
            print_profile(root / grading.PROFILE_FILE)
        if stock:
            print_lessons(stock, root / grading.PROFILE_FILE, args.jobs, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
