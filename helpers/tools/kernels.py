"""The course kernel: its environment and its kernelspec (``python -m helpers setup``).

Every kernel that runs a lesson -- headless (``python -m helpers course``), in JupyterLab,
under nbval and under nbgrader -- gets :data:`KERNEL_ENV`; the grading runner adds its
sandbox settings to it (:data:`helpers.grading.sandbox.GRADING_ENV`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

#: Environment of the kernels that run lessons (headless, in JupyterLab, under nbval and
#: nbgrader); a value already set in the environment wins.
#:
#: - ``TF_CPP_MIN_LOG_LEVEL=3``: TensorFlow's C++ start-up messages (CUDA probing on a CPU
#:   machine) would otherwise fill the saved outputs, and nbgrader scores a test cell that
#:   writes to stderr 0.
#: - ``TF_CPU_ALLOCATOR_USE_BFC=1``: TensorFlow keeps a pool of CPU tensor memory instead of
#:   handing it back to the system after every step. Without it, training from a
#:   ``keras.utils.PyDataset`` spent about half its time in page faults (2 CPU cores);
#:   ``benchmarks/cpu_allocator.py`` measures the difference on your machine.
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_CPU_ALLOCATOR_USE_BFC": "1"}


def kernel_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) with :data:`KERNEL_ENV` added where not set."""
    return {**KERNEL_ENV, **(os.environ if base is None else base)}


#: Name of the course kernel: the ``python3`` that every notebook's metadata names, so a
#: Jupyter in this environment (JupyterLab, nbclient, nbgrader, a JupyterHub single-user
#: server) starts the course's kernel without any notebook naming it.
KERNEL_NAME = "python3"
#: What Jupyter shows as the kernel's name.
KERNEL_DISPLAY_NAME = "Python 3 (U-Net course)"


def kernelspec(python: str | None = None) -> dict:
    """The course kernelspec (``kernel.json`` content): ``python`` (default: this
    interpreter) running ipykernel, with :data:`KERNEL_ENV` in its ``env`` section. The one
    place where the kernels' settings live; the grading kernel adds its sandbox to it
    (:mod:`helpers.grading.sandbox`)."""
    return {
        "argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "env": dict(KERNEL_ENV),
        "metadata": {"debugger": True},
    }


def install_kernelspec(prefix: str | os.PathLike | None = None) -> Path:
    """Write :func:`kernelspec` as ``<prefix>/share/jupyter/kernels/python3/kernel.json``
    (default prefix: this environment, ``sys.prefix``), where every Jupyter started from
    this environment finds it before ipykernel's built-in ``python3``. ``python -m helpers
    setup`` calls it; on a JupyterHub, run it in the single-user servers' environment.
    Returns the kernelspec folder."""
    folder = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernelspec(), indent=1) + "\n")
    return folder


#: Threads a TensorFlow process may use (intra-op, inter-op, OpenMP), set together.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def share_threads(jobs: int, env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Give every process of ``jobs`` running side by side its share of the CPUs as threads.

    Sets :data:`THREAD_VARIABLES` to ``max(1, CPUs // jobs)`` in ``env`` (default:
    ``os.environ``, inherited by the kernels and graders started afterwards) where they are
    not set already, in ``env`` or in ``os.environ``: a value the user chose wins. The course's
    small networks gain little from more threads (``benchmarks/lesson_threads.py``).
    Returns ``env``.
    """
    target = os.environ if env is None else env
    share = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for variable in THREAD_VARIABLES:
        target.setdefault(variable, os.environ.get(variable, share))
    return target


def apply_kernel_env() -> None:
    """Add :data:`KERNEL_ENV` to ``os.environ`` where not set, for this process (call it
    before TensorFlow is imported) and the kernels it starts."""
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
