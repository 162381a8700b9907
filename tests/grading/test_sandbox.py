"""Unit tests of helpers/grading/sandbox.py: what the grading kernel can see, and the refusal to
grade without a sandbox. (tests/grading/test_grading_adversarial.py attacks it for real.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import config
from helpers.grading import sandbox
from support.fakes import unix_socket

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    # the working folder inside is a private copy, never the folder itself
    assert command[command.index(str(work.resolve())) - 1] == str((scratch / "work").resolve())
    assert command.index("--remount-ro") > max(i for i, item in enumerate(command) if item.endswith("bind"))
    assert "JPY_PARENT_PID" not in command


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


def _sandbox_or_skip() -> None:
    if sandbox._probe():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the grading sandbox, but: {sandbox._probe()}")
        pytest.skip(f"bubblewrap cannot run here: {sandbox._probe()}")


# --- 1. links and special files ----------------------------------------------------------


def _hostile_folder(folder: Path, outside: Path) -> None:
    """A submission folder with a regular file, a nested one, links (to a file outside, to
    a folder outside, dangling), a FIFO and a socket."""
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "data.csv").write_text("1,2")
    (folder / "key.ipynb").symlink_to(outside / "secret.txt")
    (folder / "sub" / "up").symlink_to(outside)
    (folder / "dangling").symlink_to(folder / "nowhere")
    os.mkfifo(folder / "pipe")
    unix_socket(folder / "sock")


def test_copy_keeps_regular_files_and_drops_links_fifos_and_sockets(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("answers")
    source, target = tmp_path / "source", tmp_path / "target"
    _hostile_folder(source, outside)
    (target / "old").mkdir(parents=True)  # replaced
    dropped = sandbox.copy_regular_files(source, target)
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert copied == ["notes.txt", "sub", "sub/data.csv"]
    assert not any(p.is_symlink() for p in target.rglob("*"))
    text = "\n".join(dropped)
    for name, kind in (("key.ipynb", "symbolic link"), ("sub/up", "symbolic link"), ("dangling", "symbolic link"),
                       ("pipe", "FIFO"), ("sock", "socket")):
        assert any(line.startswith(name) and kind in line for line in dropped), (name, text)
    assert f"key.ipynb -> {outside / 'secret.txt'}" in text
    assert (outside / "secret.txt").read_text() == "answers"


def test_private_work_copy_has_no_notebook_and_no_link(tmp_path):
    work = tmp_path / "autograded" / "alice" / "00_example"
    work.mkdir(parents=True)
    (work / "00_example.ipynb").write_text("{}")  # the graded notebook holds the hidden tests
    (work / "data.txt").write_text("x")
    (work / "checks.py").symlink_to(REPO_ROOT / "helpers" / "checks" / "__init__.py")
    copy = sandbox.private_work_copy(work, tmp_path / "scratch")
    assert sorted(p.name for p in copy.iterdir()) == ["data.txt"]


def test_irregular_entries_and_remove_path_never_follow_links(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "ok.html").write_text("page")
    (folder / "leak.html").symlink_to(target)
    (folder / "sub" / "dir").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe")
    found = sandbox.irregular_entries(folder)
    assert sorted(p.name for p in found) == ["dir", "leak.html", "pipe"]
    assert sandbox.describe_entry(folder / "leak.html") == f" -> {target}: symbolic link"
    for path in found:
        assert sandbox.remove_path(path)
    assert target.read_text() == "keep" and tmp_path.is_dir()
    assert sandbox.irregular_entries(folder) == []
    assert sandbox.irregular_entries(tmp_path / "missing") == []


# --- 2. modules from the submission's folder ---------------------------------------------


def _hostile_modules(folder: Path, marker: Path) -> None:
    """``json.py``, ``subprocess.py``, ``helpers/``: each writes ``marker`` (a host path)
    and says so on stderr when imported."""
    code = (f"import sys\nsys.stderr.write('HOSTILE MODULE IMPORTED\\\\n')\n"
            f"open({str(marker)!r}, 'a').write(__name__ + '\\\\n')\n")
    (folder / "helpers" / "grading").mkdir(parents=True)
    for name in ("json.py", "subprocess.py", "signal.py", "helpers/__init__.py", "helpers/sandbox.py",
                 "helpers/grading_runner.py", "helpers/grading/__init__.py", "helpers/grading/sandbox.py",
                 "helpers/grading/runner.py"):
        (folder / name).write_text(code)


def test_launcher_imports_nothing_from_its_working_folder(tmp_path):
    work, marker = tmp_path / "work", tmp_path / "marker"
    _hostile_modules(work, marker)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), ".", ""]))
    command = sandbox.launcher_command(tmp_path / "scratch")
    assert command[1] == "-I", "the launcher runs in isolated mode"
    # no --scratch value: the launcher imports its modules, then refuses the arguments
    out = subprocess.run(command[:-1], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "usage" in out.stderr, out.stderr
    assert "HOSTILE" not in out.stderr and not marker.exists()


# --- 1, 2, 3 together: a real runner in the sandbox ------------------------------------------

_SECRET = "s3cr3t-grader-token-0123"


@pytest.fixture(scope="module")
def probed_runner(tmp_path_factory):
    """Start the real launcher and runner in a hostile folder with a secret in the
    grader's environment, run one cell, and return what it printed, the launcher's
    stderr, the folders and the marker."""
    _sandbox_or_skip()
    tmp = tmp_path_factory.mktemp("runner")
    work, marker, checks = tmp / "autograded" / "mallory" / "00_example", tmp / "marker", tmp / "checks.py"
    _hostile_modules(work, marker)
    checks.write_text("course file\n")
    (work / "00_example.ipynb").write_text('{"hidden": "tests"}')
    (work / "data.txt").write_text("submitted data")
    (work / "link.txt").symlink_to(checks)
    cell = ("import os, sys, json, helpers\n"
            "print('FILES', sorted(os.listdir('.')))\n"
            "print('DATA', open('data.txt').read())\n"
            "print('MODULES', json.__file__, helpers.__file__)\n"
            "print('ENV', dict(os.environ))\n"
            "print('PID1', open('/proc/1/environ', 'rb').read())\n"
            f"os.symlink({str(checks)!r}, '00_example.ipynb')\n"
            "os.symlink('/etc/passwd', 'leak.html')\n"
            "open('written.txt', 'w').write('a cell may write here')\n"
            "print('WROTE', sorted(os.listdir('.')))\n")
    body = cell.encode()
    request = b"token\n" + f"code 0 0 {len(body)}\n".encode() + body + b"end 0 0 0\n"
    env = dict(os.environ, SECRET_TOKEN=_SECRET, AWS_SECRET_ACCESS_KEY=_SECRET, JUPYTERHUB_API_TOKEN=_SECRET,
               TF_VAR_password=_SECRET, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), "."]),
               TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(sandbox.launcher_command(tmp / "scratch"), cwd=work, env=env, input=request,
                         capture_output=True, timeout=600)
    return {"stdout": out.stdout.decode(errors="replace"), "stderr": out.stderr.decode(errors="replace"),
            "code": out.returncode, "work": work, "marker": marker, "checks": checks, "scratch": tmp / "scratch"}


def test_runner_sees_a_private_copy_and_cannot_reach_the_host_folder(probed_runner):
    out, work = probed_runner["stdout"], probed_runner["work"]
    assert "token 0 ok" in out, probed_runner["stderr"][-3000:]
    assert "FILES ['data.txt', 'helpers', 'json.py', 'signal.py', 'subprocess.py']" in out, out
    assert "DATA submitted data" in out
    assert "leak.html" in out and "written.txt" in out  # a cell may write in its folder...
    # ... but into its own copy: the host's folder, the notebook and the course file are as they were
    assert sorted(p.name for p in work.iterdir()) == ["00_example.ipynb", "data.txt", "helpers", "json.py",
                                                     "link.txt", "signal.py", "subprocess.py"]
    assert (work / "00_example.ipynb").read_text() == '{"hidden": "tests"}'
    assert not (work / "00_example.ipynb").is_symlink()
    assert probed_runner["checks"].read_text() == "course file\n"
    assert not probed_runner["scratch"].exists(), "the launcher removes its scratch folder"


def test_runner_and_launcher_import_course_modules_not_the_students(probed_runner):
    out = probed_runner["stdout"]
    assert f"MODULES {sys.base_prefix}" in out or "/json/__init__.py " in out, out
    assert str(REPO_ROOT / "helpers" / "__init__.py") in out, out
    assert "/json/__init__.py" in out, out
    assert "HOSTILE" not in probed_runner["stderr"] + out
    assert not probed_runner["marker"].exists()


def test_runner_environment_has_no_secret_of_the_grader(probed_runner):
    out = probed_runner["stdout"]
    assert "ENV {" in out and "'HOME'" in out, out
    assert "PID1" in out
    assert _SECRET not in out, "a secret of the grader's environment reached the sandbox"
    for name in ("SECRET_TOKEN", "AWS_SECRET_ACCESS_KEY", "JUPYTERHUB_API_TOKEN", "TF_VAR_password",
                 "UNET_COURSE_GRADING_TRACE", "JPY_PARENT_PID"):
        assert f"'{name}'" not in out, name


def test_sandbox_environment_is_an_allow_list():
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "SECRET_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "x",
            "JUPYTERHUB_API_TOKEN": "x", "TF_VAR_db_password": "x", "TF_CPP_MIN_LOG_LEVEL": "3",
            "OMP_NUM_THREADS": "2", "UNET_COURSE_SCALE": "0.1", "UNET_COURSE_GRADING_TRACE": "/host/trace",
            "PYTHONPATH": f"/abs/one{os.pathsep}.{os.pathsep}rel{os.pathsep}{os.pathsep}/abs/two",
            "PYTHONWARNINGS": "ignore", "HOME": "/root", "JPY_PARENT_PID": "1"}
    env = sandbox.sandbox_environment(base, {"HOME": "/scratch/home"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "OMP_NUM_THREADS": "2", "UNET_COURSE_SCALE": "0.1",
                   "PYTHONPATH": f"/abs/one{os.pathsep}/abs/two", "PYTHONWARNINGS": "ignore",
                   "HOME": "/scratch/home"}
    for name in ("PATH", "LANG", "TZ", "PYTHONPATH", "UNET_COURSE_*", "OMP_*", "TF_CPP_MIN_LOG_LEVEL"):
        assert f"``{name}``" in sandbox.__doc__, f"{name} is not documented in the module docstring"


def test_bwrap_itself_starts_with_an_empty_environment(tmp_path, monkeypatch):
    """/proc/1/environ inside shows bwrap's own start environment, which --clearenv does
    not change: main() starts bwrap with none."""
    _sandbox_or_skip()
    monkeypatch.setenv("SECRET_TOKEN", _SECRET)
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    probe = "import os; print(open('/proc/1/environ','rb').read()); print(dict(os.environ))"
    command = sandbox.bwrap_command([sys.executable, "-c", probe], work, scratch, scratch, tmp_path / "data")
    out = subprocess.run(command, env={}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _SECRET not in out.stdout and "HOME" in out.stdout


# --- 4. limits ------------------------------------------------------------------------


def test_limits_from_the_environment():
    limits = sandbox.Limits.from_environment({sandbox.MEMORY_VARIABLE: "3G", sandbox.DISK_VARIABLE: "512m",
                                              sandbox.PROCESSES_VARIABLE: "64", sandbox.OUTPUT_VARIABLE: "0"})
    assert (limits.memory, limits.disk, limits.processes, limits.output) == (3 * 2**30, 512 * 2**20, 64, 0)
    assert limits.threads == sandbox.Limits().threads >= 1024
    assert sandbox.Limits().describe("memory") == "memory limit (4 GiB)"
    assert sandbox.Limits().describe("processes") == "processes limit (128 processes)"
    with pytest.raises(ValueError, match=sandbox.MEMORY_VARIABLE):
        sandbox.Limits.from_environment({sandbox.MEMORY_VARIABLE: "lots"})
    env = sandbox.Limits(memory=2**30).environment()
    assert sandbox.Limits.from_environment(env) == sandbox.Limits(memory=2**30)


def _watch(tmp_path, monkeypatch, limits, code, folders=()):
    """Run ``python -c code`` under a Watchdog; return (exit code, watchdog, trace events,
    relayed stdout, relayed stderr)."""
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(sandbox.TRACE_VARIABLE, str(trace))
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as out_file, open(err, "wb") as err_file:
        watchdog = sandbox.Watchdog(limits, list(folders), sandboxed=False, interval=0.1, disk_interval=0.2,
                                    streams=(out_file.fileno(), err_file.fileno()))
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        started = time.monotonic()
        code = watchdog.run(process)
        seconds = time.monotonic() - started
    events = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    assert seconds < 60, "the watchdog took too long"
    return code, watchdog, events, out.read_bytes(), err.read_bytes()


def test_a_relay_outliving_the_run_leaves_the_descriptors_alone(tmp_path):
    """A grandchild that keeps the output pipe open makes a relay thread outlive run(); once
    run() has returned, the descriptor numbers it was given may belong to other files (a test's
    closed file reused by the next subprocess pipe): the relay must neither write there nor
    point them at /dev/null."""
    late = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5); print(\"late output\", flush=True)'])\n")
    out, err, reused = tmp_path / "out", tmp_path / "err", tmp_path / "reused"
    with open(out, "wb") as out_file, open(err, "wb") as err_file, open(reused, "wb") as reused_file:
        watchdog = sandbox.Watchdog(sandbox.Limits(), [], sandboxed=False, interval=0.1,
                                    streams=(out_file.fileno(), err_file.fileno()))
        watchdog.relay_timeout = 0.2
        process = subprocess.Popen([sys.executable, "-c", late], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert watchdog.run(process) == 0
        os.dup2(reused_file.fileno(), out_file.fileno())       # the number now names another file
        time.sleep(3.0)                                         # the grandchild prints and exits
        assert os.fstat(out_file.fileno()).st_ino == os.fstat(reused_file.fileno()).st_ino, \
            "the relay pointed a descriptor it no longer owns at /dev/null"
    assert reused.read_bytes() == b"", "the relay wrote into a descriptor it no longer owns"


def _gone(pids) -> bool:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(") ")[1][0] != "Z":
                    return False
        except OSError:
            continue
    return True


def test_watchdog_kills_a_memory_hog_and_records_the_limit(tmp_path, monkeypatch):
    hog = ("import time\nchunks = []\nfor _ in range(40):\n"
           "    chunks.append(bytearray(16 * 2**20)); time.sleep(0.02)\ntime.sleep(30)\n")
    code, watchdog, events, _, _ = _watch(tmp_path, monkeypatch, sandbox.Limits(memory=128 * 2**20), hog)
    assert code == -9 and watchdog.exceeded == "memory"
    assert events[-1]["event"] == "limit" and events[-1]["limit"] == "memory"
    assert events[-1]["detail"] == "memory limit (128 MiB)"


def test_watchdog_kills_a_fork_bomb_with_its_whole_process_tree(tmp_path, monkeypatch):
    bomb = ("import subprocess, time\nkids = [subprocess.Popen(['sleep', '60']) for _ in range(60)]\n"
            "time.sleep(60)\n")
    seen = []
    original = sandbox.process_tree

    def spy(root):
        tree = original(root)
        seen.extend(tree)
        return tree

    monkeypatch.setattr(sandbox, "process_tree", spy)
    code, watchdog, events, _, _ = _watch(tmp_path, monkeypatch, sandbox.Limits(processes=20), bomb)
    assert watchdog.exceeded == "processes" and events[-1]["limit"] == "processes"
    assert "processes limit (20 processes)" == events[-1]["detail"]
    time.sleep(0.5)
    assert _gone(set(seen)), "processes of the sandbox survived the watchdog"


def test_watchdog_kills_a_thread_bomb(tmp_path, monkeypatch):
    bomb = ("import threading, time\nfor _ in range(300):\n"
            "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\ntime.sleep(60)\n")
    _, watchdog, events, _, _ = _watch(tmp_path, monkeypatch, sandbox.Limits(threads=100), bomb)
    assert watchdog.exceeded == "threads" and events[-1]["limit"] == "threads"


def test_watchdog_kills_at_the_disk_limit_of_the_writable_folders(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "already-there").write_bytes(b"x" * 3 * 2**20)  # the baseline does not count
    writer = (f"import time\nfor i in range(100):\n"
              f"    open({str(folder)!r} + f'/junk{{i}}', 'wb').write(b'x' * 2**20); time.sleep(0.02)\n"
              "time.sleep(30)\n")
    _, watchdog, events, _, _ = _watch(tmp_path, monkeypatch, sandbox.Limits(disk=8 * 2**20), writer, [folder])
    assert watchdog.exceeded == "disk" and events[-1]["detail"] == "disk limit (8 MiB)"
    assert len(list(folder.iterdir())) < 60


def test_watchdog_relays_output_and_stops_a_flood(tmp_path, monkeypatch):
    code, watchdog, events, out, err = _watch(tmp_path, monkeypatch, sandbox.Limits(),
                                              "import sys; print('reply'); sys.stderr.write('log')")
    assert code == 0 and watchdog.exceeded is None and events == []
    assert out == b"reply\n" and err == b"log"
    flood = "import os, time\nfor _ in range(64):\n    os.write(2, b'x' * 2**20)\ntime.sleep(30)\n"
    _, watchdog, events, _, err = _watch(tmp_path, monkeypatch, sandbox.Limits(output=4 * 2**20), flood)
    assert watchdog.exceeded == "output" and events[-1]["limit"] == "output"
    assert len(err) <= 4 * 2**20, "output past the limit is dropped, not relayed"


def test_watchdog_leaves_a_well_behaved_process_alone(tmp_path, monkeypatch):
    code, watchdog, events, out, _ = _watch(tmp_path, monkeypatch, sandbox.Limits(),
                                            "import time; time.sleep(0.5); print('done')")
    assert (code, watchdog.exceeded, events, out) == (0, None, [], b"done\n")


def test_remove_scratch_also_removes_read_only_folders(tmp_path):
    scratch = tmp_path / "scratch"
    (scratch / "locked" / "deep").mkdir(parents=True)
    (scratch / "locked" / "deep" / "file").write_text("x")
    (scratch / "link").symlink_to(tmp_path)
    (tmp_path / "keep").write_text("keep")
    os.chmod(scratch / "locked" / "deep", 0o500)
    os.chmod(scratch / "locked", 0o500)
    sandbox.remove_scratch(scratch)
    assert not scratch.exists() and (tmp_path / "keep").read_text() == "keep"


def test_trace_variable_matches_grading():
    from helpers.grading import commands as grading

    assert sandbox.TRACE_VARIABLE == grading.TRACE_VARIABLE
