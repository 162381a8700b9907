"""Tests of helpers/tools/hosted.py: the "Open in Colab" / "Binder" badges and the hosted set-up
cell of every lesson, and environment.yml as repo2docker (Binder) reads it."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import types
import urllib.parse
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from helpers import config
from helpers.tools import hosted

REPO_ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.name for p in (REPO_ROOT / "answers").iterdir() if (p / f"{p.name}.ipynb").is_file())
NOTEBOOKS = [REPO_ROOT / folder / lesson / f"{lesson}.ipynb" for folder in ("answers", "notebooks")
             for lesson in LESSONS]
HOSTED_SIGNS = ("BINDER_LAUNCH_HOST", hosted.HOSTED_VARIABLE)
#: Python that repo2docker's conda build pack uses when environment.yml pins none
#: (``major_pythons = {"3": "3.10"}`` in repo2docker/buildpacks/conda/__init__.py).
REPO2DOCKER_DEFAULT_PYTHON = (3, 10)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _run_setup_cell(source: str) -> tuple[dict, str]:
    namespace: dict = {}
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(source, "<hosted set-up cell>", "exec"), namespace)
    return namespace, out.getvalue()


@pytest.fixture
def local_runtime(monkeypatch):
    for name in HOSTED_SIGNS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    return calls


def test_every_lesson_has_the_setup_cell_right_after_its_title_cell():
    assert len(LESSONS) == 11           # 00 start here, lessons 01-08, the capstone 09, 10 where next
    for path in NOTEBOOKS:
        cells = _cells(path)
        assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
        assert cells[1]["cell_type"] == "code", path
        assert "".join(cells[1]["source"]) == hosted.setup_cell_source(), \
            f"{path}: the set-up cell differs from helpers.tools.hosted: run python -m helpers.tools.hosted and release"


def test_setup_cell_does_nothing_locally(local_runtime):
    namespace, printed = _run_setup_cell(hosted.setup_cell_source())
    assert namespace["HOSTED"] is False
    assert printed == ""
    assert local_runtime == [], "no pip install on a local machine"


def test_setup_cell_on_colab_installs_the_repository(local_runtime, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "helpers" else real_find_spec(name, *a))
    namespace, printed = _run_setup_cell(hosted.setup_cell_source())
    assert namespace["HOSTED"] is True
    assert len(local_runtime) == 1
    command = local_runtime[0][0][0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-1] == f"git+{config.REPOSITORY_URL}@{config.REPOSITORY_BRANCH}"
    assert local_runtime[0][1].get("check") is True
    assert "Installing the course" in printed
    assert f"data folder: {config.data_dir()}" in printed


def test_setup_cell_on_binder_uses_the_installed_course(local_runtime, monkeypatch):
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    namespace, printed = _run_setup_cell(hosted.setup_cell_source())
    assert namespace["HOSTED"] is True
    assert local_runtime == [], "repo2docker installed the course from environment.yml already"
    assert printed.strip() == f"Hosted runtime: the course is installed; data folder: {config.data_dir()}"


def test_hosted_variable_zero_means_local(local_runtime, monkeypatch):
    monkeypatch.setenv(hosted.HOSTED_VARIABLE, "0")
    namespace, printed = _run_setup_cell(hosted.setup_cell_source())
    assert namespace["HOSTED"] is False and printed == ""


def test_every_badge_points_at_the_lesson_notebook():
    owner_repo = urllib.parse.urlparse(config.REPOSITORY_URL).path.strip("/")
    for path in NOTEBOOKS:
        lesson = path.stem
        title = "".join(_cells(path)[0]["source"])
        links = re.findall(r"\[!\[([^\]]+)\]\(([^)]+)\)\]\(([^)]+)\)", title)
        assert [label for label, _, _ in links] == ["Open In Colab", "Binder"], f"{path}: {links}"
        colab, binder = (urllib.parse.urlparse(url) for _, _, url in links)
        expected = f"notebooks/{lesson}/{lesson}.ipynb"
        assert (REPO_ROOT / expected).is_file()
        assert colab.netloc == "colab.research.google.com"
        assert colab.path == f"/github/{owner_repo}/blob/{config.REPOSITORY_BRANCH}/{expected}", colab.path
        assert binder.netloc == "mybinder.org"
        assert binder.path == f"/v2/gh/{owner_repo}/{config.REPOSITORY_BRANCH}"
        assert urllib.parse.parse_qs(binder.query) == {"labpath": [expected]}


def test_badges_follow_the_repository_url(monkeypatch):
    monkeypatch.setattr(config, "REPOSITORY_URL", "https://github.com/someone/fork")
    monkeypatch.setattr(config, "REPOSITORY_BRANCH", "workshop")
    assert hosted.colab_url("04_training") == ("https://colab.research.google.com/github/someone/fork/"
                                               "blob/workshop/notebooks/04_training/04_training.ipynb")
    assert hosted.binder_url("04_training") == ("https://mybinder.org/v2/gh/someone/fork/workshop"
                                                "?labpath=notebooks%2F04_training%2F04_training.ipynb")
    assert "git+https://github.com/someone/fork@workshop" in hosted.setup_cell_source()
    monkeypatch.setattr(config, "REPOSITORY_URL", "https://gitlab.com/someone/fork")
    with pytest.raises(ValueError, match="REPOSITORY_URL"):
        hosted.colab_url("04_training")


def test_apply_is_idempotent_and_replaces_old_badges(tmp_path):
    copy = tmp_path / "03_loss_and_metrics.ipynb"
    shutil.copy(REPO_ROOT / "answers" / "03_loss_and_metrics" / "03_loss_and_metrics.ipynb", copy)
    assert hosted.apply(copy) is False, "answers/ is not up to date: run python -m helpers.tools.hosted"
    cells = _cells(copy)
    first = "".join(cells[0]["source"])
    assert first.count(hosted.BADGE_MARKER) == 1
    assert sum("".join(c["source"]).startswith(hosted.SETUP_MARKER) for c in cells) == 1


def test_environment_yml_works_for_repo2docker():
    """What repo2docker's conda build pack reads (repo2docker/buildpacks/conda/__init__.py)."""
    text = (REPO_ROOT / "environment.yml").read_text()
    python_specs = re.findall(r"^\s*-\s*(python\S*)\s*$", text, flags=re.MULTILINE)
    assert len(python_specs) == 1 and python_specs[0].startswith("python>=3.10")
    # repo2docker takes the version from `python=x.y` only, else its default 3.10, which must
    # be inside requires-python
    assert re.compile(r"python\s*=+\s*([\d\.]*)").match(python_specs[0]) is None
    low, high = (tuple(int(n) for n in v.split(".")[:2]) for v in re.findall(r"\d+\.\d+(?:\.\d+)?", python_specs[0]))
    # conda resolves "3.10" to the newest 3.10.x, which satisfies a >=3.10.12 floor
    assert low <= REPO2DOCKER_DEFAULT_PYTHON < high
    pip_section = text.split("- pip:", 1)[1]
    pip_lines = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    # a local requirement (-e .) makes repo2docker install the environment after copying the
    # repository, so the course itself is installed in the Binder image
    assert "-e ." in pip_lines
    assert not (REPO_ROOT / "binder").exists() and not (REPO_ROOT / ".binder").exists(), \
        "a binder/ folder would make repo2docker ignore the top-level environment.yml"
