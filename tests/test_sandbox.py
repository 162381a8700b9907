"""Unit tests of helpers/sandbox.py: what the grading kernel can see, and the refusal to
grade without a sandbox. (tests/test_grading_adversarial.py attacks it for real.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import config, sandbox

REPO_ROOT = Path(__file__).resolve().parent.parent


def _binds(command: list[str]) -> dict[str, str]:
    """Mount point -> kind (ro-bind / bind) of a bwrap command line."""
    found = {}
    for index, item in enumerate(command):
        if item in ("--ro-bind", "--bind"):
            found[command[index + 2]] = item
    return found


def test_command_shows_only_what_the_kernel_needs(tmp_path):
    work, connection, scratch = (tmp_path / name for name in ("work", "conn", "scratch"))
    for folder in (work, connection, scratch):
        folder.mkdir()
    command = sandbox.bwrap_command(["python", "-V"], work, connection, scratch, config.data_dir())
    binds = _binds(command)
    for writable in (work, connection, scratch):
        assert binds.get(str(writable.resolve())) == "--bind", writable
    assert binds.get(str(REPO_ROOT / "helpers")) == "--ro-bind"
    for secret in ("answers", "notebooks", "gradebook.db", "nbgrader_config.py", "submitted"):
        assert not any(point == str(REPO_ROOT / secret) or point.startswith(str(REPO_ROOT / secret) + "/")
                       for point in binds), f"{secret} is visible in the sandbox"
    assert str(REPO_ROOT) not in binds, "the whole course root must not be visible"
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in command
    assert "--share-net" not in command
    assert command[command.index("--chdir") + 1] == str(work.resolve())
    assert command[-2:] == ["python", "-V"]
    assert "JPY_PARENT_PID" in command


def test_scratch_data_links_data_sets_and_copies_the_lesson_04_model(tmp_path):
    real = tmp_path / "data"
    (real / "cxr_synthetic").mkdir(parents=True)
    (real / "runs-scale0.1" / "04_training").mkdir(parents=True)
    (real / "runs-scale0.1" / "04_training" / "best.keras").write_bytes(b"model")
    (real / "runs-scale0.1" / "05_prediction").mkdir()
    target = sandbox.scratch_data_dir(real, tmp_path / "scratch")
    assert (target / "cxr_synthetic").is_symlink()
    copied = target / "runs-scale0.1" / "04_training" / "best.keras"
    assert copied.read_bytes() == b"model" and not copied.is_symlink()
    assert not (target / "runs-scale0.1" / "05_prediction").exists()


def test_unavailable_sandbox_says_what_is_missing_and_the_risk(monkeypatch):
    monkeypatch.delenv(sandbox.NO_SANDBOX_VARIABLE, raising=False)
    monkeypatch.setattr(sandbox, "_probe", lambda: "bubblewrap is not installed (no `bwrap` on PATH)")
    with pytest.raises(sandbox.SandboxUnavailable) as error:
        sandbox.check_available()
    message = str(error.value)
    assert "bubblewrap is not installed" in message and "--no-sandbox" in message
    assert "gradebook" in message
    monkeypatch.setenv(sandbox.NO_SANDBOX_VARIABLE, "1")
    sandbox.check_available()  # switched off on purpose: no error


def test_sandboxed_process_cannot_see_the_course_or_the_network(tmp_path):
    if sandbox._probe():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the grading sandbox, but: {sandbox._probe()}")
        pytest.skip(f"bubblewrap cannot run here: {sandbox._probe()}")
    work, connection, scratch = (tmp_path / name for name in ("work", "conn", "scratch"))
    for folder in (work, connection, scratch):
        folder.mkdir()
    data = tmp_path / "data"   # under /tmp, like a CI clone: must stay visible
    (data / "cxr_synthetic").mkdir(parents=True)
    (data / "cxr_synthetic" / "dataset.json").write_text("{}")
    probe = ("import os, socket, pathlib, sys\n"
             "print(pathlib.Path(os.environ['UNET_COURSE_DATA'], 'cxr_synthetic', 'dataset.json').read_text())\n"
             f"print(pathlib.Path({str(REPO_ROOT / 'answers')!r}).exists())\n"
             f"print(os.access({str(REPO_ROOT / 'helpers')!r}, os.W_OK))\n"
             "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=2); print('net')\n"
             "except OSError: print('no-net')\n"
             "print(os.getpid())\n")
    command = sandbox.bwrap_command([sys.executable, "-c", probe], work, connection, scratch, data)
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:4] == ["{}", "False", "False", "no-net"], out.stdout
    assert int(lines[4]) < 10, "the kernel should run in a PID namespace of its own"
