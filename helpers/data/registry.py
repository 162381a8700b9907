"""Preparing the public data sets: ``prepare`` (raw download -> course layout), ``fetch``
(download), ``is_prepared``; the catalogue itself is :mod:`helpers.data.catalogue`, archive
handling :mod:`helpers.data.archives`, the converters :mod:`helpers.data.converters`, and
all file reading and value checks :mod:`helpers.data.io`. The names of those modules that
callers used from here (``DATASETS``, ``get``, ``PublicDataset``, ``PrepareReport``,
``crop_black_border``, ``preprocess_cxr``, ...) are re-exported.

Each :class:`PublicDataset` records the official page, licence, citation, the expected
raw layout and (where one is known) a direct download URL. ``prepare(name, source, dest)``
converts a raw download, an archive (``.zip``, ``.tar``, ``.tar.gz``) or its extracted
folder, into the layout that the lessons read, with a progress bar:

* chest X-rays (lessons 01-05): ``images/<id>.png`` + ``masks/<id>.png`` (0/255), after the
  preprocessing of the ML-INFN course: black-border crop, 5th-95th percentile contrast
  stretch, resize to ``size`` x ``size``; Montgomery's left and right lung masks are merged,
  Shenzhen's ``<id>_mask.png`` files are paired with their images;
* lung CT (lesson 06): ``<case>/ct.nii.gz`` + ``<case>/lung.nii.gz`` (left and right lung
  masks merged when they come separately), from NIfTI or from LCTSC's DICOM download (CT
  series + RTSTRUCT, the lung contours rasterised onto the CT grid; :mod:`helpers.data.dicom`);
* liver CT (lesson 07): ``ircad_eNN_orig.nii.gz`` + ``ircad_eNN_liver.nii.gz``, from NIfTI or
  from 3D-IRCADb's DICOM folders ``3Dircadb1.N/PATIENT_DICOM/`` + ``MASKS_DICOM/liver/``
  (unpacked or as the per-patient zips, which are extracted into the scratch folder);
* brain MRI (lesson 08): ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 0/1/2/4.

Every case is validated, values as well as shapes. A bad case raises
:class:`~helpers.data.DatasetError` naming the file and the fix or, with ``skip_bad=True``, is
left out and listed in the returned report:

* a missing image, mask, modality or CT volume (a mask without its image too);
* a file that cannot be read: damaged, not an image/NIfTI, larger than
  :data:`helpers.data.io.MAX_IMAGE_PIXELS` (a decompression bomb), not 2D (images) or not 3D (volumes;
  trailing axes of length 1 are dropped), unreadable for lack of permission;
* NaN or infinite values in any image or volume;
* CT values outside the int16 range (-32768..32767) in which prepared CT is stored: the rule
  is to refuse, not clip, since such values mean the file is not in Hounsfield units;
  fractional CT values are rounded to the nearest integer;
* labels that are not integers or not in the expected set, checked before any cast (masks:
  0/1 or 0/255; BraTS: 0, 1, 2, 4); a mask of image and mask size mismatch;
* DICOM: a slice without its geometry, a duplicated or missing slice, unequal slice spacing,
  a mask series off the CT grid, an RTSTRUCT without lung ROIs or whose contour references
  a CT slice that is absent.

Masks may be empty or full in a single case, but at least one case must hold both
background and foreground. OS metadata files (``._*``, ``.DS_Store``, ``Thumbs.db``,
``desktop.ini``, ``__MACOSX/``) are ignored.

The source is never modified: a destination equal to, inside or containing the source is
refused whatever ``force`` says. Archives are extracted, and the output written, inside one
scratch folder next to the destination (``.<dest>.partial-XXXX``), which is removed on any
exit the process survives and renamed into place only when everything succeeded; the
scratch folders of a killed run are removed by the next run (and by ``data list``). An
existing non-empty ``dest`` is replaced only with ``force=True``. A local problem (disk
full, quota, permissions, a path too long) is reported as such, not as a damaged archive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from helpers import config
from helpers.data import converters
from helpers.data._store import DatasetError, owned_scratch, remove_leftovers
from helpers.data.archives import (
    OS_METADATA,
    is_os_metadata,
    local_problem,
    opened_source,
)
from helpers.data.catalogue import DATASETS, PublicDataset, get, manual_download_help
from helpers.data.converters import (
    NIFTI_SUFFIXES,
    PrepareReport,
    crop_black_border,
    preprocess_cxr,
)

__all__ = ["DATASETS", "NIFTI_SUFFIXES", "OS_METADATA", "PrepareReport", "PublicDataset", "crop_black_border",
           "fetch", "get", "is_os_metadata", "is_prepared", "manual_download_help", "prepare", "preprocess_cxr"]


def _check_destination(source: Path, dest: Path, force: bool) -> None:
    """Refuse a destination that would touch the source, is a file, or is not empty (unless
    ``force``). Raises DatasetError; changes nothing.
    """
    src, dst = source.resolve(), dest.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        relation = ("is the source" if dst == src else "is inside the source" if dst.is_relative_to(src)
                    else "contains the source")
        raise DatasetError(f"The destination {dest} {relation} {source}: preparing there would overwrite or delete "
                           f"the raw download, so nothing was changed (--force does not override this). "
                           f"Choose a destination outside {source}.")
    for folder in (dest, *dest.parents):
        if folder.exists() and not folder.is_dir():
            raise DatasetError(f"The destination {dest} cannot be created: {folder} is a file, not a folder. "
                               f"Choose another destination (--dest) or move that file away.")
        if folder.exists():
            break
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DatasetError(f"{dest} is not empty: nothing was changed. Pass --force (force=True) to replace it, "
                           f"or choose another destination.")


def prepare(name: str, source: Path, dest: Path | None = None, *, size: int = config.CXR_IMAGE_SIZE,
            skip_bad: bool = False, force: bool = False) -> PrepareReport:
    """Convert the raw download ``source`` (archive or folder) of data set ``name`` into the
    course layout in ``dest`` (default ``data/<name>``) and return a :class:`PrepareReport`.

    Args:
        name: a registry name (``python -m helpers data list``).
        source: the downloaded archive or the folder it extracts to; never modified.
        dest: output folder; refused when it is, is inside or contains ``source``, or is a file.
        size: side in pixels of the prepared chest X-rays (volumes keep their grid).
        skip_bad: leave bad cases out and list them in the report instead of failing.
        force: replace a non-empty ``dest``.

    Returns:
        The report: cases written, cases skipped and why.

    Raises:
        DatasetError: a bad case (without ``skip_bad``), no usable case, masks that are all
            constant, a refused destination, or a local disk/permission/path problem; the
            message names the file. Nothing is left in ``dest`` or beside it when it fails.
    """
    entry = get(name)
    source = Path(source)
    dest = Path(dest) if dest else config.data_dir() / name
    if not 16 <= size <= 2048:
        raise DatasetError(f"size {size} is outside 16..2048 pixels.")
    try:
        _check_destination(source, dest, force)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for leftover in remove_leftovers(dest.parent, f".{dest.name}.partial-*"):
            print(f"removed {leftover}, left by an interrupted run")
        report = PrepareReport(dataset=name, dest=dest)
        with owned_scratch(dest.parent, f".{dest.name}.partial-") as scratch:
            out = scratch / "out"
            out.mkdir()
            with opened_source(source, scratch) as root:
                if entry.kind == "cxr":
                    converters.prepare_cxr(entry, root, out, size, skip_bad, report)
                else:
                    converters.prepare_volumes(entry, root, out, size, skip_bad, report, scratch=scratch)
            if report.written == 0:
                raise DatasetError(f"no usable case in {source} for {name}: nothing was written. "
                                   + "\n".join(f"{n}: {r}" for n, r in report.skipped[:5]))
            if report.two_valued == 0:
                what = "mask" if entry.kind != "brain_mri" else "label file"
                raise DatasetError(f"every {what} in {source} is constant (all background or all foreground): "
                                   f"these are not segmentations of {entry.title}; check that the mask files are "
                                   f"the right ones. Nothing was written.")
            metadata = {"prepared": name, "source": str(source), "size": size if entry.kind == "cxr" else None,
                        "written": report.written, "skipped": [list(s) for s in report.skipped]}
            (out / "prepared.json").write_text(json.dumps(metadata, indent=2) + "\n")
            if dest.exists():
                dest.rename(scratch / "replaced")  # removed with the scratch folder
            out.rename(dest)
    except OSError as error:
        raise DatasetError(f"prepare {name} failed: {local_problem(error)}") from None
    return report


def is_prepared(name: str, dest: Path | None = None) -> bool:
    """True when ``data/<name>`` (or ``dest``) holds a complete prepared set."""
    folder = Path(dest) if dest else config.data_dir() / name
    return (folder / "prepared.json").is_file()


def fetch(name: str, downloads: Path | None = None, *, downloader: Callable | None = None) -> Path:
    """Download the raw archive of ``name`` into ``downloads`` (default ``data/downloads``)
    when a direct URL is known; otherwise raise DownloadError saying how to get it by hand.
    """
    from helpers.data.download import DownloadError, download

    entry = get(name)
    help_text = manual_download_help(entry)
    if entry.url is None:
        raise DownloadError(f"No direct download is known for {entry.name}. {entry.notes} {help_text}".replace("  ", " "))
    folder = Path(downloads) if downloads else config.data_dir() / "downloads"
    target = folder / (entry.archive_name or Path(entry.url).name)
    return (downloader or download)(entry.url, target, sha256=entry.sha256, help_text=help_text)
