"""Safe writing of generated data sets: metadata, atomic files, no clobbering.

Every generated data set lives in its own folder with a ``dataset.json`` that records the
generator, its version, its parameters and the files it wrote. :func:`generate_into`

* reuses the folder when the metadata matches and every listed file is there;
* regenerates when the parameters or the version differ, deleting only files it wrote;
* refuses, with an error that names the files, to delete or overwrite anything else
  unless ``force=True``;
* writes each file under a temporary name and renames it into place, and marks the set
  complete only at the very end, so an interrupted run never looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

METADATA_NAME = "dataset.json"


class DatasetError(ValueError):
    """A data set on disk is missing, incomplete or inconsistent; the message says the fix."""


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder, then
    rename it into place, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
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


def _same_request(old: dict | None, request: dict) -> bool:
    return bool(old) and all(old.get(key) == value for key, value in request.items())


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


@contextmanager
def folder_lock(folder: Path, timeout: float = 600.0, stale: float = 3600.0) -> Iterator[None]:
    """Hold ``.<folder name>.lock`` beside ``folder`` so that two processes (two notebooks,
    a notebook and a test) never generate the same data set at once. A lock older than
    ``stale`` seconds is taken to be left over from a killed process and removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.parent / f".{folder.name}.lock"
    deadline = time.monotonic() + timeout
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(handle, str(os.getpid()).encode())
            os.close(handle)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > stale:
                    lock.unlink(missing_ok=True)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() > deadline:
                raise DatasetError(f"{folder} is being generated by another process (lock {lock}). "
                                   f"Wait for it, or delete the lock file if no other process runs.") from None
            time.sleep(0.5)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


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
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(make, tasks, chunksize=max(1, len(tasks) // (8 * workers)))
            for files in _progress(results, len(tasks), desc):
                for name, payload in files.items():
                    atomic_write_bytes(folder / name, payload)
                    written.append(name)
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
