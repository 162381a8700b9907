"""Tests for helpers/tools/bootstrap.py and the thin CLI on top of it (helpers/tools/cli.py, helpers/__main__.py).

Environments are thrown away after each test: fake prefixes in tmp_path, a fake
``subprocess.run`` that records the pip commands instead of running them, and one real
``venv`` (without pip) for the rebuild of a half-built ``.venv``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from helpers.tools import bootstrap as _bootstrap
from helpers.tools import cli
from helpers.tools.bootstrap import BootstrapError, Environment

ROOT = Path(__file__).resolve().parents[2]


class FakeRun:
    """Stands in for subprocess.run: records commands, answers with ``returncode``."""

    def __init__(self, returncode=0, pip_works=True):
        self.commands: list[list[str]] = []
        self.returncode = returncode
        self.pip_works = pip_works

    def __call__(self, command, **kwargs):
        self.commands.append([str(part) for part in command])
        if command[-2:] == ["pip", "--version"]:
            return subprocess.CompletedProcess(command, 0 if self.pip_works else 1)
        return subprocess.CompletedProcess(command, self.returncode)

    @property
    def installs(self):
        return [c for c in self.commands if "install" in c]


@pytest.fixture
def course_venv(tmp_path, monkeypatch):
    """The repository's .venv moved into tmp_path; no installation variables set."""
    monkeypatch.setattr(_bootstrap, "VENV_DIR", tmp_path / ".venv")
    monkeypatch.delenv(_bootstrap.SKIP_INSTALL, raising=False)
    monkeypatch.delenv(_bootstrap.UNPINNED, raising=False)
    return tmp_path / ".venv"


def fake_env(tmp_path, kind, name="env"):
    prefix = tmp_path / name
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    python = prefix / "bin" / "python"
    python.write_text("")
    return Environment(prefix, python, kind)


# ------------------------------------------------------------------- Python version

@pytest.mark.parametrize("version, ok", [
    ((3, 9, 18), False), ((3, 10, 11), False), ((3, 10, 12), True), ((3, 11, 7), True),
    ((3, 12, 9), True), ((3, 13, 0), False), ((3, 13, 1), False)])
def test_requires_python_is_read_from_pyproject_and_checked(version, ok):
    assert _bootstrap.requires_python() == ">=3.10.12,<3.13"
    assert _bootstrap.python_satisfies(_bootstrap.requires_python(), version) is ok
    if ok:
        _bootstrap.check_python(version, has_tar_filter=True)
    else:
        with pytest.raises(BootstrapError, match=r"needs Python >=3\.10\.12,<3\.13"):
            _bootstrap.check_python(version, has_tar_filter=True)


def test_python_without_tar_filters_is_refused_before_anything_is_built(course_venv, monkeypatch):
    with pytest.raises(BootstrapError, match="tarfile.data_filter"):
        _bootstrap.check_python((3, 11, 2), has_tar_filter=False)
    real_check = _bootstrap.check_python
    monkeypatch.setattr(_bootstrap, "check_python", lambda: real_check((3, 9, 0), True))
    run = FakeRun()
    with pytest.raises(BootstrapError, match="Python 3.9.0"):
        _bootstrap.ensure_environment(env=Environment(Path(sys.prefix), Path(sys.executable), "none"), run=run)
    assert run.commands == [] and not course_venv.exists()


# ------------------------------------------------------------------- classification

def test_environments_are_classified(tmp_path, course_venv):
    base = tmp_path / "miniconda3"
    (base / "conda-meta").mkdir(parents=True)
    course_conda = base / "envs" / "unet-course"
    other_conda = base / "envs" / "science"
    for prefix in (course_conda, other_conda):
        (prefix / "conda-meta").mkdir(parents=True)
    system = tmp_path / "usr"
    other_venv = tmp_path / "project" / ".venv"

    def kind(prefix, base_prefix=None, **environ):
        return _bootstrap.current_environment(str(prefix), str(base_prefix or prefix), environ,
                                              str(Path(prefix) / "bin" / "python")).kind

    assert kind(base, CONDA_PREFIX=str(base), CONDA_DEFAULT_ENV="base") == "conda-base"
    assert kind(base) == "conda-base"                          # conda base, not activated
    assert kind(course_conda, CONDA_PREFIX=str(course_conda), CONDA_DEFAULT_ENV="unet-course") == "course-conda"
    assert kind(other_conda, CONDA_PREFIX=str(other_conda), CONDA_DEFAULT_ENV="science") == "foreign"
    assert kind(other_venv, base_prefix=system) == "foreign"
    assert kind(course_venv, base_prefix=system) == "course-venv"
    assert kind(system) == "none"


# ------------------------------------------------------------------- foreign environments

@pytest.mark.parametrize("kind", ["conda-base", "foreign"])
def test_foreign_environment_without_the_course_is_refused(tmp_path, course_venv, monkeypatch, kind):
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: ["tensorflow", "nbgrader"])
    env = fake_env(tmp_path, kind)
    run = FakeRun()
    with pytest.raises(BootstrapError) as info:
        _bootstrap.ensure_environment(env=env, run=run)
    message = str(info.value)
    assert "--use-current-env" in message and "deactivate" in message and "tensorflow" in message
    assert ("conda base" in message) is (kind == "conda-base")
    assert run.commands == []
    assert not (env.prefix / _bootstrap.MARKER).exists() and not course_venv.exists()


def test_use_current_env_installs_without_upgrading_pip(tmp_path, course_venv, monkeypatch):
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: ["tensorflow"])
    env = fake_env(tmp_path, "conda-base")
    run = FakeRun()
    assert _bootstrap.ensure_environment(use_current_env=True, env=env, run=run) == env.python
    assert len(run.installs) == 1
    command = run.installs[0]
    assert command[:5] == [str(env.python), "-m", "pip", "install", "-e"]
    assert "--upgrade" not in command and not any(c == "pip" and i > 3 for i, c in enumerate(command))
    assert _bootstrap.is_installed(env.prefix)


def test_foreign_environment_that_already_has_everything_is_used_untouched(tmp_path, course_venv, monkeypatch):
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: [])
    env = fake_env(tmp_path, "foreign")
    run = FakeRun()
    assert _bootstrap.ensure_environment(env=env, run=run) == env.python
    assert run.commands == [] and not (env.prefix / _bootstrap.MARKER).exists()


def test_conda_environment_yml_route_counts_as_installed(tmp_path, course_venv, monkeypatch):
    """`conda env create -f environment.yml` installed every package: no pip (no network),
    and the marker makes the next start skip the probe."""
    probes = []
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: probes.append(1) or [])
    env = fake_env(tmp_path, "course-conda", "unet-course")
    run = FakeRun()
    assert _bootstrap.ensure_environment(env=env, run=run) == env.python
    assert run.commands == [] and _bootstrap.is_installed(env.prefix)
    assert _bootstrap.ensure_environment(env=env, run=run) == env.python
    assert probes == [1]


def test_course_conda_environment_missing_a_package_is_completed_by_pip(tmp_path, course_venv, monkeypatch):
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: ["ruff"])
    env = fake_env(tmp_path, "course-conda", "unet-course")
    run = FakeRun()
    _bootstrap.ensure_environment(env=env, run=run)
    assert len(run.installs) == 1 and "--upgrade" not in run.installs[0]


def test_missing_distributions_reads_package_metadata():
    assert _bootstrap.missing_distributions(["pytest", "surely-not-installed-unet-xyz"]) == \
        ["surely-not-installed-unet-xyz"]
    declared = _bootstrap.declared_requirements()
    assert {"tensorflow", "keras", "nbgrader", "pytest", "ruff", "tqdm", "nbformat"} <= set(declared)
    assert ("tomli" in declared) is (sys.version_info < (3, 11))


# ------------------------------------------------------------------- the course's .venv

def test_installed_course_venv_is_used_without_running_anything(course_venv):
    (course_venv / "bin").mkdir(parents=True)
    _bootstrap.venv_python(course_venv).write_text("")
    _bootstrap.mark_installed(course_venv)
    run = FakeRun()
    none = Environment(Path("/usr"), Path("/usr/bin/python3"), "none")
    assert _bootstrap.ensure_environment(env=none, run=run) == _bootstrap.venv_python(course_venv)
    assert run.commands == []


def test_half_built_venv_is_rebuilt_and_pip_upgraded_only_there(course_venv, monkeypatch):
    """A Debian Python without python3-venv leaves pyvenv.cfg and no pip: rebuild it."""
    course_venv.mkdir()
    (course_venv / "pyvenv.cfg").write_text("home = /nowhere\n")
    (course_venv / "leftover").write_text("half-built")
    real_create = _bootstrap.create_venv
    monkeypatch.setattr(_bootstrap, "create_venv",
                        lambda env_dir: real_create(env_dir, builder=venv.EnvBuilder(with_pip=False)))
    run = FakeRun()
    none = Environment(Path("/usr"), Path("/usr/bin/python3"), "none")
    python = _bootstrap.ensure_environment(env=none, run=run)
    assert python == _bootstrap.venv_python(course_venv) and python.exists()
    assert not (course_venv / "leftover").exists()
    assert [c[3:5] for c in run.installs] == [["install", "--upgrade"], ["install", "-e"]]
    assert _bootstrap.is_installed(course_venv)


def test_venv_health_needs_interpreter_and_pip(course_venv):
    assert not _bootstrap.venv_is_healthy(course_venv, run=FakeRun())
    (course_venv / "bin").mkdir(parents=True)
    (course_venv / "pyvenv.cfg").write_text("")
    _bootstrap.venv_python(course_venv).write_text("")
    assert _bootstrap.venv_is_healthy(course_venv, run=FakeRun())
    assert not _bootstrap.venv_is_healthy(course_venv, run=FakeRun(pip_works=False))


def test_venv_creation_without_ensurepip_names_the_debian_package(course_venv):
    class NoEnsurepip:
        def create(self, env_dir):
            Path(env_dir, "bin").mkdir(parents=True)
            raise subprocess.CalledProcessError(1, ["python", "-m", "ensurepip"])

    with pytest.raises(BootstrapError, match=r"apt install python3\.\d+-venv"):
        _bootstrap.create_venv(course_venv, builder=NoEnsurepip())
    assert not course_venv.exists(), "a failed creation must not leave a half-built .venv"


def test_offline_install_names_the_skip_variable(course_venv, tmp_path):
    env = fake_env(tmp_path, "course-conda", "unet-course")
    with pytest.raises(BootstrapError) as info:
        _bootstrap.pip_install(env.python, upgrade_pip=False, run=FakeRun(returncode=1))
    assert "UNET_COURSE_SKIP_INSTALL=1" in str(info.value) and "offline" in str(info.value)
    assert "UNET_COURSE_SKIP_INSTALL" in (ROOT / "docs" / "learner-guide.md").read_text(), "document the variable"


def test_skip_install_builds_nothing_with_pip(course_venv, monkeypatch, tmp_path):
    monkeypatch.setenv(_bootstrap.SKIP_INSTALL, "1")
    monkeypatch.setattr(_bootstrap, "missing_distributions", lambda: ["tensorflow"])
    env = fake_env(tmp_path, "course-conda", "unet-course")
    run = FakeRun()
    assert _bootstrap.ensure_environment(env=env, run=run) == env.python
    assert run.installs == []


def test_constraints_apply_only_to_the_python_they_were_recorded_with(monkeypatch, capsys):
    monkeypatch.delenv(_bootstrap.UNPINNED, raising=False)
    text = _bootstrap.CONSTRAINTS.read_text()
    import re

    major, minor = map(int, re.search(r"Python (\d+)\.(\d+)", text).groups())
    assert _bootstrap.constraints_args((major, minor)) == ["-c", str(_bootstrap.CONSTRAINTS)]
    assert _bootstrap.constraints_args((major, minor + 1)) == []
    assert "newest versions" in capsys.readouterr().out
    monkeypatch.setenv(_bootstrap.UNPINNED, "1")
    assert _bootstrap.constraints_args((major, minor)) == []


# ------------------------------------------------------------------- the CLI on top

def test_cli_strips_use_current_env_and_reexecutes_every_command(monkeypatch):
    seen = {}

    def fake_ensure(use_current_env=False):
        seen["use"] = use_current_env
        return Path("/elsewhere/bin/python")

    def fake_reexec(python, argv):
        seen["argv"] = argv
        return 7

    monkeypatch.delenv(_bootstrap.BOOTSTRAPPED, raising=False)
    monkeypatch.setattr(_bootstrap, "ensure_environment", fake_ensure)
    monkeypatch.setattr(_bootstrap, "reexec_inside", fake_reexec)
    assert cli.main(["data", "--use-current-env", "list"]) == 7
    assert seen == {"use": True, "argv": ["data", "list"]}


def test_quick_test_tier_selects_unit_tests_only(monkeypatch):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 1)        # one CPU: no workers
    assert cli.pytest_args(["--quick", "-x"]) == ["tests", "-m", "not slow and not browser", "-x"]
    assert cli.pytest_args(["-k", "dice"]) == ["-k", "dice"]
    assert "--quick" in (ROOT / "README.md").read_text()


def test_two_cpus_run_the_suite_on_two_workers_unless_told_otherwise(monkeypatch):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    workers = ["-n", "2", "--dist", "loadfile"]
    assert cli.pytest_args([]) == workers
    assert cli.pytest_args(["--quick", "-x"]) == workers + ["tests", "-m", "not slow and not browser", "-x"]
    for own in (["-n", "0"], ["-n0"], ["-n=3"], ["--numprocesses", "4"], ["--dist", "loadfile"],
                ["-p", "no:xdist"], ["-pno:xdist"]):
        assert cli.pytest_args(["-k", "dice", *own]) == ["-k", "dice", *own], own


def test_grading_can_still_reach_the_bootstrap_through_the_cli_module():
    assert cli.ensure_environment is _bootstrap.ensure_environment
    assert cli._reexec_inside is _bootstrap.reexec_inside
    assert cli.BOOTSTRAPPED == _bootstrap.BOOTSTRAPPED == "UNET_COURSE_BOOTSTRAPPED"


def test_data_list_reexecutes_on_a_python_without_numpy(tmp_path):
    """On a bare Python `python -m helpers data list` must not import numpy: it runs again
    inside the course environment (here a fake interpreter that records its call)."""
    record = tmp_path / "call.txt"
    fake = tmp_path / "fakeenv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$@ BOOTSTRAPPED=${_bootstrap.BOOTSTRAPPED}" > "{record}"\n')
    fake.chmod(0o755)
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None  # a bare Python: `import numpy` fails\n"
        "from helpers.tools import bootstrap as _bootstrap\n"
        f"_bootstrap.ensure_environment = lambda **kw: {str(fake)!r}\n"
        "from helpers.__main__ import main\n"
        "sys.exit(main(['data', 'list']))\n")
    environ = {k: v for k, v in os.environ.items() if k != _bootstrap.BOOTSTRAPPED}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert record.read_text().split() == ["-m", "helpers", "data", "list", "BOOTSTRAPPED=1"]


def test_bootstrap_imports_only_the_standard_library():
    code = "import sys, helpers.__main__, helpers.tools.bootstrap; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    assert not loaded & {"numpy", "keras", "tensorflow", "nbformat", "traitlets"}
