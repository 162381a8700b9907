"""Converters from the raw layouts of the public data sets into the course layouts.

They apply the value checks of :mod:`helpers.data.io` (see :mod:`helpers.data.registry` for the rules):

* chest X-rays: ML-INFN preprocessing (black-border crop, resize, 5th-95th percentile
  contrast stretch) into ``images/<id>.png`` + ``masks/<id>.png``;
* lung CT (LCTSC), liver CT (3D-IRCADb) and brain MRI (BraTS) into NIfTI files.

Each ``prepare_*`` function writes the cases of one source folder into ``out`` and records
written and skipped cases in a :class:`PrepareReport`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import config
from helpers.data._store import DatasetError, atomic_write_bytes
from helpers.data.archives import find_dir, is_os_metadata, list_files
from helpers.data.catalogue import PublicDataset
from helpers.data.io import (
    BINARY_LABELS,
    as_3d,
    binary_mask,
    check_finite,
    check_labels,
    encode_png,
    nifti_bytes,
    read_grey,
    read_nifti,
    to_hounsfield,
)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class PrepareReport:
    """What ``prepare`` did: where, how many cases were written, which were skipped and why."""

    dataset: str
    dest: Path
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    two_valued: int = 0  # cases whose mask holds background and foreground

    def __str__(self) -> str:
        lines = [f"{self.dataset}: {self.written} cases written to {self.dest}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


# --------------------------------------------------------------------------------- chest X-rays

def crop_black_border(image: np.ndarray, fraction: float = 0.05) -> tuple[slice, slice]:
    """Rows and columns that remain after removing black borders: the bounding box of the
    rows/columns whose mean exceeds ``fraction`` of the image maximum.
    """
    limit = fraction * float(image.max()) if image.size else 0.0
    rows = np.flatnonzero(image.mean(axis=1) > limit)
    cols = np.flatnonzero(image.mean(axis=0) > limit)
    if rows.size == 0 or cols.size == 0:
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def preprocess_cxr(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """ML-INFN preprocessing of one radiograph and its mask: black-border crop, resize to
    ``size`` x ``size``, 5th-95th percentile contrast stretch. Returns uint8 image (0-255)
    and uint8 mask (0/255).
    """
    from skimage.transform import resize

    rows, cols = crop_black_border(image)
    image, mask = image[rows, cols], mask[rows, cols]
    image = resize(image, (size, size), anti_aliasing=True, preserve_range=True)
    mask = resize(mask.astype(np.float32), (size, size), order=1, anti_aliasing=False) >= 0.5
    low, high = np.percentile(image, (5, 95))
    stretched = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    return (stretched * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8) * 255


def _cxr_cases(entry: PublicDataset, root: Path) -> list[tuple[str, Path | None, list[Path | None]]]:
    """(case name, image, [mask parts]) for the raw CXR layouts; a missing image or mask
    part is None (a mask without its image is a case too, so that it is reported).
    """
    if entry.name == "montgomery":
        images = find_dir(root, ("CXR_png",), "image", entry)
        left = find_dir(root, ("leftMask",), "left-lung mask", entry)
        right = find_dir(root, ("rightMask",), "right-lung mask", entry)
        by_name = {p.name: p for p in list_files(images, "*.png")}
        lefts = {p.name: p for p in list_files(left, "*.png")}
        rights = {p.name: p for p in list_files(right, "*.png")}
        return [(Path(name).stem, by_name.get(name), [lefts.get(name), rights.get(name)])
                for name in sorted(set(by_name) | set(lefts) | set(rights))]
    images = find_dir(root, ("CXR_png", "images", "image", "img"), "image", entry)
    masks = find_dir(root, ("masks", "mask", "ManualMask"), "mask", entry)
    by_stem = {p.stem: p for p in list_files(images, "*.png")}
    masks_by_stem = {re.sub(r"_mask$", "", p.stem): p for p in list_files(masks, "*.png")}
    return [(stem, by_stem.get(stem), [masks_by_stem.get(stem)])
            for stem in sorted(set(by_stem) | set(masks_by_stem))]


def _cxr_case(image_path: Path | None, parts: list[Path | None], size: int, name: str,
              root: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """Read, check and preprocess one radiograph; (image, mask, mask holds both values)."""
    if image_path is None:
        shown = ", ".join(str(p) for p in parts if p is not None)
        raise DatasetError(f"{shown} has no image ({name}.png) in {root}: add the image, or pass --skip-bad "
                           f"to leave this mask out.")
    missing = [i for i, p in enumerate(parts) if p is None]
    if missing:
        raise DatasetError(f"{image_path} has no mask" + (
            f" ({'left' if missing == [0] else 'right' if missing == [1] else 'left and right'} lung mask "
            f"missing)" if len(parts) > 1 else "") + ": add it, or pass --skip-bad to leave this image out.")
    present = [p for p in parts if p is not None]  # all of them (none is missing)
    image = read_grey(image_path)
    mask = np.zeros(image.shape, dtype=bool)
    for part in present:
        piece = binary_mask(part, read_grey(part)) > 0
        if piece.shape != image.shape:
            raise DatasetError(f"{part} is {piece.shape[1]}x{piece.shape[0]} but its image {image_path} "
                               f"is {image.shape[1]}x{image.shape[0]}: they must match; fix or remove the pair.")
        mask |= piece
    image8, mask8 = preprocess_cxr(image, mask, size)
    return image8, mask8, bool(mask.any() and not mask.all())


def prepare_cxr(entry, root, out, size, skip_bad, report):
    """Write the chest X-ray pairs of ``root`` (``entry``'s raw layout) into ``out`` as PNG pairs."""
    from tqdm.auto import tqdm

    cases = _cxr_cases(entry, root)
    if not cases:
        raise DatasetError(f"no .png images found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, image_path, parts in tqdm(cases, desc=f"prepare {entry.name}", unit="image"):
        try:
            image8, mask8, two_valued = _cxr_case(image_path, parts, size, name, root)
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        atomic_write_bytes(out / "images" / f"{name}.png", encode_png(image8))
        atomic_write_bytes(out / "masks" / f"{name}.png", encode_png(mask8))
        report.written += 1
        report.two_valued += two_valued


# ------------------------------------------------------------------------------------- volumes

def _load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Stored voxel values (3D; trailing axes of length 1 dropped) and affine of a NIfTI file."""
    array, affine = read_nifti(path, fix="re-download or remove it")
    return as_3d(path, array), affine


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _check_shape(path: Path, array: np.ndarray, reference: Path, shape: tuple) -> None:
    if array.shape != tuple(shape):
        raise DatasetError(f"{path} has shape {array.shape} but {reference} has {shape}: image and mask "
                           f"must share one voxel grid; fix or remove the case.")


def _nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


BRATS_MODALITIES = ("t1", "t1ce", "t2", "flair")


def _volume_cases(entry: PublicDataset, root: Path):
    """Yield (case name, callable that returns ({relative path: bytes}, mask has foreground)).
    Cases are found from any of their files, so a case that lacks its image or one
    modality is reported, not silently dropped.
    """
    if entry.kind == "lung_ct":
        names = ("ct", "lung", "Lung_L", "Lung_R")
        found = [p for p in list_files(root, "*.nii*", recursive=True) if _nifti_stem(p) in names]
        for case in sorted({p.parent for p in found}):
            def make_lung_case(case=case):
                ct = _find_nifti(case, "ct")
                lung = _find_nifti(case, "lung")
                parts = [lung] if lung else [_find_nifti(case, "Lung_L"), _find_nifti(case, "Lung_R")]
                if ct is None:
                    raise DatasetError(f"{case} has a lung mask but no ct.nii.gz (the CT volume): add it, or "
                                       f"pass --skip-bad to leave the case out.")
                if any(p is None for p in parts):
                    raise DatasetError(f"{case} has ct but no lung mask (lung.nii.gz, or Lung_L and Lung_R): "
                                       f"add it, or pass --skip-bad to leave the case out.")
                volume, affine = _load_volume(ct)
                hu = to_hounsfield(ct, volume)
                mask = np.zeros(volume.shape, dtype=np.uint8)
                for part in parts:
                    labels, _ = _load_volume(part)
                    _check_shape(part, labels, ct, volume.shape)
                    mask |= (check_labels(part, labels, BINARY_LABELS) > 0).astype(np.uint8)
                return ({f"{case.name}/ct.nii.gz": nifti_bytes(hu, affine),
                         f"{case.name}/lung.nii.gz": nifti_bytes(mask, affine)}, bool(mask.any() and not mask.all()))
            yield case.name, make_lung_case
    elif entry.kind == "liver_ct":
        found = [p for p in list_files(root, "ircad_e*.nii*", recursive=True)
                 if re.fullmatch(r"ircad_e.*_(orig|liver)", _nifti_stem(p))]
        stems = sorted({(p.parent, re.sub(r"_(orig|liver)$", "", _nifti_stem(p))) for p in found})
        for folder, stem in stems:
            def make_liver_case(folder=folder, stem=stem):
                orig = _find_nifti(folder, f"{stem}_orig")
                liver = _find_nifti(folder, f"{stem}_liver")
                if orig is None:
                    raise DatasetError(f"{liver} has no {stem}_orig.nii.gz (the CT volume) beside it: add it, or "
                                       f"pass --skip-bad to leave the case out.")
                if liver is None:
                    raise DatasetError(f"{orig} has no {stem}_liver.nii.gz beside it: add it, or pass "
                                       f"--skip-bad to leave the case out.")
                volume, affine = _load_volume(orig)
                hu = to_hounsfield(orig, volume)
                labels, _ = _load_volume(liver)
                _check_shape(liver, labels, orig, volume.shape)
                mask = (check_labels(liver, labels, BINARY_LABELS) > 0).astype(np.uint8)
                return ({f"{stem}_orig.nii.gz": nifti_bytes(hu, affine),
                         f"{stem}_liver.nii.gz": nifti_bytes(mask, affine)}, bool(mask.any() and not mask.all()))
            yield stem, make_liver_case
    else:  # brain_mri
        pattern = re.compile(r".*_(t1|t1ce|t2|flair|seg)|.*Segm")
        found = [p for p in list_files(root, "*.nii*", recursive=True) if pattern.fullmatch(_nifti_stem(p))]
        for case in sorted({p.parent for p in found}):
            name = case.name
            def make_brain_case(case=case, name=name):
                files = {}
                reference = None
                missing = [m for m in BRATS_MODALITIES if _find_nifti(case, f"{name}_{m}") is None]
                if missing:
                    raise DatasetError(f"{case} has no {', '.join(f'{name}_{m}.nii.gz' for m in missing)}: a BraTS "
                                       f"case needs all four modalities ({', '.join(BRATS_MODALITIES)}); add "
                                       f"{'it' if len(missing) == 1 else 'them'}, or pass --skip-bad to leave the "
                                       f"case out.")
                for modality in BRATS_MODALITIES:
                    path = _find_nifti(case, f"{name}_{modality}")
                    volume, affine = _load_volume(path)
                    if reference is None:
                        reference = (path, volume.shape)
                    _check_shape(path, volume, *reference)
                    check_finite(path, volume)
                    volume = volume.astype(np.float32)
                    check_finite(path, volume)  # float64 beyond float32's range becomes inf
                    files[f"{name}/{name}_{modality}.nii.gz"] = nifti_bytes(volume, affine)
                seg = _find_nifti(case, f"{name}_seg") or next(iter(list_files(case, "*Segm.nii*")), None)
                if seg is None:
                    raise DatasetError(f"{case} has no {name}_seg.nii.gz (label file): add it, or pass "
                                       f"--skip-bad to leave the case out.")
                labels, affine = _load_volume(seg)
                _check_shape(seg, labels, *reference)
                labels = check_labels(seg, labels, set(config.BRATS_LABELS))
                files[f"{name}/{name}_seg.nii.gz"] = nifti_bytes(labels, affine)
                return files, bool(labels.any() and not labels.all())
            yield name, make_brain_case


# ------------------------------------------------------------------------ DICOM (lessons 06, 07)

_IRCAD_PATIENT = re.compile(r"3Dircadb(?P<db>\d+)\.(?P<number>\d+)", re.IGNORECASE)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def _ircad_case_name(folder: Path) -> str:
    """``ircad_e07`` for ``3Dircadb1.7`` (``ircad2_e07`` for ``3Dircadb2.7``); other folder names as they are."""
    match = _IRCAD_PATIENT.fullmatch(folder.name)
    if not match:
        return _safe_name(folder.name)
    prefix = "ircad" if match["db"] == "1" else f"ircad{match['db']}"
    return f"{prefix}_e{int(match['number']):02d}"


def _unpacked(folder: Path, name: str, scratch: Path, what: str) -> Path:
    """``folder/name/`` when it is there, else ``folder/name.zip`` extracted into ``scratch``
    (the source is never written to). Raises DatasetError when neither exists.
    """
    from helpers.data.archives import extract_archive

    if (folder / name).is_dir():
        return folder / name
    archive = folder / f"{name}.zip"
    if not archive.is_file():
        raise DatasetError(f"{folder} has no {name}/ folder nor {name}.zip ({what}): add it from the download, or "
                           f"pass --skip-bad to leave the case out.")
    target = scratch / name
    target.mkdir(parents=True)
    extract_archive(archive, target)
    return target / name if (target / name).is_dir() else target


def _slice_files(folder: Path) -> list[Path]:
    """Every file of a series folder (3D-IRCADb names them ``image_N`` without an extension);
    OS metadata left out. File names play no part in the slice order.
    """
    return [p for p in list_files(folder, "*")
            if p.name.upper() != "DICOMDIR" and not p.name.lower().endswith((".txt", ".json", ".csv", ".xml"))]


def _ircad_dicom_cases(root: Path, scratch: Path):
    """3D-IRCADb as downloaded: ``3Dircadb1.N/PATIENT_DICOM/`` + ``MASKS_DICOM/liver/``, each
    unpacked or as ``PATIENT_DICOM.zip``/``MASKS_DICOM.zip``; written as ``ircad_eNN_orig.nii.gz``
    (int16 HU) + ``ircad_eNN_liver.nii.gz`` (uint8 0/1) on the CT grid.
    """
    import shutil

    from helpers.data import dicom

    patients = sorted({p.parent for p in root.rglob("PATIENT_DICOM*")
                       if not is_os_metadata(p) and (p.name == "PATIENT_DICOM" and p.is_dir()
                                                     or p.name == "PATIENT_DICOM.zip" and p.is_file())},
                      key=lambda folder: (_ircad_case_name(folder), str(folder)))
    for folder in patients:
        name = _ircad_case_name(folder)

        def make(folder=folder, name=name):
            work = scratch / "dicom" / name
            try:
                ct_dir = _unpacked(folder, "PATIENT_DICOM", work, "the CT slices")
                masks = _unpacked(folder, "MASKS_DICOM", work, "the organ masks")
                liver_dir = next((p for p in masks.iterdir() if p.is_dir() and p.name.lower() == "liver"), None)
                if liver_dir is None:
                    raise DatasetError(f"{folder}: MASKS_DICOM has no liver/ folder (found: "
                                       f"{', '.join(sorted(p.name for p in masks.iterdir())) or 'nothing'}): add "
                                       f"it from the download, or pass --skip-bad to leave the case out.")
                ct = dicom.read_series(_slice_files(ct_dir), what="CT series")
                liver = dicom.read_series(_slice_files(liver_dir), rescale=False, what="liver mask series")
                dicom.check_same_grid(liver, ct, "liver mask series", "CT series")
                hu = to_hounsfield(ct_dir, ct.voxels)
                mask = (check_labels(liver_dir, liver.voxels, BINARY_LABELS) > 0).astype(np.uint8)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return ({f"{name}_orig.nii.gz": nifti_bytes(hu, ct.affine),
                     f"{name}_liver.nii.gz": nifti_bytes(mask, ct.affine)}, bool(mask.any() and not mask.all()))
        yield name, make


def _lctsc_dicom_cases(root: Path):
    """LCTSC as downloaded from TCIA: per patient a CT series and an RTSTRUCT (any folder
    layout; files are told apart by their headers). Written as ``<PatientID>/ct.nii.gz``
    (int16 HU) + ``<PatientID>/lung.nii.gz`` (the lung ROIs rasterised, merged, uint8 0/1).
    """
    from helpers.data import dicom

    patients: dict[str, dict] = {}
    for path in list_files(root, "*", recursive=True):
        if not dicom.is_dicom(path):
            continue
        header = dicom.read_header(path)
        modality = str(getattr(header, "Modality", ""))
        top = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else root.name
        name = _safe_name(str(getattr(header, "PatientID", "") or top))
        patient = patients.setdefault(name, {"ct": {}, "rtstruct": []})
        if modality == "CT":
            patient["ct"].setdefault(str(getattr(header, "SeriesInstanceUID", "")), []).append(path)
        elif modality == "RTSTRUCT":
            patient["rtstruct"].append((path, dicom.referenced_series_uids(header)))
    for name in sorted(patients):
        def make(name=name, patient=patients[name]):
            structures, series = patient["rtstruct"], patient["ct"]
            where = f"the DICOM files of patient {name} in {root}"
            if not structures:
                raise DatasetError(f"{where} hold a CT series but no RTSTRUCT (the lung contours): add it from the "
                                   f"download, or pass --skip-bad to leave the case out.")
            if len(structures) > 1:
                raise DatasetError(f"{where} hold {len(structures)} RTSTRUCT files "
                                   f"({', '.join(str(p) for p, _ in structures)}): keep the one with the lung "
                                   f"contours, or pass --skip-bad to leave the case out.")
            rtstruct, references = structures[0]
            if not series:
                raise DatasetError(f"{rtstruct} has no CT series beside it (patient {name}): add the CT slices "
                                   f"from the download, or pass --skip-bad to leave the case out.")
            chosen = [uid for uid in series if uid in references]
            if not chosen and (references or len(series) > 1):
                raise DatasetError(f"{rtstruct} references the CT series {', '.join(sorted(references)) or '(none)'}, "
                                   f"but {where} hold {', '.join(sorted(series))}: add the CT series the contours "
                                   f"were drawn on, or pass --skip-bad to leave the case out.")
            ct = dicom.read_series(series[(chosen or list(series))[0]], what="CT series")
            mask, _ = dicom.rasterise_rtstruct(rtstruct, ct)
            hu = to_hounsfield(ct.files[0].parent, ct.voxels)
            return ({f"{name}/ct.nii.gz": nifti_bytes(hu, ct.affine),
                     f"{name}/lung.nii.gz": nifti_bytes(mask, ct.affine)}, bool(mask.any() and not mask.all()))
        yield name, make


def prepare_volumes(entry, root, out, size, skip_bad, report, scratch: Path | None = None):
    """Write the volume cases of ``root`` (``entry``'s raw layout) into ``out`` as NIfTI files."""
    from tqdm.auto import tqdm

    cases = list(_volume_cases(entry, root))
    if not cases and entry.kind == "liver_ct":
        cases = list(_ircad_dicom_cases(root, Path(scratch or out.parent)))
    elif not cases and entry.kind == "lung_ct":
        cases = list(_lctsc_dicom_cases(root))
    if not cases:
        raise DatasetError(f"no cases found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, make in tqdm(cases, desc=f"prepare {entry.name}", unit="case"):
        try:
            files, two_valued = make()
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        for relative, payload in files.items():
            atomic_write_bytes(out / relative, payload)
        report.written += 1
        report.two_valued += two_valued
