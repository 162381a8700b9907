"""How ``python -m helpers test`` splits the suite over two pytest-xdist workers
(``tests/conftest.py``'s scheduler, ``tests/support/course.py``'s work units)."""

import pytest

from helpers import course
from support.course import COURSE_ROOT_FILES, FIRST_GROUPS, REPO_ROOT, worker_group


def test_a_notebook_is_one_unit_and_a_lesson_joins_the_one_whose_run_it_needs():
    assert worker_group("answers/01_data_generator/01_data_generator.ipynb::Cell 0") == \
        worker_group("answers/01_data_generator/01_data_generator.ipynb::Cell 7") == "notebook-01_data_generator"
    assert worker_group("answers/05_prediction/05_prediction.ipynb::Cell 3") == "notebook-04_training"
    for spec in course.LESSONS:                    # every lesson with a need shares its unit
        for need in spec.needs:
            assert worker_group(f"answers/{spec.folder}/{spec.folder}.ipynb::Cell 0") == \
                worker_group(f"answers/{need.split('/')[0]}/x.ipynb::Cell 0")


def test_modules_stay_whole_and_the_course_root_files_share_one_unit():
    assert worker_group("tests/library/test_metrics.py::test_a[1]") == \
        worker_group("tests/library/test_metrics.py::TestB::test_c") == "module-tests/library/test_metrics.py"
    assert {worker_group(f"{path}::test_x") for path in COURSE_ROOT_FILES} == {"course-root"}
    assert all((REPO_ROOT / path).is_file() for path in COURSE_ROOT_FILES)


def test_the_long_units_that_start_first_exist():
    lessons = {spec.folder for spec in course.LESSONS}
    for group in FIRST_GROUPS:
        kind, _, name = group.partition("-")
        if kind == "notebook":
            assert name in lessons, group
        elif kind == "module":
            assert (REPO_ROOT / name).is_file(), group
        else:
            assert group == "course-root"


@pytest.mark.slow
def test_two_workers_keep_a_notebook_in_one_kernel(tmp_path):
    """A real two-worker run of a notebook whose cells depend on each other, beside a test
    module, with `--dist load`, which alone would spread single tests: every cell passes (cells
    split over two workers would raise NameError)."""
    import subprocess
    import sys

    import nbformat

    folder = tmp_path / "answers" / "01_tiny"
    folder.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"value_{i} = {i}" + (f" + value_{i - 1}" if i else ""))
                      for i in range(12)]
    nbformat.write(notebook, folder / "01_tiny.ipynb")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(
        (REPO_ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "tests" / "test_other.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', range(12))\ndef test_n(n):\n    assert n >= 0\n")
    (tmp_path / "pytest.ini").write_text(f"[pytest]\npythonpath = {REPO_ROOT / 'tests'} {REPO_ROOT}\n")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "load", "--nbval-lax", "--nbval-current-env",
         "-p", "no:cacheprovider", "-q", "tests", "answers"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "24 passed" in completed.stdout, completed.stdout[-2000:]
