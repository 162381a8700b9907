"""Archive and source-folder handling for ``prepare``: extraction into a scratch folder
beside the destination, refusal of unsafe tar members, OS metadata files left out, and
sentences that tell a local problem (disk full, quota, permissions, a path too long) from a
damaged archive.
"""

from __future__ import annotations

import errno
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.data._store import DatasetError

#: Names of operating-system metadata files that are never data (macOS, Windows).
OS_METADATA = (".DS_Store", "Thumbs.db", "desktop.ini")

# Python releases before 3.10.12 / 3.11.4 have no extraction filters (and never raise this).
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())


def is_os_metadata(path: str | Path) -> bool:
    """True for macOS/Windows metadata files (``._name``, ``.DS_Store``, ``Thumbs.db``,
    ``desktop.ini``) and anything inside a ``__MACOSX`` folder.
    """
    parts = Path(path).parts
    return bool(parts) and (parts[-1].startswith("._") or parts[-1] in OS_METADATA or "__MACOSX" in parts)


def list_files(folder: Path, pattern: str, recursive: bool = False) -> list[Path]:
    """Sorted files matching ``pattern`` in ``folder``, OS metadata files left out."""
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(p for p in found if p.is_file() and not is_os_metadata(p))


#: What a local OSError's errno means (an error without an errno has none here).
_LOCAL_ERRNOS: dict[int | None, str] = {
    errno.ENOSPC: "the disk is full", errno.EDQUOT: "your disk quota is exceeded",
    errno.EFBIG: "the file is too large for this file system",
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENAMETOOLONG: "the path or a file name is longer than this system allows",
    errno.EMFILE: "too many open files", errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file"}


def local_problem(error: OSError) -> str:
    """A sentence for a local OSError (disk, quota, permissions, path length), naming the file."""
    what = _LOCAL_ERRNOS.get(error.errno, error.strerror or str(error))
    where = error.filename or "a file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free some space, or choose a destination (--dest) on another disk"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "fix the permissions, or choose a destination (--dest) you can write to"
    elif error.errno == errno.ENAMETOOLONG:
        fix = "use shorter folder names (or a destination closer to the root of the disk)"
    else:
        fix = "check the path and try again"
    return f"{where}: {what} (a problem of this computer's disk or permissions, not of the data): {fix}."


def extract_archive(source: Path, target: Path) -> None:
    """Extract the ``.zip`` or ``.tar`` archive ``source`` into the existing folder ``target``:
    OS metadata members are left out, unsafe tar members refused.

    Raises:
        DatasetError: not an archive, a damaged archive, an unsafe member, or a local
            disk/permission problem while extracting; the message names the archive.
    """
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                members = [m for m in archive.namelist() if not is_os_metadata(m)]
                archive.extractall(target, members=members)
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                tar_members = [m for m in archive.getmembers() if not is_os_metadata(m.name)]
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(target, members=tar_members, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: no `filter=`; refuse what the "data" filter refuses
                    for member in tar_members:
                        parts = Path(member.name).parts
                        if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
                            raise DatasetError(f"{source} holds an unsafe member ({member.name!r}: an absolute path, "
                                               f"'..', a link or a device), so nothing was extracted. Use the "
                                               f"official archive.")
                    archive.extractall(target, members=tar_members)
        else:
            raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive: pass the "
                               f"downloaded archive or the folder it extracts to.")
    except _TAR_FILTER_ERROR as error:
        raise DatasetError(f"{source} holds an unsafe member ({error}): it would be written outside the "
                           f"extraction folder, so nothing was extracted. Use the official archive.") from None
    except OSError as error:
        if error.errno is not None:  # zipfile/tarfile errors carry no errno; the OS's do
            raise DatasetError(f"Extracting {source} failed: {local_problem(error)}") from None
        raise DatasetError(f"{source} is a damaged archive ({error}): download it again.") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        raise DatasetError(f"{source} is a damaged archive ({error}): download it again.") from None


@contextmanager
def opened_source(source: Path, scratch: Path) -> Iterator[Path]:
    """Yield a folder for ``source``: the folder itself, or an archive extracted into
    ``scratch/extract`` (beside the destination, never the system temp folder). OS metadata
    members are not extracted; unsafe tar members (absolute paths, links leaving the
    archive) are refused.
    """
    source = Path(source)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise DatasetError(f"{source} does not exist: pass the downloaded archive or the folder it extracts to.")
    target = Path(scratch) / "extract"
    target.mkdir()
    extract_archive(source, target)
    yield target


def find_dir(root: Path, names: tuple[str, ...], what: str, entry) -> Path:
    """The first folder under ``root`` (root included) whose name is one of ``names``."""
    wanted = {n.lower() for n in names}
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not is_os_metadata(p))
    for candidate in candidates:
        if candidate.name.lower() in wanted:
            return candidate
    raise DatasetError(f"no {what} folder ({'/'.join(names)}) found in {root}. Expected layout for "
                       f"{entry.name}: {entry.raw_layout}")
