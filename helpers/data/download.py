"""Resumable downloads that install only complete, verified files, for the public data sets.

:func:`download` streams a URL into ``<target>.part`` and renames it into place only when it
is complete and verified, even when no SHA-256 is known:

* the number of bytes matches ``Content-Length``; a resumed transfer (HTTP ``Range``) is
  appended only when the server's ``Content-Range`` starts exactly at the resume offset,
  otherwise the file restarts from zero; a ``416`` answer also restarts it;
* a web page (``Content-Type: text/html``, e.g. a login or error page served with 200) is
  refused; the first bytes must be those of the expected archive (``.zip``, ``.tar``,
  ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``), and the archive's own integrity is
  tested before the rename: every member's CRC for a zip, a read-through of every member
  for a tar;
* the SHA-256 is checked when the registry knows it; in every case the SHA-256 of the
  installed file is recorded in ``<target>.sha256`` (and printed by the command line);
* a transfer slower than ``min_rate`` bytes/s over any ``timeout``-second window (a server
  that trickles one byte every few seconds) is stopped, as is one silent for ``timeout`` s.

A file already at ``target`` is reused only when it passes the same checks (and matches its
recorded SHA-256); otherwise it is downloaded again. Every failure raises
:class:`DownloadError` whose message says what happened and what to do next.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

CHUNK = 1 << 20

#: Slowest accepted transfer, in bytes per second, averaged over ``timeout`` seconds.
MIN_RATE = 1024

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class DownloadError(RuntimeError):
    """A download failed or is incomplete; the message says how to go on."""


class _Restart(Exception):
    """The partial file cannot be resumed: start again from byte 0."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_file(target: Path) -> Path:
    """Where the SHA-256 of an installed download is recorded: ``<target>.sha256``."""
    target = Path(target)
    return target.with_name(target.name + ".sha256")


def recorded_sha256(target: Path) -> str | None:
    """The SHA-256 recorded when ``target`` was installed, or None."""
    try:
        return checksum_file(target).read_text().split()[0]
    except (OSError, IndexError):
        return None


def archive_kind(name: str) -> str | None:
    """"zip" or "tar" from a file name's ending; None for other files (not checked)."""
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return start.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def check_archive(path: Path, kind: str | None) -> str | None:
    """What is wrong with the archive ``path`` of ``kind`` ("zip", "tar" or None), or None
    when it is sound: magic bytes, then the zip CRC of every member or a tar read-through.
    """
    path = Path(path)
    with open(path, "rb") as stream:
        head = stream.read(512)
    if not head:
        return "the file is empty"
    if _looks_like_html(head):
        return "it is a web page (HTML), not an archive: the link may need a login, or it has moved"
    if kind == "zip":
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return f"it does not start like a zip archive (first bytes {head[:8]!r})"
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as error:
            return f"the zip archive is damaged ({error})"
        if bad is not None:
            return f"the zip archive is damaged (member {bad} fails its CRC check)"
    elif kind == "tar":
        compressed = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        if not compressed and head[257:262] != b"ustar":
            return f"it does not start like a tar archive (first bytes {head[:8]!r})"
        try:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile():
                        member_stream = archive.extractfile(member)
                        assert member_stream is not None  # a regular file (isfile) always has one
                        while member_stream.read(CHUNK):
                            pass
        except (tarfile.TarError, zlib.error, EOFError, OSError) as error:
            return f"the tar archive is damaged or truncated ({error})"
    return None


def _verify(path: Path, kind: str | None, sha256: str | None) -> tuple[str | None, str]:
    """(problem or None, SHA-256 of the file)."""
    problem = check_archive(path, kind)
    digest = sha256_of(path)
    if problem is None and sha256 is not None and digest != sha256.lower():
        problem = f"its SHA-256 is {digest}, expected {sha256}"
    return problem, digest


def _progress(total: int | None, initial: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False)


def _transfer(url: str, partial: Path, timeout: float, min_rate: float, suffix: str) -> None:
    """Fetch the rest of ``url`` into ``partial``; raise _Restart when it must start from 0."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "unet-course", "Accept-Encoding": "identity"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the server cannot continue from our offset: start again
            raise _Restart from None
        raise DownloadError(f"Could not download {url}: HTTP {error.code} {error.reason}.{suffix}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Could not download {url}: {reason} (offline?).{suffix}") from None

    with response:
        content_type = response.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() == "text/html":
            raise DownloadError(
                f"{url} answered with a web page ({content_type}), not the file: the link may need a login "
                f"or has moved. Nothing was installed.{suffix}")
        total = None
        if response.status == 206:
            match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise _Restart  # a part from another offset would corrupt the file
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length and length.isdigit() else total
        received = have
        window_start, window_bytes = time.monotonic(), 0
        try:
            with open(partial, mode) as stream, _progress(expected, have, partial.name[:-5]) as bar:
                while True:
                    block = response.read1(CHUNK)
                    if not block:
                        break
                    stream.write(block)
                    received += len(block)
                    window_bytes += len(block)
                    bar.update(len(block))
                    now = time.monotonic()
                    if now - window_start >= timeout:
                        if window_bytes < min_rate * (now - window_start):
                            raise DownloadError(
                                f"Download of {url} is too slow: {window_bytes} bytes in the last "
                                f"{now - window_start:.0f} s (less than {min_rate:.0f} bytes/s). {partial} keeps "
                                f"what arrived: run the same command again to resume.{suffix}")
                        window_start, window_bytes = now, 0
        except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
            if isinstance(error, OSError) and error.errno is not None and not stream_error(error):
                raise DownloadError(f"Could not write {partial}: {error.strerror}. Free disk space or choose "
                                    f"another folder (--to).{suffix}") from None
            raise DownloadError(
                f"Download of {url} broke off after {received} bytes ({error}). {partial} keeps "
                f"what arrived: run the same command again to resume.{suffix}") from None
    if expected is not None and received != expected:
        if received > expected:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{url} sent {received} bytes but announced {expected}; the file was deleted: "
                                f"run the command again, or fetch the file by hand.{suffix}")
        raise DownloadError(
            f"Download of {url} is incomplete: {received} of {expected} bytes. {partial} keeps "
            f"what arrived: run the same command again to resume.{suffix}")


def stream_error(error: OSError) -> bool:
    """True for a network-side OSError (reset, timeout), False for a local disk one."""
    import errno

    return error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
                               errno.ENAMETOOLONG)


def download(url: str, target: Path, *, sha256: str | None = None, timeout: float = 30.0,
             min_rate: float = MIN_RATE, help_text: str = "") -> Path:
    """Download ``url`` to ``target`` and return ``target``.

    Args:
        url: the address of the file.
        target: where to install it; bytes arrive in ``<target>.part`` first.
        sha256: expected hex SHA-256, when known.
        timeout: seconds of silence after which the transfer stops, and the window over
            which the rate must reach ``min_rate``.
        min_rate: slowest accepted transfer in bytes per second.
        help_text: appended to every error message (where to get the file by hand, which
            command to run next).

    Returns:
        ``target``, complete and verified (see the module docstring); its SHA-256 is
        recorded in ``<target>.sha256``.

    Raises:
        DownloadError: the server failed, the transfer broke off (``<target>.part`` keeps
            what arrived and the next call resumes), or the file failed verification (it is
            deleted).
    """
    target = Path(target)
    suffix = f"\n{help_text}" if help_text else ""
    kind = archive_kind(target.name)
    if target.is_file():
        problem, digest = _verify(target, kind, sha256)
        recorded = recorded_sha256(target)
        if problem is None and recorded not in (None, digest):
            problem = f"its SHA-256 {digest} differs from the one recorded at download, {recorded}"
        if problem is None:
            if recorded is None:
                checksum_file(target).write_text(f"{digest}  {target.name}\n")
            return target
        print(f"{target} is not usable ({problem}): downloading it again.")
        target.unlink()
        checksum_file(target).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    for _attempt in range(3):
        try:
            _transfer(url, partial, timeout, min_rate, suffix)
            break
        except _Restart:
            partial.unlink(missing_ok=True)
    else:
        raise DownloadError(f"{url} does not resume downloads correctly (wrong Content-Range or HTTP 416 "
                            f"several times); nothing was installed. Fetch the file by hand.{suffix}")
    problem, digest = _verify(partial, kind, sha256)
    if problem is not None:
        partial.unlink()
        raise DownloadError(
            f"The file downloaded from {url} is not usable: {problem}. It was deleted, nothing was "
            f"installed; run the command again, or fetch the file by hand.{suffix}")
    os.replace(partial, target)
    checksum_file(target).write_text(f"{digest}  {target.name}\n")
    return target
