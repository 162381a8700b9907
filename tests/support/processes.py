"""The processes a test started and left running (read from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Helpers of the interpreter itself that live until it exits (not a test's leftovers).
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def descendants(pid: int) -> dict[int, str]:
    """Living (not zombie) descendants of ``pid`` as ``{pid: command line}``, read from /proc;
    empty where /proc does not exist."""
    parent_of, command_of = {}, {}
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue                                    # ended while we read it
        if fields[0] == "Z":
            continue
        parent_of[int(entry.name)] = int(fields[1])
        command_of[int(entry.name)] = command
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier and child not in found}
        found.update({child: command_of[child] for child in frontier})
    return found


def left_behind(before: set[int], grace_seconds: float = 10.0) -> dict[int, str]:
    """Descendants of this process that are not in ``before`` and are still alive after
    ``grace_seconds`` (interpreter helpers such as multiprocessing's resource tracker excluded)."""
    deadline = time.monotonic() + grace_seconds
    while True:
        new = {pid: command for pid, command in descendants(os.getpid()).items()
               if pid not in before and not any(helper in command for helper in _INTERPRETER_HELPERS)}
        if not new or time.monotonic() >= deadline:
            return new
        time.sleep(0.2)
