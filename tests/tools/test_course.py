"""The course runner's bookkeeping: lesson reports, the summary table, lesson selection."""

import json
import os

import pytest

from helpers import config, course
from helpers.tools import kernels, runner


def report(name, minutes, error=None, **metrics):
    row = {"lesson": name, "elapsed_seconds": minutes * 60, "scale": 1.0, "metrics": metrics}
    if error:
        row["error"] = error
    return row


def table_rows(reports):
    """The summary table's data rows as {lesson: line}."""
    lines = runner.summary_table(reports).splitlines()[3:]
    return {line.split()[0]: line for line in lines}


def test_format_metric_shows_counts_as_integers_and_scores_with_three_decimals():
    assert runner.format_metric(400.0) == "400"
    assert runner.format_metric(0.98234) == "0.982"
    assert runner.format_metric(1945233) == "1945233"


@pytest.mark.parametrize("minutes, below, error, expected", [
    (4.0, [], None, "ok"),
    (7.0, [], None, "over time"),
    (4.0, ["test_dice"], None, "below bar"),
    (9.0, ["test_dice"], None, "over time, below bar"),
    (1.0, [], "ZeroDivisionError in cell 3", "FAILED"),
])
def test_lesson_status_names_each_problem(minutes, below, error, expected):
    assert runner.lesson_status(minutes, 5, below, error) == expected


def test_summary_table_checks_time_budgets_and_quality_bars(monkeypatch):
    monkeypatch.delenv(config.SCALE_VARIABLE, raising=False)
    reports = {
        "04_training": report("04_training", 4.2, test_dice=0.982),
        "05_prediction": report("05_prediction", 0.1, test_dice=0.90),
        "07_liver_ct": report("07_liver_ct", 9.0, mean_fold_dice=0.90),
        "01_data_generator": report("01_data_generator", 0.2, n_pairs=400.0),
        "08_brain_tumour": report("08_brain_tumour", 2.0, error="KeyError in cell 12"),
    }
    rows = table_rows(reports)
    assert list(rows) == sorted(reports), "one row per lesson, in course order"
    assert rows["04_training"].endswith("ok")
    assert "test_dice 0.982 (>= 0.95)" in rows["04_training"]
    assert rows["05_prediction"].endswith("below bar")
    assert rows["07_liver_ct"].endswith("over time"), "lesson 07's budget is 6 minutes"
    assert "n_pairs 400 " in rows["01_data_generator"] and "400.0" not in rows["01_data_generator"]
    assert "KeyError in cell 12" in rows["08_brain_tumour"]
    assert rows["08_brain_tumour"].endswith("FAILED")
    assert runner.summary_table(reports).startswith("Course summary (scale 1)")


def test_lesson_finish_writes_the_report_that_the_table_reads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path))
    monkeypatch.delenv(config.SCALE_VARIABLE, raising=False)
    lesson = course.Lesson("06_lung_ct_3d")
    saved = lesson.finish(volumetric_dice=0.93)
    assert "Lesson 06_lung_ct_3d finished in" in capsys.readouterr().out
    path = tmp_path / "runs" / "summary" / "06_lung_ct_3d.json"
    assert json.loads(path.read_text()) == saved
    assert runner.read_reports() == {"06_lung_ct_3d": saved}
    assert "volumetric_dice 0.930 (>= 0.9)" in runner.summary_table(runner.read_reports())


def test_lesson_notebooks_selects_by_number_and_explains_a_bad_selection():
    every = runner.lesson_notebooks()
    assert [nb.parent.name[:2] for nb in every] == [f"{n:02d}" for n in range(1, len(every) + 1)]
    assert [nb.parent.name for nb in runner.lesson_notebooks(["04", "06"])] == [
        "04_training", "06_lung_ct_3d"]
    with pytest.raises(SystemExit, match="try numbers"):
        runner.lesson_notebooks(["99"])


def test_the_capstone_runs_only_when_named():
    """`course` keeps its budget for lessons 01-08; `course 09` (or `challenge baseline`) runs
    the capstone, whose time budget and quality bar the table knows."""
    assert not any(nb.parent.name in course.CAPSTONE_LESSONS for nb in runner.lesson_notebooks())
    assert [nb.parent.name for nb in runner.lesson_notebooks(["09"])] == list(course.CAPSTONE_LESSONS)
    for name in course.CAPSTONE_LESSONS:
        assert name[:2] in course.TIME_BUDGET_MINUTES and name[:2] in course.QUALITY_BARS


def stderr_cell(*lines):
    import nbformat
    cell = nbformat.v4.new_code_cell("import keras")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="".join(lines)),
                    nbformat.v4.new_output("stream", name="stdout", text="ready\n")]
    return nbformat.v4.new_notebook(cells=[cell])


def test_drop_framework_noise_keeps_what_the_lesson_writes_to_stderr():
    notebook = stderr_cell(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1795396579.057542   29624 cudart_stub.cc:31] Could not find cuda drivers\n",
        "E0000 00:00:1795396584.529463   29624 cuda_platform.cc:52] failed call to cuInit\n",
        "training: 100%|##########| 35/35\n")
    assert runner.drop_framework_noise(notebook) == 3
    outputs = notebook.cells[0].outputs
    assert [o.name for o in outputs] == ["stderr", "stdout"]
    assert outputs[0].text == "training: 100%|##########| 35/35\n"
    only_noise = stderr_cell("I0000 00:00:1795396579.057542   29624 cudart_stub.cc:31] no GPU\n")
    runner.drop_framework_noise(only_noise)
    assert [o.name for o in only_noise.cells[0].outputs] == ["stdout"], "empty stderr is dropped"


@pytest.mark.parametrize("path", runner.lesson_notebooks(), ids=lambda path: path.parent.name)
def test_committed_answer_outputs_carry_no_tensorflow_start_up_logs(path):
    import nbformat
    notebook = nbformat.read(path, as_version=4)
    assert runner.drop_framework_noise(notebook) == 0, (
        f"{path.name} has TensorFlow C++ log lines in its saved outputs; re-run it with "
        f"`python -m helpers course {path.parent.name[:2]} --update-answers`")


def test_kernel_env_adds_the_course_settings_but_never_overrides_the_users():
    env = kernels.kernel_env({"PATH": "/bin", "TF_CPU_ALLOCATOR_USE_BFC": "0"})
    assert env["PATH"] == "/bin"
    assert env["TF_CPU_ALLOCATOR_USE_BFC"] == "0", "a value the user set must win"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == kernels.KERNEL_ENV["TF_CPP_MIN_LOG_LEVEL"]


def test_kernels_started_for_grading_get_the_course_settings(monkeypatch):
    from helpers.grading import commands as grading

    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    assert grading._tool_env()["TF_CPU_ALLOCATOR_USE_BFC"] == "1"
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "0")
    assert grading._tool_env()["TF_CPU_ALLOCATOR_USE_BFC"] == "0"


def test_apply_kernel_env_fills_only_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    kernels.apply_kernel_env()
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "1"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1", "a value the user set must win"


# ---------------------------------------------------------------- a quiet console

NOISE = "I0000 00:00:1.5 123 cudart_stub.cc:31] Could not find cuda drivers"


def _tiny_lesson(root, name, code):
    import nbformat

    folder = root / name
    folder.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(notebook, folder / f"{name}.ipynb")


def _course_in(tmp_path, monkeypatch):
    answers = tmp_path / "answers"
    monkeypatch.setattr(runner, "ANSWERS_DIR", answers)
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    monkeypatch.delenv(config.SCALE_VARIABLE, raising=False)
    return answers


def test_course_prints_one_line_per_lesson_and_logs_the_kernel_noise(tmp_path, monkeypatch, capsys):
    """The kernels' console output goes to the log (stand-in for a kernel here), the
    console gets one line per lesson and the table."""
    answers = _course_in(tmp_path, monkeypatch)
    for name in ("01_one", "02_two"):
        _tiny_lesson(answers, name, "pass")

    def fake_execute(path, output, timeout=1200, log=None):
        with open(log, "a") as stream:
            stream.write(f"{NOISE}\n[IPKernelApp] WARNING | Kernel is running over TCP without encryption.\n")
        if path.parent.name == "02_two":
            raise RuntimeError("cell 3 raised\nValueError: boom")
        folder = course.summary_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{path.parent.name}.json").write_text(json.dumps(report(path.parent.name, 1, score=0.5)))

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    assert runner.main(jobs=1) == 1
    out = capsys.readouterr()
    lesson_lines = [line for line in out.out.splitlines() if "01_one" in line or "02_two" in line]
    assert lesson_lines[:3] == ["[01_one] started", "[01_one] done in 0 s", "[02_two] started"]
    assert lesson_lines[3].startswith("[02_two] FAILED after 0 s: ValueError: boom (executed notebook: ")
    assert lesson_lines[4:] == [line for line in lesson_lines[4:] if line.startswith(("01_one ", "02_two "))]
    assert "ValueError: boom" in out.out and out.err == ""
    assert "cudart" not in out.out and "without encryption" not in out.out
    log = runner.log_path()
    assert log.parent == config.runs_dir() and log.read_text().count("cudart_stub") == 2
    assert "Course summary" in out.out and str(log) in out.out


@pytest.mark.slow
def test_real_kernel_start_up_noise_goes_to_the_log(tmp_path, monkeypatch, capfd):
    """A real kernel: what it writes to its own stderr (as TensorFlow's C++ runtime does)
    reaches course.log, not the console; the notebook's outputs are kept."""
    import nbformat

    answers = _course_in(tmp_path, monkeypatch)
    _tiny_lesson(answers, "01_noisy", f"import os\nos.write(2, b'{NOISE}\\n')\nprint('cell output')")
    assert runner.main(["01"]) == 0
    console = capfd.readouterr()
    assert "cudart_stub" not in console.out + console.err
    assert "without encryption" not in console.out + console.err
    lesson_lines = [line for line in console.out.splitlines() if line.startswith("[01_noisy]")]
    assert lesson_lines[0] == "[01_noisy] started" and lesson_lines[1].startswith("[01_noisy] done in ")
    assert len(lesson_lines) == 2
    assert "cudart_stub" in runner.log_path().read_text()
    executed = nbformat.read(config.runs_dir() / "executed" / "01_noisy.ipynb", as_version=4)
    assert "cell output" in "".join(o.get("text", "") for o in executed.cells[0].outputs)


def test_one_kernelspec_carries_the_kernel_settings(tmp_path):
    """setup installs the course kernel (python3, with KERNEL_ENV) into the environment;
    the lab and the grading kernel start from the same spec."""
    import json

    from helpers.tools import lab

    folder = kernels.install_kernelspec(tmp_path)
    assert folder == tmp_path / "share" / "jupyter" / "kernels" / "python3"
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec == kernels.kernelspec()
    assert spec["env"] == kernels.KERNEL_ENV and spec["argv"][1:3] == ["-m", "ipykernel_launcher"]
    assert lab.KERNEL_NAME == kernels.KERNEL_NAME == "python3"


def test_the_reading_lessons_run_only_when_named():
    """00 (start here) and 10 (where next) train nothing: `course` leaves them out, `course 00`
    runs them; they have no time budget or quality bar, and the summary table copes with them."""
    default = [nb.parent.name for nb in runner.lesson_notebooks()]
    assert not set(course.READING_LESSONS) & set(default)
    for name in course.READING_LESSONS:
        assert [nb.parent.name for nb in runner.lesson_notebooks([name[:2]])] == [name]
        assert name[:2] not in course.TIME_BUDGET_MINUTES and name[:2] not in course.QUALITY_BARS
    table = runner.summary_table({"00_start_here": {"lesson": "00_start_here", "elapsed_seconds": 3.0,
                                                    "metrics": {}}})
    assert "00_start_here" in table and table.rstrip().endswith("ok")


def test_lesson_time_table_reads_budgets_and_each_lessons_time_line(tmp_path):
    import nbformat

    for name, header in (("01_one", "# 01 · One\n\n**Time** — about 40 min in class,\nunder a minute of compute.\n\nMore."),
                         ("00_zero", "# 00 · Zero\n\nNo time line.")):
        (tmp_path / name).mkdir()
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(header)])
        nbformat.write(nb, tmp_path / name / f"{name}.ipynb")
    assert course.lesson_time_rows(tmp_path) == [
        ("00_zero", "-", "-"), ("01_one", f"{course.TIME_BUDGET_MINUTES['01']} min",
                                "about 40 min in class, under a minute of compute.")]
    lines = course.lesson_time_table(tmp_path).splitlines()
    assert lines[0].split()[:3] == ["lesson", "compute", "budget"] and set(lines[1]) == {"-", " "}


def test_start_here_prints_the_current_time_table():
    """Lesson 00's committed output is the table that helpers/course.py and the lessons' **Time**
    lines give now: a changed budget or Time line means re-running `python -m helpers course 00
    --update-answers` (and the release)."""
    import nbformat

    path = course.ANSWERS_DIR / "00_start_here" / "00_start_here.ipynb"
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and "course.lesson_time_table()" in c.source]
    assert len(cells) == 1
    printed = "".join(o.get("text", "") for o in cells[0].outputs if o.get("output_type") == "stream")
    assert printed == course.lesson_time_table() + "\n", (
        "answers/00_start_here shows an old lesson time table: run `python -m helpers course 00 "
        "--update-answers` and `python -m helpers release 00`")


def test_the_manifest_says_what_each_lesson_needs_from_earlier_ones():
    """Lesson 05 loads lesson 04's model: grading prepares it and copies it into every sandbox
    because the manifest says so (no lesson-number special cases in helpers/grading)."""
    assert course.lesson_spec("05").needs == ("04_training/best.keras",)
    assert course.needs_of(["05_prediction", "03"]) == ("04_training/best.keras",)
    assert course.needs_of(["01", "00_example"]) == ()       # a fixture lesson the manifest does not know
    assert "04_training/best.keras" in course.RUN_ARTEFACTS
    with pytest.raises(KeyError, match="the lessons are"):
        course.lesson_spec("42")
    grading_code = "".join(path.read_text() for path in (course.config.REPO_ROOT / "helpers" / "grading").glob("*.py"))
    assert 'startswith("05")' not in grading_code


def test_two_lessons_run_side_by_side_one_thread_each_and_05_waits_for_04(tmp_path, monkeypatch, capsys):
    """``--jobs 2`` on two CPUs: two kernels at a time, each told to use one thread, the long
    chain (04, then 05 that loads its model) first, and 05 only after 04 has ended."""
    import threading
    import time

    answers = _course_in(tmp_path, monkeypatch)
    for name in ("03_loss_and_metrics", "04_training", "05_prediction", "06_lung_ct_3d"):
        _tiny_lesson(answers, name, "pass")
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    for variable in runner.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(runner, "recorded_seconds", lambda: {"04_training": 150, "05_prediction": 20,
                                                             "06_lung_ct_3d": 80, "03_loss_and_metrics": 20})
    spans, running, most, lock = {}, set(), [0], threading.Lock()

    def fake_execute(path, output, timeout=1200, log=None):
        name = path.parent.name
        assert all(os.environ[variable] == "1" for variable in runner.THREAD_VARIABLES)
        with lock:
            running.add(name)
            most[0] = max(most[0], len(running))
        started = time.monotonic()
        time.sleep(0.3 if name == "04_training" else 0.1)
        with lock:
            running.discard(name)
        spans[name] = (started, time.monotonic())
        folder = course.summary_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(report(name, 1)))

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    assert runner.main() == 0
    out = capsys.readouterr().out
    assert "4 lessons, 2 at a time, 1 CPU thread(s) each" in out
    assert most[0] == 2                                               # side by side
    assert spans["05_prediction"][0] >= spans["04_training"][1]       # after the model it loads
    started = [line.split("]")[0][1:] for line in out.splitlines() if line.endswith("] started")]
    assert started[:2] == ["04_training", "06_lung_ct_3d"]             # longest chain first
    assert runner.main(jobs=1) == 0 and "at a time" not in capsys.readouterr().out


def test_lesson_order_puts_a_lesson_before_those_that_need_it():
    seconds = {"04_training": 100, "05_prediction": 10, "08_brain_tumour": 105, "01_data_generator": 3}
    names = ["01_data_generator", "04_training", "05_prediction", "08_brain_tumour"]
    assert runner.lesson_order(names, seconds) == ["04_training", "08_brain_tumour", "05_prediction",
                                                   "01_data_generator"]
    assert runner.lesson_order(names, {}) == names                    # unknown: course order
    assert runner.lesson_needs("05_prediction") == {"04_training"} and runner.lesson_needs("01_x") == set()


def test_share_threads_splits_the_cpus_and_keeps_a_value_the_user_set(monkeypatch):
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: 8)
    for variable in kernels.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert kernels.share_threads(2, {}) == {variable: "4" for variable in kernels.THREAD_VARIABLES}
    assert kernels.share_threads(16, {})["OMP_NUM_THREADS"] == "1"                  # at least one
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    env = kernels.share_threads(2, {"OMP_NUM_THREADS": "2"})
    assert env == {"TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "4", "OMP_NUM_THREADS": "2"}
