"""Safe writing of generated data sets: metadata, atomic files, no clobbering.

Every generated data set lives in its own folder with a ``dataset.json`` that records the
generator, its version, its parameters and the files it wrote. :func:`generate_into`

* reuses the folder when the metadata matches and every listed file is there;
* regenerates when the parameters or the version differ, deleting only files it wrote;
* refuses, with an error that names the files, to delete or overwrite anything else
  unless ``force=True``;
* writes each file under a temporary name and renames it into place, and marks the set
  complete only at the very end, so an interrupted run never looks complete;
* holds an OS-level lock (``flock``) while it writes, which the operating system releases
  when the process dies, however it dies, so a waiter takes over within a fraction of a
  second; worker processes watch their parent and exit when it is gone.

Files are written with the permissions of ordinary files (``0666`` minus the umask), so a
data set generated on a shared hub is readable by the other users as usual.

:func:`owned_scratch` gives a temporary folder next to a destination that the next run
(and ``python -m helpers data list``) recognises and removes once its owner has died.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeGuard

try:  # POSIX: flock locks are dropped by the kernel when their process dies
    import fcntl
except ImportError:  # Windows: byte-range locks, also released by the OS on exit
    fcntl = None  # type: ignore[assignment]  # no fcntl module here: the lock code tests for None
    import msvcrt

METADATA_NAME = "dataset.json"

#: Name of the owner lock file inside a scratch folder made by :func:`owned_scratch`.
OWNER_NAME = ".owner.lock"


class DatasetError(ValueError):
    """A data set on disk is missing, incomplete or inconsistent; the message says the fix."""


class LabelError(DatasetError):
    """A label file (mask, segmentation) holds values its data set does not allow.

    Raised by :func:`helpers.data.io.check_labels`, the one label check of every volume loader.
    """


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, which changes nothing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder, then
    rename it into place, so readers never see a half-written file. The file gets the
    permissions of an ordinary new file (``0666`` minus the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_metadata(folder: Path) -> dict | None:
    """The parsed ``dataset.json`` of ``folder``, or None when there is none or it is unreadable."""
    path = Path(folder) / METADATA_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_metadata(folder: Path, metadata: dict) -> None:
    atomic_write_bytes(Path(folder) / METADATA_NAME, (json.dumps(metadata, indent=2) + "\n").encode())


def _same_request(old: dict | None, request: dict) -> TypeGuard[dict]:
    if not old:
        return False
    return all(old.get(key) == value for key, value in request.items())


def is_complete(folder: Path, request: dict) -> bool:
    """True when ``folder`` holds a complete set made for exactly ``request``."""
    old = read_metadata(folder)
    if not _same_request(old, request) or not old.get("complete"):
        return False
    return all((Path(folder) / name).is_file() for name in old.get("files", []))


def _clear(folder: Path, planned: Iterable[str], force: bool) -> None:
    """Remove what an earlier run of a course generator wrote; refuse to touch anything else."""
    folder = Path(folder)
    if not folder.exists():
        return
    if force:
        shutil.rmtree(folder)
        return
    old = read_metadata(folder)
    ours = set(planned)
    if old is not None and old.get("generator"):
        ours |= set(old.get("files", [])) | set(old.get("planned", []))
        ours.add(METADATA_NAME)
    foreign = sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*")
        if path.is_file() and str(path.relative_to(folder)).replace(os.sep, "/") not in ours
        and not path.name.endswith(".tmp")
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DatasetError(
            f"{folder} already holds files that the course generator did not write ({shown}). "
            f"Nothing was changed. Choose another folder, move those files away, or pass "
            f"force=True to delete the folder and regenerate it."
        )
    for name in ours:
        (folder / name).unlink(missing_ok=True)
    for leftover in folder.rglob("*.tmp"):
        leftover.unlink()


def _try_lock(handle: int) -> bool:
    """Take an exclusive OS-level lock on the open file ``handle`` without waiting."""
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True
    try:
        msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _acquire(lock: Path) -> int | None:
    """Open and lock ``lock``; the open handle, or None when another process holds it."""
    handle = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        if _try_lock(handle):
            # A holder that releases unlinks the file first: make sure ours is still the one there.
            try:
                if os.path.samestat(os.fstat(handle), os.stat(lock)):
                    return handle
            except FileNotFoundError:
                pass
    except BaseException:
        os.close(handle)
        raise
    os.close(handle)
    return None


def _release(lock: Path, handle: int) -> None:
    if fcntl is not None:  # unlink while still holding the lock (see _acquire)
        lock.unlink(missing_ok=True)
    os.close(handle)


def lock_holder(lock: Path) -> str:
    """The PID recorded in ``lock`` (informative only), or "unknown"."""
    try:
        return Path(lock).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def folder_lock(folder: Path, timeout: float = 600.0, poll: float = 0.2) -> Iterator[None]:
    """Hold ``.<folder name>.lock`` beside ``folder`` so that two processes (two notebooks,
    a notebook and a test) never generate the same data set at once.

    The lock is an OS-level lock (``flock`` on POSIX), which the operating system releases
    when its process ends in any way (``kill -9`` included); a waiter checks every ``poll``
    seconds and takes over at once. Raises DatasetError after ``timeout`` seconds of
    waiting for a live holder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.parent / f".{folder.name}.lock"
    deadline = time.monotonic() + timeout
    while (handle := _acquire(lock)) is None:
        if time.monotonic() > deadline:
            raise DatasetError(
                f"{folder} is being generated by another process (PID {lock_holder(lock)}, lock {lock}), "
                f"still running after {timeout:.0f} s. Wait for it to finish, or stop that process: its "
                f"lock is released as soon as it ends.")
        time.sleep(poll)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield
    finally:
        _release(lock, handle)


def remove_stale_locks(parent: Path) -> list[Path]:
    """Delete the lock files in ``parent`` that no live process holds (they are harmless, but
    litter). Returns the removed paths.
    """
    removed = []
    for lock in sorted(Path(parent).glob(".*.lock")):
        if not lock.is_file():
            continue
        handle = _acquire(lock)
        if handle is not None:
            _release(lock, handle)
            removed.append(lock)
    return removed


# ---------------------------------------------------------------- scratch folders with an owner

@contextmanager
def owned_scratch(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary folder ``parent/<prefix>XXXX`` that this process owns: it holds a locked
    ``.owner.lock``, is removed when the block exits (normally or by an exception), and is
    recognised as litter by :func:`remove_leftovers` once the owner has died.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    handle = None
    try:
        handle = _acquire(scratch / OWNER_NAME)
        if handle is None:  # cannot happen: the folder is new and ours
            raise DatasetError(f"could not lock the new folder {scratch}: remove it and try again.")
        os.write(handle, f"{os.getpid()}\n".encode())
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if handle is not None:
            os.close(handle)


def remove_leftovers(parent: Path, pattern: str = ".*.partial-*", min_age: float = 60.0) -> list[Path]:
    """Remove the scratch folders matching ``pattern`` in ``parent`` whose owner process is no
    longer alive (left by a killed run). A folder without an owner file (made by an older
    version) counts as a leftover once it is ``min_age`` seconds old. Returns the removed
    folders.
    """
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for folder in sorted(parent.glob(pattern)):
        if not folder.is_dir() or folder.is_symlink():
            continue
        owner = folder / OWNER_NAME
        if owner.is_file():
            handle = _acquire(owner)
            if handle is None:
                continue  # its owner is alive and working
            os.close(handle)
        else:
            try:
                if time.time() - folder.stat().st_mtime < min_age:
                    continue
            except FileNotFoundError:
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


# ---------------------------------------------------------------------------------- workers

def _parent_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Initializer of pool workers: a daemon thread ends this worker as soon as the process
    that made the pool has died (killed with SIGKILL or SIGTERM, or crashed), instead of
    leaving it orphaned.
    """
    first_ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != first_ppid or not _parent_alive(parent):
                os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers exit when this process dies."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_watch_parent, initargs=(os.getpid(),))


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; this only keeps the store importable without it
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="file" if total else None, leave=False)


def generate_into(
    folder: Path,
    *,
    request: dict[str, Any],
    planned: Sequence[str],
    tasks: Sequence[Any],
    make: Callable[[Any], dict[str, bytes]],
    force: bool = False,
    desc: str = "generating",
    workers: int = 1,
) -> Path:
    """Generate a data set into ``folder`` unless an identical complete one is there.

    ``request`` identifies the set (``{"generator": ..., "version": ..., "params": {...}}``)
    and is stored in ``dataset.json``. ``planned`` lists every relative path (with ``/``)
    that the tasks will write. ``make(task)`` returns ``{relative path: file bytes}`` and
    must be a module-level function when ``workers > 1`` (it then runs in worker
    processes). Returns ``folder``.
    """
    folder = Path(folder)
    if not force and is_complete(folder, request):
        return folder
    with folder_lock(folder):
        if not force and is_complete(folder, request):  # another process finished it meanwhile
            return folder
        return _generate(folder, request, planned, tasks, make, force, desc, workers)


def _generate(folder, request, planned, tasks, make, force, desc, workers) -> Path:
    _clear(folder, planned, force)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = dict(request, complete=False, planned=list(planned), files=[])
    _write_metadata(folder, metadata)
    written: list[str] = []
    if workers > 1 and len(tasks) > 1:
        pool = worker_pool(workers)
        try:
            results = pool.map(make, tasks, chunksize=max(1, len(tasks) // (8 * workers)))
            for files in _progress(results, len(tasks), desc):
                for name, payload in files.items():
                    atomic_write_bytes(folder / name, payload)
                    written.append(name)
        except BaseException:  # interrupted or failed: stop the workers now, not after their queue
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
        pool.shutdown()
    else:
        for task in _progress(tasks, len(tasks), desc):
            for name, payload in make(task).items():
                atomic_write_bytes(folder / name, payload)
                written.append(name)
    missing = sorted(set(planned) - set(written))
    if missing:
        raise DatasetError(f"generator for {folder} did not write {missing[:5]}: this is a bug in helpers.data")
    metadata.update(complete=True, files=sorted(written))
    metadata.pop("planned")
    _write_metadata(folder, metadata)
    return folder
