"""Packaging and repository layout: pyproject and environment.yml agree, the layout is
the documented one, CI runs the README's test command, and importing helpers does no work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli comes with the test extra (never skip)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _requirement_names(requirements):
    names = {}
    for line in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", line)
        if match and not line.startswith("-"):
            names[match.group(1).lower().replace("_", "-")] = match.group(2).replace(" ", "")
    return names


def _environment_pip_requirements():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    requirements, in_pip = [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if in_pip:
            if stripped.startswith("- "):
                requirements.append(stripped[2:].strip())
            elif stripped and not stripped.startswith("#"):
                in_pip = False
    return requirements


def _all_requirements() -> list[str]:
    """Every requirement of pyproject.toml: the learner library and all extras, without the
    course's own name (an extra that pulls in other extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [item for group in project["optional-dependencies"].values() for item in group]
    return [item for item in project["dependencies"] + extras if not item.startswith(project["name"] + "[")]


#: Import names of the instructor and lab tools, which the learner library must not need.
INSTRUCTOR_DISTRIBUTIONS = {"nbgrader", "jupyterlab", "nbformat", "nbclient", "nbconvert", "ipykernel",
                            "notebook", "bleach", "beautifulsoup4", "traitlets", "pytest", "nbval"}


def test_extras_by_audience():
    """`pip install .` is the learner library; JupyterLab, nbgrader and the test tools come with
    the extras `lab`, `instructor` and `test` (which pulls in the other two: what setup installs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    learner = set(_requirement_names(project["dependencies"]))
    assert not learner & INSTRUCTOR_DISTRIBUTIONS, f"instructor tools in the learner dependencies: {learner & INSTRUCTOR_DISTRIBUTIONS}"
    extras = project["optional-dependencies"]
    assert "jupyterlab" in _requirement_names(extras["lab"])
    assert {"nbgrader", "nbformat", "nbclient"} <= set(_requirement_names(extras["instructor"]))
    assert f"{project['name']}[lab,instructor]" in extras["test"], "the test extra must pull in lab and instructor"


def test_learner_modules_import_only_learner_dependencies():
    """Every third-party package a learner module imports (outside helpers/grading and
    helpers/tools) is a dependency of plain `pip install .`."""
    import importlib.metadata

    from support.structure import MODULES, SHIMS, TOP_PREFIXES, third_party_imports

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    learner = set(_requirement_names(project["dependencies"]))
    distributions_of = importlib.metadata.packages_distributions()
    wrong = []
    for module, path in sorted(MODULES.items()):
        if module.startswith(TOP_PREFIXES) or module in SHIMS:
            continue
        for name, line in sorted(third_party_imports(path)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("helpers", "__future__"):
                continue
            distributions = {d.lower().replace("_", "-") for d in distributions_of.get(top, [])}
            if not distributions & learner:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name} "
                             f"(from {sorted(distributions) or 'nothing installed'})")
    assert not wrong, ("learner modules import packages that `pip install .` does not declare; add them to "
                       "pyproject's dependencies or move the code to helpers/grading or helpers/tools:\n"
                       + "\n".join(wrong))


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    expected = _requirement_names(_all_requirements())
    found = _requirement_names(_environment_pip_requirements())
    assert found == expected, (
        "environment.yml and pyproject.toml disagree: "
        f"only in pyproject: {sorted(set(expected.items()) - set(found.items()))}, "
        f"only in environment.yml: {sorted(set(found.items()) - set(expected.items()))}. "
        "Edit both lists together."
    )
    assert "-e ." in _environment_pip_requirements(), "environment.yml should install the course itself (- -e .)"


def test_python_versions_match():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10.12,<3.13"
    assert "python>=3.10.12,<3.13" in (ROOT / "environment.yml").read_text()


def test_top_level_layout():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0 or not tracked.stdout:
        pytest.skip("not a git checkout")
    top = {line.split("/")[0] for line in tracked.stdout.splitlines()}
    required = {"README.md", "environment.yml", "notebooks", "answers", "helpers", "data", "tests",
                "pyproject.toml", "nbgrader_config.py", "Makefile", ".ci"}
    allowed = required | {".gitignore", "benchmarks", "docs", "LICENSE", "LICENSE-CONTENT.md", "CREDITS.md",
                          "constraints.txt"}
    assert required <= top, f"missing at top level: {sorted(required - top)}"
    assert top <= allowed, f"unexpected top-level entries: {sorted(top - allowed)}"


def test_generated_data_is_ignored_but_data_readme_is_tracked():
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert tracked.stdout.split() == ["data/README.md"]
    ignored = subprocess.run(["git", "check-ignore", "data/cxr_synthetic/images/x.png", "gradebook.db"],
                             cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == ["data/cxr_synthetic/images/x.png", "gradebook.db"]


def test_ci_runs_the_test_command_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(python3? -m helpers test)\s*$", readme, flags=re.MULTILINE)
    assert commands, "README.md should show the test command `python -m helpers test` on a line of its own"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec python3? -m helpers test\s*$", ci, flags=re.MULTILINE), \
        ".ci/run must call exactly the README's test command"


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stderr.strip() == "", f"importing {module} printed to stderr: {result.stderr[:300]}"
    return set(result.stdout.split())


@pytest.mark.parametrize("module", ["helpers", "helpers.__main__", "helpers.config", "helpers.course", "helpers.data"])
def test_light_modules_do_not_import_tensorflow(module):
    loaded = _modules_after_import(module)
    assert "tensorflow" not in loaded and "keras" not in loaded, f"{module} imports TensorFlow at import time"


def test_importing_helpers_modules_does_no_work(tmp_path):
    code = ("import importlib, pkgutil, helpers\n"
            "for info in pkgutil.walk_packages(helpers.__path__, 'helpers.'):\n"
            "    if not info.name.endswith('__main__'):\n"
            "        importlib.import_module(info.name)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**__import__("os").environ, config.DATA_VARIABLE: str(tmp_path / "data"),
                                 "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "", f"importing helpers printed: {result.stdout[:300]}"
    assert not (tmp_path / "data").exists(), "importing helpers created the data folder"


def test_scale_knob(monkeypatch):
    monkeypatch.delenv(config.SCALE_VARIABLE, raising=False)
    assert config.scale() == 1.0 and config.scaled_epochs(20) == 20
    monkeypatch.setenv(config.SCALE_VARIABLE, "0.1")
    assert config.scaled_epochs(20) == 2 and config.scaled_epochs(3) == 1
    assert config.scaled_count(400) == 40 and config.scaled_count(10, minimum=4) == 4
    assert config.runs_dir("04_training").parent.name == "runs-scale0.1"
    monkeypatch.setenv(config.SCALE_VARIABLE, "fast")
    with pytest.raises(ValueError, match="UNET_COURSE_SCALE"):
        config.scale()
    monkeypatch.setenv(config.SCALE_VARIABLE, "-1")
    with pytest.raises(ValueError, match="positive"):
        config.scale()


def test_cli_help_runs_with_the_standard_library_only():
    result = subprocess.run([sys.executable, "-I", "-m", "helpers", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for command in ("course", "test", "lab", "release", "autograde", "export"):
        assert command in result.stdout


def test_ruff_finds_nothing():
    """The rule set of [tool.ruff] in pyproject.toml holds for the whole code base."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"ruff check . found problems:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"


def test_mypy_passes_on_helpers():
    """The lenient type check of [tool.mypy] in pyproject.toml holds for helpers/ (CI's lint step)."""
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e .[test]")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"


def test_docstring_rules_cover_the_learner_modules_only():
    """ruff's pydocstyle rules (google convention) apply to helpers/*.py, helpers/data and helpers/checks,
    not to grading, tooling, tests or scripts; a learner function without a docstring fails."""
    import textwrap

    probe = textwrap.dedent('''\
        """A module."""


        def undocumented(x):
            return x
    ''')
    for path, expected in (("helpers/metrics.py", 1), ("helpers/checks/metrics.py", 1), ("helpers/data/io.py", 1),
                           ("helpers/grading/audit.py", 0), ("helpers/tools/cli.py", 0), ("tests/test_x.py", 0)):
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "D103",
                                 "--stdin-filename", path, "-"], cwd=ROOT, input=probe, capture_output=True, text=True)
        assert result.stdout.count("D103") == expected, (path, result.stdout)


def _constraints():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_constraints_pin_every_declared_dependency_within_its_bounds():
    """constraints.txt (the tested set the bootstrap installs) covers every dependency of
    pyproject.toml with an exact version that the declared lower bound admits."""
    pins = _constraints()
    assert all(re.fullmatch(r"[\w.+!-]+", version) for version in pins.values()), "only exact pins (name==version)"
    for requirement in _all_requirements():
        if "python_version" in requirement:
            continue                                    # e.g. tomli, only below Python 3.11
        name, bound = re.match(r"([A-Za-z0-9_.\-]+)>=([\d.]+)", requirement).groups()
        key = name.lower().replace("_", "-")
        assert key in pins, f"constraints.txt does not pin {name}: regenerate it (see its header)"
        assert _version(pins[key]) >= _version(bound), f"{name}=={pins[key]} is below {requirement}"
    assert "unet-course" not in pins, "constraints.txt must not pin the course itself"



def test_licences_and_credits():
    """MIT for the code (SPDX in pyproject.toml), CC BY 4.0 for the lesson text, and
    CREDITS.md naming every data set the course can read with its licence and citation."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()
    from helpers.data import catalogue

    credits = (ROOT / "CREDITS.md").read_text()
    for entry in catalogue.DATASETS.values():
        for text in (entry.title, entry.homepage, entry.licence, entry.citation):
            assert text in credits, f"CREDITS.md does not say {text!r} ({entry.name}): copy it from helpers/data/catalogue.py"
