"""Made-up inputs shared by several test modules (not part of the course's public ``helpers``).

``fake_cxr_pairs`` is the made-up chest X-ray file list that lesson 04's split check feeds to
the learner's function; the check keeps it private, and the tests use the same one.
"""

from __future__ import annotations

from pathlib import Path

from helpers.checks.training import _fake_cxr_pairs as fake_cxr_pairs

__all__ = ["fake_cxr_pairs"]


def unix_socket(path: Path) -> None:
    """Leave a UNIX socket file at ``path`` (a submission's hostile content). Bound by a relative
    name from its folder: under pytest-xdist the absolute path can exceed AF_UNIX's 108 bytes."""
    import os
    import socket

    server = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        server.bind(path.name)
    finally:
        os.chdir(here)
        server.close()
