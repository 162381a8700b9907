"""The layout by audience: the learner library in helpers/, the instructor's grading in
helpers/grading/, the course tooling in helpers/tools/.

Pins what a move could silently break: the folder-relative constants that must name the
``helpers`` package root (the sandbox binds it read-only and puts its parent first on the
runner's path; the guard trusts it; the audit indexes every module under it), the tool
rules of the guard, and the one-release shims of moved modules.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[2]
HELPERS_DIR = Path(helpers.__file__).resolve().parent


def test_helpers_is_the_package_root_of_the_repository():
    assert HELPERS_DIR == ROOT / "helpers"


def test_grading_constants_name_the_helpers_package_root():
    from helpers.grading import audit, guard, sandbox

    assert sandbox._HELPERS_DIR == HELPERS_DIR
    assert guard._HELPERS_DIR == HELPERS_DIR
    assert str(HELPERS_DIR) in guard._trusted_prefixes()
    assert HELPERS_DIR in sandbox._python_roots()
    # the launcher and the runner put the folder above helpers/ first on sys.path
    assert repr(str(ROOT)) in sandbox.launcher_command(Path("/nonexistent"))[3]
    assert repr(str(ROOT)) in sandbox.runner_command()[2]
    # the audit's index covers the whole package, not only helpers/grading/
    index = audit._helpers_index()
    assert {"helpers.metrics", "helpers.losses", "helpers.data.io", "helpers.grading.sandbox"} <= index.modules
    assert {"dice_coefficient", "dice_loss"} <= index.references


def test_launcher_and_runner_import_the_moved_sandbox():
    from helpers.grading import sandbox

    for command in (sandbox.launcher_command(Path("/nonexistent")), sandbox.runner_command()):
        code = next(arg for arg in command if "import" in arg)
        # the package's modules (the launcher enters through the template, which builds on
        # the sandbox), never an old top-level shim such as helpers.grading_sandbox
        assert re.search(r"from helpers\.grading\.(sandbox|template) import", code), code


@pytest.mark.parametrize("name, tool", [
    ("helpers.grading", True), ("helpers.grading.runner", True), ("helpers.grading.guard", True),
    ("helpers.grading.sandbox", True), ("helpers.grading_execute", True), ("helpers.grading_feedback", True),
    ("helpers.tools", True), ("helpers.tools.cli", True), ("helpers.tools.bootstrap", True),
    ("helpers.__main__", True), ("helpers.data.__main__", True), ("helpers.config", True), ("helpers.course", True),
    ("helpers.metrics", False), ("helpers.losses", False), ("helpers.data.io", False), ("helpers.checks", False),
    ("helpers.generator", False), ("helpers.challenge", False),
])
def test_tool_modules_follow_prefix_rules(name, tool):
    from helpers.grading.guard import is_tool_module

    assert is_tool_module(name) is tool


def test_the_guard_imports_no_tool_module_into_a_graded_process():
    code = ("import sys\nfrom helpers.grading import guard\nbefore = set(sys.modules)\n"
            "failed = guard.import_all_helpers()\n"
            "print(' '.join(sorted(m for m in set(sys.modules) - before if m.startswith('helpers'))))\n"
            "print('FAILED', failed)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = set(result.stdout.splitlines()[0].split())
    # the packages are imported to walk them (their __init__ only, which does nothing); no
    # grading or tooling module, no shim and no command line (config: lesson modules use it)
    tools = {name for name in imported
             if name.startswith(("helpers.grading", "helpers.tools")) or name.endswith("__main__")}
    tools -= {"helpers.grading", "helpers.tools"}
    assert not tools, f"import_all_helpers imported tool modules: {sorted(tools)}"
    assert "helpers.metrics" in imported and "helpers.checks" in imported


@pytest.mark.parametrize("old, new", [("helpers.grading_execute", "helpers.grading.execute"),
                                      ("helpers.grading_feedback", "helpers.grading.feedback")])
def test_shims_are_the_moved_modules(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        shim = importlib.import_module(old)
    assert shim is importlib.import_module(new)


def test_an_old_nbgrader_config_still_loads():
    """A course root's copy of nbgrader_config.py from before the move imports the shims."""
    code = ("import warnings\nwarnings.simplefilter('ignore', DeprecationWarning)\n"
            "from helpers.grading_feedback import SafeExtractorPlugin, SafeFeedbackExporter\n"
            "from helpers.grading_execute import GradingExecute\n"
            "from helpers.grading import execute, feedback\n"
            "assert GradingExecute is execute.GradingExecute\n"
            "assert SafeExtractorPlugin is feedback.SafeExtractorPlugin\n"
            "assert SafeFeedbackExporter is feedback.SafeFeedbackExporter\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_imports_the_shims():
    """The shims are for copies of nbgrader_config.py outside the repository only."""
    shims = {"helpers.grading_execute", "helpers.grading_feedback"}
    for path in [*ROOT.glob("helpers/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"),
                 ROOT / "nbgrader_config.py"]:
        if path.name == Path(__file__).name:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = {node.module or ""} | {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                continue
            assert not names & shims, f"{path.relative_to(ROOT)}:{node.lineno} imports {sorted(names & shims)}"


def test_tooling_constants_name_the_repository():
    from helpers import config
    from helpers.tools import bootstrap, runner

    assert bootstrap.REPO_ROOT == config.REPO_ROOT == ROOT
    assert bootstrap.PYPROJECT == ROOT / "pyproject.toml" and bootstrap.VENV_DIR == ROOT / ".venv"
    assert runner.ANSWERS_DIR == ROOT / "answers"


def test_python_m_helpers_is_the_tools_cli():
    import helpers.__main__ as entry
    from helpers.tools import cli

    assert entry.main is cli.main
    result = subprocess.run([sys.executable, "-m", "helpers", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "python -m helpers" in result.stdout, result.stderr


def test_python_m_helpers_hosted_still_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "helpers.hosted", "99_no_such_lesson"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "0 notebook(s) changed" in result.stdout, result.stderr
    sys.modules.pop("helpers.hosted", None)
    with pytest.warns(DeprecationWarning, match=r"helpers\.tools\.hosted"):
        shim = importlib.import_module("helpers.hosted")
    assert shim is importlib.import_module("helpers.tools.hosted")


def test_course_keeps_the_lesson_api_and_forwards_moved_names():
    from helpers import course
    from helpers.tools import kernels, runner

    assert {"Lesson", "QUALITY_BARS", "TIME_BUDGET_MINUTES", "CAPSTONE_LESSONS", "summary_dir"} <= set(vars(course))
    with pytest.warns(DeprecationWarning, match=r"helpers\.tools\.kernels\.apply_kernel_env"):
        assert course.apply_kernel_env is kernels.apply_kernel_env
    with pytest.warns(DeprecationWarning, match=r"helpers\.tools\.runner\.summary_table"):
        assert course.summary_table is runner.summary_table
    with pytest.raises(AttributeError):
        course.no_such_name  # noqa: B018


def test_package_discovery_includes_the_subpackages():
    """pyproject.toml's [tool.setuptools.packages.find] picks every folder of helpers/ that
    holds Python code, helpers/grading/ and helpers/tools/ included (a wheel has them all)."""
    import fnmatch

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    folders = {path.parent for path in HELPERS_DIR.rglob("*.py") if "__pycache__" not in path.parts}
    for folder in folders:
        name = ".".join(folder.relative_to(ROOT).parts)
        assert (folder / "__init__.py").is_file(), f"{name} has no __init__.py: setuptools would leave it out"
        assert any(fnmatch.fnmatchcase(name, pattern) for pattern in include), f"{name} is not packaged"
    assert {HELPERS_DIR / "grading", HELPERS_DIR / "tools"} <= folders
    tracked = subprocess.run(["git", "ls-files", "helpers"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    data_files = [name for name in tracked if not name.endswith(".py")]
    assert not data_files, f"helpers/ tracks data files {data_files}: declare them as package data in pyproject.toml"
