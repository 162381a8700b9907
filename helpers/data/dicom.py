"""DICOM in, NIfTI out: CT series and their masks (3D-IRCADb's ``MASKS_DICOM/``, LCTSC's
RTSTRUCT contours) read onto one voxel grid with the affine that places it in the patient.

The reader is `pydicom <https://pydicom.github.io>`_: pure Python (a wheel for every
platform, nothing to compile, no native library to match), maintained by a large community,
and it reads the RTSTRUCT contours as well as the images. SimpleITK would read the image
series (it pulls in ITK's native libraries) but not the structure sets, which would still
need pydicom, and its series reader orders slices itself; here every step is in plain view.
pydicom is imported inside the functions, so ``import helpers.data`` works without it.

Geometry, following the DICOM standard (PS3.3 C.7.6.2), never file names or slice numbers:

* slice order: ImagePositionPatient projected on the slice normal (the cross product of the
  two ImageOrientationPatient direction cosines), ascending;
* voxel values: stored value x RescaleSlope + RescaleIntercept (per slice) for CT, in
  Hounsfield units; masks keep their stored values (0/1 or 0/255);
* spacing: PixelSpacing (between rows, between columns) in-plane, the distance between
  consecutive slice positions across; a duplicated position, a gap (a missing slice), unequal
  steps, or a slice off the line of the others raise :class:`~helpers.data.DatasetError`;
* array and affine: ``volume[i, j, k]`` is column ``i``, row ``j`` of slice ``k`` (the
  ``(x, y, z)`` order of the course's NIfTI files); the affine maps ``(i, j, k, 1)`` to
  millimetres in RAS (NIfTI's world) from DICOM's LPS by negating x and y::

      LPS = IPP_0 + i * dc * F_row + j * dr * F_col + k * (IPP_last - IPP_0) / (n - 1)

  with ``F_row``, ``F_col`` the two direction cosines and ``(dr, dc)`` = PixelSpacing.
  Oblique, flipped and tilted acquisitions keep their true geometry in the affine; the
  array is not resampled.

RTSTRUCT contours (``CLOSED_PLANAR``) are mapped into voxel coordinates through the inverse
affine and filled on the slice that each contour references (ContourImageSequence) — a
referenced slice absent from the CT series is an error, not a silent gap — or, without a
reference, on the slice at the contour's position. A voxel belongs to a contour when its
centre lies inside the polygon; several contours of one ROI on one slice combine by parity
(a contour inside another is a hole), and the ROIs chosen (the lungs) are merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.data._store import DatasetError

if TYPE_CHECKING:
    from pydicom import Dataset

#: Flip from DICOM's patient frame (LPS: x to the left, y to the back) to NIfTI's (RAS).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: ROI names of RTSTRUCT structure sets that are lungs (LCTSC: ``Lung_L``, ``Lung_R``; also
#: ``Lungs``, ``LUNG_LEFT``, ``L_Lung``, ``Lung left``); ``Lung_GTV``-like names are not lungs.
LUNG_ROI = re.compile(r"lungs?([ _-]?(l|r|left|right))?|(l|r|left|right)[ _-]?lungs?", re.IGNORECASE)

_DUPLICATE_MM = 0.01   # two slices closer than this along the normal are one position
_GAP_FACTOR = 1.5      # a step this many times the smallest is a missing slice
_UNEQUAL = 0.1         # relative spread of the steps tolerated (rounded positions)


@dataclass(frozen=True)
class Series:
    """One image series on its voxel grid.

    Attributes:
        files: the slice files, in slice order (ascending along the normal).
        voxels: ``(columns, rows, slices)`` array: Hounsfield units (float64) when read with
            ``rescale=True``, stored values otherwise.
        affine: 4x4 voxel-to-world matrix, millimetres, RAS.
        sop_uids: SOPInstanceUID of each slice, in slice order.
    """

    files: tuple[Path, ...]
    voxels: np.ndarray
    affine: np.ndarray
    sop_uids: tuple[str, ...]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along the three array axes (the affine's column norms)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DatasetError("Reading DICOM needs the pydicom package, which is not installed: run "
                           "`python -m pip install pydicom` (or `python -m helpers setup`).") from None
    return pydicom


def is_dicom(path: Path) -> bool:
    """True when ``path`` is a DICOM file (the ``DICM`` marker after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_header(path: Path, *, pixels: bool = False) -> Dataset:
    """The pydicom dataset of ``path`` (without the pixel data unless ``pixels``).

    Raises:
        DatasetError: the file is not DICOM, is damaged or cannot be read; the message names it.
    """
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except PermissionError as error:
        raise DatasetError(f"{path} cannot be read: permission denied (a problem of this computer's "
                           f"permissions, not of the data): fix the permissions ({error.strerror}).") from None
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as error:
        raise DatasetError(f"{path} cannot be read as DICOM ({error}): the file is damaged or not DICOM; "
                           f"download it again, or remove it.") from None


def _vector(ds: Dataset, keyword: str, size: int, path: Path) -> np.ndarray:
    value = getattr(ds, keyword, None)
    try:
        array = np.asarray([float(v) for v in (() if value is None else value)], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (size,) or not np.isfinite(array).all():
        raise DatasetError(f"{path} has no valid {keyword} (found {value!r}): without it the slice cannot be "
                           f"placed in the patient, so the series cannot be converted. Use the original "
                           f"files of the scanner export, or remove this case.")
    return array


def series_affine(orientation: np.ndarray, pixel_spacing: np.ndarray, first: np.ndarray,
                  last: np.ndarray, n_slices: int) -> np.ndarray:
    """Voxel-to-RAS affine of a series (see the module docstring); the third column is the
    step between consecutive slices, which keeps a gantry tilt's shear.

    Args:
        orientation: ImageOrientationPatient, 6 direction cosines (row direction, column direction).
        pixel_spacing: PixelSpacing, (between rows, between columns) in mm.
        first: ImagePositionPatient (LPS, mm) of the first slice in slice order.
        last: ImagePositionPatient of the last slice.
        n_slices: number of slices; with one slice the third column is the unit normal.

    Returns:
        4x4 float64 matrix mapping ``(i, j, k, 1)`` (column, row, slice) to RAS millimetres.
    """
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    step = (np.asarray(last, float) - np.asarray(first, float)) / (n_slices - 1) if n_slices > 1 else np.cross(row, col)
    lps = np.eye(4)
    lps[:3, 0] = row * float(pixel_spacing[1])
    lps[:3, 1] = col * float(pixel_spacing[0])
    lps[:3, 2] = step
    lps[:3, 3] = first
    return LPS_TO_RAS @ lps


def _check_positions(files: list[Path], along: np.ndarray, positions: np.ndarray, what: str) -> None:
    """Refuse duplicated, missing, unequally spaced or misaligned slices (sorted input)."""
    steps = np.diff(along)
    for k, step in enumerate(steps):
        if step < _DUPLICATE_MM:
            raise DatasetError(f"{files[k + 1]} is a duplicated slice of the {what}: it lies at the same position "
                               f"({along[k]:.2f} mm along the slice normal) as {files[k]}. Remove the duplicate "
                               f"(or the wrong file), or pass --skip-bad to leave the case out.")
    if len(steps) == 0:
        return
    smallest = float(steps.min())
    for k, step in enumerate(steps):
        if step > _GAP_FACTOR * smallest:
            missing = max(int(round(step / smallest)) - 1, 1)
            raise DatasetError(f"the {what} in {files[0].parent} has a missing slice: {missing} slice"
                               f"{'s' if missing > 1 else ''} missing between {files[k].name} "
                               f"({along[k]:.2f} mm) and {files[k + 1].name} ({along[k + 1]:.2f} mm), where the "
                               f"other slices are {smallest:.2f} mm apart. Add the missing file(s) from the "
                               f"download, or pass --skip-bad to leave the case out.")
    if float(steps.max()) - smallest > _UNEQUAL * smallest:
        raise DatasetError(f"the {what} in {files[0].parent} has unequal slice spacing ({smallest:.2f} to "
                           f"{float(steps.max()):.2f} mm): it cannot be stored on one voxel grid. Convert it with "
                           f"a resampling tool first, or pass --skip-bad to leave the case out.")
    expected = positions[0] + np.arange(len(files))[:, None] * (positions[-1] - positions[0]) / (len(files) - 1)
    off = np.linalg.norm(positions - expected, axis=1)
    if off.max() > max(0.1 * smallest, 0.05):
        k = int(off.argmax())
        raise DatasetError(f"{files[k]} lies {off[k]:.2f} mm off the line through the other slices of the "
                           f"{what}: the slices do not form one volume. Remove the stray file, or pass "
                           f"--skip-bad to leave the case out.")


def read_series(files: list[Path], *, rescale: bool = True, what: str = "CT series") -> Series:
    """Read the slices ``files`` (any order) of one series into a volume with its affine.

    Args:
        files: one file per slice (single-frame images of one series).
        rescale: apply RescaleSlope/Intercept (CT, to Hounsfield units); ``False`` keeps the
            stored values (masks).
        what: how messages name the series (``"CT series"``, ``"liver mask series"``).

    Returns:
        The :class:`Series`: voxels ``(columns, rows, slices)``, RAS affine, slice files and UIDs.

    Raises:
        DatasetError: no file; a file that is not DICOM or lacks its geometry
            (ImagePositionPatient, ImageOrientationPatient, PixelSpacing) or pixel data; slices
            of different size, spacing or orientation; a duplicated or missing slice, unequal
            spacing, or NaN/infinite values. The message names the file and the fix.
    """
    if len(files) < 2:
        where = f" ({files[0]})" if files else ""
        raise DatasetError(f"the {what} has {len(files)} slice file{'' if files else 's'}{where}: a volume needs at "
                           f"least two slices. Add the slices from the download, or pass --skip-bad to leave the "
                           f"case out.")
    slices = []
    for path in files:
        ds = read_header(path, pixels=True)
        orientation = _vector(ds, "ImageOrientationPatient", 6, path)
        spacing = _vector(ds, "PixelSpacing", 2, path)
        position = _vector(ds, "ImagePositionPatient", 3, path)
        if "PixelData" not in ds or not isinstance(getattr(ds, "Rows", None), int) \
                or not isinstance(getattr(ds, "Columns", None), int):
            raise DatasetError(f"{path} holds no image (no PixelData, Rows or Columns): it does not belong in the "
                               f"{what}; remove it.")
        if not (spacing > 0).all():
            raise DatasetError(f"{path} has PixelSpacing {spacing.tolist()}: the spacing must be positive; the file "
                               f"is damaged, download it again.")
        slices.append((path, ds, orientation, spacing, position))
    path0, ds0, orientation, spacing, _ = slices[0]
    size0 = (int(ds0.Rows), int(ds0.Columns))
    for path, ds, other_orientation, other_spacing, _ in slices[1:]:
        if (int(ds.Rows), int(ds.Columns)) != size0:
            raise DatasetError(f"{path} is {ds.Columns}x{ds.Rows} pixels but {path0} is {size0[1]}x{size0[0]}: "
                               f"the slices of one {what} must have one size. Remove the stray file.")
        if not np.allclose(other_orientation, orientation, atol=1e-4) or not np.allclose(other_spacing, spacing,
                                                                                         rtol=1e-4):
            raise DatasetError(f"{path} has another orientation or pixel spacing than {path0}: the slices do not "
                               f"form one {what}. Remove the stray file, or pass --skip-bad to leave the case out.")
    normal = np.cross(orientation[:3], orientation[3:])
    if not 0.99 < np.linalg.norm(normal) < 1.01:
        raise DatasetError(f"{path0} has an ImageOrientationPatient whose two directions are not perpendicular "
                           f"unit vectors ({orientation.tolist()}): the file is damaged; download it again.")
    along = np.array([float(np.dot(s[4], normal)) for s in slices])
    order = np.argsort(along, kind="stable")
    slices = [slices[k] for k in order]
    ordered = [s[0] for s in slices]
    positions = np.array([s[4] for s in slices])
    _check_positions(ordered, along[order], positions, what)
    planes = []
    for path, ds, *_ in slices:
        try:
            pixels = np.asarray(ds.pixel_array)
        except Exception as error:  # pydicom raises many types for undecodable pixel data
            raise DatasetError(f"{path}: its pixel data cannot be decoded ({type(error).__name__}: {error}): the "
                               f"file is damaged or compressed in a format pydicom cannot read without a plugin "
                               f"(pip install pylibjpeg pylibjpeg-libjpeg); replace it or install the plugin.") from None
        if pixels.shape != size0:
            raise DatasetError(f"{path} holds {pixels.shape} pixels, expected one {size0[1]}x{size0[0]} grey "
                               f"slice: multi-frame or colour images are not a {what}; remove it.")
        if rescale:
            slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
            pixels = pixels.astype(np.float64) * slope + intercept
        planes.append(pixels.T)
    voxels = np.stack(planes, axis=-1)
    if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
        raise DatasetError(f"the {what} in {path0.parent} holds NaN or infinite values after "
                           f"RescaleSlope/Intercept: the files are damaged; download them again.")
    affine = series_affine(orientation, spacing, positions[0], positions[-1], len(slices))
    uids = tuple(str(getattr(ds, "SOPInstanceUID", "")) for _, ds, *_ in slices)
    return Series(files=tuple(ordered), voxels=voxels, affine=affine, sop_uids=uids)


def check_same_grid(mask: Series, ct: Series, mask_what: str, ct_what: str) -> None:
    """Refuse a mask series that is not on the CT's voxel grid.

    Raises:
        DatasetError: another shape, spacing, orientation or slice positions (beyond 0.01 mm);
            the message names both folders and shows both grids.
    """
    same = mask.voxels.shape == ct.voxels.shape and np.allclose(mask.affine, ct.affine, atol=0.01)
    if not same:
        def grid(series: Series) -> str:
            shape = "x".join(str(n) for n in series.voxels.shape)
            spacing = " x ".join(f"{s:.2f}" for s in series.spacing)
            origin = ", ".join(f"{v:.1f}" for v in series.affine[:3, 3])
            return f"{shape} voxels of {spacing} mm from ({origin}) mm"
        raise DatasetError(f"the {mask_what} in {mask.files[0].parent} does not match the CT grid of "
                           f"{ct.files[0].parent}: the mask has {grid(mask)}, the CT {grid(ct)}. A mask must have "
                           f"one slice per CT slice at the same positions, with the same pixel spacing and "
                           f"orientation; use the mask files of this patient, or pass --skip-bad to leave the "
                           f"case out.")


def _roi_names(ds: Dataset) -> dict[int, str]:
    return {int(item.ROINumber): str(getattr(item, "ROIName", "")) for item in getattr(ds, "StructureSetROISequence", [])}


def referenced_series_uids(ds: Dataset) -> set[str]:
    """SeriesInstanceUIDs that an RTSTRUCT dataset says its contours are drawn on."""
    uids = set()
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                uid = str(getattr(series, "SeriesInstanceUID", "") or "")
                if uid:
                    uids.add(uid)
    return uids


def rasterise_rtstruct(path: Path, ct: Series, roi: re.Pattern = LUNG_ROI) -> tuple[np.ndarray, list[str]]:
    """Fill the contours of the ROIs whose name matches ``roi`` onto the CT grid.

    Args:
        path: the RTSTRUCT file.
        ct: the CT series the structure set was drawn on.
        roi: ROI names to merge (full match); default the lungs (``Lung_L``, ``Lung_R``, ...).

    Returns:
        ``(mask, names)``: uint8 ``{0, 1}`` array of ``ct.voxels.shape`` and the ROI names used.

    Raises:
        DatasetError: no ROI matches (the names found are listed); a contour that references a
            slice absent from the CT series, or lies on no slice of it; a malformed contour.
    """
    from skimage.draw import polygon

    ds = read_header(path)
    if str(getattr(ds, "Modality", "")) != "RTSTRUCT":
        raise DatasetError(f"{path} is not an RTSTRUCT (Modality {getattr(ds, 'Modality', None)!r}).")
    names = _roi_names(ds)
    chosen = {number: name for number, name in names.items() if roi.fullmatch(name.strip())}
    if not chosen:
        raise DatasetError(f"{path} has no ROI named like {roi.pattern!r} (found: {', '.join(sorted(names.values())) or 'none'}): "
                           f"this structure set does not outline the lungs; use the RTSTRUCT of the lung contours, "
                           f"or pass --skip-bad to leave the case out.")
    slice_of = {uid: k for k, uid in enumerate(ct.sop_uids)}
    to_voxel = np.linalg.inv(np.linalg.inv(LPS_TO_RAS) @ ct.affine)  # LPS mm -> (i, j, k)
    shape = ct.voxels.shape
    mask = np.zeros(shape, dtype=bool)
    for roi_contours in getattr(ds, "ROIContourSequence", []):
        number = int(roi_contours.ReferencedROINumber)
        if number not in chosen:
            continue
        layer = np.zeros(shape, dtype=bool)
        for index, contour in enumerate(getattr(roi_contours, "ContourSequence", [])):
            if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            label = f"contour {index + 1} of ROI '{chosen[number]}'"
            try:
                points = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64).reshape(-1, 3)
            except (AttributeError, TypeError, ValueError):
                raise DatasetError(f"{path}: {label} has no valid ContourData (x, y, z triples): the file is "
                                   f"damaged; download it again.") from None
            voxel = (to_voxel @ np.c_[points, np.ones(len(points))].T)[:3].T
            position = float(np.median(voxel[:, 2]))
            references = [str(item.ReferencedSOPInstanceUID) for item in getattr(contour, "ContourImageSequence", [])]
            if references:
                if references[0] not in slice_of:
                    raise DatasetError(f"{path}: {label} references the slice {references[0]}, which is absent from "
                                       f"the CT series in {ct.files[0].parent} ({len(ct.files)} slices): the CT "
                                       f"series is incomplete. Add the missing slice file from the download, or pass "
                                       f"--skip-bad to leave the case out.")
                k = slice_of[references[0]]
                if abs(position - k) > 0.5:
                    raise DatasetError(f"{path}: {label} lies {abs(position - k) * ct.spacing[2]:.1f} mm from the "
                                       f"slice it references ({ct.files[k].name}): the structure set was not drawn "
                                       f"on this CT series; use the matching files.")
            else:
                k = int(round(position))
                if not (0 <= k < shape[2]) or abs(position - k) > 0.25:
                    raise DatasetError(f"{path}: {label} lies at a position where the CT series in "
                                       f"{ct.files[0].parent} has no slice (slice coordinate {position:.2f}): the "
                                       f"CT series is incomplete or not the one the contours were drawn on. Add "
                                       f"the missing slice, or pass --skip-bad to leave the case out.")
            ii, jj = polygon(voxel[:, 0], voxel[:, 1], shape=shape[:2])
            plane = np.zeros(shape[:2], dtype=bool)
            plane[ii, jj] = True
            layer[:, :, k] ^= plane
        mask |= layer
    return mask.astype(np.uint8), sorted(chosen.values())
