"""What a learner sees in JupyterLab, in a real browser (``pytest -m browser``).

Starts ``python -m helpers lab`` headless on 127.0.0.1 with a token, on a copy of
``notebooks/03_loss_and_metrics`` and ``notebooks/04_training`` (the lab saves what is
typed; the committed notebooks stay untouched), and drives Debian's ``/usr/bin/chromium``
with Playwright (``pip install playwright``; no browser download: ``executable_path``).

* lesson 03: the lab is clean (no *Nbgrader* menu, no *Create Assignment* sidebar, no
  news prompt, the course kernel selected); a correct ``dice_coefficient`` typed into the
  exercise cell makes its check print the success line; the kernel has the course's
  kernel settings (:data:`helpers.tools.kernels.KERNEL_ENV`);
* lesson 04: a split by image instead of by patient makes the check show its hint.

Screenshots go to ``tests/artifacts/browser/`` (git-ignored; CI keeps them). Skipped, with
the reason, only when ``/usr/bin/chromium`` is absent (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers.tools import kernels, lab
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from support.course import REPO_ROOT

TOKEN = "unet-course-browser-test"
LESSONS = ("03_loss_and_metrics", "04_training")

DICE_SOLUTION = '''def dice_coefficient(y_true, y_pred, smooth=1.0):
    axes = tuple(range(1, len(y_true.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return ops.mean((2.0 * intersection + smooth) / (total + smooth))'''

#: A beginner's split: shuffles images, not patients.
SPLIT_BY_IMAGE = '''def split_by_patient(items, fractions=(0.7, 0.15, 0.15), seed=config.SEED):
    items = list(items)
    np.random.default_rng(seed).shuffle(items)
    a = int(fractions[0] * len(items))
    b = a + int(fractions[1] * len(items))
    return items[:a], items[a:b], items[b:]'''

# Run in the learner's kernel, where only the lesson's imports exist: the names are spelled out.
KERNEL_PROBE = ('import os, json; print("KERNEL_ENV=" + json.dumps('
                f'{{k: os.environ.get(k) for k in {sorted(kernels.KERNEL_ENV)!r}}}, sort_keys=True))')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_lab(tmp_path_factory):
    """``(base_url, page)``: a learner lab on copies of lessons 03 and 04, and a Chromium
    page with a fresh profile. Stops both afterwards."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed: `apt-get install -y chromium` "
                    "(.ci/run does it) to run the browser tier")
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="pip install playwright (declared in the test extra)")
    root = tmp_path_factory.mktemp("lab")
    for lesson in LESSONS:
        shutil.copytree(REPO_ROOT / "notebooks" / lesson, root / lesson)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in kernels.KERNEL_ENV}  # the lab must add them
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["UNET_COURSE_BOOTSTRAPPED"] = "1"
    log = open(root / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "helpers", "lab", "--no-browser", "--ip", "127.0.0.1",
                               "--port", str(port), f"--IdentityProvider.token={TOKEN}",
                               "--notebook-dir", str(root)],
                              cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)   # its own process group: jupyter lab is a child
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the lab did not start: {(root / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with playwright_api.sync_playwright() as playwright:
            # a persistent context on a new folder: Chromium's --user-data-dir, fresh
            context = playwright.chromium.launch_persistent_context(
                str(root / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield base, page
            context.close()
    finally:
        _stop_group(server)
        log.close()


def _stop_group(server: subprocess.Popen) -> None:
    """Stop ``server`` and every process it started (``python -m helpers lab`` runs
    ``jupyter lab`` as a child, which a plain ``terminate`` would leave running), and fail if
    one is left."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        server.poll()
        time.sleep(0.2)
    else:
        os.killpg(server.pid, signal.SIGKILL)
        time.sleep(0.5)
    server.poll()
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"processes of the lab's group {server.pid} are still running after SIGKILL")


def _open(page, base: str, lesson: str):
    page.goto(f"{base}/lab/tree/{lesson}/{lesson}.ipynb?token={TOKEN}")
    title = f"{lesson[:2]} ·"            # the lesson's heading, e.g. "04 · Training a U-Net"
    page.wait_for_selector(f".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell:has-text('{title}')",
                           state="visible")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) "
                           ".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached",
                           timeout=90_000)


def _cells(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def _cell_index(page, marker: str) -> int:
    """Index of the first code cell whose source contains ``marker``."""
    sources = _cells(page).evaluate_all("cells => cells.map(c => c.innerText)")
    for index, source in enumerate(sources):
        if marker in source:
            return index
    raise AssertionError(f"no cell contains {marker!r}")


def _type_into(page, index: int, text: str) -> None:
    """Replace the source of cell ``index`` by ``text``, typed in its editor."""
    cell = _cells(page).nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # insert_text types the characters as one input event: no auto-indent or bracket closing
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")


def _command(page, label: str) -> None:
    page.keyboard.press("Control+Shift+C")
    page.keyboard.insert_text(label)
    page.wait_for_selector(f".lm-CommandPalette-item:has-text('{label}')", state="visible")
    page.keyboard.press("Enter")


def _run_up_to(page, index: int) -> str:
    """Run every cell above ``index``, then ``index``; returns that cell's output text."""
    cell = _cells(page).nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()
    _command(page, "Run All Above Selected Cell")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) "
                           ".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached",
                           timeout=180_000)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "el => /\\[\\d+\\]/.test(el.innerText)", arg=cell.locator(".jp-InputPrompt").element_handle(),
        timeout=120_000)
    return cell.locator(".jp-Cell-outputWrapper").inner_text()


@pytest.mark.browser
def test_learner_lab_lesson_03_success_line_and_kernel(browser_lab):
    base, page = browser_lab
    _open(page, base, "03_loss_and_metrics")
    page.screenshot(path=str(ARTIFACTS / "03_opened.png"))

    # a clean lab: no instructor tools, no news prompt, the course kernel
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    assert "File" in menus and "Kernel" in menus, menus
    assert "Nbgrader" not in menus, f"learners must not see the Nbgrader menu: {menus}"
    tabs = " ".join(page.locator(".lm-TabBar-tab").evaluate_all(
        "tabs => tabs.map(t => (t.getAttribute('title') || '') + ' ' + t.innerText + ' ' + (t.dataset.id || ''))"))
    assert "assignment" not in tabs.lower(), f"learners must not see Create Assignment: {tabs}"
    assert page.get_by_text("Jupyter news").count() == 0, "the news prompt must be off"
    kernel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName, "
                          ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-kernelName").first.inner_text()
    assert lab.KERNEL_DISPLAY_NAME in kernel, kernel

    # fill lesson 03's Exercise 3.1 (dice_coefficient) by typing, run it and its check
    solution = _cell_index(page, "def dice_coefficient(")
    _type_into(page, solution, DICE_SOLUTION)
    check = _cell_index(page, "checks.check_dice(dice_coefficient)")
    assert check == solution + 1
    output = _run_up_to(page, check)
    page.screenshot(path=str(ARTIFACTS / "03_check_passed.png"))
    assert "✓ dice_coefficient" in output, output
    assert "Error" not in output, output

    # the kernel that the lab started has the course's kernel settings
    probe = check + 1
    _cells(page).nth(probe).locator(".jp-InputPrompt").click()
    page.keyboard.press("b")                 # a new cell below the check
    _type_into(page, probe + 1, KERNEL_PROBE)
    _cells(page).nth(probe + 1).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    line = _cells(page).nth(probe + 1).locator(".jp-OutputArea-output").first
    line.wait_for(state="visible")
    text = line.inner_text().strip()
    assert text.startswith("KERNEL_ENV="), text
    assert json.loads(text.split("=", 1)[1]) == dict(sorted(kernels.KERNEL_ENV.items()))
    # JupyterLab asks about news a few seconds after start-up: still no prompt by now
    assert page.get_by_text("Jupyter news").count() == 0, "the news prompt must be off"
    page.screenshot(path=str(ARTIFACTS / "03_kernel_settings.png"))


@pytest.mark.browser
def test_learner_lab_lesson_04_failing_check_shows_hint(browser_lab):
    base, page = browser_lab
    _open(page, base, "04_training")
    solution = _cell_index(page, "def split_by_patient(")
    _type_into(page, solution, SPLIT_BY_IMAGE)
    check = _cell_index(page, "checks.check_split_by_patient(split_by_patient)")
    output = _run_up_to(page, check)
    page.screenshot(path=str(ARTIFACTS / "04_check_failed.png"))
    assert "AssertionError" in output, output
    assert "has images in part" in output and "split the images rather than the patients" in output, output


def test_learner_and_instructor_settings(tmp_path):
    """No browser needed: what prepare() writes for each kind of lab."""
    env = lab.prepare(instructor=False, root=tmp_path / "learner")
    page_config = json.loads((tmp_path / "learner/config/labconfig/page_config.json").read_text())
    assert set(page_config["disabledExtensions"]) == set(lab.INSTRUCTOR_LAB_PLUGINS)
    server = json.loads((tmp_path / "learner/config/jupyter_server_config.json").read_text())
    assert not any(server["ServerApp"]["jpserver_extensions"].values())
    kernel = json.loads((tmp_path / "learner/share/kernels/python3/kernel.json").read_text())
    assert kernel["env"] == kernels.KERNEL_ENV and kernel["display_name"] == lab.KERNEL_DISPLAY_NAME
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(tmp_path / "learner" / "config")
    assert all(env[k] for k in kernels.KERNEL_ENV)
    lab.prepare(instructor=True, root=tmp_path / "instructor")
    page_config = json.loads((tmp_path / "instructor/config/labconfig/page_config.json").read_text())
    assert page_config["disabledExtensions"] == {}
    server = json.loads((tmp_path / "instructor/config/jupyter_server_config.json").read_text())
    assert all(server["ServerApp"]["jpserver_extensions"].values())
    command = lab.command(instructor=False, root=tmp_path, extra=["--notebook-dir", "x"])
    assert command.count("--notebook-dir") == 1
    assert str(REPO_ROOT / "notebooks") in lab.command(instructor=False, root=tmp_path)
