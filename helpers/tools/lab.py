"""JupyterLab for the course: ``python -m helpers lab [--instructor] [JupyterLab options]``.

Learners get a clean lab on ``notebooks/``:

* nbgrader's instructor tools are off: the *Nbgrader* menu, the formgrader, the course
  list and the *Create Assignment* sidebar (lab extensions), and the formgrader and
  course-list server extensions. ``--instructor`` keeps them all (and opens ``answers/``'s
  parent, the repository, so that both folders are reachable).
* no "get notified about Jupyter news?" prompt and no update check; every cell rendered;
* the notebooks' kernel (``python3``) is the course kernel: this Python, with
  :data:`helpers.tools.kernels.KERNEL_ENV` in its ``env``, shown as :data:`KERNEL_DISPLAY_NAME`.

Nothing outside the course is changed: the settings live in
``<data dir>/lab/<learner|instructor>/`` (see :func:`helpers.config.data_dir`) and reach
JupyterLab through ``JUPYTER_CONFIG_PATH``, ``JUPYTER_PATH`` and ``--LabApp`` options of this
one launch; the learner's own ``~/.jupyter`` settings still apply where they do not clash.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import config
from helpers.tools import kernels

#: Lab extensions (plugins of ``@jupyter/nbgrader``) that only instructors need.
INSTRUCTOR_LAB_PLUGINS = (
    "@jupyter/nbgrader:menu",
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)
#: Server extensions that only instructors need.
INSTRUCTOR_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.course_list",
)
#: The kernel named in every notebook's metadata; inside the course lab it is the course's.
KERNEL_NAME = kernels.KERNEL_NAME
#: What the lab shows as the kernel's name.
KERNEL_DISPLAY_NAME = kernels.KERNEL_DISPLAY_NAME


def lab_dir(instructor: bool = False) -> Path:
    """Folder of the lab's generated settings: ``<data dir>/lab/learner`` or ``.../instructor``."""
    return config.data_dir() / "lab" / ("instructor" if instructor else "learner")


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def prepare(instructor: bool = False, root: Path | None = None) -> dict[str, str]:
    """Write the lab's settings into ``root`` (default :func:`lab_dir`) and return the
    environment variables that point JupyterLab at them (``JUPYTER_CONFIG_PATH``,
    ``JUPYTER_PATH``, with :data:`helpers.tools.kernels.KERNEL_ENV`), on top of ``os.environ``.

    * ``config/labconfig/page_config.json``: the instructor lab plugins disabled (learners);
    * ``config/jupyter_server_config.json``: the instructor server extensions off (learners);
    * ``user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings``: no
      news, no update check; ``.../notebook-extension/tracker.jupyterlab-settings``: every
      cell rendered (``windowingMode: none``; a lesson has ~40 cells, and find-in-page
      and screen readers then see all of it);
    * ``share/kernels/python3/kernel.json``: the course kernel.
    """
    root = lab_dir(instructor) if root is None else Path(root)
    disabled = {} if instructor else {plugin: True for plugin in INSTRUCTOR_LAB_PLUGINS}
    _write_json(root / "config" / "labconfig" / "page_config.json", {"disabledExtensions": disabled})
    server = {name: instructor for name in INSTRUCTOR_SERVER_EXTENSIONS}
    _write_json(root / "config" / "jupyter_server_config.json",
                {"ServerApp": {"jpserver_extensions": server}})
    _write_json(root / "user-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    _write_json(root / "user-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none"})
    _write_json(root / "share" / "kernels" / KERNEL_NAME / "kernel.json", kernels.kernelspec())
    env = kernels.kernel_env()

    def first(variable: str, folder: Path) -> str:
        rest = [p for p in env.get(variable, "").split(os.pathsep) if p]
        return os.pathsep.join([str(folder), *rest])

    env["JUPYTER_CONFIG_PATH"] = first("JUPYTER_CONFIG_PATH", root / "config")
    env["JUPYTER_PATH"] = first("JUPYTER_PATH", root / "share")
    return env


def command(instructor: bool = False, root: Path | None = None, extra: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line of the course lab (``extra`` options appended; an
    ``--notebook-dir`` among them replaces the default folder)."""
    root = lab_dir(instructor) if root is None else Path(root)
    extra = list(extra or [])
    folder = config.REPO_ROOT if instructor else config.REPO_ROOT / "notebooks"
    chosen = any(a.startswith(("--notebook-dir", "--ServerApp.root_dir")) for a in extra)
    return [sys.executable, "-m", "jupyter", "lab", *([] if chosen else ["--notebook-dir", str(folder)]),
            f"--LabApp.user_settings_dir={root / 'user-settings'}",
            f"--LabApp.workspaces_dir={root / 'workspaces'}",
            f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),  # containers
            *extra]


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers lab [--instructor] [options for jupyter lab]``; returns its exit code.

    Unknown options go to ``jupyter lab``, e.g. ``--no-browser --port 8899``.
    """
    parser = argparse.ArgumentParser(prog="python -m helpers lab",
                                     description="Open JupyterLab on the course's notebooks.")
    parser.add_argument("--instructor", action="store_true",
                        help="keep nbgrader's instructor tools (formgrader, Create Assignment) "
                             "and open the repository instead of notebooks/")
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    env = prepare(args.instructor)
    return subprocess.run(command(args.instructor, extra=extra), cwd=config.REPO_ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
