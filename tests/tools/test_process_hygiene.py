"""The suite's own hygiene: conftest.no_process_left_behind sees a process a test leaves running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from support.processes import descendants, left_behind


def test_a_process_left_running_is_seen_and_a_stopped_one_is_not():
    before = set(descendants(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in descendants(os.getpid())
        assert child.pid in left_behind(before, grace_seconds=0.5), "a running child must count as left behind"
    finally:
        child.kill()
        child.wait()
    assert child.pid not in left_behind(before, grace_seconds=0.5), "a stopped child is not left behind"


def test_grandchildren_count_too():
    before = set(descendants(os.getpid()))
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                               "time.sleep(60)\n"], start_new_session=True)
    try:
        for _ in range(100):
            found = left_behind(before, grace_seconds=0.0)
            if len(found) >= 2:
                break
            time.sleep(0.1)
        assert len(found) >= 2 and parent.pid in found
    finally:
        os.killpg(parent.pid, 9)
        parent.wait()
