"""Resumable downloads with checksum verification, for the public data sets.

:func:`download` streams a URL into ``<target>.part``, resumes a partial file with an HTTP
``Range`` request, checks the SHA-256 when one is known, and renames the file into place
only when it is complete. Every failure raises :class:`DownloadError` whose message says
what happened and what to do next (often: fetch the file by hand, then run ``prepare``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed or is incomplete; the message says how to go on."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int | None, initial: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False)


def download(url: str, target: Path, *, sha256: str | None = None, timeout: float = 30.0,
             help_text: str = "") -> Path:
    """Download ``url`` to ``target`` and return ``target``.

    A complete ``target`` whose checksum matches (or with no known checksum) is reused.
    Bytes already in ``<target>.part`` are kept and the rest is requested with a ``Range``
    header; a server that ignores it restarts the file. The file is renamed into place only
    once all bytes announced by the server have arrived and the SHA-256 (if given)
    matches; a checksum mismatch deletes the partial file. ``help_text`` is appended to
    every error message (where to get the file by hand, which command to run next).
    """
    target = Path(target)
    suffix = f"\n{help_text}" if help_text else ""
    if target.is_file():
        if sha256 is None or sha256_of(target) == sha256:
            return target
        raise DownloadError(f"{target} exists but its SHA-256 does not match {sha256}: delete it "
                            f"and run the command again.{suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "unet-course"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            response = None
        else:
            raise DownloadError(f"Could not download {url}: HTTP {error.code} {error.reason}.{suffix}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Could not download {url}: {reason} (offline?).{suffix}") from None

    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            received = have
            try:
                with open(partial, "ab" if resumed else "wb") as stream, \
                        _progress(expected, have, target.name) as bar:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        stream.write(block)
                        received += len(block)
                        bar.update(len(block))
            except (OSError, urllib.error.URLError) as error:
                raise DownloadError(
                    f"Download of {url} broke off after {received} bytes ({error}). {partial} keeps "
                    f"what arrived: run the same command again to resume.{suffix}") from None
            if expected is not None and received < expected:
                raise DownloadError(
                    f"Download of {url} is incomplete: {received} of {expected} bytes. {partial} keeps "
                    f"what arrived: run the same command again to resume.{suffix}")

    if sha256 is not None:
        found = sha256_of(partial)
        if found != sha256:
            partial.unlink()
            raise DownloadError(
                f"The file downloaded from {url} is corrupt: SHA-256 {found}, expected {sha256}. "
                f"It was deleted; run the command again, or fetch the file by hand.{suffix}")
    os.replace(partial, target)
    return target
